"""What the Slicer DICOM plugin and module panel decide, as plain functions on MRML objects (no Qt).

The DICOM export dialog, the module panel and the import plugin are thin callers of this module:
which subject hierarchy items are offered for export and why not, which series tags are proposed,
how edited tag values become :class:`ExportOptions` (with messages a user can act on), the whole
node-level export pipeline, and the import of a REG file as transform nodes. Everything here runs
headless with ``slicer-core`` on a real subject hierarchy.

Coordinates: Slicer nodes are RAS; DICOM and the registration model are LPS (mm). The DICOM
registered frame is the fixed volume's world space, which must therefore be the fixed DICOM series'
patient space: the fixed volume may not be moved, resampled or placed under a transform.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import slicer
from pydicom.datadict import dictionary_description, dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from . import dump, mrml, tags
from .conformance import ConformanceReport, validate_file
from .dicom_input import HeaderLookup, ImageSeries, read_image_series, series_from_instance_uids
from .errors import DicomInputError, DicomRegSaveError, InvalidRegistrationError, TransformInputError
from .export import OPTION_FIELDS, ExportOptions, ExportResult, export_registration
from .model import Registration
from .model import DEFORMABLE_SPATIAL_REGISTRATION_SOP_CLASS_UID
from .reader import read_dataset, read_registration

#: Volume node attribute that Slicer's DICOM loaders fill with the SOP Instance UIDs, in slice order.
INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"

#: Series-level tags offered for editing in Slicer's DICOM export dialog (``exportable.setTag``).
SERIES_TAG_KEYWORDS = (
    "SeriesDescription",
    "SeriesNumber",
    "ContentLabel",
    "ContentDescription",
    "Manufacturer",
    "ManufacturerModelName",
    "SoftwareVersions",
)

#: The module panel's editable fields, grouped like the modules of the standard. The attributes that
#: are inherited from the fixed image are decided in tags.py; these are the ones the panel shows.
PANEL_FIELDS: dict[str, tuple[str, ...]] = {
    "Patient": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"),
    "Study": (
        "StudyInstanceUID", "StudyID", "StudyDate", "StudyTime", "StudyDescription",
        "AccessionNumber", "ReferringPhysicianName",
    ),
    "Series": ("SeriesDescription", "SeriesNumber"),
    "Equipment": ("Manufacturer", "ManufacturerModelName", "DeviceSerialNumber", "SoftwareVersions"),
    "Content": ("ContentLabel", "ContentDescription", "ContentCreatorName"),
}

#: Confidence of the export offer for a transform with a non-linear part (the dialog ranks offers by it).
DEFORMABLE_CONFIDENCE = 1.0
#: A purely linear transform is better written as a (rigid) Spatial Registration, so other exporters
#: that do that are ranked first; it is still offered (zero grid + post-deformation matrix).
LINEAR_CONFIDENCE = 0.5

#: Largest distance (mm) between the voxel-grid corners of a volume node and of the DICOM series it
#: claims to come from, beyond which the node is not where the DICOM images are.
GEOMETRY_TOLERANCE_MM = 0.01

#: Type 1 attributes among the editable ones: an empty value cannot be written.
_REQUIRED_KEYWORDS = frozenset(
    {"SeriesNumber", "ContentLabel", "Manufacturer", "ManufacturerModelName", "DeviceSerialNumber",
     "SoftwareVersions", "StudyInstanceUID"}
)

#: Maximum characters per value of the text VRs (PS3.5 Table 6.2-1); PN is checked per component.
_MAX_CHARACTERS = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "IS": 12, "LO": 64, "LT": 10240, "SH": 16,
                   "ST": 1024, "TM": 14, "UI": 64}
#: VRs whose values may not contain a backslash (it separates values) or control characters.
_SINGLE_LINE_VRS = frozenset({"AE", "CS", "DA", "IS", "LO", "SH", "TM", "UI"})

ProgressCallback = Callable[[str, int], bool]


class ExportCancelled(DicomRegSaveError):
    """The user cancelled the export before the file was written (nothing was written)."""


# ----------------------------------------------------------------------------------------------
# Export offers


@dataclass
class ExportDecision:
    """Whether a subject hierarchy item is offered for REG export, and with what.

    Attributes
    ----------
    offer:
        ``True`` if the item can be exported.
    reason:
        When not offered: why, in a sentence saying what to do. When offered: a short description
        for the export dialog's tooltip.
    confidence:
        0..1, how clearly this is the right exporter for the item.
    series_tags:
        Keyword -> proposed value of the series-level tags (:data:`SERIES_TAG_KEYWORDS`).
    """

    offer: bool
    reason: str
    transform_node: slicer.vtkMRMLTransformNode | None = None
    fixed_node: slicer.vtkMRMLVolumeNode | None = None
    moving_node: slicer.vtkMRMLVolumeNode | None = None
    confidence: float = 0.0
    series_tags: dict[str, str] = field(default_factory=dict)


def examine_transform_item(
    sh_node: slicer.vtkMRMLSubjectHierarchyNode,
    item_id: int,
    header_lookup: HeaderLookup | None = None,
) -> ExportDecision:
    """Decide whether subject hierarchy item `item_id` can be exported as a DICOM REG.

    Offered: a transform node whose fixed and moving volumes are known (node references set by the
    registration module, or the one volume under the transform) and were both loaded from DICOM
    (``DICOM.instanceUIDs``); with `header_lookup` every instance must also be found by it.

    Parameters
    ----------
    header_lookup:
        SOP Instance UID -> header or file path, or ``None``/``""`` when unknown (in Slicer:
        ``slicer.dicomDatabase.fileForInstance``). ``None`` skips that check.
    """
    node = sh_node.GetItemDataNode(item_id)
    item_name = sh_node.GetItemName(item_id) or f"item {item_id}"
    if node is None or not node.IsA("vtkMRMLTransformNode"):
        return ExportDecision(False, f"'{item_name}' is not a transform; only transforms are exported as registrations.")
    try:
        fixed, moving = mrml.resolve_fixed_and_moving(node)
    except TransformInputError as exc:
        return ExportDecision(False, str(exc), node)
    for role, volume in (("fixed", fixed), ("moving", moving)):
        uids = instance_uids(volume)
        if not uids:
            return ExportDecision(False, no_dicom_origin_message(role, volume), node, fixed, moving)
        if header_lookup is not None:
            missing = [uid for uid in uids if not _found(header_lookup(uid))]
            if missing:
                return ExportDecision(
                    False,
                    f"{len(missing)} of the {len(uids)} DICOM instances of the {role} volume '{volume.GetName()}' "
                    f"are not in the DICOM database (first: {missing[0]}). Import the {role} image series into "
                    "the DICOM database, or export from the DicomRegSave module choosing its DICOM folder.",
                    node, fixed, moving,
                )
    linear = is_linear_chain(node)
    description = (
        f"DICOM Deformable Spatial Registration of '{moving.GetName()}' to '{fixed.GetName()}'"
        + (" (linear transform: written as a zero grid with a post-deformation matrix)" if linear else "")
    )
    return ExportDecision(
        True, description, node, fixed, moving,
        LINEAR_CONFIDENCE if linear else DEFORMABLE_CONFIDENCE,
        series_tags_defaults(node, fixed, moving),
    )


def suggested_volumes(
    transform_node: slicer.vtkMRMLTransformNode | None,
) -> tuple[slicer.vtkMRMLVolumeNode | None, slicer.vtkMRMLVolumeNode | None]:
    """The fixed and moving volumes to pre-select for a transform; ``None`` where none is known.

    Uses the registration references, and for the moving volume the one volume under the transform.
    """
    if transform_node is None:
        return None, None
    fixed = transform_node.GetNodeReference(transform_node.GetFixedNodeReferenceRole())
    moving = transform_node.GetNodeReference(transform_node.GetMovingNodeReferenceRole())
    if moving is None and transform_node.GetScene() is not None:
        under = [
            volume for volume in _volumes(transform_node.GetScene())
            if volume.GetParentTransformNode() is not None
            and volume.GetParentTransformNode().GetID() == transform_node.GetID()
        ]
        moving = under[0] if len(under) == 1 else None
    return fixed, moving


def is_linear_chain(transform_node: slicer.vtkMRMLTransformNode) -> bool:
    """True if the node and all its parent transforms are linear."""
    node = transform_node
    while node is not None:
        if not node.IsLinear():
            return False
        node = node.GetParentTransformNode()
    return True


def series_tags_defaults(
    transform_node: slicer.vtkMRMLTransformNode,
    fixed_node: slicer.vtkMRMLVolumeNode,
    moving_node: slicer.vtkMRMLVolumeNode,
    options: ExportOptions | None = None,
) -> dict[str, str]:
    """Proposed series-level tag values (keyword -> text), from `options` (default ExportOptions).

    Content Description (LO, 64 characters) names the moving and fixed volumes and the transform.
    """
    options = options or ExportOptions()
    description = (
        f"{moving_node.GetName()} to {fixed_node.GetName()} by {transform_node.GetName()}"
    )
    return {
        "SeriesDescription": options.series_description or "",
        "SeriesNumber": str(options.series_number),
        "ContentLabel": options.content_label,
        "ContentDescription": options.content_description or _truncate(description, 64),
        "Manufacturer": options.manufacturer,
        "ManufacturerModelName": options.manufacturer_model_name,
        "SoftwareVersions": "\\".join(options.software_versions),
    }


def no_dicom_origin_message(role: str, volume_node: slicer.vtkMRMLVolumeNode) -> str:
    """Why a volume without DICOM provenance cannot be referenced, and the two ways to proceed."""
    return (
        f"The {role} volume '{volume_node.GetName()}' was not loaded from DICOM (it has no "
        f"{INSTANCE_UIDS_ATTRIBUTE} attribute), so the registration cannot reference its images. Either choose "
        f"the DICOM file or folder of the {role} image in the DicomRegSave module, or first export the volume "
        "as a new DICOM series (right-click it in the Data module, 'Export to DICOM...', Scalar Volume), load "
        "that series and register with it."
    )


def instance_uids(volume_node: slicer.vtkMRMLVolumeNode) -> list[str]:
    """The SOP Instance UIDs a volume node was loaded from (empty if it has no DICOM origin)."""
    return (volume_node.GetAttribute(INSTANCE_UIDS_ATTRIBUTE) or "").split()


def _found(value: object) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------------------------
# Tag values -> ExportOptions


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
    values = text.split("\\") if vr in _SINGLE_LINE_VRS or vr == "PN" else [text]
    try:
        tags.check_override(keyword, values if len(values) > 1 else values[0])
    except InvalidRegistrationError as exc:
        return str(exc).removeprefix(f"Override {keyword}: ").rstrip(".")
    limit = _MAX_CHARACTERS.get(vr)
    for single in values:
        if limit is not None and len(single) > limit:
            return f"{single!r} is {len(single)} characters long; the limit for {vr} is {limit}"
        if vr in _SINGLE_LINE_VRS and any(ord(c) < 32 for c in single):
            return f"{single!r} contains control characters (line breaks, tabs)"
    return None


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


def panel_fields(fixed_header: Dataset | None = None, options: ExportOptions | None = None) -> dict[str, dict[str, str]]:
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
        groups[group] = {
            k: option_texts[k] if k in option_texts else _header_text(fixed_header, k) for k in keywords
        }
    return groups


def inherited_values(fixed_header: Dataset) -> dict[str, str]:
    """Keyword -> text of the patient and study attributes the REG inherits from the fixed image."""
    return {k: _header_text(fixed_header, k) for k in tags.inherited_keywords() if k in fixed_header}


def _header_text(header: Dataset | None, keyword: str) -> str:
    if header is None or keyword not in header or header[keyword].value is None:
        return ""
    value = header[keyword].value
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value)


# ----------------------------------------------------------------------------------------------
# Patient and study as Slicer shows them


def patient_study_tags_from_sh(sh_node: slicer.vtkMRMLSubjectHierarchyNode, item_id: int) -> dict[str, str]:
    """Keyword -> value of the ``DICOM.*`` patient and study attributes of the item's ancestors.

    These are what Slicer's export dialog copies into every exportable. The study's own UID
    (item UID ``"DICOM"``) stands in for a missing ``DICOM.StudyInstanceUID`` attribute.
    """
    constants = slicer.vtkMRMLSubjectHierarchyConstants
    prefix = constants.GetDICOMAttributePrefix()
    result: dict[str, str] = {}
    for level, names in (
        (constants.GetDICOMLevelPatient(), constants.GetDICOMPatientTagNames()),
        (constants.GetDICOMLevelStudy(), constants.GetDICOMStudyTagNames()),
    ):
        ancestor = sh_node.GetItemAncestorAtLevel(item_id, level)
        if not ancestor:
            continue
        for name in names:
            value = sh_node.GetItemAttribute(ancestor, prefix + name)
            if value:
                result[name] = value
        if level == constants.GetDICOMLevelStudy() and "StudyInstanceUID" not in result:
            uid = sh_node.GetItemUID(ancestor, constants.GetDICOMUIDName())
            if uid:
                result["StudyInstanceUID"] = uid
    return result


def patient_study_differences(shown: Mapping[str, str], fixed_header: Dataset) -> list[str]:
    """Sentences for every patient/study value shown by Slicer that differs from the fixed image's.

    The REG always takes the fixed image's patient and study (it joins the fixed image's study);
    values edited in the export dialog or rearranged in the subject hierarchy are not written.
    """
    messages = []
    for keyword, value in shown.items():
        if keyword not in tags.inherited_keywords() or keyword == "PatientComments":
            continue
        actual = _header_text(fixed_header, keyword)
        if str(value).strip() != actual.strip():
            messages.append(
                f"{describe_keyword(keyword)} is {value!r} in Slicer but {actual!r} in the fixed image; the "
                "registration is written with the fixed image's value, as it belongs to the fixed image's study."
            )
    return messages


# ----------------------------------------------------------------------------------------------
# Node-level export


def image_series_for_volume(
    volume_node: slicer.vtkMRMLVolumeNode,
    role: str,
    header_lookup: HeaderLookup | None = None,
    files: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
) -> ImageSeries:
    """The DICOM image series of a volume: its chosen `files`/folder, else its ``DICOM.instanceUIDs``.

    Raises
    ------
    DicomInputError
        If the volume has no DICOM origin and no files were chosen (with how to proceed), if its
        instances cannot be found, or if the files are not one image series.
    """
    if files:
        return read_image_series(files, role)
    uids = instance_uids(volume_node)
    if not uids:
        raise DicomInputError(no_dicom_origin_message(role, volume_node))
    if header_lookup is None:
        raise DicomInputError(
            f"The {role} volume '{volume_node.GetName()}' was loaded from DICOM, but no DICOM database or folder "
            f"was given to find its {len(uids)} instances. Open the DICOM database, or choose the {role} image's "
            "DICOM folder."
        )
    return series_from_instance_uids(uids, header_lookup, role)


def geometry_mismatch_mm(volume_node: slicer.vtkMRMLVolumeNode, series: ImageSeries) -> float:
    """Largest distance (mm) from a corner voxel centre of the node to the nearest one of the series.

    Independent of index order (Slicer may order or flip axes differently), sensitive to any
    shift, rotation, crop or resampling of the node relative to where the DICOM images are.
    """
    ijk_to_lps, dimensions = mrml.volume_geometry(volume_node)
    node_corners = _corners(ijk_to_lps, dimensions)
    series_corners = _corners(series.ijk_to_lps, series.dimensions)
    distances = np.linalg.norm(node_corners[:, None, :] - series_corners[None, :, :], axis=2)
    return float(max(distances.min(axis=1).max(), distances.min(axis=0).max()))


def _corners(ijk_to_lps: np.ndarray, dimensions: Sequence[int]) -> np.ndarray:
    last = np.asarray(dimensions, dtype=np.float64) - 1
    index = np.array([[i, j, k] for i in (0, last[0]) for j in (0, last[1]) for k in (0, last[2])])
    return index @ ijk_to_lps[:3, :3].T + ijk_to_lps[:3, 3]


def export_from_nodes(
    transform_node: slicer.vtkMRMLTransformNode,
    fixed_node: slicer.vtkMRMLVolumeNode | None,
    moving_node: slicer.vtkMRMLVolumeNode | None,
    header_lookup: HeaderLookup | None,
    output: str | os.PathLike,
    options: ExportOptions | None = None,
    force: bool = False,
    *,
    grid_spacing_mm: float | Sequence[float] | None = None,
    axis_aligned: bool = False,
    fixed_files: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    moving_files: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    progress: ProgressCallback | None = None,
) -> ExportResult:
    """Export the registration that `transform_node` performs from the fixed to the moving volume.

    Pipeline: fixed/moving volumes (arguments, else the transform's registration references) ->
    their DICOM series (chosen files, else ``DICOM.instanceUIDs`` through `header_lookup`) -> the
    transform's from-world mapping sampled or copied on the fixed series geometry
    (:func:`mrml.deformation_from_transform_node`) -> :func:`export.export_registration`.

    Parameters
    ----------
    output:
        File path, or an existing folder (the file is then ``<SOP Instance UID>.dcm``).
    grid_spacing_mm, axis_aligned:
        Passed to :func:`mrml.deformation_from_transform_node`.
    progress:
        Called with (step description, percent) before each step; returning ``True`` cancels.

    Returns
    -------
    ExportResult
        Its ``report.warnings`` also carry the deformation's notes (resampling, clamping) and
        warnings about the volumes' geometry.

    Raises
    ------
    TransformInputError, DicomInputError, InvalidRegistrationError, OutputError
        With what is wrong and what to do; nothing is written.
    ExportCancelled
        If `progress` asked to cancel (nothing is written).
    """
    result, _, _ = _export(
        transform_node, fixed_node, moving_node, header_lookup, output, options, force,
        grid_spacing_mm=grid_spacing_mm, axis_aligned=axis_aligned, fixed_files=fixed_files,
        moving_files=moving_files, progress=progress,
    )
    return result


def _export(
    transform_node, fixed_node, moving_node, header_lookup, output, options, force, *,
    grid_spacing_mm, axis_aligned, fixed_files, moving_files, progress,
) -> tuple[ExportResult, ImageSeries, ImageSeries]:
    def step(text: str, percent: int) -> None:
        if progress is not None and progress(text, percent):
            raise ExportCancelled("The export was cancelled; nothing was written.")

    fixed_node, moving_node = mrml.resolve_fixed_and_moving(transform_node, fixed_node, moving_node)
    step("Reading the fixed image's DICOM headers", 5)
    fixed = image_series_for_volume(fixed_node, "fixed", header_lookup, fixed_files)
    step("Reading the moving image's DICOM headers", 20)
    moving = image_series_for_volume(moving_node, "moving", header_lookup, moving_files)
    mismatch = geometry_mismatch_mm(fixed_node, fixed)
    if mismatch > GEOMETRY_TOLERANCE_MM:
        raise DicomInputError(
            f"The fixed volume '{fixed_node.GetName()}' is not where its DICOM series {fixed.series_instance_uid} "
            f"places its voxels (corners differ by up to {mismatch:.3g} mm), so the registration would be written "
            "in the wrong place. Choose as fixed volume the volume loaded from that series, unmoved and not "
            "resampled, or choose the DICOM files it was loaded from."
        )
    notes = []
    moving_mismatch = geometry_mismatch_mm(moving_node, moving)
    if moving_mismatch > GEOMETRY_TOLERANCE_MM:
        notes.append(
            f"The moving volume '{moving_node.GetName()}' does not match the voxel grid of its DICOM series "
            f"{moving.series_instance_uid} (corners differ by up to {moving_mismatch:.3g} mm); the registration "
            "maps to that series' patient coordinates, so check that the volume was only cropped or resampled, "
            "not moved."
        )
    parent = moving_node.GetParentTransformNode()
    if parent is not None and parent.GetID() != transform_node.GetID():
        notes.append(
            f"The moving volume '{moving_node.GetName()}' is under transform '{parent.GetName()}', not under "
            f"'{transform_node.GetName()}'; the file holds the mapping of '{transform_node.GetName()}' (with its "
            "parents) only."
        )
    step("Computing the displacement grid", 35)
    deformation = mrml.deformation_from_transform_node(
        transform_node, fixed.ijk_to_lps, fixed.dimensions, grid_spacing_mm=grid_spacing_mm, axis_aligned=axis_aligned
    )
    step("Building, checking and writing the registration object", 70)
    result = export_registration(deformation, fixed, moving, output, options, force)
    result.report.warnings.extend(deformation.warnings + notes)
    step("Done", 100)
    return result, fixed, moving


def validate_from_nodes(
    transform_node: slicer.vtkMRMLTransformNode,
    fixed_node: slicer.vtkMRMLVolumeNode | None,
    moving_node: slicer.vtkMRMLVolumeNode | None,
    header_lookup: HeaderLookup | None,
    options: ExportOptions | None = None,
    *,
    grid_spacing_mm: float | Sequence[float] | None = None,
    axis_aligned: bool = False,
    fixed_files: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    moving_files: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[Dataset, ConformanceReport]:
    """Build the REG as :func:`export_from_nodes` would and run every check on it; nothing stays on disk.

    The file is written to a temporary folder so that dciodvfy (when installed) and, with the
    image files known, dcentvfy can read it; the folder is removed afterwards.

    Returns
    -------
    (dataset, report)
        The dataset (for the preview) and the combined report: the writer's own checks, dciodvfy,
        the references against the image headers, dcentvfy, and the export's own notes.

    Raises
    ------
    As :func:`export_from_nodes` when the REG cannot be built at all.
    """
    with tempfile.TemporaryDirectory(prefix="dicomregsave-validate-") as folder:
        result, fixed, moving = _export(
            transform_node, fixed_node, moving_node, header_lookup, folder, options, False,
            grid_spacing_mm=grid_spacing_mm, axis_aligned=axis_aligned, fixed_files=fixed_files,
            moving_files=moving_files, progress=progress,
        )
        report = validate_file(result.path, [*fixed.paths, *moving.paths])
    report.warnings.extend(w for w in result.report.warnings if w not in report.warnings)
    return result.dataset, report


def dump_preview(dataset: Dataset, pattern: str = "") -> str:
    """The dataset as a tag dump, filtered by a regular expression; an invalid expression is explained."""
    try:
        re.compile(pattern or "")
    except re.error as exc:
        return f"The filter {pattern!r} is not a valid regular expression ({exc})."
    return dump.dump(dataset, pattern or None)


# ----------------------------------------------------------------------------------------------
# Import


@dataclass
class RegistrationFileInfo:
    """What the DICOM browser shows about a REG file before loading it."""

    path: Path
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    name: str
    tooltip: str
    referenced_instance_uids: list[str]


_DESCRIBE_KEYWORDS = (
    "SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "SeriesNumber", "SeriesDescription",
    "ContentLabel", "ContentDescription", "FrameOfReferenceUID", "SpecificCharacterSet",
    "ReferencedSeriesSequence", "StudiesContainingOtherReferencedInstancesSequence",
)


def describe_registration_file(path: str | os.PathLike) -> RegistrationFileInfo | None:
    """Describe a Deformable Spatial Registration file, or ``None`` if it is not one.

    Reads only top-level attributes (Vector Grid Data is skipped), so it is fast for the browser.
    Referenced instances are those listed in the Common Instance Reference module.
    """
    path = Path(path)
    try:
        header = pydicom.dcmread(path, specific_tags=list(_DESCRIBE_KEYWORDS))
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return None
    if str(header.get("SOPClassUID", "")) != DEFORMABLE_SPATIAL_REGISTRATION_SOP_CLASS_UID:
        return None
    referenced: list[str] = []
    series_items = list(header.get("ReferencedSeriesSequence") or [])
    for study in header.get("StudiesContainingOtherReferencedInstancesSequence") or []:
        series_items.extend(study.get("ReferencedSeriesSequence") or [])
    for series in series_items:
        for instance in series.get("ReferencedInstanceSequence") or []:
            referenced.append(str(instance.ReferencedSOPInstanceUID))
    label = str(header.get("ContentLabel", "") or "")
    description = str(header.get("SeriesDescription", "") or "") or label or "Deformable registration"
    number = header.get("SeriesNumber")
    name = f"{number}: {description}" if number not in (None, "") else description
    tooltip = (
        f"DICOM Deformable Spatial Registration ({label}): {header.get('ContentDescription', '') or 'no description'}; "
        f"references {len(referenced)} image instance(s). Loaded as transform nodes that map the fixed image to "
        "the moving image (the moving volume is placed under them)."
    )
    return RegistrationFileInfo(
        path, str(header.get("SOPInstanceUID", "")), str(header.get("SeriesInstanceUID", "")),
        str(header.get("StudyInstanceUID", "")), name, tooltip, referenced,
    )


@dataclass
class ImportResult:
    """What :func:`import_registration` created and found.

    Attributes
    ----------
    nodes:
        Transform nodes, root first; place the moving volume under the last one (``leaf``).
    fixed_node, moving_node:
        Loaded volumes recognised as the registration's fixed and moving images, or ``None``.
    messages:
        Sentences for the user (volumes not found, ambiguous, moved under the transform).
    """

    nodes: list[slicer.vtkMRMLTransformNode]
    registration: Registration
    dataset: Dataset
    fixed_node: slicer.vtkMRMLVolumeNode | None = None
    moving_node: slicer.vtkMRMLVolumeNode | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def leaf(self) -> slicer.vtkMRMLTransformNode:
        return self.nodes[-1]


def import_registration(
    path: str | os.PathLike,
    scene: slicer.vtkMRMLScene,
    header_lookup: HeaderLookup | None = None,
    apply_to_moving: bool = True,
) -> ImportResult:
    """Load a REG file as transform nodes that map the fixed image onto the moving image.

    The leaf node gets the REG's SOP Instance UID as ``DICOM.instanceUIDs`` and, when the volumes
    are recognised among the loaded ones, the ``spatialRegistrationFixed`` / ``Moving`` references;
    with `apply_to_moving` the moving volume is placed under the leaf node.

    Raises
    ------
    InvalidRegistrationError
        If the file is not a readable, valid Deformable Spatial Registration.
    """
    dataset = read_dataset(path)
    registration = read_registration(dataset)
    name = str(dataset.get("SeriesDescription", "") or "") or str(dataset.get("ContentLabel", "") or "") or "Deformable registration"
    nodes = mrml.nodes_from_registration(registration, scene, name=name)
    leaf = nodes[-1]
    leaf.SetAttribute(INSTANCE_UIDS_ATTRIBUTE, str(dataset.SOPInstanceUID))
    fixed, moving, messages = find_registered_volumes(scene, registration, header_lookup)
    if fixed is not None:
        leaf.SetNodeReferenceID(leaf.GetFixedNodeReferenceRole(), fixed.GetID())
    if moving is not None:
        leaf.SetNodeReferenceID(leaf.GetMovingNodeReferenceRole(), moving.GetID())
        if apply_to_moving:
            previous = moving.GetParentTransformNode()
            if previous is not None:
                messages.append(
                    f"The moving volume '{moving.GetName()}' was under transform '{previous.GetName()}'; it is now "
                    f"under '{leaf.GetName()}' from the registration file."
                )
            moving.SetAndObserveTransformNodeID(leaf.GetID())
    return ImportResult(nodes, registration, dataset, fixed, moving, messages)


def find_registered_volumes(
    scene: slicer.vtkMRMLScene,
    registration: Registration,
    header_lookup: HeaderLookup | None = None,
) -> tuple[slicer.vtkMRMLVolumeNode | None, slicer.vtkMRMLVolumeNode | None, list[str]]:
    """The loaded fixed and moving volumes of a registration, and messages about what was not found.

    Moving: the volume loaded from the deformable item's referenced instances (all of its
    ``DICOM.instanceUIDs`` referenced). Fixed: the volume loaded from the identity item's instances,
    else (with `header_lookup`) the one volume whose images are in the registered frame of reference.
    """
    volumes = [v for v in _volumes(scene) if instance_uids(v)]
    item = registration.deformable_item
    moving_uids = {r.sop_instance_uid for r in item.referenced_images}
    moving_candidates = [v for v in volumes if set(instance_uids(v)) <= moving_uids]
    messages: list[str] = []
    moving = _single(moving_candidates, "moving", messages)
    fixed_uids = {
        r.sop_instance_uid for other in registration.items if other is not item for r in other.referenced_images
        if other.source_frame_of_reference_uid == registration.frame_of_reference_uid
    }
    fixed_candidates = [v for v in volumes if v is not moving and fixed_uids and set(instance_uids(v)) <= fixed_uids]
    if not fixed_candidates and header_lookup is not None:
        fixed_candidates = [
            v for v in volumes if v is not moving
            and _frame_of_reference(header_lookup, instance_uids(v)[0]) == registration.frame_of_reference_uid
        ]
    fixed = _single(fixed_candidates, "fixed", messages)
    return fixed, moving, messages


def _volumes(scene: slicer.vtkMRMLScene) -> list[slicer.vtkMRMLVolumeNode]:
    collection = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]


def _single(candidates: list, role: str, messages: list[str]):
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        messages.append(f"The {role} image of the registration is not loaded; load it to see the registration applied.")
    else:
        messages.append(
            f"Several loaded volumes ({', '.join(v.GetName() for v in candidates)}) match the {role} image; none was "
            "chosen. Set the transform's fixed/moving volumes yourself."
        )
    return None


def _frame_of_reference(header_lookup: HeaderLookup, uid: str) -> str | None:
    found = header_lookup(uid)
    if not _found(found):
        return None
    if not isinstance(found, Dataset):
        try:
            found = pydicom.dcmread(found, stop_before_pixels=True, specific_tags=["FrameOfReferenceUID"])
        except (InvalidDicomError, OSError, ValueError):
            return None
    value = found.get("FrameOfReferenceUID")
    return None if value is None else str(value)


def place_in_subject_hierarchy(
    sh_node: slicer.vtkMRMLSubjectHierarchyNode, nodes: Sequence[slicer.vtkMRMLNode], parent_item_id: int
) -> list[int]:
    """Put the items of `nodes` (created if missing) under `parent_item_id`; return their item IDs."""
    items = []
    for node in nodes:
        item = sh_node.GetItemByDataNode(node)
        if not item:
            item = sh_node.CreateItem(parent_item_id, node)
        else:
            sh_node.SetItemParent(item, parent_item_id)
        items.append(item)
    return items
