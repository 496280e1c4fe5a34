"""A dcmdump-like text dump of a dataset, with Vector Grid Data summarised instead of printed.

Used by ``dicomregsave inspect`` and by the preview in the Slicer module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
from pydicom.dataset import Dataset

from .vector_buffer import VECTOR_GRID_DATA_TAG, vector_chunks


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


def _value_text(element, parent: Dataset, max_chars: int) -> str:
    if element.tag == VECTOR_GRID_DATA_TAG:
        return summarize_vectors(element.value, parent.get("GridDimensions"))
    if element.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        return f"<{element.VR} data>"
    text = "\\".join(str(v) for v in element.value) if element.VM > 1 else str(element.value)
    if len(text) > max_chars:
        text = text[: max(0, max_chars - 3)] + "..."
    return f"[{text}]"


def dump_lines(dataset: Dataset, max_chars: int = 80, depth: int = 0) -> Iterator[str]:
    """One line per element: ``(gggg,eeee) VR Keyword  [value]``, sequence items indented."""
    indent = "  " * depth
    if depth == 0 and getattr(dataset, "file_meta", None) is not None:
        for element in dataset.file_meta:
            yield f"{indent}({element.tag.group:04X},{element.tag.element:04X}) {element.VR} {element.keyword}  {_value_text(element, dataset.file_meta, max_chars)}"
    for element in dataset:
        head = f"{indent}({element.tag.group:04X},{element.tag.element:04X}) {element.VR} {element.keyword or element.name}"
        if element.VR == "SQ":
            yield f"{head}  ({len(element.value)} item{'s' if len(element.value) != 1 else ''})"
            for number, item in enumerate(element.value, start=1):
                yield f"{indent}  > item {number}"
                yield from dump_lines(item, max_chars, depth + 2)
        else:
            yield f"{head}  {_value_text(element, dataset, max_chars)}"


def dump(dataset: Dataset, pattern: str | None = None, max_chars: int = 80) -> str:
    """The dump as text; with `pattern`, only lines matching that regular expression (case-insensitive)."""
    lines = dump_lines(dataset, max_chars)
    if pattern:
        regex = re.compile(pattern, re.IGNORECASE)
        lines = (line for line in lines if regex.search(line))
    return "\n".join(lines)
