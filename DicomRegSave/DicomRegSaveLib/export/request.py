"""One export as the command line and batch runs ask for it: files in, a REG file out.

:class:`ExportRequest` gathers what a user chose (paths, series, grid, tags, UID root);
:func:`run_export_request` reads the inputs and runs the export pipeline (:mod:`export`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydicom.sr.coding import Code

from DicomRegSaveLib.errors import InvalidRegistrationError
from DicomRegSaveLib.export.pipeline import ExportOptions, ExportResult, export_registration, new_uid, output_path_for
from DicomRegSaveLib.progress import Progress
from DicomRegSaveLib.reg import tags

if TYPE_CHECKING:
    from DicomRegSaveLib.inputs.series import ImageSeries


@dataclass
class ExportRequest:
    """Inputs, output and choices of one export.

    Parameters
    ----------
    transform:
        ITK transform or displacement field file (fixed -> moving, as Slicer applies it to the moving image).
    fixed_paths, moving_paths:
        DICOM files or folders holding the fixed / moving image series.
    output:
        The REG file, or an existing folder (the file is then named after its SOP Instance UID).
    options:
        Attribute values and item choices (:class:`ExportOptions`).
    grid_spacing_mm:
        Resample the transform on the fixed image's extent at this spacing (mm), or ``None``.
    axis_aligned:
        Write the grid along the patient axes (exact re-indexing for axis-aligned grids).
    fixed_series_uid, moving_series_uid:
        Pick one series when the fixed / moving paths hold several.
    tags:
        Attribute keyword (or ``gggg,eeee``) -> value as typed (several values separated by a
        backslash), checked as the module panel's fields are (:func:`options_with_tags`).
    force:
        Replace an existing output file.
    """

    transform: Path
    fixed_paths: Sequence[Path]
    moving_paths: Sequence[Path]
    output: Path
    options: ExportOptions = field(default_factory=ExportOptions)
    grid_spacing_mm: tuple[float, float, float] | None = None
    axis_aligned: bool = False
    fixed_series_uid: str | None = None
    moving_series_uid: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    force: bool = False


@dataclass
class ExportOutcome:
    """The export's result with the image series it was made from."""

    result: ExportResult
    fixed: ImageSeries
    moving: ImageSeries


def run_export_request(request: ExportRequest, progress: Progress | None = None) -> ExportOutcome:
    """Check the output path, read the inputs and export (nothing is written on any error).

    `progress` follows the writing (see :func:`export.export_registration`).

    Raises
    ------
    DicomRegSaveError
        Any of the engine's errors, with a message saying what to do.
    """
    from DicomRegSaveLib.inputs.series import read_image_series
    from DicomRegSaveLib.inputs.transform_files import check_field_fits, deformation_from_file, source_files

    options = options_with_tags(request.options, request.tags)
    if options.sop_instance_uid is None:
        options = dataclasses.replace(options, sop_instance_uid=new_uid(options.uid_root))
    transform_files = source_files(request.transform)
    output_path_for(request.output, options.sop_instance_uid, request.force, transform_files)
    check_field_fits(request.transform, request.grid_spacing_mm)
    fixed = read_image_series(request.fixed_paths, "fixed", series_instance_uid=request.fixed_series_uid)
    tags.check_identity(options.overrides, fixed.first_header)
    moving = read_image_series(request.moving_paths, "moving", series_instance_uid=request.moving_series_uid)
    deformation = deformation_from_file(
        request.transform,
        fixed.ijk_to_lps,
        fixed.dimensions,
        grid_spacing_mm=request.grid_spacing_mm,
        axis_aligned=request.axis_aligned,
    )
    result = export_registration(
        deformation, fixed, moving, request.output, options, request.force, progress, inputs=transform_files
    )
    return ExportOutcome(result, fixed, moving)


def options_with_tags(options: ExportOptions, values: Mapping[str, str]) -> ExportOptions:
    """`options` with attribute values set as the module panel sets its fields.

    Raises
    ------
    InvalidRegistrationError
        For an unknown keyword, an attribute outside the REG's modules or a protected one, and
        every value that does not fit its VR or the REG's rules.
    """
    from DicomRegSaveLib.slicer.fields import options_from_tags

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
