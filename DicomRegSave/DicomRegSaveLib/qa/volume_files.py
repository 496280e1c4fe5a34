"""Scalar volumes as 3D Slicer volume nodes and as image files (``.nrrd``, ``.mha``, ``.nii.gz``).

Slicer's own volume storage writes the files, so the geometry is stored the way Slicer, ITK and
SimpleITK read it back (LPS in the file, RAS in the scene).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from DicomRegSaveLib import geometry
from DicomRegSaveLib.errors import OutputError
from DicomRegSaveLib.mrml.nodes import write_with_storage_node
from DicomRegSaveLib.output import atomic_output
from DicomRegSaveLib.progress import Progress, ignore_progress
from DicomRegSaveLib.qa.volumes import Volume

#: Image file types `write_volume_file` writes.
VOLUME_FILE_TYPES = (".nrrd", ".mha", ".nii.gz")


def volume_node(scene: slicer.vtkMRMLScene, name: str, volume: Volume) -> slicer.vtkMRMLScalarVolumeNode:
    """A new scalar volume node in `scene` holding a copy of the voxels (float32) at their LPS geometry."""
    n_i, n_j, n_k = volume.dimensions
    image = vtk.vtkImageData()
    image.SetDimensions(n_i, n_j, n_k)
    values = numpy_support.numpy_to_vtk(np.ascontiguousarray(volume.voxels, dtype=np.float32).reshape(-1), deep=True)
    image.GetPointData().SetScalars(values)
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetAndObserveImageData(image)
    ijk_to_ras = geometry.lps_to_ras_index_matrix(volume.ijk_to_lps)
    matrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            matrix.SetElement(row, column, float(ijk_to_ras[row, column]))
    node.SetIJKToRASMatrix(matrix)
    return node


def volume_file_type(path: str | os.PathLike) -> str | None:
    """The file type of `path` among :data:`VOLUME_FILE_TYPES`, or ``None``."""
    name = Path(path).name.lower()
    return next((suffix for suffix in VOLUME_FILE_TYPES if name.endswith(suffix)), None)


def write_volume_file(
    volume: Volume, path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), progress: Progress | None = None
) -> Path:
    """Write a volume (float32) to a new file; never replaces a file, never leaves a partial one.
    `progress` is told the writing's start (Slicer's writer says nothing until it is done).

    Raises
    ------
    OutputError
        For another file type, an existing file or an input as the output, or when writing fails.
    """
    path = Path(path)
    if volume_file_type(path) is None:
        raise OutputError(f"Cannot write a volume to {path}: use one of {', '.join(VOLUME_FILE_TYPES)}.")
    scene = slicer.vtkMRMLScene()
    node = volume_node(scene, path.name, volume)
    with atomic_output(path, False, inputs) as temporary:
        (progress or ignore_progress)(0.0, f"Writing {path}")
        storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
        scene.AddNode(storage)
        storage.SetFileName(str(temporary))
        storage.SetUseCompression(True)
        write_with_storage_node(storage, node, path, "volume")
    return path
