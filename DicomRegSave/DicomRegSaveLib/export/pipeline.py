"""The export pipeline shared by the command line and the Slicer module.

deformation + fixed/moving image series -> :class:`Registration` -> dataset -> own checks -> file.
A failed export leaves no file behind and never replaces an existing file unless asked.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.tag import Tag

from DicomRegSaveLib import IMPLEMENTATION_VERSION_NAME
from DicomRegSaveLib.dicom_file import read_dicom_file, series_number, tag_text
from DicomRegSaveLib.errors import DicomRegSaveError, InvalidRegistrationError, require_type
from DicomRegSaveLib.export.input_checks import swapped_inputs_warning
from DicomRegSaveLib.export.option_table import OPTION_FIELDS, REGISTRATION_CLASSES, UNDEFINED_VECTOR_CHOICES
from DicomRegSaveLib.export.options import ExportOptions
from DicomRegSaveLib.inputs.series import ImageSeries
from DicomRegSaveLib.model import (
    FRAME_OF_REFERENCE_IDENTITY,
    IMAGE_CONTENT_BASED_ALIGNMENT,
    Deformation,
    Registration,
    RegistrationItem,
)
from DicomRegSaveLib.output import atomic_stream, check_output_path
from DicomRegSaveLib.progress import Progress
from DicomRegSaveLib.reg import tags
from DicomRegSaveLib.reg.sop import DeformableSpatialRegistration, SpatialRegistration
from DicomRegSaveLib.reg.vector_grid_data import write_dataset_streaming
from DicomRegSaveLib.validation.iod_rules import check_dataset
from DicomRegSaveLib.validation.report import ConformanceReport
from DicomRegSaveLib.values import problem_for_attribute, problem_uid

__all__ = [
    "FIRST_AUTOMATIC_SERIES_NUMBER",
    "MAX_UID_ROOT_LENGTH",
    "ExportOptions",
    "ExportResult",
    "OutputPlan",
    "build_registration",
    "checked_uid_root",
    "create_dataset",
    "export_planned",
    "export_registration",
    "free_series_number",
    "new_uid",
    "output_path_for",
    "plan_output",
    "series_numbers_in_folder",
    "sop_class_for",
    "write_dataset",
]

#: Attributes that the SOP class constructor sets (its argument is named as the ExportOptions field),
#: so overrides of them are passed to it.
_CONSTRUCTOR_OVERRIDES = {
    **OPTION_FIELDS,
    "StudyInstanceUID": "study_instance_uid",
    "SeriesInstanceUID": "series_instance_uid",
    "SOPInstanceUID": "sop_instance_uid",
    "InstanceNumber": "instance_number",
}


#: Where automatic Series Numbers start: scanners number their series from 1, so 1000 and up stay clear of them.
FIRST_AUTOMATIC_SERIES_NUMBER = 1000

#: Read from the files of an output folder to learn which Series Numbers a study has taken.
_STUDY_AND_SERIES_NUMBER = [Tag("StudyInstanceUID"), Tag("SeriesNumber")]


def free_series_number(taken: Collection[int], slot: tuple[int, int] = (1, 1)) -> int:
    """The lowest Series Number from :data:`FIRST_AUTOMATIC_SERIES_NUMBER` up that is not `taken`.

    Parameters
    ----------
    slot:
        ``(k, n)``: only 1000 + k - 1, 1000 + k - 1 + n, ... are candidates, so that n exports running
        at once (the rows of a batch) never choose the same number; ``(1, 1)`` for an export on its own.
    """
    row, rows = slot
    if not 1 <= row <= rows:
        raise ValueError(f"slot must be (k, n) with 1 <= k <= n, not {slot!r}")
    taken = set(taken)
    number = FIRST_AUTOMATIC_SERIES_NUMBER + row - 1
    while number in taken:
        number += rows
    return number


def series_numbers_in_folder(folder: Path, study_instance_uid: str, exclude: Path | None = None) -> set[int]:
    """The Series Numbers of the DICOM files directly in `folder` that belong to the study.

    Only the folder's own files count (an output folder may be anyone's folder, its subfolders are not
    this export's business), hidden files are passed over (exports still writing keep their temporary
    files hidden), and so are files that are not DICOM, cannot be read or vanish meanwhile: this is
    not the file walker, whose rules are for inputs the user names. `exclude` is the file being replaced
    (a file of `folder`).
    """
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return set()
    numbers = set()
    for path in entries:
        if path.name.startswith(".") or (exclude is not None and path.name == exclude.name) or not path.is_file():
            continue
        try:
            header = read_dicom_file(path, specific_tags=_STUDY_AND_SERIES_NUMBER)
        except DicomRegSaveError:
            continue
        number = series_number(header)
        if number is not None and str(header.get("StudyInstanceUID", "")) == study_instance_uid:
            numbers.add(number)
    return numbers


def _series_numbers_taken(
    fixed: ImageSeries, moving: ImageSeries, output_file: Path, taken: Collection[int]
) -> set[int]:
    """Series Numbers the fixed image's study has taken, as far as this export sees: `taken` (the
    caller's, e.g. Slicer's DICOM database), the fixed and moving series and every instance found with
    them, and the files already in the output folder; `output_file` itself, which a forced export
    replaces, does not count wherever it was found."""
    study = fixed.study_instance_uid
    numbers = set(taken)
    for series in (fixed, moving):
        numbers |= {
            number
            for path, (seen_study, number) in series.series_numbers_seen.items()
            if seen_study == study and not _same_file(path, output_file)
        }
        own = series_number(series.first_header)
        if series.study_instance_uid == study and own is not None:
            numbers.add(own)
    return numbers | series_numbers_in_folder(output_file.parent, study, exclude=output_file)


def _same_file(path: Path, other: Path) -> bool:
    """Whether both paths name one existing file (compared by name first: a status call only for namesakes)."""
    if path.name != other.name:
        return False
    try:
        return os.path.samefile(path, other)
    except OSError:
        return False


#: Longest UID root for new UIDs: what is left of the 64 characters must keep them unique.
MAX_UID_ROOT_LENGTH = 44


def new_uid(root: str | None = None) -> str:
    """A new UID: under `root` (an organisation's UID root) or else highdicom's.

    Raises
    ------
    InvalidRegistrationError
        If `root` is not a valid UID or longer than :data:`MAX_UID_ROOT_LENGTH` characters (the
        generated UIDs have at most 64; at least 20 digits remain to make them unique).
    """
    if root is None:
        return hd.UID()
    return pydicom.uid.generate_uid(prefix=checked_uid_root(root) + ".")


def checked_uid_root(root: str) -> str:
    """`root` without a trailing dot, if it can prefix new UIDs.

    Raises
    ------
    InvalidRegistrationError
        If `root` is not a valid UID or longer than :data:`MAX_UID_ROOT_LENGTH` characters.
    """
    root = root.rstrip(".")
    problem = problem_uid(root)
    if problem is not None:
        raise InvalidRegistrationError(f"The UID root {root!r} is not valid: {problem}.")
    if len(root) > MAX_UID_ROOT_LENGTH:
        raise InvalidRegistrationError(
            f"The UID root {root!r} has {len(root)} characters; at most {MAX_UID_ROOT_LENGTH} leave room for "
            "the 20 unique digits of a UID of at most 64 characters. Use a shorter root."
        )
    return root


@dataclass
class ExportResult:
    """What an export produced: the file, the dataset written and the checks' report."""

    path: Path
    dataset: Dataset
    registration: Registration
    report: ConformanceReport


def build_registration(
    fixed: ImageSeries,
    moving: ImageSeries,
    deformation: Deformation,
    *,
    identity_item: bool = False,
    registration_type: Code | None = IMAGE_CONTENT_BASED_ALIGNMENT,
    comment: str | None = None,
    registration_class: str = "deformable",
) -> Registration:
    """The registration of `moving` to `fixed` by `deformation`.

    Parameters
    ----------
    identity_item:
        Add a leading item for the fixed frame itself (Frame of Reference Identity, no grid,
        referencing every fixed image), which some receivers expect.
    registration_class:
        ``"spatial"`` (one matrix per item, for a Spatial Registration), ``"deformable"`` or
        ``"auto"`` (see :class:`ExportOptions`).

    Raises
    ------
    InvalidRegistrationError
        For ``"spatial"`` with a non-linear deformation, or an unknown class.
    """
    spatial = _is_spatial(registration_class, deformation)
    items = []
    if identity_item:
        items.append(
            RegistrationItem(
                fixed.frame_of_reference_uid,
                fixed.image_references(),
                registration_type=FRAME_OF_REFERENCE_IDENTITY,
            )
        )
    moving_item = deformation.spatial_item if spatial else deformation.item
    items.append(
        moving_item(
            moving.frame_of_reference_uid,
            referenced_images=moving.image_references(),
            registration_type=registration_type,
            comment=comment,
        )
    )
    return Registration(fixed.frame_of_reference_uid, items)


def _is_spatial(registration_class: str, deformation: Deformation) -> bool:
    if registration_class not in REGISTRATION_CLASSES:
        raise InvalidRegistrationError(
            f"Unknown registration class {registration_class!r}; choose one of {', '.join(REGISTRATION_CLASSES)}."
        )
    return registration_class == "spatial" or (registration_class == "auto" and deformation.linear)


_DEFAULT_SERIES_DESCRIPTIONS = {
    DeformableSpatialRegistration: "Deformable registration",
    SpatialRegistration: "Spatial registration",
}


def sop_class_for(registration: Registration) -> type[DeformableSpatialRegistration | SpatialRegistration]:
    """The SOP class whose items `registration` holds: spatial unless an item is deformable."""
    if any(item.is_deformable for item in registration.items):
        return DeformableSpatialRegistration
    return SpatialRegistration


def _require_valid(keyword: str, value: object) -> None:
    problem = problem_for_attribute(keyword, value)
    if problem is not None:
        raise InvalidRegistrationError(f"{tag_text(Tag(keyword))}: {problem}. Choose a valid value.")


def create_dataset(registration: Registration, fixed_image: Dataset, options: ExportOptions) -> Dataset:
    """The REG dataset for `registration`, with options, overrides and the modifier applied.

    An automatic Series Number (``None``) is the first of its slot here, since nothing is known to be
    taken; :func:`export_registration` chooses it among what the study has taken.

    Raises
    ------
    InvalidRegistrationError
        If an option or override is not a valid value of its attribute (VR, multiplicity, the
        attribute's rules: :func:`values.problem_for_attribute`, which validation applies too), or
        gives a patient or study other than the fixed image's: every front end (command line, module
        panel, export dialog, console) ends here, so none can write a REG into another patient.
    """
    arguments = {
        "study_instance_uid": None,
        "series_instance_uid": options.series_instance_uid or new_uid(options.uid_root),
        "sop_instance_uid": options.sop_instance_uid or new_uid(options.uid_root),
        "series_number": (
            options.series_number
            if options.series_number is not None
            else free_series_number((), options.series_number_slot)
        ),
        "instance_number": options.instance_number,
        "series_description": options.series_description or _DEFAULT_SERIES_DESCRIPTIONS[sop_class_for(registration)],
        "content_label": options.content_label,
        "content_description": options.content_description,
        "content_creator_name": options.content_creator_name,
        "manufacturer": options.manufacturer,
        "manufacturer_model_name": options.manufacturer_model_name,
        "device_serial_number": options.device_serial_number,
        "software_versions": list(options.software_versions),
    }
    for keyword, name in _CONSTRUCTOR_OVERRIDES.items():
        _require_valid(keyword, arguments.get(name))
    _require_valid("FrameOfReferenceTransformationComment", options.comment)
    remaining = {}
    for key, value in options.overrides.items():
        keyword = tags.resolve_keyword(key)
        tags.check_override(keyword, value)
        if keyword in _CONSTRUCTOR_OVERRIDES:
            arguments[_CONSTRUCTOR_OVERRIDES[keyword]] = int(value) if keyword.endswith("Number") else value
        else:
            remaining[keyword] = value
    tags.check_identity({tags.resolve_keyword(key): value for key, value in options.overrides.items()}, fixed_image)
    dataset = sop_class_for(registration)(registration, fixed_image, **arguments)
    tags.copy_extra_attributes(dataset, fixed_image, options.copy_source_keywords)
    tags.apply_overrides(dataset, remaining)
    tags.ensure_character_set(dataset)
    dataset.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    if options.modifier is not None:
        options.modifier(dataset)
    return dataset


def output_path_for(
    output: str | os.PathLike,
    sop_instance_uid: str,
    force: bool = False,
    inputs: Sequence[str | os.PathLike] = (),
) -> Path:
    """Where the REG goes: `output` itself, or ``<SOP Instance UID>.dcm`` inside an existing folder.

    Raises
    ------
    OutputError
        If the folder does not exist, the file is one of `inputs`, or it exists and `force` is false.
    """
    return check_output_path(_output_file(output, sop_instance_uid), force, inputs)


def _output_file(output: str | os.PathLike, sop_instance_uid: str) -> Path:
    path = Path(output)
    return path / f"{sop_instance_uid}.dcm" if path.is_dir() else path


def write_dataset(
    dataset: Dataset,
    output: str | os.PathLike,
    force: bool = False,
    progress: Progress | None = None,
    inputs: Sequence[str | os.PathLike] = (),
    check_written: Callable[[], None] | None = None,
) -> Path:
    """Write `dataset` atomically (:func:`output.atomic_stream`); return the path.

    `inputs` are never overwritten, even with `force` (see :func:`output.check_output_path`).
    `check_written` runs after the last byte is written and before the file takes its name:
    raising from it leaves nothing (for conclusions of the checks made while writing).

    Vector values not yet checked are checked as they are written; on an invalid value, an error
    or a cancel raised by `progress`, nothing is left behind.
    """
    path = _output_file(output, dataset.SOPInstanceUID)
    with atomic_stream(path, force, inputs) as stream:
        write_dataset_streaming(dataset, stream, progress)
        if check_written is not None:
            check_written()
    return path


@dataclass(frozen=True)
class OutputPlan:
    """Where an export writes, decided before anything is read: the options (with the SOP Instance
    UID that names the file) and the output file, checked (:func:`plan_output`)."""

    options: ExportOptions
    path: Path


def plan_output(
    output: str | os.PathLike,
    options: ExportOptions,
    force: bool = False,
    inputs: Sequence[str | os.PathLike] = (),
) -> OutputPlan:
    """The export's SOP Instance UID (a new one unless `options` chose it) and its checked output file.

    Raises
    ------
    InvalidRegistrationError
        If the UID root is not valid.
    OutputError
        As :func:`output_path_for`.
    """
    require_type("options", options, ExportOptions)
    # an override of the SOP Instance UID names the file, as it names the instance
    overridden = {tags.resolve_keyword(key): value for key, value in options.overrides.items()}.get("SOPInstanceUID")
    if overridden is not None or options.sop_instance_uid is None:
        options = dataclasses.replace(options, sop_instance_uid=overridden or new_uid(options.uid_root))
    return OutputPlan(options, output_path_for(output, options.sop_instance_uid, force, inputs))


def export_registration(
    deformation: Deformation,
    fixed: ImageSeries,
    moving: ImageSeries,
    output: str | os.PathLike,
    options: ExportOptions | None = None,
    force: bool = False,
    progress: Progress | None = None,
    inputs: Sequence[str | os.PathLike] = (),
    taken_series_numbers: Collection[int] = (),
) -> ExportResult:
    """Build, check and write the REG of `moving` registered to `fixed` by `deformation`.

    `progress` (see :mod:`.progress`) follows the writing of the vectors, which is nearly all of
    the time; raising from it cancels the export and leaves no file. The output never replaces
    one of the fixed or moving image files or of `inputs` (the transform file), `force` or not.

    Without a Series Number in the options, the REG gets :func:`free_series_number` of what the fixed
    image's study has taken: `taken_series_numbers` (what the caller knows, e.g. Slicer's DICOM
    database), the numbers seen with the fixed and moving series, and the files in the output folder.

    Raises
    ------
    InvalidRegistrationError
        If the dataset fails the writer's own conformance checks (nothing is written).
    OutputError
        If the output cannot be written (nothing is left behind).
    """
    _check_arguments(deformation, fixed, moving)
    require_type("output", output, str, os.PathLike)
    plan = plan_output(output, options or ExportOptions(), force, [*inputs, *fixed.paths, *moving.paths])
    return _build_and_write(deformation, fixed, moving, plan, force, progress, inputs, taken_series_numbers)


def export_planned(
    deformation: Deformation,
    fixed: ImageSeries,
    moving: ImageSeries,
    plan: OutputPlan,
    force: bool = False,
    progress: Progress | None = None,
    inputs: Sequence[str | os.PathLike] = (),
    taken_series_numbers: Collection[int] = (),
) -> ExportResult:
    """:func:`export_registration` to an output planned before the inputs were read (:func:`plan_output`,
    so that a bad output is reported before a long read). The write checks the output again against
    the image files as well, as it takes its name."""
    _check_arguments(deformation, fixed, moving)
    require_type("plan", plan, OutputPlan)
    return _build_and_write(deformation, fixed, moving, plan, force, progress, inputs, taken_series_numbers)


def _check_arguments(deformation: Deformation, fixed: ImageSeries, moving: ImageSeries) -> None:
    require_type("deformation", deformation, Deformation)
    require_type("fixed", fixed, ImageSeries)
    require_type("moving", moving, ImageSeries)
    if fixed.series_instance_uid == moving.series_instance_uid:
        raise InvalidRegistrationError(
            f"The fixed and the moving image are the same series ({fixed.series_instance_uid}). "
            "Choose the image the registration was computed from as the moving image."
        )


def _build_and_write(
    deformation: Deformation,
    fixed: ImageSeries,
    moving: ImageSeries,
    plan: OutputPlan,
    force: bool,
    progress: Progress | None,
    inputs: Sequence[str | os.PathLike],
    taken_series_numbers: Collection[int],
) -> ExportResult:
    options = plan.options
    if options.series_number is None:
        taken = _series_numbers_taken(fixed, moving, plan.path, taken_series_numbers)
        options = dataclasses.replace(options, series_number=free_series_number(taken, options.series_number_slot))
    if options.undefined_vectors not in UNDEFINED_VECTOR_CHOICES:
        raise ValueError(
            f"options.undefined_vectors must be one of {', '.join(UNDEFINED_VECTOR_CHOICES)}, "
            f"not {options.undefined_vectors!r}"
        )
    registration = build_registration(
        fixed,
        moving,
        deformation,
        identity_item=options.identity_item,
        registration_type=options.registration_type,
        comment=options.comment,
        registration_class=options.registration_class,
    )
    dataset = create_dataset(registration, fixed.first_header, options)
    report = check_dataset(dataset)
    report.warnings.extend(deformation.warnings)
    swapped = swapped_inputs_warning(deformation, fixed, moving)
    if swapped:
        report.warnings.append(swapped)
    fixed_patient = fixed.first_header.get("PatientID", "")
    moving_patient = moving.first_header.get("PatientID", "")
    if fixed_patient != moving_patient:
        report.warnings.append(
            f"The fixed image belongs to patient ID {fixed_patient!r} and the moving image to "
            f"{moving_patient!r}; check that these are the series you meant to register."
        )
    if not report.ok:
        raise InvalidRegistrationError(
            "The registration object fails the standard's rules, so it was not written:\n" + report.text()
        )
    grid = deformation.grid

    def refuse_undefined_vectors() -> None:
        if grid is not None and grid.undefined.count and options.undefined_vectors == "refuse":
            raise InvalidRegistrationError(
                f"The transform's displacement field has NaN vectors: {grid.describe_undefined()}. Nothing was "
                'written: fix the transform (fill or crop the holes), or write them as DICOM\'s "undefined here" '
                "marker on purpose (dicomregsave export --nan-vectors undefined)."
            )

    if grid is not None and grid.vectors_checked:
        refuse_undefined_vectors()
    all_inputs = [*inputs, *fixed.paths, *moving.paths]
    path = write_dataset(dataset, plan.path, force, progress, all_inputs, check_written=refuse_undefined_vectors)
    if grid is not None and grid.undefined.count:
        report.warnings.append(
            f'{grid.describe_undefined()}; they were written as DICOM\'s "undefined here" marker '
            "(whole-NaN vectors), as asked."
        )
    return ExportResult(path, dataset, registration, report)
