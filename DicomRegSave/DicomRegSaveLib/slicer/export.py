"""The node-level export pipeline behind the module panel, the DICOM plugin and the Python console:
Slicer transform and volume nodes -> their DICOM series -> the sampled or copied deformation -> the REG.

Coordinates: Slicer nodes are RAS; DICOM and the registration model are LPS (mm). The DICOM
registered frame is the fixed volume's world space, which must therefore be the fixed DICOM series'
patient space: the fixed volume may not be moved, resampled or placed under a transform. A fixed volume
under a transform is refused by :func:`mrml.nodes.resolve_fixed_and_moving` (the message is
:func:`mrml.nodes.fixed_under_transform_message`); one moved or resampled by :func:`geometry_mismatch_mm`.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Collection, Sequence

import slicer
from pydicom.dataset import Dataset

from DicomRegSaveLib.errors import DicomInputError
from DicomRegSaveLib.export.options import ExportOptions
from DicomRegSaveLib.export.pipeline import ExportResult, export_registration
from DicomRegSaveLib.inputs.lookup import HeaderLookup
from DicomRegSaveLib.inputs.series import ImageSeries
from DicomRegSaveLib.mrml import nodes as mrml
from DicomRegSaveLib.mrml.deformation import deformation_from_transform_node
from DicomRegSaveLib.progress import Progress, ignore_progress, part
from DicomRegSaveLib.reg import dump
from DicomRegSaveLib.slicer.provenance import GEOMETRY_TOLERANCE_MM, geometry_mismatch_mm, image_series_for_volume
from DicomRegSaveLib.validation.report import ConformanceReport
from DicomRegSaveLib.validation.validate import validate_file


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
    series_numbers_in_study: Callable[[str], Collection[int]] | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Export the registration that `transform_node` performs from the fixed to the moving volume.

    Pipeline: fixed/moving volumes (arguments, else the transform's registration references) ->
    their DICOM series (chosen files, else ``DICOM.instanceUIDs`` through `header_lookup`) -> the
    transform's from-world mapping sampled or copied on the fixed series geometry
    (:func:`mrml.deformation.deformation_from_transform_node`) -> :func:`export.export_registration`.

    Parameters
    ----------
    output:
        File path, or an existing folder (the file is then ``<SOP Instance UID>.dcm``).
    grid_spacing_mm, axis_aligned:
        Passed to :func:`mrml.deformation.deformation_from_transform_node`.
    series_numbers_in_study:
        Study Instance UID -> the Series Numbers its series use (in Slicer: the DICOM database's,
        :func:`provenance.database_series_numbers`), avoided by an automatic Series Number besides
        those of the two series and of the files in the output folder
        (:func:`export.pipeline.export_registration`).
    progress:
        ``progress(fraction, message)`` between steps and between chunks of the long ones (see
        :mod:`.progress`); raising from it (e.g. :class:`~DicomRegSaveLib.errors.OperationCancelled`) cancels.

    Returns
    -------
    ExportResult
        Its ``report.warnings`` also carry the deformation's notes (resampling, clamping) and
        warnings about the volumes' geometry.

    Raises
    ------
    TransformInputError, DicomInputError, InvalidRegistrationError, OutputError
        With what is wrong and what to do; nothing is written.
    OperationCancelled
        Or whatever `progress` raised to cancel (nothing is written).
    """
    result, _, _ = _export(
        transform_node,
        fixed_node,
        moving_node,
        header_lookup,
        output,
        options,
        force,
        grid_spacing_mm=grid_spacing_mm,
        axis_aligned=axis_aligned,
        fixed_files=fixed_files,
        moving_files=moving_files,
        series_numbers_in_study=series_numbers_in_study,
        progress=progress,
    )
    return result


def _export(
    transform_node,
    fixed_node,
    moving_node,
    header_lookup,
    output,
    options,
    force,
    *,
    grid_spacing_mm,
    axis_aligned,
    fixed_files,
    moving_files,
    series_numbers_in_study,
    progress,
) -> tuple[ExportResult, ImageSeries, ImageSeries]:
    step = progress or ignore_progress
    fixed_node, moving_node = mrml.resolve_fixed_and_moving(transform_node, fixed_node, moving_node)
    step(0.05, "Reading the fixed image's DICOM headers")
    fixed = image_series_for_volume(fixed_node, "fixed", header_lookup, fixed_files)
    step(0.2, "Reading the moving image's DICOM headers")
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
    step(0.35, "Computing the displacement grid")
    deformation = deformation_from_transform_node(
        transform_node,
        fixed.ijk_to_lps,
        fixed.dimensions,
        grid_spacing_mm=grid_spacing_mm,
        axis_aligned=axis_aligned,
        progress=part(progress, 0.35, 0.7),
    )
    step(0.7, "Building, checking and writing the registration object")
    taken = series_numbers_in_study(fixed.study_instance_uid) if series_numbers_in_study is not None else ()
    result = export_registration(
        deformation, fixed, moving, output, options, force, part(progress, 0.7, 1.0), taken_series_numbers=taken
    )
    # the deformation's own notes are the pipeline's to report; these are about the volumes
    result.report.warnings.extend(notes)
    step(1.0, "Done")
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
    series_numbers_in_study: Callable[[str], Collection[int]] | None = None,
    progress: Progress | None = None,
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
            transform_node,
            fixed_node,
            moving_node,
            header_lookup,
            folder,
            options,
            False,
            grid_spacing_mm=grid_spacing_mm,
            axis_aligned=axis_aligned,
            fixed_files=fixed_files,
            moving_files=moving_files,
            series_numbers_in_study=series_numbers_in_study,
            progress=progress,
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
