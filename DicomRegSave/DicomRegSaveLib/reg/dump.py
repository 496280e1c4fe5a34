"""A dcmdump-like text dump of a dataset, with Vector Grid Data summarised instead of printed.

Used by ``dicomregsave inspect`` and by the preview in the Slicer module.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from DicomRegSaveLib.dicom_file import decoded_or_problem, quiet_pydicom, tag_text
from DicomRegSaveLib.reg.vector_grid_data import VECTOR_GRID_DATA_TAG, vector_chunks

GRID_DIMENSIONS_TAG = 0x00640007


def summarize_vectors(value: object, dimensions: object | None = None) -> str:
    """'<n> vectors on grid <dims>; |d| min/max/mean mm; NaN points' for one Vector Grid Data value."""
    count = undefined = 0
    smallest, largest, total = np.inf, 0.0, 0.0
    for _, triples in vector_chunks(value):
        count += len(triples)
        defined = triples[~np.isnan(triples).any(axis=1)]
        undefined += len(triples) - len(defined)
        if len(defined):
            magnitude = np.sqrt(np.einsum("ij,ij->i", defined, defined, dtype=np.float64))
            smallest, largest = min(smallest, magnitude.min()), max(largest, magnitude.max())
            total += magnitude.sum()
    text = f"{count} vectors"
    if dimensions is not None:
        text += " on grid " + "x".join(str(int(d)) for d in dimensions)
    if count > undefined:
        text += f"; |d| min {smallest:.4g} mm, max {largest:.4g} mm, mean {total / (count - undefined):.4g} mm"
    if undefined:
        text += f"; {undefined} undefined (NaN) points"
    return text


def _grid_dimensions(parent: Dataset) -> list[int] | None:
    element = decoded_or_problem(parent, GRID_DIMENSIONS_TAG) if GRID_DIMENSIONS_TAG in parent else None
    if not isinstance(element, DataElement):
        return None
    values = element.value if isinstance(element.value, (list, tuple, MultiValue)) else [element.value]
    try:
        return [int(v) for v in values] if len(values) == 3 else None
    except (TypeError, ValueError):
        return None


def _vector_text(value: object, parent: Dataset) -> str:
    if value is None:
        return "<no vectors>"
    if isinstance(value, io.IOBase):
        return summarize_vectors(value, _grid_dimensions(parent))
    if not isinstance(value, (bytes, bytearray, memoryview)):
        return f"<not vector data: a {type(value).__name__} value>"
    length = memoryview(value).nbytes
    if length % 12:
        return f"<{length} bytes: not a whole number of 3 x float32 vectors (12 bytes each)>"
    return summarize_vectors(value, _grid_dimensions(parent))


def _value_text(element: DataElement, parent: Dataset, max_chars: int) -> str:
    if element.tag == VECTOR_GRID_DATA_TAG:
        return _vector_text(element.value, parent)
    if element.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        return f"<{element.VR} data>"
    text = "\\".join(str(v) for v in element.value) if element.VM > 1 else str(element.value)
    if len(text) > max_chars:
        text = text[: max(0, max_chars - 3)] + "..."
    return f"[{text}]"


def _raw_head(dataset: Dataset, tag: int, indent: str) -> str:
    raw = dataset.get_item(tag, keep_deferred=True)
    vr = getattr(raw, "VR", None) or "??"
    return f"{indent}{tag_text(tag)} {vr}"


def dump_lines(dataset: Dataset, max_chars: int = 80, depth: int = 0) -> Iterator[str]:
    """One line per element: ``(gggg,eeee) VR Keyword  [value]``, sequence items indented.

    An element that cannot be decoded is shown as ``(gggg,eeee) VR Keyword  <cannot decode: why>``
    and the dump goes on with the next one.
    """
    indent = "  " * depth
    if depth == 0 and getattr(dataset, "file_meta", None) is not None:
        yield from dump_lines(dataset.file_meta, max_chars, depth)
    for tag in list(dataset.keys()):
        element = decoded_or_problem(dataset, tag)
        if isinstance(element, str):
            yield f"{_raw_head(dataset, tag, indent)}  <cannot decode: {element}>"
            continue
        head = f"{indent}({element.tag.group:04X},{element.tag.element:04X}) {element.VR} {element.keyword or element.name}"
        if element.VR == "SQ":
            yield f"{head}  ({len(element.value)} item{'s' if len(element.value) != 1 else ''})"
            for number, item in enumerate(element.value, start=1):
                yield f"{indent}  > item {number}"
                yield from dump_lines(item, max_chars, depth + 2)
        else:
            try:
                text = _value_text(element, dataset, max_chars)
            except Exception as exc:  # noqa: BLE001 - the dump marks what it cannot show and goes on
                text = f"<cannot show: {type(exc).__name__}: {exc}>"
            yield f"{head}  {text}"


def dump(dataset: Dataset, pattern: str | None = None, max_chars: int = 80) -> str:
    """The dump as text; with `pattern`, only lines matching that regular expression (case-insensitive)."""
    lines = dump_lines(dataset, max_chars)
    if pattern:
        regex = re.compile(pattern, re.IGNORECASE)
        lines = (line for line in lines if regex.search(line))
    with quiet_pydicom():
        return "\n".join(lines)
