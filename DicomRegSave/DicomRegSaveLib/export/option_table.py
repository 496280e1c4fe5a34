"""Every choice a user makes about an export, in one table, in a module that imports nothing heavy.

From :data:`EXPORT_OPTIONS` are derived: the flags of ``dicomregsave export`` (:mod:`cli.export_send`),
the columns of a batch manifest (:mod:`cli.batch`), the fields of the Slicer module panel
(:mod:`slicer.fields`) and the DICOM keyword <-> :class:`ExportOptions` field mapping
(:data:`OPTION_FIELDS`, used by :mod:`export.options` and :mod:`export.pipeline`).

The command's parser and the Slicer module's parameter node read it before the rest of the engine
(numpy, pydicom, highdicom) is loaded, or can be: in Slicer only once the requirements are met.
"""

from __future__ import annotations

from dataclasses import dataclass

from DicomRegSaveLib.transform_file_types import ITK_TRANSFORM_TYPES, READABLE_TYPES, listed

__all__ = [
    "BY_NAME",
    "EXPORT_OPTIONS",
    "MANIFEST_COLUMNS",
    "PANEL_GROUPS",
    "OPTION_FIELDS",
    "PANEL_FIELDS",
    "REGISTRATION_CLASSES",
    "REQUIRED_COLUMNS",
    "TYPE1_KEYWORDS",
    "UNDEFINED_VECTOR_CHOICES",
    "ExportOption",
]

#: ExportOptions.registration_class values: the SOP class to write ("auto": Spatial Registration
#: for a linear transform, else Deformable Spatial Registration).
REGISTRATION_CLASSES = ("auto", "spatial", "deformable")

#: ExportOptions.undefined_vectors values: refuse NaN vectors, or write them as "undefined here".
UNDEFINED_VECTOR_CHOICES = ("refuse", "undefined")

#: How an option's value is written: one value, several values (spaces in a manifest cell), a
#: repeatable option (``;`` between values in a cell), or a switch (yes/no in a cell).
KINDS = ("value", "values", "repeat", "switch")

#: Where an option's value goes: an ExportOptions field, a field of the export request (inputs,
#: series, grid), the command itself (sending, reports, replacing), or only a DICOM attribute (a
#: panel field that becomes an override, ``--tag KEYWORD=VALUE`` on the command line).
TARGETS = ("options", "request", "command", "attribute")


@dataclass(frozen=True)
class ExportOption:
    """One choice about an export.

    Parameters
    ----------
    name:
        The flag without ``--`` and with ``-`` written ``_`` (the command's argument and the batch
        manifest column), or the keyword for a panel-only attribute.
    target:
        One of :data:`TARGETS`.
    field:
        The ExportOptions or ExportRequest field the value sets (targets ``options`` and ``request``).
    flag:
        The long option of ``dicomregsave export``, or ``None`` when only the panel sets it.
    keyword:
        The DICOM attribute the value is written to, when it is exactly one.
    panel:
        The Slicer module panel's group (a module of the standard) showing the attribute, or ``None``.
    kind:
        One of :data:`KINDS`.
    value_type:
        ``"text"``, ``"texts"`` (values separated by a backslash), ``"int"``, ``"float"``,
        ``"seconds"`` (a positive number), ``"path"``, ``"slot"`` (``K/N``, 1 <= K <= N), ``"tag"`` (``KEYWORD=VALUE``), ``"code"`` (a
        Registration Type code of CID 7100), ``"uid"``, ``"uid_root"`` (a UID prefix), ``"peer"``
        (``AET@HOST:PORT``) or ``"ae_title"``: how the command line and the panel convert and check the text.
    value_keyword:
        The attribute whose rules the value must meet, when it is not ``keyword`` (an attribute
        inside the registration's items).
    type1:
        The attribute must have a value (Type 1): an empty panel field cannot be written.
    in_manifest:
        ``False`` for what a batch decides itself (where reports go, never replacing files, the Series
        Number slot of each row).
    """

    name: str
    target: str
    field: str | None = None
    flag: str | None = None
    keyword: str | None = None
    panel: str | None = None
    kind: str = "value"
    value_type: str = "text"
    value_keyword: str | None = None
    choices: tuple[str, ...] = ()
    default: object = None
    required: bool = False
    type1: bool = False
    in_manifest: bool = True
    metavar: str | None = None
    help: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS or self.target not in TARGETS:
            raise ValueError(f"{self.name}: kind {self.kind!r} or target {self.target!r} unknown")
        if self.flag is not None and self.flag[2:].replace("-", "_") != self.name:
            raise ValueError(f"{self.name}: the flag {self.flag} must spell the name (its manifest column)")
        if (self.field is None) != (self.target not in ("options", "request")):
            raise ValueError(f"{self.name}: exactly the options and request targets have a field")

    @property
    def column(self) -> str | None:
        """The batch manifest column, or ``None`` when a manifest cannot set this option."""
        return self.name if self.flag is not None and self.in_manifest else None


def _flag(flag: str, target: str, field: str | None = None, **details: object) -> ExportOption:
    """An option of the export command, named after its flag."""
    return ExportOption(flag[2:].replace("-", "_"), target, field, flag, **details)


def _attribute(keyword: str, panel: str, type1: bool = False) -> ExportOption:
    """A panel field of an attribute the REG inherits from the fixed image (an override when edited)."""
    return ExportOption(keyword, "attribute", keyword=keyword, panel=panel, type1=type1)


#: Every export choice, in the order of the command's help.
EXPORT_OPTIONS: tuple[ExportOption, ...] = (
    _flag(
        "--transform",
        "request",
        "transform",
        value_type="path",
        required=True,
        metavar="FILE",
        help=f"ITK transform ({listed(ITK_TRANSFORM_TYPES)}) or displacement field "
        f"({listed(t for t in READABLE_TYPES if t not in ITK_TRANSFORM_TYPES)})",
    ),
    _flag(
        "--fixed",
        "request",
        "fixed_paths",
        kind="values",
        value_type="path",
        required=True,
        metavar="PATH",
        help="fixed (reference) image series: a DICOM file, a folder, or several files",
    ),
    _flag(
        "--moving",
        "request",
        "moving_paths",
        kind="values",
        value_type="path",
        required=True,
        metavar="PATH",
        help="moving image series: a DICOM file, a folder, or several files",
    ),
    _flag(
        "--output",
        "request",
        "output",
        value_type="path",
        required=True,
        metavar="PATH",
        help="output file, or an existing folder (the file is named after its SOP Instance UID)",
    ),
    _flag(
        "--grid-spacing",
        "request",
        "grid_spacing_mm",
        kind="values",
        value_type="float",
        metavar="MM",
        help="resample the transform on the fixed image's extent at this spacing (1 or 3 values, mm)",
    ),
    _attribute("PatientName", "Patient"),
    _attribute("PatientID", "Patient"),
    _attribute("PatientBirthDate", "Patient"),
    _attribute("PatientSex", "Patient"),
    _attribute("StudyInstanceUID", "Study", type1=True),
    _attribute("StudyID", "Study"),
    _attribute("StudyDate", "Study"),
    _attribute("StudyTime", "Study"),
    _attribute("StudyDescription", "Study"),
    _attribute("AccessionNumber", "Study"),
    _attribute("ReferringPhysicianName", "Study"),
    _flag(
        "--series-description",
        "options",
        "series_description",
        keyword="SeriesDescription",
        panel="Series",
        metavar="T",
    ),
    _flag(
        "--series-number",
        "options",
        "series_number",
        keyword="SeriesNumber",
        panel="Series",
        value_type="int",
        metavar="N",
        help="default: the lowest number from 1000 up that no series of the fixed image's study uses among the "
        "files in --fixed, --moving and the output folder",
    ),
    _flag(
        "--series-number-slot",
        "options",
        "series_number_slot",
        value_type="slot",
        in_manifest=False,
        metavar="K/N",
        help="choose the automatic Series Number among 1000+K-1, 1000+K-1+N, ... (batch gives row K of N rows its "
        "own, so that rows running at once never choose the same)",
    ),
    _flag(
        "--content-label",
        "options",
        "content_label",
        keyword="ContentLabel",
        panel="Content",
        type1=True,
        metavar="L",
        help="code string: A-Z 0-9 _ and space, at most 16",
    ),
    _flag(
        "--content-description",
        "options",
        "content_description",
        keyword="ContentDescription",
        panel="Content",
        metavar="T",
    ),
    _flag(
        "--content-creator",
        "options",
        "content_creator_name",
        keyword="ContentCreatorName",
        panel="Content",
        metavar="PN",
        help="Family^Given",
    ),
    _flag(
        "--manufacturer", "options", "manufacturer", keyword="Manufacturer", panel="Equipment", type1=True, metavar="T"
    ),
    _flag(
        "--model",
        "options",
        "manufacturer_model_name",
        keyword="ManufacturerModelName",
        panel="Equipment",
        type1=True,
        metavar="T",
        help="Manufacturer's Model Name",
    ),
    _flag(
        "--device-serial-number",
        "options",
        "device_serial_number",
        keyword="DeviceSerialNumber",
        panel="Equipment",
        type1=True,
        metavar="T",
    ),
    _flag(
        "--software-versions",
        "options",
        "software_versions",
        keyword="SoftwareVersions",
        panel="Equipment",
        value_type="texts",
        type1=True,
        metavar="T",
        help="several values separated by \\",
    ),
    _flag(
        "--identity-item",
        "options",
        "identity_item",
        kind="switch",
        help="add a leading identity item for the fixed frame (referencing the fixed images)",
    ),
    _flag(
        "--registration-class",
        "options",
        "registration_class",
        choices=REGISTRATION_CLASSES,
        default="auto",
        help="SOP class: spatial (66.1, matrices only), deformable (66.3), or auto (default): "
        "spatial when the whole transform is linear",
    ),
    _flag(
        "--tag",
        "attribute",
        kind="repeat",
        value_type="tag",
        metavar="KEYWORD=VALUE",
        help="set an attribute of the REG (repeatable; several values separated by \\); "
        "patient name/ID and study UID must match the fixed image",
    ),
    _flag(
        "--axis-aligned",
        "request",
        "axis_aligned",
        kind="switch",
        help="write the grid along the patient axes (exact for an axis-aligned grid, else resampled)",
    ),
    _flag(
        "--uid-root",
        "options",
        "uid_root",
        value_type="uid_root",
        metavar="PREFIX",
        help="make the new Series and SOP Instance UIDs under this UID root (at most 44 characters)",
    ),
    _flag(
        "--fixed-series",
        "request",
        "fixed_series_uid",
        value_type="uid",
        metavar="UID",
        help="the fixed series' Series Instance UID, when --fixed holds several series",
    ),
    _flag(
        "--moving-series",
        "request",
        "moving_series_uid",
        value_type="uid",
        metavar="UID",
        help="the moving series' Series Instance UID, when --moving holds several series",
    ),
    _flag(
        "--registration-type",
        "options",
        "registration_type",
        value_type="code",
        metavar="CODE",
        help="Registration Type Code (CID 7100): a code value such as 125025 or a meaning such as "
        "'Visual Alignment' (default: 125024 Image Content-based Alignment)",
    ),
    _flag(
        "--comment",
        "options",
        "comment",
        value_keyword="FrameOfReferenceTransformationComment",
        metavar="T",
        help="Frame of Reference Transformation Comment of the registration item",
    ),
    _flag(
        "--nan-vectors",
        "options",
        "undefined_vectors",
        choices=UNDEFINED_VECTOR_CHOICES,
        default="refuse",
        help="NaN displacement vectors: refuse the export (default), or write them as DICOM's "
        "'undefined here' marker (reported with their count)",
    ),
    _flag(
        "--send",
        "command",
        value_type="peer",
        metavar="AET@HOST:PORT",
        help="send the REG to this DICOM peer after writing it",
    ),
    _flag("--calling-aet", "command", value_type="ae_title", metavar="AET", help="our AE title"),
    _flag("--timeout", "command", value_type="seconds", metavar="S", help="seconds to wait for the peer at each step"),
    _flag(
        "--json",
        "command",
        in_manifest=False,
        metavar="PATH",
        help="also write a JSON report to PATH (- for stdout; the text then goes to stderr)",
    ),
    _flag("--force", "command", kind="switch", in_manifest=False, help="replace an existing output file"),
)

#: Option name (flag without ``--``, ``-`` written ``_``; keyword of a panel-only attribute) -> option.
BY_NAME: dict[str, ExportOption] = {o.name: o for o in EXPORT_OPTIONS}

#: The panel's groups, in the order of the standard's modules.
PANEL_GROUPS = ("Patient", "Study", "Series", "Equipment", "Content")

#: DICOM keyword -> ExportOptions field, for the attributes a user sets through ExportOptions.
OPTION_FIELDS: dict[str, str] = {o.keyword: o.field for o in EXPORT_OPTIONS if o.keyword and o.target == "options"}

#: The module panel's editable fields: group -> keywords (an option's attribute, or an inherited one).
PANEL_FIELDS: dict[str, tuple[str, ...]] = {
    group: tuple(o.keyword for o in EXPORT_OPTIONS if o.panel == group) for group in PANEL_GROUPS
}

#: Type 1 attributes among the panel's: an empty field cannot be written.
TYPE1_KEYWORDS = frozenset(o.keyword for o in EXPORT_OPTIONS if o.type1)

#: Manifest columns a row must fill (the inputs); ``output`` is optional: the row's own file name.
REQUIRED_COLUMNS = tuple(o.name for o in EXPORT_OPTIONS if o.required and o.name != "output")

#: Manifest column -> the option it sets: every export flag except what the batch decides itself.
MANIFEST_COLUMNS: dict[str, ExportOption] = {o.column: o for o in EXPORT_OPTIONS if o.column is not None}
