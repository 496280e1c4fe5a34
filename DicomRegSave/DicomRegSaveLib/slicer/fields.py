"""The module panel's DICOM attribute fields: which (from :mod:`export.option_table`), their texts from
the fixed image and the options, and the checks and conversion of what the user types
(:mod:`export.options`: values that differ from what the REG inherits become overrides).
"""

from __future__ import annotations

import pydicom
from pydicom.dataset import Dataset

from DicomRegSaveLib.export.option_table import EXPORT_OPTIONS, PANEL_FIELDS
from DicomRegSaveLib.export.options import (
    ExportOptions,
    describe_keyword,
    field_problems,
    options_from_tags,
    tag_problem,
)
from DicomRegSaveLib.reg import tags

__all__ = [
    "PANEL_FIELDS",
    "PLACEHOLDERS",
    "describe_keyword",
    "field_problems",
    "header_text",
    "inherited_values",
    "options_from_tags",
    "panel_fields",
    "tag_problem",
]

#: Panel keyword -> what an empty field means, where it is not "nothing" (the field's placeholder text).
PLACEHOLDERS = {"SeriesNumber": "automatic: the lowest free number from 1000 up in the fixed image's study"}

#: Panel keyword -> the ExportOptions field that holds its value (the others are inherited).
_PANEL_OPTION_FIELDS = {o.keyword: o.field for o in EXPORT_OPTIONS if o.panel is not None and o.target == "options"}


def panel_fields(
    fixed_header: Dataset | None = None, options: ExportOptions | None = None
) -> dict[str, dict[str, str]]:
    """Group -> keyword -> text for the module panel (:data:`PANEL_FIELDS`).

    Patient and study values are those the REG inherits from `fixed_header` (empty without it);
    series, equipment and content values come from `options` (default ExportOptions).
    """
    options = options or ExportOptions()
    option_texts = {keyword: _text(getattr(options, name)) for keyword, name in _PANEL_OPTION_FIELDS.items()}
    groups: dict[str, dict[str, str]] = {}
    for group, keywords in PANEL_FIELDS.items():
        groups[group] = {k: option_texts[k] if k in option_texts else header_text(fixed_header, k) for k in keywords}
    return groups


def inherited_values(fixed_header: Dataset) -> dict[str, str]:
    """Keyword -> text of the patient and study attributes the REG inherits from the fixed image."""
    return {k: header_text(fixed_header, k) for k in tags.inherited_keywords() if k in fixed_header}


def _text(value: object) -> str:
    """A value as the text a user edits: nothing for ``None``, multiple values joined by a backslash."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value)


def header_text(header: Dataset | None, keyword: str) -> str:
    """The value of `keyword` in `header` as the text a user edits (multiple values joined by a backslash)."""
    if header is None or keyword not in header:
        return ""
    return _text(header[keyword].value)
