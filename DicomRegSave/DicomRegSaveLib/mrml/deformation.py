"""3D Slicer transform nodes -> the LPS registration model (:class:`Deformation`).

A moving volume placed under a transform node is resampled through the node's *from-world*
transform (the node's from-parent transform, preceded by its parents'): a world (= fixed) point
``x`` shows the moving volume's content at ``FromWorld(x)``, the mapping a DICOM Deformable Spatial
Registration stores (registered -> source). The from-world chain, the root's from-parent transform
first and the node's own last, becomes :mod:`transform_chain` parts, which that module encodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from DicomRegSaveLib import geometry, transform_chain
from DicomRegSaveLib.bspline import BSplineGrid
from DicomRegSaveLib.errors import TransformInputError
from DicomRegSaveLib.model import Deformation, DisplacementGrid
from DicomRegSaveLib.mrml.nodes import array_from_vtk_matrix, vtk_matrix
from DicomRegSaveLib.progress import Progress

_VTK_LINEAR_INTERPOLATION = 1
_VTK_BSPLINE_BORDER_ZERO = 1


def deformation_from_transform_node(
    transform_node: slicer.vtkMRMLTransformNode,
    reference_ijk_to_lps: np.ndarray,
    reference_dimensions: Sequence[int],
    *,
    grid_spacing_mm: float | Sequence[float] | None = None,
    axis_aligned: bool = False,
    progress: Progress | None = None,
) -> Deformation:
    """Encode the from-world transform of `transform_node` (incl. its parents) as a Deformation.

    The node's from-world chain becomes :mod:`transform_chain` parts (see
    :func:`transform_chain.deformation_from_parts` for the other parameters and the result): linear
    transforms, from-parent grids (copied exactly where the chain allows), B-splines (sampled by
    tensor products where the grids are parallel) and anything else, which
    ``vtkSlicerTransformLogic.ConvertToGridTransform`` samples. A grid that Slicer interpolates
    cubically (its default for fields read from files) is copied like a linear one, with a note
    in ``warnings`` that Slicer's display differs between grid points (a node read from a file by
    :func:`inputs.transform_files.read_transform_file` is trilinear, as the file means).

    Raises
    ------
    TransformInputError
        If the node is missing or the reference geometry is unusable.
    """
    if transform_node is None or not transform_node.IsA("vtkMRMLTransformNode"):
        raise TransformInputError(
            f"Expected a transform node (vtkMRMLTransformNode), got {transform_node!r}. Select the "
            "registration's output transform."
        )
    name = transform_node.GetName() or transform_node.GetID() or "transform"
    parts = [_part(component) for component in _from_world_components(transform_node)]
    return transform_chain.deformation_from_parts(
        parts,
        name,
        reference_ijk_to_lps,
        reference_dimensions,
        partial(sample_node, transform_node),
        grid_spacing_mm=grid_spacing_mm,
        axis_aligned=axis_aligned,
        progress=progress,
    )


def _from_world_components(transform_node: slicer.vtkMRMLTransformNode) -> list[vtk.vtkAbstractTransform]:
    """The node's from-world transform as a flat list, in the order the components are applied."""
    from_world = vtk.vtkGeneralTransform()
    transform_node.GetTransformFromWorld(from_world)
    collection = vtk.vtkCollection()
    slicer.vtkMRMLTransformNode.FlattenGeneralTransform(collection, from_world)
    components = [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]
    for component in components:
        # An inverse obtained by GetInverse() only knows its InverseFlag after an update.
        component.Update()
    return components


def _part(component: vtk.vtkAbstractTransform) -> transform_chain.Part:
    """One VTK transform (RAS) as a chain part (LPS); a grid's interpolation is named only when it is
    not trilinear."""
    if component.IsA("vtkHomogeneousTransform"):
        matrix = array_from_vtk_matrix(component.GetMatrix())
        affine = np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0], atol=transform_chain.IDENTITY_TOLERANCE)
        if affine and abs(np.linalg.det(matrix[:3, :3])) > 1e-12:
            return transform_chain.LinearPart(geometry.ras_to_lps_matrix(matrix))
    elif component.IsA("vtkGridTransform") and (grid := _grid(component)) is not None:
        interpolation = component.GetInterpolationMode()
        return transform_chain.FieldPart(
            grid,
            to_parent=bool(component.GetInverseFlag()),
            interpolation=None
            if interpolation == _VTK_LINEAR_INTERPOLATION
            else component.GetInterpolationModeAsString(),
        )
    elif (
        component.IsA("vtkOrientedBSplineTransform")
        and not component.GetInverseFlag()
        and component.GetBorderMode() == _VTK_BSPLINE_BORDER_ZERO
        and component.GetCoefficientData() is not None
    ):
        return _bspline_part(component)
    return transform_chain.OtherPart(component.GetClassName())


def _image_index_to_ras(
    image: vtk.vtkImageData, direction_matrix: vtk.vtkMatrix4x4 | None
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Index -> RAS matrix of an oriented image's first point (extent minimum) and its size (n_i, n_j, n_k)."""
    direction = np.eye(4) if direction_matrix is None else array_from_vtk_matrix(direction_matrix)
    extent = image.GetExtent()
    dims = (extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1)
    index_to_ras = geometry.index_to_patient_matrix(np.array(image.GetOrigin()), direction[:3, :3], image.GetSpacing())
    first = index_to_ras @ np.array([extent[0], extent[2], extent[4], 1.0])
    index_to_ras[:3, 3] = first[:3]
    return index_to_ras, dims


def _grid(component: vtk.vtkGridTransform) -> DisplacementGrid | None:
    """The grid transform's displacement as a grid that refers to the node's vectors and converts
    them to LPS float32 plane by plane as it is written (no copy of the field); None for a grid
    with skewed axes (it is sampled)."""
    image = component.GetDisplacementGrid()
    if image is None or image.GetNumberOfPoints() == 0:
        raise TransformInputError(
            f"A grid transform ({component.GetClassName()}) has no displacement field data; "
            "reload or recompute the transform."
        )
    direction = component.GetGridDirectionMatrix() if component.IsA("vtkOrientedGridTransform") else None
    index_to_ras, dims = _image_index_to_ras(image, direction)
    orthogonal = transform_chain.orthogonal_geometry(index_to_ras)
    if orthogonal is None:
        return None
    origin_ras, direction_ras, spacing = orthogonal
    return DisplacementGrid.from_ras(
        origin_ras,
        direction_ras,
        spacing,
        _image_vectors(image, dims),
        displacement_scale=component.GetDisplacementScale(),
        displacement_shift=component.GetDisplacementShift(),
    )


def _bspline_part(component: vtk.vtkAbstractTransform) -> transform_chain.Part:
    """A vtkOrientedBSplineTransform (zero border) as a B-spline part, or an opaque part if its control
    grid is skewed."""
    image = component.GetCoefficientData()
    index_to_ras, dims = _image_index_to_ras(image, component.GetGridDirectionMatrix())
    orthogonal = transform_chain.orthogonal_geometry(geometry.ras_to_lps_index_matrix(index_to_ras))
    if orthogonal is None:
        return transform_chain.OtherPart(component.GetClassName())
    coefficients = _image_vectors(image, dims).astype(np.float64) * component.GetDisplacementScale()
    geometry.ras_to_lps_vectors_in_place(coefficients)
    bulk = component.GetBulkTransformMatrix()
    return transform_chain.BSplinePart(
        BSplineGrid(*orthogonal, coefficients, outside="zero"),
        component.GetClassName(),
        None if bulk is None else geometry.ras_to_lps_matrix(array_from_vtk_matrix(bulk)),
    )


def _image_vectors(image: vtk.vtkImageData, dims: tuple[int, int, int]) -> np.ndarray:
    """A (n_k, n_j, n_i, 3) view of a 3-component vtkImageData (no copy)."""
    scalars = image.GetPointData().GetScalars()
    if scalars is None or scalars.GetNumberOfComponents() != 3:
        raise TransformInputError(
            "The displacement field of a grid transform must have 3 components per voxel; got "
            f"{None if scalars is None else scalars.GetNumberOfComponents()}."
        )
    return numpy_support.vtk_to_numpy(scalars).reshape(dims[2], dims[1], dims[0], 3)


def sample_node(
    transform_node: slicer.vtkMRMLTransformNode, target: transform_chain.SamplingGeometry
) -> DisplacementGrid:
    """Sample the node's from-world displacement on `target` with vtkSlicerTransformLogic (float32)."""
    reference_image = vtk.vtkImageData()
    # Only the extent is read; no voxel memory is allocated for the reference.
    reference_image.SetDimensions(*target.dimensions)
    reference = slicer.vtkMRMLScalarVolumeNode()
    reference.SetAndObserveImageData(reference_image)
    reference.SetIJKToRASMatrix(vtk_matrix(geometry.lps_to_ras_index_matrix(target.index_to_lps)))
    # A private scene receives the output node so the caller's scene is left untouched.
    scratch_scene = slicer.vtkMRMLScene()
    logic = slicer.vtkSlicerTransformLogic()
    logic.SetMRMLScene(scratch_scene)
    output = logic.ConvertToGridTransform(transform_node, reference)
    if output is None:
        raise TransformInputError(
            f"Slicer could not sample transform '{transform_node.GetName()}' onto a grid; check that it "
            "is a valid transform."
        )
    grid_transform = output.GetTransformFromParent()
    vectors = _image_vectors(grid_transform.GetDisplacementGrid(), target.dimensions)
    # The sampled array is ours alone, so it is converted without a copy.
    geometry.ras_to_lps_vectors_in_place(vectors)
    return DisplacementGrid(target.origin_lps, target.direction_lps, target.spacing_mm, vectors, check_vectors=False)
