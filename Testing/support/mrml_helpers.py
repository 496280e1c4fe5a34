"""Builders of Slicer transform nodes and a VTK oracle for tests of mrml.py and transform_files.py."""

from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from DicomRegSaveLib import geometry

UID = "1.2.826.0.1.3680043.8.498.1"


def new_scene() -> slicer.vtkMRMLScene:
    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    return scene


def vtk_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r][c]))
    return matrix


def rotation(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """3x3 rotation about `axis` by `angle_rad` (Rodrigues)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * k + (1 - np.cos(angle_rad)) * k @ k


def homogeneous(linear: np.ndarray, translation=(0.0, 0.0, 0.0)) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = linear
    matrix[:3, 3] = translation
    return matrix


OBLIQUE = rotation([1.0, 2.0, 3.0], 0.4)
LEFT_HANDED = OBLIQUE @ np.diag([1.0, 1.0, -1.0])


def random_vectors(dims_ijk, amplitude: float = 1.0, seed: int = 0, dtype=np.float32) -> np.ndarray:
    """(n_k, n_j, n_i, 3) random displacements, float32 values (stored as `dtype`).

    VTK's grid interpolation quantises the fractional voxel position to 1/65536 (fixed-point floor),
    so its error between grid points is up to 1.5e-5 x the difference of neighbouring vectors: an
    amplitude of 1 mm keeps VTK itself within the 1e-4 mm of the exactness tests.
    """
    rng = np.random.default_rng(seed)
    n_i, n_j, n_k = dims_ijk
    return (rng.uniform(-amplitude, amplitude, (n_k, n_j, n_i, 3)).astype(np.float32)).astype(dtype)


def grid_image(origin_ras, spacing, vectors_ras: np.ndarray) -> vtk.vtkImageData:
    n_k, n_j, n_i, _ = vectors_ras.shape
    image = vtk.vtkImageData()
    image.SetDimensions(n_i, n_j, n_k)
    image.SetOrigin(*origin_ras)
    image.SetSpacing(*spacing)
    array = numpy_support.numpy_to_vtk(np.ascontiguousarray(vectors_ras).reshape(-1, 3), deep=True)
    image.GetPointData().SetScalars(array)
    return image


def oriented_grid(origin_ras, direction_ras, spacing, vectors_ras) -> slicer.vtkOrientedGridTransform:
    transform = slicer.vtkOrientedGridTransform()
    transform.SetDisplacementGridData(grid_image(origin_ras, spacing, vectors_ras))
    direction = np.eye(4)
    direction[:3, :3] = direction_ras
    transform.SetGridDirectionMatrix(vtk_matrix(direction))
    return transform


def grid_node(
    scene, origin_ras, direction_ras, spacing, vectors_ras, *, to_parent: bool = False, parent=None
) -> slicer.vtkMRMLGridTransformNode:
    node = scene.AddNewNodeByClass("vtkMRMLGridTransformNode")
    transform = oriented_grid(origin_ras, direction_ras, spacing, vectors_ras)
    if to_parent:
        node.SetAndObserveTransformToParent(transform)
    else:
        node.SetAndObserveTransformFromParent(transform)
    if parent is not None:
        node.SetAndObserveTransformNodeID(parent.GetID())
    return node


def linear_node(scene, matrix_ras: np.ndarray, *, from_parent: bool = False, parent=None):
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    if from_parent:
        node.SetMatrixTransformFromParent(vtk_matrix(matrix_ras))
    else:
        node.SetMatrixTransformToParent(vtk_matrix(matrix_ras))
    if parent is not None:
        node.SetAndObserveTransformNodeID(parent.GetID())
    return node


def from_world_lps(node, points_lps: np.ndarray, *, trilinear: bool = False) -> np.ndarray:
    """Map LPS points through the node's from-world transform as VTK evaluates it.

    `trilinear` switches the grids of the chain to linear interpolation first: Slicer reads
    displacement field files with cubic interpolation, while ITK's meaning of the file (and DICOM
    receivers) is trilinear.
    """
    transform = vtk.vtkGeneralTransform()
    node.GetTransformFromWorld(transform)
    if trilinear:
        components = vtk.vtkCollection()
        slicer.vtkMRMLTransformNode.FlattenGeneralTransform(components, transform)
        for index in range(components.GetNumberOfItems()):
            component = components.GetItemAsObject(index)
            if component.IsA("vtkGridTransform"):
                component.SetInterpolationModeToLinear()
    return apply_vtk_transform_lps(transform, points_lps)


def apply_vtk_transform_lps(transform: vtk.vtkAbstractTransform, points_lps: np.ndarray) -> np.ndarray:
    points_ras = geometry.lps_to_ras_points(points_lps)
    source = vtk.vtkPoints()
    source.SetData(numpy_support.numpy_to_vtk(points_ras, deep=True))
    target = vtk.vtkPoints()
    transform.TransformPoints(source, target)
    return geometry.ras_to_lps_points(numpy_support.vtk_to_numpy(target.GetData()))


def points_in_box(index_to_lps: np.ndarray, dims_ijk, n: int = 2000, seed: int = 1, margin: float = 0.0) -> np.ndarray:
    """`n` random LPS points at continuous indices within [margin, n-1-margin] of a grid."""
    rng = np.random.default_rng(seed)
    high = np.maximum(np.array(dims_ijk, dtype=np.float64) - 1 - margin, margin)
    index = rng.uniform(margin, high, (n, 3))
    return index @ np.asarray(index_to_lps)[:3, :3].T + np.asarray(index_to_lps)[:3, 3]


def grid_points(grid) -> np.ndarray:
    """LPS positions of every point of a DisplacementGrid, (N, 3), i fastest."""
    n_i, n_j, n_k = grid.dimensions
    k, j, i = np.meshgrid(np.arange(n_k), np.arange(n_j), np.arange(n_i), indexing="ij")
    index = np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1).astype(np.float64)
    return index @ grid.index_to_lps[:3, :3].T + grid.index_to_lps[:3, 3]


def volume_node(scene, ijk_to_ras: np.ndarray, dims_ijk, name: str = "volume") -> slicer.vtkMRMLScalarVolumeNode:
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    image = vtk.vtkImageData()
    image.SetDimensions(*dims_ijk)
    image.AllocateScalars(vtk.VTK_SHORT, 1)
    node.SetAndObserveImageData(image)
    node.SetIJKToRASMatrix(vtk_matrix(ijk_to_ras))
    return node


def bspline_node(scene, dims_ijk, origin_ras, spacing: float, amplitude: float, seed: int):
    """A from-parent B-spline transform node with random coefficients (mm) on a regular RAS grid."""
    bspline = slicer.vtkOrientedBSplineTransform()
    coefficients = vtk.vtkImageData()
    coefficients.SetDimensions(*dims_ijk)
    coefficients.SetOrigin(*origin_ras)
    coefficients.SetSpacing(spacing, spacing, spacing)
    coefficients.AllocateScalars(vtk.VTK_DOUBLE, 3)
    values = numpy_support.vtk_to_numpy(coefficients.GetPointData().GetScalars())
    values[:] = np.random.default_rng(seed).uniform(-amplitude, amplitude, values.shape)
    bspline.SetCoefficientData(coefficients)
    node = scene.AddNewNodeByClass("vtkMRMLBSplineTransformNode")
    node.SetAndObserveTransformFromParent(bspline)
    return node
