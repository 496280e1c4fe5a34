"""Registration quality of a transform in the scene, for the module panel and the console (no Qt).

:func:`registration_quality` evaluates the transform a moving volume would be placed under (its
from-world chain, as an export would encode it) against a fixed and a moving volume node, and
returns the same dictionary as ``dicomregsave qa --json`` plus, as new nodes in the scene, the
Jacobian-determinant volume (deformable transforms) and the warped moving volume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import slicer
from pydicom.uid import generate_uid
from vtk.util import numpy_support

from DicomRegSaveLib import geometry
from DicomRegSaveLib.errors import QualityInputError, TransformInputError
from DicomRegSaveLib.mrml.deformation import deformation_from_transform_node
from DicomRegSaveLib.mrml.nodes import volume_geometry
from DicomRegSaveLib.progress import Progress, part
from DicomRegSaveLib.qa.evaluate import ItemQuality, QualityResult, evaluate_item
from DicomRegSaveLib.qa.landmarks import Landmarks, read_landmarks
from DicomRegSaveLib.qa.volume_files import volume_node
from DicomRegSaveLib.qa.volumes import Volume, resample


@dataclass
class QualityNodes:
    """The report dictionary, the nodes added to the scene (``None`` when not made), and what
    :func:`save_report` draws from: the item's metrics and the two images."""

    report: dict[str, Any]
    jacobian_node: slicer.vtkMRMLScalarVolumeNode | None
    warped_node: slicer.vtkMRMLScalarVolumeNode | None
    quality: ItemQuality
    fixed: Volume
    moving: Volume


def volume_from_node(node: slicer.vtkMRMLVolumeNode) -> Volume:
    """The voxels (float32 copy) and own geometry of a scalar volume node; parent transforms ignored."""
    ijk_to_lps, (n_i, n_j, n_k) = volume_geometry(node)
    scalars = node.GetImageData().GetPointData().GetScalars()
    if scalars is None or scalars.GetNumberOfComponents() != 1:
        raise TransformInputError(f"Volume '{node.GetName()}' is not a scalar volume; choose a scalar (CT, MR) volume.")
    voxels = numpy_support.vtk_to_numpy(scalars).astype(np.float32).reshape(n_k, n_j, n_i)
    return Volume(voxels, ijk_to_lps)


def _landmarks(source: object, role: str) -> Landmarks:
    if isinstance(source, (str, Path)):
        return read_landmarks(source)
    if source is None or not hasattr(source, "GetNumberOfControlPoints"):
        raise QualityInputError(f"The {role} landmarks must be a markups node or a landmark file; got {source!r}.")
    points_ras = np.zeros((source.GetNumberOfControlPoints(), 3))
    for index in range(len(points_ras)):
        source.GetNthControlPointPositionWorld(index, points_ras[index])
    labels = tuple(source.GetNthControlPointLabel(index) for index in range(len(points_ras)))
    if not len(points_ras):
        raise QualityInputError(f"The {role} markups '{source.GetName()}' have no control points.")
    return Landmarks(geometry.ras_to_lps_points(points_ras), labels, f"markups '{source.GetName()}'")


def registration_quality(
    transform_node: slicer.vtkMRMLTransformNode,
    fixed_volume_node: slicer.vtkMRMLVolumeNode,
    moving_volume_node: slicer.vtkMRMLVolumeNode,
    landmarks: Sequence[object] | None = None,
    *,
    create_nodes: bool = True,
    progress: Progress | None = None,
) -> QualityNodes:
    """The quality report of the fixed -> moving mapping of `transform_node` (with its parents).

    Parameters
    ----------
    landmarks:
        ``None``, or ``(fixed, moving)``: each a markups node (world positions) or a landmark file.
    create_nodes:
        Add ``<transform> Jacobian determinant`` (on the transform's grid, deformable only) and
        ``<moving> warped`` (on the fixed volume's grid) to the scene.

    The report's ``path`` and the item's ``source_frame_of_reference_uid`` are null: a scene
    transform has neither.

    Raises
    ------
    TransformInputError, QualityInputError
        If a node is missing or unusable, or the landmarks cannot be read.
    """
    if fixed_volume_node is None or moving_volume_node is None:
        raise TransformInputError("Choose the fixed and the moving volume for the quality check.")
    fixed = volume_from_node(fixed_volume_node)
    moving = volume_from_node(moving_volume_node)
    deformation = deformation_from_transform_node(
        transform_node, fixed.ijk_to_lps, fixed.dimensions, progress=part(progress, 0.0, 0.1)
    )
    # a scene transform has no source frame UID; the model needs one, the report shows none
    placeholder = generate_uid(entropy_srcs=["DicomRegSave quality", str(transform_node.GetID())])
    item = deformation.spatial_item(placeholder) if deformation.linear else deformation.item(placeholder)
    pair = None if landmarks is None else (_landmarks(landmarks[0], "fixed"), _landmarks(landmarks[1], "moving"))
    quality = evaluate_item(item, 1, fixed, moving, pair, part(progress, 0.1, 0.8))
    report = QualityResult([quality], list(deformation.warnings)).report(None)
    report["items"][0]["source_frame_of_reference_uid"] = None
    jacobian_node = warped_node = None
    if create_nodes:
        scene = transform_node.GetScene()
        if quality.jacobian is not None:
            jacobian_node = volume_node(
                scene,
                f"{transform_node.GetName()} Jacobian determinant",
                Volume(quality.jacobian.determinant, item.grid.index_to_lps),
            )
        warped = resample(item, fixed.ijk_to_lps, fixed.dimensions, moving, progress=part(progress, 0.8, 1.0))
        warped_node = volume_node(scene, f"{moving_volume_node.GetName()} warped", warped)
    return QualityNodes(report, jacobian_node, warped_node, quality, fixed, moving)


def save_report(result: QualityNodes, folder: str | Path) -> Path:
    """Write the report page and its pictures (as ``qa --report``) into `folder` (new or empty).

    Raises
    ------
    QualityInputError
        If matplotlib, which draws the pictures and which Slicer does not bundle, is missing.
    OutputError
        If the folder holds files or cannot be written.
    """
    try:
        from DicomRegSaveLib.qa.pictures import item_pictures
    except ImportError as error:
        raise QualityInputError(
            f"The report's pictures need matplotlib ({error}). Install it from Slicer's Python console with "
            "slicer.util.pip_install('matplotlib'), then save the report again."
        ) from error
    from DicomRegSaveLib.qa.html_report import write_report_folder

    pictures = {result.quality.number: item_pictures(result.quality, result.fixed, result.moving)}
    return write_report_folder(folder, result.report, pictures)
