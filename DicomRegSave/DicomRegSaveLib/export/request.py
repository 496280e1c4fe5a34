"""One export as the command line and batch runs ask for it: files in, a REG file out.

:class:`ExportRequest` gathers what a user chose (paths, series, grid, options);
:func:`run_export_request` checks the output, reads the inputs and runs the export pipeline
(:mod:`export.pipeline`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from DicomRegSaveLib.export.options import ExportOptions
from DicomRegSaveLib.export.pipeline import ExportResult, export_planned, plan_output
from DicomRegSaveLib.progress import Progress

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
        Attribute values and item choices (:class:`ExportOptions`; typed attribute values are set
        with :func:`export.options.options_with_tags`).
    grid_spacing_mm:
        Resample the transform on the fixed image's extent at this spacing (mm), or ``None``.
    axis_aligned:
        Write the grid along the patient axes (exact re-indexing for axis-aligned grids).
    fixed_series_uid, moving_series_uid:
        Pick one series when the fixed / moving paths hold several.
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
    force: bool = False


@dataclass
class ExportOutcome:
    """The export's result with the image series it was made from."""

    result: ExportResult
    fixed: ImageSeries
    moving: ImageSeries


def run_export_request(request: ExportRequest, progress: Progress | None = None) -> ExportOutcome:
    """Check the output path, read the inputs and export (nothing is written on any error).

    `progress` follows each long step in turn, each from 0 to 1: the search and reading of the
    fixed and of the moving series (:func:`file_walker.walk`), the reading of the transform file
    (:func:`inputs.transform_files.deformation_from_file`), then the writing (see
    :func:`export.export_registration`).

    Raises
    ------
    DicomRegSaveError
        Any of the engine's errors, with a message saying what to do.
    """
    from DicomRegSaveLib.inputs.series import read_image_series
    from DicomRegSaveLib.inputs.transform_files import check_field_fits, deformation_from_file, source_files

    transform_files = source_files(request.transform)
    # the output is decided before the inputs are read, so that a bad one is reported at once
    plan = plan_output(request.output, request.options, request.force, transform_files)
    check_field_fits(request.transform, request.grid_spacing_mm)
    fixed = read_image_series(
        request.fixed_paths, "fixed", series_instance_uid=request.fixed_series_uid, progress=progress
    )
    moving = read_image_series(
        request.moving_paths, "moving", series_instance_uid=request.moving_series_uid, progress=progress
    )
    deformation = deformation_from_file(
        request.transform,
        fixed.ijk_to_lps,
        fixed.dimensions,
        grid_spacing_mm=request.grid_spacing_mm,
        axis_aligned=request.axis_aligned,
        progress=progress,
    )
    result = export_planned(deformation, fixed, moving, plan, request.force, progress, inputs=transform_files)
    return ExportOutcome(result, fixed, moving)
