"""A read-only, seekable byte stream over a (k, j, i, 3) float32 array, for pydicom's buffered OF values.

pydicom 3 writes an OF element whose value is a ``BufferedIOBase`` in chunks, so the displacement
field goes from the numpy array to disk without a ``tobytes()`` copy. Planes are served one at a
time, which also covers the k-reversed view that :meth:`DisplacementGrid.right_handed` returns.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from pydicom import config

# pydicom reads buffered values 8 KiB at a time by default; fewer, larger reads are much faster.
WRITE_CHUNK_BYTES = 16 << 20


class VectorGridBuffer(io.BufferedIOBase):
    """Little-endian float32 bytes of `vectors_kji` in i-fastest order, without copying the array.

    Parameters
    ----------
    vectors_kji:
        Array of shape (n_k, n_j, n_i, 3); each k plane must be C-contiguous little-endian float32
        (a plane that is not is converted, one plane at a time).
    """

    def __init__(self, vectors_kji: np.ndarray) -> None:
        super().__init__()
        if vectors_kji.ndim != 4 or vectors_kji.shape[3] != 3:
            raise ValueError(f"expected shape (n_k, n_j, n_i, 3), got {vectors_kji.shape}")
        self.array = vectors_kji
        self._plane_bytes = 12 * vectors_kji.shape[1] * vectors_kji.shape[2]
        self._length = self._plane_bytes * vectors_kji.shape[0]
        self._position = 0

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

    def _plane(self, k: int) -> memoryview:
        plane = np.ascontiguousarray(self.array[k], dtype="<f4")
        return memoryview(plane).cast("B")

    def read(self, size: int | None = -1) -> bytes:
        end = self._length if size is None or size < 0 else min(self._length, self._position + size)
        parts = []
        while self._position < end:
            k, offset = divmod(self._position, self._plane_bytes)
            take = min(end - self._position, self._plane_bytes - offset)
            parts.append(self._plane(k)[offset:offset + take])
            self._position += take
        return b"".join(parts)

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)


@contextmanager
def large_buffered_reads() -> Iterator[None]:
    """Temporarily raise pydicom's buffered read size so large OF values are written in big chunks."""
    previous = config.settings.buffered_read_size
    config.settings.buffered_read_size = WRITE_CHUNK_BYTES
    try:
        yield
    finally:
        config.settings.buffered_read_size = previous
