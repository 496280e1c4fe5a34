"""DICOM attribute values as the user types them (module panel, export dialog) -> ExportOptions.

Each value is checked against its VR and the REG's rules with a message naming the attribute and
tag; patient and study values that differ from what the REG inherits from the fixed image become
overrides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pydicom
from pydicom.datadict import dictionary_description, dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

from DicomRegSaveLib.errors import InvalidRegistrationError
from DicomRegSaveLib.export.pipeline import OPTION_FIELDS, ExportOptions
from DicomRegSaveLib.reg import tags
from DicomRegSaveLib.values import separates_values

#: The module panel's editable fields, grouped like the modules of the standard. The attributes that
#: are inherited from the fixed image are decided in tags.py; these are the ones the panel shows.
PANEL_FIELDS: dict[str, tuple[str, ...]] = {
    "Patient": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"),
    "Study": (
        "StudyInstanceUID",
        "StudyID",
        "StudyDate",
        "StudyTime",
        "StudyDescription",
        "AccessionNumber",
        "ReferringPhysicianName",
    ),
    "Series": ("SeriesDescription", "SeriesNumber"),
    "Equipment": ("Manufacturer", "ManufacturerModelName", "DeviceSerialNumber", "SoftwareVersions"),
    "Content": ("ContentLabel", "ContentDescription", "ContentCreatorName"),
}

#: Type 1 attributes among the editable ones: an empty value cannot be written.
_REQUIRED_KEYWORDS = frozenset(
    {
        "SeriesNumber",
        "ContentLabel",
        "Manufacturer",
        "ManufacturerModelName",
        "DeviceSerialNumber",
        "SoftwareVersions",
        "StudyInstanceUID",
    }
)


def tag_problem(keyword: str, value: str) -> str | None:
    """What is wrong with `value` (text as typed) for attribute `keyword`, or ``None`` if it is valid.

    Multiple values are separated by a backslash. Checks: Type 1 attributes are not empty, the
    value fits the VR (length, single line, UID/date/time/person name syntax), Content Label is a
    code string, Series Number a positive integer.
    """
    if tag_for_keyword(keyword) is None:
        return f"{keyword!r} is not a DICOM keyword"
    text = "" if value is None else str(value)
    if not text.strip():
        return "must not be empty (Type 1)" if keyword in _REQUIRED_KEYWORDS else None
    vr = dictionary_VR(keyword)
    values = text.split("\\") if separates_values(vr) else [text]
    return tags.override_problem(keyword, values if len(values) > 1 else values[0])


def field_problems(fields: Mapping[str, str]) -> dict[str, str]:
    """Keyword -> problem for every field value that cannot be written (see :func:`tag_problem`)."""
    problems = {}
    for keyword, value in fields.items():
        problem = tag_problem(keyword, value)
        if problem is not None:
            problems[keyword] = problem
    return problems


def describe_keyword(keyword: str) -> str:
    """``Series Number (0020,0011)`` for ``SeriesNumber``."""
    tag = tag_for_keyword(keyword)
    return f"{dictionary_description(tag)} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def options_from_tags(
    tag_values: Mapping[str, str],
    inherited: Mapping[str, str] | None = None,
    base: ExportOptions | None = None,
) -> ExportOptions:
    """ExportOptions from edited tag values (keyword -> text).

    Attributes that ExportOptions carries (series description/number, content, equipment) set
    those fields; any other attribute becomes an override when its text differs from the value in
    `inherited` (what the REG inherits from the fixed image). An empty field never blanks an
    attribute unless `inherited` shows a different value for it: fields that were never filled
    leave the inherited values alone.

    Raises
    ------
    InvalidRegistrationError
        Listing every value that cannot be written, by attribute name and tag.
    """
    problems = field_problems(tag_values)
    if problems:
        raise InvalidRegistrationError(
            "These values cannot be written; correct them and export again:\n"
            + "\n".join(f"  {describe_keyword(k)}: {p}." for k, p in problems.items())
        )
    options = dataclasses.replace(base) if base is not None else ExportOptions()
    overrides = dict(options.overrides)
    for keyword, value in tag_values.items():
        text = "" if value is None else str(value)
        if keyword in OPTION_FIELDS:
            setattr(options, OPTION_FIELDS[keyword], _option_value(keyword, text))
        elif _changes_inherited(keyword, text, inherited):
            overrides[keyword] = text.split("\\") if "\\" in text and dictionary_VR(keyword) != "LT" else text
    options.overrides = overrides
    return options


def _changes_inherited(keyword: str, text: str, inherited: Mapping[str, str] | None) -> bool:
    if inherited is None or keyword not in inherited:
        return bool(text)
    return str(inherited[keyword]) != text


def _option_value(keyword: str, text: str) -> object:
    if keyword == "SeriesNumber":
        return int(text.strip())
    if keyword == "SoftwareVersions":
        return [v for v in text.split("\\") if v]
    if keyword in ("SeriesDescription", "ContentDescription", "ContentCreatorName") and not text:
        return None
    return text


def panel_fields(
    fixed_header: Dataset | None = None, options: ExportOptions | None = None
) -> dict[str, dict[str, str]]:
    """Group -> keyword -> text for the module panel (:data:`PANEL_FIELDS`).

    Patient and study values are those the REG inherits from `fixed_header` (empty without it);
    series, equipment and content values come from `options` (default ExportOptions).
    """
    options = options or ExportOptions()
    option_texts = {
        "SeriesDescription": options.series_description or "",
        "SeriesNumber": str(options.series_number),
        "ContentLabel": options.content_label,
        "ContentDescription": options.content_description or "",
        "ContentCreatorName": options.content_creator_name or "",
        "Manufacturer": options.manufacturer,
        "ManufacturerModelName": options.manufacturer_model_name,
        "DeviceSerialNumber": options.device_serial_number,
        "SoftwareVersions": "\\".join(options.software_versions),
    }
    groups: dict[str, dict[str, str]] = {}
    for group, keywords in PANEL_FIELDS.items():
        groups[group] = {k: option_texts[k] if k in option_texts else header_text(fixed_header, k) for k in keywords}
    return groups


def inherited_values(fixed_header: Dataset) -> dict[str, str]:
    """Keyword -> text of the patient and study attributes the REG inherits from the fixed image."""
    return {k: header_text(fixed_header, k) for k in tags.inherited_keywords() if k in fixed_header}


def header_text(header: Dataset | None, keyword: str) -> str:
    """The value of `keyword` in `header` as the text a user edits (multiple values joined by a backslash)."""
    if header is None or keyword not in header or header[keyword].value is None:
        return ""
    value = header[keyword].value
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value)
