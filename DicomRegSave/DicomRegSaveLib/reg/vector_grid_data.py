"""Vector Grid Data from a numpy array to disk without copies of the field.

A dataset holds each Vector Grid Data value as a :class:`VectorGridBuffer` over the grid's float32
(k, j, i, 3) vectors (or a grid that converts them plane by plane, :meth:`.DisplacementGrid.from_ras`):
pydicom 3 accepts such buffered OF values, so ``save_as`` works as usual.
pydicom still encodes every sequence into memory before writing it, and Vector Grid Data sits two
sequences deep, which would hold the field in memory twice more; :func:`write_dataset_streaming`
avoids that by writing the dataset with small placeholders in undefined-length sequences and
splicing each field in, plane by plane, straight from its array.
"""

from __future__ import annotations

import io
import os
import secrets
import struct
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO

from DicomRegSaveLib.model import DisplacementGrid, UndefinedVectors, check_planes
from DicomRegSaveLib.progress import Progress, ignore_progress, part

VECTOR_GRID_DATA_TAG = 0x00640009

# Triples per chunk when Vector Grid Data is read from bytes or a stream (bounds temporaries).
_CHUNK_TRIPLES = 1 << 20


class VectorGridBuffer(io.BufferedIOBase):
    """Little-endian float32 bytes of `vectors_kji` in i-fastest order, without copying the array.

    Parameters
    ----------
    vectors_kji:
        A :class:`DisplacementGrid`, whose planes are taken from :meth:`DisplacementGrid.plane_lps`
        one at a time and checked by the grid itself (:meth:`DisplacementGrid.checked_planes`:
        the grid keeps the result). Or an array of shape (n_k, n_j, n_i, 3), LPS; a k plane that is
        not C-contiguous little-endian float32 is converted, one plane at a time.
    checked:
        For an array: whether the values are known to be valid. If not, :meth:`write_to` checks each
        plane (no infinity, no partly NaN triple) just before writing it, while it is in the CPU's
        cache, and counts whole-NaN triples in :attr:`undefined`.
    """

    def __init__(self, vectors_kji: np.ndarray | DisplacementGrid, checked: bool = False) -> None:
        super().__init__()
        if isinstance(vectors_kji, DisplacementGrid):
            n_i, n_j, n_k = vectors_kji.dimensions
            self.shape = (n_k, n_j, n_i, 3)
            self._plane_lps = vectors_kji.plane_lps
            self._checked_planes = vectors_kji.checked_planes
        else:
            if vectors_kji.ndim != 4 or vectors_kji.shape[3] != 3:
                raise ValueError(f"expected shape (n_k, n_j, n_i, 3), got {vectors_kji.shape}")
            self.shape = vectors_kji.shape
            self._plane_lps = vectors_kji.__getitem__
            self._checked_planes = self._checked_array_planes
        self.checked = checked
        #: Whole-NaN triples counted when the planes of an array are checked.
        self.undefined = UndefinedVectors()
        self._plane_bytes = 12 * self.shape[1] * self.shape[2]
        self._length = self._plane_bytes * self.shape[0]
        self._position = 0
        self._last_plane: tuple[int, memoryview | None] = (-1, None)

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._length}[whence]
        self._position = max(0, base + offset)
        return self._position

    def planes(self) -> Iterator[np.ndarray]:
        """The k planes (n_j, n_i, 3) in order, unchecked, as they are written."""
        for k in range(self.shape[0]):
            yield self._plane_lps(k)

    def _checked_array_planes(self) -> Iterator[np.ndarray]:
        planes = map(self._plane_lps, range(self.shape[0]))
        if not self.checked:
            planes = check_planes(planes, self.shape[2], self.shape[1], self.undefined)
        yield from planes
        self.checked = True

    def _plane(self, k: int) -> memoryview:
        # read() serves a plane in many small pieces; a converted plane is made once for all of them.
        if self._last_plane[0] != k:
            plane = np.ascontiguousarray(self._plane_lps(k), dtype="<f4")
            self._last_plane = (k, memoryview(plane).cast("B"))
        return self._last_plane[1]

    def read(self, size: int | None = -1) -> bytes:
        end = self._length if size is None or size < 0 else min(self._length, self._position + size)
        parts = []
        while self._position < end:
            k, offset = divmod(self._position, self._plane_bytes)
            take = min(end - self._position, self._plane_bytes - offset)
            parts.append(self._plane(k)[offset : offset + take])
            self._position += take
        return b"".join(parts)

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def write_to(self, stream: BinaryIO, progress: Progress | None = None) -> None:
        """Write the bytes to `stream` plane by plane, without joining them, checking each plane
        first unless the values are checked already; `progress` is called after each plane.

        Raises
        ------
        InvalidRegistrationError
            At the first plane with an infinite value or a partly NaN triple (the bytes written
            so far are incomplete: the caller discards the file).
        """
        progress = progress or ignore_progress
        n_k = self.shape[0]
        for k, plane in enumerate(self._checked_planes()):
            stream.write(memoryview(np.ascontiguousarray(plane, dtype="<f4")).cast("B"))
            progress((k + 1) / n_k, "Writing Vector Grid Data")


def vector_chunks(value: object, big_endian: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """Vector Grid Data as ``(index of the first triple, float32 (N, 3) triples)`` chunks, no copies.

    `value` is a :class:`VectorGridBuffer` (served from its array, plane by plane), another
    readable stream (read in chunks, position restored) or bytes-like (viewed in place).
    """
    if isinstance(value, VectorGridBuffer):
        start = 0
        for plane in value.planes():
            triples = plane.reshape(-1, 3)
            yield start, triples
            start += len(triples)
        return
    dtype = ">f4" if big_endian else "<f4"
    if isinstance(value, io.IOBase):
        position = value.tell()
        value.seek(0)
        try:
            start = 0
            while chunk := value.read(12 * _CHUNK_TRIPLES):
                triples = np.frombuffer(chunk, dtype=dtype).reshape(-1, 3)
                yield start, triples
                start += len(triples)
        finally:
            value.seek(position)
        return
    triples = np.frombuffer(value, dtype=dtype).reshape(-1, 3)
    for start in range(0, len(triples), _CHUNK_TRIPLES):
        yield start, triples[start : start + _CHUNK_TRIPLES]


def _streamed_elements(dataset: Dataset) -> list[tuple[Dataset, Dataset, object]]:
    """(registration item, grid item, VectorGridBuffer) for every buffered Vector Grid Data value."""
    found = []
    for item in dataset.get("DeformableRegistrationSequence", []):
        for grid_item in item.get("DeformableRegistrationGridSequence", []):
            element = grid_item.get(VECTOR_GRID_DATA_TAG)
            if element is not None and isinstance(element.value, VectorGridBuffer):
                found.append((item, grid_item, element.value))
    return found


def write_dataset_streaming(dataset: Dataset, stream: BinaryIO, progress: Progress | None = None) -> None:
    """Write `dataset` in DICOM file format to `stream`, streaming Vector Grid Data from its arrays.

    The Deformable Registration Sequence and Grid Sequence (and their items) are written with
    undefined length, so that their encoded size does not depend on the field. The dataset is
    left as it was. Vector values not yet checked are checked as they are written
    (:meth:`VectorGridBuffer.write_to`); `progress` follows the fields' planes.
    """
    streamed = _streamed_elements(dataset)
    placeholders = [secrets.token_bytes(16) for _ in streamed]
    registration_sequence = dataset["DeformableRegistrationSequence"] if streamed else None
    saved_flags = []
    try:
        for (item, grid_item, _buffer), placeholder in zip(streamed, placeholders):
            grid_item[VECTOR_GRID_DATA_TAG].value = placeholder
            for element in (registration_sequence, item["DeformableRegistrationGridSequence"]):
                saved_flags.append((element, "is_undefined_length", element.is_undefined_length))
                element.is_undefined_length = True
            for sequence_item in (item, grid_item):
                saved_flags.append(
                    (
                        sequence_item,
                        "is_undefined_length_sequence_item",
                        getattr(sequence_item, "is_undefined_length_sequence_item", False),
                    )
                )
                sequence_item.is_undefined_length_sequence_item = True
        encoded = DicomBytesIO()
        dataset.save_as(encoded, enforce_file_format=True)
    finally:
        for target, name, value in reversed(saved_flags):
            setattr(target, name, value)
        for (_, grid_item, buffer), _placeholder in zip(streamed, placeholders):
            grid_item[VECTOR_GRID_DATA_TAG].value = buffer
    encoded_bytes = encoded.getvalue()
    data = memoryview(encoded_bytes)
    position = 0
    total_bytes = sum(len(buffer) for _, _, buffer in streamed)
    done_bytes = 0
    for (_, _, buffer), placeholder in zip(streamed, placeholders):
        offset = encoded_bytes.find(placeholder, position)
        # the OF value's 4-byte length field precedes the value itself
        stream.write(data[position : offset - 4])
        stream.write(struct.pack("<I", len(buffer)))
        buffer.write_to(stream, part(progress, done_bytes / total_bytes, (done_bytes + len(buffer)) / total_bytes))
        done_bytes += len(buffer)
        position = offset + len(placeholder)
    stream.write(data[position:])
