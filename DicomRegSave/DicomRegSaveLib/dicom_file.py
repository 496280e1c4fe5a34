"""The one place where DICOM files are read and decoded: every failure becomes a DicomRegSave error.

pydicom reads element values as raw bytes and decodes each one the first time it is accessed, so
a damaged element fails wherever the product happens to touch it, with whatever exception pydicom
raises (NotImplementedError for an unknown VR, struct.error, ValueError, OSError ...). Here a file
is read and then decoded completely, at once, and any failure names the file, the attribute (tag
and keyword, with its path through sequences) and what is wrong.

A file is parsed from a read-only memory map: values of 1 MiB or more (Vector Grid Data) are views
of the page cache, not copies in the process; defined-length sequences are decoded from such views
too. (pydicom inflates a deflated file into memory, and the reader converts big-endian vectors.)
Reads are bounded by the file's size: a declared element length larger than what is left of the
file reads only what is there (and is then reported as truncated), so a damaged length field never
makes the reader reserve memory the file cannot hold.
"""

from __future__ import annotations

import logging
import mmap
import os
import warnings
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom
from pydicom.charset import convert_encodings, default_encoding
from pydicom.datadict import dictionary_VM, dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_sequence
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag

from DicomRegSaveLib.errors import MalformedDicomError, NotDicomError

logger = logging.getLogger(__name__)

#: Reads at least this long become views of the buffer; shorter ones are copied as pydicom expects.
VIEW_THRESHOLD_BYTES = 1 << 20

#: Undefined length (PS3.5 7.1.1): such an element's extent is found by its delimiters.
UNDEFINED_LENGTH = 0xFFFFFFFF


def tag_text(tag: int) -> str:
    """``(gggg,eeee) Keyword`` (the keyword only for tags in the dictionary)."""
    tag = BaseTag(tag)
    keyword = keyword_for_tag(tag) if not tag.is_private else ""
    return f"({tag.group:04X},{tag.element:04X})" + (f" {keyword}" if keyword else "")


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class BufferReader:
    """A read-only file object over bytes whose long reads return memoryviews instead of copies."""

    def __init__(self, buffer: bytes | memoryview) -> None:
        self._view = memoryview(buffer).toreadonly()
        self._position = 0

    def read(self, size: int = -1) -> bytes | memoryview:
        end = len(self._view) if size is None or size < 0 else min(self._position + size, len(self._view))
        chunk = self._view[self._position : end]
        self._position = max(self._position, end)
        return chunk if len(chunk) >= VIEW_THRESHOLD_BYTES else chunk.tobytes()

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._position, len(self._view))[whence]
        self._position = max(0, base + offset)
        return self._position


@contextmanager
def quiet_pydicom() -> Iterator[list[str]]:
    """Collect pydicom's warnings and log records instead of letting them reach stderr."""
    notes: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            notes.append(record.getMessage())

    pydicom_logger = logging.getLogger("pydicom")
    handler = _Collect(logging.WARNING)
    pydicom_logger.addHandler(handler)
    propagate, pydicom_logger.propagate = pydicom_logger.propagate, False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield notes
        notes.extend(str(w.message) for w in caught)
    finally:
        pydicom_logger.removeHandler(handler)
        pydicom_logger.propagate = propagate
    for note in notes:
        logger.info("pydicom: %s", note)


def _is_truncation(note: str) -> bool:
    return "end of file" in note.lower() or "eof" in note.lower()


def read_dicom_file(
    path: str | os.PathLike,
    *,
    stop_before_pixels: bool = False,
    specific_tags: list[int | str] | None = None,
    force: bool = False,
    decode_tags: Collection[int] | None = None,
) -> Dataset:
    """Read a DICOM file and decode every element in it (nested sequence items included).

    Parameters
    ----------
    path:
        The file.
    stop_before_pixels, specific_tags, force:
        As for :func:`pydicom.dcmread`.
    decode_tags:
        Decode only these top-level elements (with all their items) of the file meta information
        and the data set; the others are kept as read, for :func:`decode_whole` to decode when
        the whole header is needed. Decoding is most of the time spent on a header, and a series
        of hundreds of slices needs only a few attributes of each.

    Raises
    ------
    NotDicomError
        If the file is not DICOM (pydicom's InvalidDicomError).
    MalformedDicomError
        If it does not exist, cannot be opened, ends inside an element, or an element cannot be
        decoded; the message names the file, and the element where one is to blame.
    """
    dataset, problems = open_dicom_file(
        path, stop_before_pixels=stop_before_pixels, specific_tags=specific_tags, force=force
    )
    if problems:
        raise MalformedDicomError(f"{path} is truncated: {problems[0]}. The file is incomplete; copy it again.")
    return _decode_file(dataset, str(path), decode_tags)


def decode_whole(dataset: Dataset, name: str) -> Dataset:
    """Decode the elements of `dataset` that :func:`read_dicom_file` left as read; return it.

    Elements decoded already are only checked again, so calling it twice costs little.

    Raises
    ------
    MalformedDicomError
        As :func:`decode_all`, naming `name` (the file, or what the data set is).
    """
    return _decode_file(dataset, name, None)


def _decode_file(dataset: Dataset, name: str, tags: Collection[int] | None) -> Dataset:
    """:func:`decode_all` on the file meta information and the data set, pydicom's notes logged."""
    with quiet_pydicom():
        if getattr(dataset, "file_meta", None) is not None:
            decode_all(dataset.file_meta, name, tags=tags)
        decode_all(dataset, name, tags=tags)
    return dataset


def open_dicom_file(
    path: str | os.PathLike,
    *,
    stop_before_pixels: bool = False,
    specific_tags: list[int | str] | None = None,
    force: bool = False,
) -> tuple[Dataset, list[str]]:
    """Read a DICOM file's elements without decoding them: (dataset, problems of the file as a whole).

    The problems are sentences such as the file ending before a delimiter; the elements read
    before that point are in the dataset. Decode elements with :func:`decode_all` or one by one
    with :func:`decoded_or_problem`.

    Raises
    ------
    NotDicomError, MalformedDicomError
        As :func:`read_dicom_file`, for failures before any element is available.
    """
    path = Path(path)
    if not path.is_file():
        raise MalformedDicomError(f"{path}: no such file (or it is a folder); give the path of a DICOM file.")
    with quiet_pydicom() as notes:
        try:
            with open(path, "rb") as stream:
                mapped = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) if path.stat().st_size else b""
            dataset = pydicom.dcmread(
                BufferReader(mapped), stop_before_pixels=stop_before_pixels, specific_tags=specific_tags, force=force
            )
        except InvalidDicomError as exc:
            raise NotDicomError(f"{path}: not a readable DICOM file (no DICOM header: {_describe(exc)}).") from exc
        except Exception as exc:  # noqa: BLE001 - the reading boundary: any parser failure is a damaged file
            if "No tag to read" in str(exc):
                raise MalformedDicomError(
                    f"{path}: not a readable DICOM file: its data set ends before its last sequence does "
                    f"({_describe(exc)}); the file is truncated or a length in it is wrong."
                ) from exc
            raise MalformedDicomError(
                f"{path}: not a readable DICOM file ({_describe(exc)}). The file is damaged or not DICOM."
            ) from exc
    dataset.filename = str(path)
    return dataset, [note for note in notes if _is_truncation(note)]


def _encodings(dataset: Dataset) -> list[str]:
    raw = dataset.get_item(0x00080005, keep_deferred=True)
    if raw is None or not raw.value:
        return [default_encoding]
    return convert_encodings(dataset.SpecificCharacterSet)


def decode_element(container: Dataset, tag: int, encodings: list[str] | None = None) -> DataElement:
    """Decode one element of `container` in place and return it; exceptions are pydicom's own.

    A defined-length sequence is decoded from memoryviews of its bytes (see the module's notes);
    everything else as pydicom does on first access.
    """
    element = container.get_item(tag, keep_deferred=True)
    if isinstance(element, RawDataElement):
        if element.value is not None and element.length not in (UNDEFINED_LENGTH, len(element.value)):
            raise EOFError(f"the file ends inside it: {element.length} bytes declared, {len(element.value)} present")
        vr = element.VR or (dictionary_VR(tag) if keyword_for_tag(tag) else None)
        if element.value is not None and vr == "SQ":
            items = read_sequence(
                BufferReader(element.value),
                element.is_implicit_VR,
                element.is_little_endian,
                len(element.value),
                encodings or _encodings(container),
            )
            container[tag] = DataElement(tag, "SQ", DicomSequence(items))
    return container[tag]


def decode_all(dataset: Dataset, name: str, _path: str = "", tags: Collection[int] | None = None) -> None:
    """Decode every element of `dataset` (or only its `tags` that are present) and of the items of
    their sequences.

    Raises
    ------
    MalformedDicomError
        Naming `name` (the file), the element's path (``(0064,0002) DeformableRegistrationSequence
        item 1 > (0064,0009) VectorGridData``) and what is wrong with it.
    """
    encodings = None
    for tag in list(dataset.keys()) if tags is None else [t for t in tags if t in dataset]:
        try:
            if encodings is None:
                encodings = _encodings(dataset)
            element = decode_element(dataset, tag, encodings)
            _check_kind(element)
        except Exception as exc:  # noqa: BLE001 - the reading boundary: any decoding failure
            raise MalformedDicomError(
                f"{name}: the attribute {_path}{tag_text(tag)} cannot be decoded ({_describe(exc)}). The file is "
                "damaged; ask its producer for a valid copy."
            ) from exc
        if element.VR == "SQ":
            for number, item in enumerate(element.value, start=1):
                decode_all(item, name, f"{_path}{tag_text(tag)} item {number} > ")


def _check_kind(element: DataElement) -> None:
    """Refuse what the code reading values cannot take: a sequence that is not one (or the
    reverse) and several UIDs where the standard allows one (UIDs are used as keys)."""
    tag = element.tag
    standard_vr = dictionary_VR(tag) if not tag.is_private and keyword_for_tag(tag) else None
    if standard_vr is not None and (standard_vr == "SQ") != (element.VR == "SQ"):
        raise ValueError(f"it has VR {element.VR}, but the standard defines VR {standard_vr}")
    if element.VR == "SQ" and not all(isinstance(item, Dataset) for item in element.value):
        raise ValueError("a sequence whose items are not data sets")
    if standard_vr == "UI" and element.VM > 1 and dictionary_VM(tag) == "1":
        raise ValueError(f"it holds {element.VM} UIDs, but the standard allows one")


def decoded_or_problem(dataset: Dataset, tag: int) -> DataElement | str:
    """The decoded element, or a sentence saying why it cannot be decoded (for dumps; run it
    inside :func:`quiet_pydicom` so that pydicom's warnings about values do not reach stderr)."""
    try:
        element = decode_element(dataset, tag)
        _check_kind(element)
    except Exception as exc:  # noqa: BLE001 - the dump shows what can be shown and marks the rest
        return _describe(exc)
    return element


#: Series Number (0020,0011).
SERIES_NUMBER_TAG = 0x00200011


def series_number(header: Dataset) -> int | None:
    """The header's Series Number, or ``None`` when it has none or it is not a whole number.

    Lenient: other files' Series Numbers only tell which numbers are taken, so a damaged one is
    passed over rather than stopping the export.
    """
    with quiet_pydicom():
        element = decoded_or_problem(header, SERIES_NUMBER_TAG)
    if isinstance(element, str) or element.value in (None, ""):
        return None
    try:
        return int(element.value)
    except (TypeError, ValueError):
        return None
