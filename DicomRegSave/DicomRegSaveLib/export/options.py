"""What a user may choose about a REG object (:class:`ExportOptions`), and attribute values typed as
text (command-line ``--tag`` and option values, the module panel, the export dialog) made into it.

Each typed value is checked against its VR and the REG's rules with a message naming the attribute
and tag. Which attribute sets which field comes from :mod:`export.option_table`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import highdicom as hd
import pydicom
from pydicom.datadict import dictionary_description, dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from DicomRegSaveLib import __version__
from DicomRegSaveLib.errors import InvalidRegistrationError
from DicomRegSaveLib.export.option_table import EXPORT_OPTIONS, OPTION_FIELDS, TYPE1_KEYWORDS
from DicomRegSaveLib.model import IMAGE_CONTENT_BASED_ALIGNMENT
from DicomRegSaveLib.reg import tags
from DicomRegSaveLib.values import separates_values

__all__ = [
    "ExportOptions",
    "default_software_versions",
    "describe_keyword",
    "field_problems",
    "option_value",
    "options_from_tags",
    "options_with_tags",
    "registration_type_code",
    "tag_problem",
]


def default_software_versions() -> list[str]:
    return [f"DicomRegSave {__version__}", f"pydicom {pydicom.__version__}", f"highdicom {hd.__version__}"]


@dataclass
class ExportOptions:
    """Everything a user may choose about the REG object; the defaults describe DicomRegSave.

    ``overrides`` (keyword or ``gggg,eeee`` -> value, ``None`` deletes) apply after everything
    else except ``modifier``, a callable that receives the finished dataset (private tags,
    site-specific clean-ups). ``copy_source_keywords`` copies further attributes from the fixed
    image on request, with a warning each.

    ``series_description`` ``None`` names the class written ("Deformable registration" or
    "Spatial registration"). ``registration_class`` chooses the SOP class: ``"spatial"`` a Spatial Registration (66.1,
    matrices only; refused for a non-linear transform), ``"deformable"`` a Deformable Spatial
    Registration (66.3; a linear transform gets a zero grid and a post matrix), ``"auto"`` (the
    default) spatial when the whole transform is linear, else deformable.

    ``series_number`` ``None`` (the default) chooses a free one when the REG is built: the lowest
    number from 1000 up that no series of the fixed image's study uses among those the export sees
    (:func:`export.pipeline.free_series_number`); ``series_number_slot`` ``(k, n)`` limits that choice to
    1000 + k - 1, stepping by n, so that the n rows of a batch, running at once, never choose the same.

    ``undefined_vectors`` says what to do with NaN displacement vectors: ``"refuse"`` (the default:
    nothing is written, the message says how many and where) or ``"undefined"`` (written as
    DICOM's whole-NaN "undefined here" marker; the result's report warns with the count).
    """

    series_description: str | None = None
    series_number: int | None = None
    series_number_slot: tuple[int, int] = (1, 1)
    instance_number: int = 1
    content_label: str = "REGISTRATION"
    content_description: str | None = None
    content_creator_name: str | None = None
    manufacturer: str = "DicomRegSave"
    manufacturer_model_name: str = "DicomRegSave"
    device_serial_number: str = "DICOMREGSAVE"
    software_versions: Sequence[str] = field(default_factory=default_software_versions)
    identity_item: bool = False
    registration_class: str = "auto"
    registration_type: Code | None = IMAGE_CONTENT_BASED_ALIGNMENT
    comment: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    uid_root: str | None = None
    overrides: Mapping[str, object] = field(default_factory=dict)
    copy_source_keywords: Sequence[str] = ()
    modifier: Callable[[Dataset], None] | None = None
    undefined_vectors: str = "refuse"


#: ExportOptions field -> how its value is typed (``value_type`` of :mod:`export.option_table`).
_VALUE_TYPES = {o.field: o.value_type for o in EXPORT_OPTIONS if o.target == "options"}

#: Fields whose default is ``None``: an empty text leaves them unset (DicomRegSave's default).
_OPTIONAL_FIELDS = frozenset(f.name for f in dataclasses.fields(ExportOptions) if f.default is None)


def option_value(name: str, text: str) -> object:
    """The value of ExportOptions field `name` from `text` as a user types it.

    Several values (Software Versions) are separated by a backslash; an empty text leaves an
    optional field unset. The value is checked when the REG is built.
    """
    value_type = _VALUE_TYPES[name]
    if not text and name in _OPTIONAL_FIELDS:
        return None
    if value_type == "int":
        return int(text.strip())
    if value_type == "code":
        return registration_type_code(text)
    if value_type == "texts":
        return [v for v in text.split("\\") if v]
    return text


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
        return "must not be empty (Type 1)" if keyword in TYPE1_KEYWORDS else None
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
            setattr(options, OPTION_FIELDS[keyword], option_value(OPTION_FIELDS[keyword], text))
        elif _changes_inherited(keyword, text, inherited):
            overrides[keyword] = text.split("\\") if "\\" in text and dictionary_VR(keyword) != "LT" else text
    options.overrides = overrides
    return options


def _changes_inherited(keyword: str, text: str, inherited: Mapping[str, str] | None) -> bool:
    if inherited is None or keyword not in inherited:
        return bool(text)
    return str(inherited[keyword]) != text


def options_with_tags(options: ExportOptions, values: Mapping[str, str]) -> ExportOptions:
    """`options` with attribute values (keyword or ``gggg,eeee`` -> text) set as the module panel sets
    its fields: every value keyed by its keyword, once.

    Raises
    ------
    InvalidRegistrationError
        For an unknown keyword, an attribute outside the REG's modules or a protected one, and
        every value that does not fit its VR or the REG's rules.
    """
    if not values:
        return options
    keywords = {tags.resolve_keyword(key): value for key, value in values.items()}
    for keyword in keywords:
        tags.check_reg_attribute(keyword)
    return options_from_tags(keywords, None, options)


def registration_type_code(text: str) -> Code:
    """The CID 7100 code named by its code value (``125025``) or meaning (``"Visual Alignment"``,
    ``VisualAlignment``), case and spaces ignored.

    Raises
    ------
    InvalidRegistrationError
        If no CID 7100 code matches; the message lists them.
    """
    from pydicom.sr.codedict import codes

    collection = codes.CID7100
    wanted = "".join(text.split()).replace("-", "").lower()
    for name in collection.dir():
        code = getattr(collection, name)
        if wanted in (code.value, name.lower(), "".join(code.meaning.split()).replace("-", "").lower()):
            return code
    listing = ", ".join(f"{getattr(collection, n).value} ({getattr(collection, n).meaning})" for n in collection.dir())
    raise InvalidRegistrationError(f"{text!r} is not a registration type of CID 7100; use one of: {listing}.")
