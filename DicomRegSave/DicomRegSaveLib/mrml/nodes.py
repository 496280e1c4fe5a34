"""3D Slicer transform and volume nodes <-> the LPS registration model.

The same code runs inside the Slicer application and headless with the ``slicer-core`` package:
it uses MRML classes only, never ``slicer.app``, Qt or the DICOM database.

Direction convention. A moving volume placed under a transform node is resampled through the
node's *from-world* transform (the node's from-parent transform, preceded by its parents'):
a world (= fixed) point ``x`` shows the moving volume's content at ``FromWorld(x)``. That is the
mapping a DICOM Deformable Spatial Registration stores (registered -> source)::

    source_point_lps = M_post @ (M_pre @ x_lps + D(x_lps))

The from-world chain is a list of components applied one after the other, the root's from-parent
transform first and the node's own last. A chain ``A`` (linear), ``G`` (grid), ``B`` (linear) gives
``source = B(A x + D_G(A x))``, so ``M_pre = A``, ``M_post = B`` and ``D(x) = D_G(A x)``: the same
vectors on the grid geometry mapped by ``inv(A)`` (exact whenever the mapped axes stay orthogonal).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from DicomRegSaveLib import geometry
from DicomRegSaveLib.errors import InvalidRegistrationError, TransformInputError
from DicomRegSaveLib.mapped_pages import release_mapped_pages
from DicomRegSaveLib.model import Deformation, DisplacementGrid, RegistrationItem, RegistrationMatrix, axis_aligned_grid
from DicomRegSaveLib.progress import Progress, ignore_progress

logger = logging.getLogger(__name__)


#: Below this the difference from the identity is rounding noise, not a matrix (dimensionless / mm).
_IDENTITY_TOLERANCE = 1e-12

_VTK_LINEAR_INTERPOLATION = 1

#: A region reaching less than this beyond a displacement field's grid is on it (mm).
_OUTSIDE_FIELD_TOLERANCE_MM = 1e-3


# ----------------------------------------------------------------------------------------------
# Export side: transform node -> Deformation


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

    Parameters
    ----------
    transform_node:
        The node the moving volume is (or would be) placed under.
    reference_ijk_to_lps:
        4x4 voxel index -> LPS (mm) matrix of the fixed (reference) image, voxel centres.
    reference_dimensions:
        Fixed image size (n_i, n_j, n_k).
    grid_spacing_mm:
        Spacing of a resampled grid (one number or one per axis, mm). ``None``: copy a single
        displacement grid exactly when the chain allows it, else resample on that grid's geometry
        (one grid in the chain) or on the fixed image at twice its spacing. Finer than the fixed
        image spacing is clamped to it (reported in ``warnings``).
    axis_aligned:
        Produce a grid whose axes are the LPS axes (Image Orientation ``1\\0\\0\\0\\1\\0``), for
        receivers that cannot read oblique grids: a grid along the patient axes is re-indexed
        exactly, anything else is resampled on a box covering the fixed image.
    progress:
        Called before and after the sampling (Slicer samples in one call); see :mod:`.progress`.

    Returns
    -------
    Deformation
        Exact (``exact=True``) for ``linear* -> one from-parent grid -> linear*`` chains whose linear
        part before the grid keeps the grid axes orthogonal (rigid, or uniform scale), and for purely
        linear chains (zero grid covering the fixed image + the matrix as post matrix). Everything
        else (B-spline, thin-plate, several grids, inverse i.e. to-parent-stored grids, shearing
        pre-matrices) is resampled with ``vtkSlicerTransformLogic.ConvertToGridTransform``.
        A grid that Slicer interpolates cubically (Slicer's default for fields read from files) is
        copied like a linear one: its values are the transform's samples, and DICOM receivers, like
        ITK, interpolate them trilinearly (a note is added to ``warnings``).

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
    reference = _SamplingGeometry.from_reference(reference_ijk_to_lps, reference_dimensions)
    name = transform_node.GetName() or transform_node.GetID() or "transform"
    components = _from_world_components(transform_node)
    kinds = [_kind(component) for component in components]
    grid_positions = [index for index, kind in enumerate(kinds) if kind in ("grid", "other_grid")]
    warnings: list[str] = []

    if all(kind == "linear" for kind in kinds):
        matrix_ras = _product([_matrix_ras(c) for c in components])
        geometry_ = (reference.axis_aligned_box(None, warnings) if axis_aligned else reference).coarse()
        grid = DisplacementGrid(
            geometry_.origin_lps,
            geometry_.direction_lps,
            geometry_.spacing_mm,
            np.zeros((*geometry_.dimensions[::-1], 3), dtype=np.float32),
        )
        return Deformation(grid, None, _registration_matrix(matrix_ras), True, warnings, linear=True)

    reason = None
    if grid_spacing_mm is not None:
        reason = f"a grid spacing of {grid_spacing_mm} mm was requested"
    elif any(kind == "other" for kind in kinds):
        others = sorted({c.GetClassName() for c, k in zip(components, kinds) if k == "other"})
        reason = f"the transform contains {', '.join(others)}, which has no exact grid form"
    elif len(grid_positions) > 1:
        reason = f"the transform chain holds {len(grid_positions)} displacement grids"
    elif kinds[grid_positions[0]] == "other_grid":
        reason = (
            "its displacement grid is stored as a to-parent (modeling) transform, so the from-parent "
            "displacement must be computed"
        )
    if reason is None:
        position = grid_positions[0]
        pre_ras = _product([_matrix_ras(c) for c in components[:position]])
        post_ras = _product([_matrix_ras(c) for c in components[position + 1 :]])
        grid = _exact_grid(components[position], np.linalg.inv(pre_ras))
        if grid is None:
            reason = (
                "the grid axes are not orthogonal in the fixed frame: the grid itself is sheared, or a linear "
                "transform before it shears or scales it unevenly (rigid or uniformly scaled ones keep it exact)"
            )
        else:
            if axis_aligned and not geometry.is_lps_aligned(grid.direction_lps):
                aligned = axis_aligned_grid(grid)
                if aligned is None:
                    reason = "an LPS-axis-aligned grid was requested and the grid is oblique"
                grid = aligned
            if reason is None:
                if _registration_matrix(pre_ras) is not None:
                    _warn_outside_field(name, components[position], pre_ras, reference, False, warnings)
                if components[position].GetInterpolationMode() != _VTK_LINEAR_INTERPOLATION:
                    warnings.append(
                        f"Slicer evaluates the grid of '{name}' with "
                        f"{components[position].GetInterpolationModeAsString().lower()} interpolation (its "
                        "default for fields read from files); the grid values are copied unchanged and, as in "
                        "ITK, receivers interpolate them trilinearly, so between grid points Slicer's display "
                        "of this transform may differ slightly from the DICOM registration."
                    )
                return Deformation(grid, _registration_matrix(pre_ras), _registration_matrix(post_ras), True, warnings)

    single_grid = None
    linear_then_grid = len(grid_positions) == 1 and all(kind == "linear" for kind in kinds[: grid_positions[0]])
    if linear_then_grid:
        position = grid_positions[0]
        pre_ras = _product([_matrix_ras(c) for c in components[:position]])
        if grid_spacing_mm is None:
            single_grid = _grid_sampling_geometry(components[position], pre_ras)
    if axis_aligned:
        target = reference.axis_aligned_box(
            grid_spacing_mm if single_grid is None else single_grid.spacing_along_patient_axes,
            warnings,
            clamp=single_grid is None,
        )
    elif single_grid is not None:
        target = single_grid
    else:
        target = reference.with_spacing(grid_spacing_mm, warnings)
    message = (
        f"Transform '{name}' was resampled onto a {'x'.join(map(str, target.dimensions))} grid of "
        f"{np.round(target.spacing_mm, 3).tolist()} mm because {reason}; between grid points the "
        "interpolation error of the sampling applies."
    )
    logger.info(message)
    warnings.append(message)
    # A to-parent grid's from-parent displacement is computed by inversion, defined beyond its grid.
    if linear_then_grid and kinds[position] == "grid":
        _warn_outside_field(name, components[position], pre_ras, target, True, warnings)
    report = progress or ignore_progress
    report(0.0, "Sampling the transform on the grid")
    sampled = _sample(transform_node, target)
    report(1.0, "Sampling the transform on the grid")
    return Deformation(sampled, None, None, False, warnings)


def _warn_outside_field(
    name: str,
    component: vtk.vtkGridTransform,
    pre_ras: np.ndarray,
    region: _SamplingGeometry,
    resampled: bool,
    warnings: list[str],
) -> None:
    """Warn when points of `region` map (through the linear part before the field) outside the field's grid.

    There the field is not defined and the conventions differ: VTK (Slicer) holds the displacement
    of the grid's edge, ITK and ANTs use zero displacement. The region is a box and the mapping
    affine, so its corners decide.
    """
    index_to_ras, dims = _grid_index_to_ras(component)
    corners_ras = geometry.lps_to_ras_points(region.corners_lps())
    mapped = corners_ras @ pre_ras[:3, :3].T + pre_ras[:3, 3]
    ras_to_index = np.linalg.inv(index_to_ras)
    index = mapped @ ras_to_index[:3, :3].T + ras_to_index[:3, 3]
    beyond = np.maximum(0.0, np.maximum(-index, index - (np.array(dims) - 1)))
    distance_mm = float(np.linalg.norm(beyond * np.linalg.norm(index_to_ras[:3, :3], axis=0), axis=1).max())
    if distance_mm <= _OUTSIDE_FIELD_TOLERANCE_MM:
        return
    linear = (
        ""
        if np.allclose(pre_ras, np.eye(4), rtol=0.0, atol=_IDENTITY_TOLERANCE)
        else (
            ", after the linear transform applied before it (in an ITK file: a composite listing the field "
            "before the affine, [field, affine])"
        )
    )
    if resampled:
        consequence = (
            "The REG was sampled there by Slicer, so it follows Slicer's convention (edge displacement held); "
            "ITK-based tools applying the original transform file compute something else there."
        )
    else:
        consequence = (
            "The REG's grid is the field's own grid, so outside it each receiver applies its own convention; "
            "a --grid-spacing export samples the whole fixed image with Slicer's convention instead."
        )
    message = (
        f"Transform '{name}': parts of the {'sampled region' if resampled else 'fixed image'} lie up to "
        f"{distance_mm:.3g} mm outside the displacement field's grid{linear}. Outside the grid the field is "
        f"undefined: Slicer (VTK) holds the displacement of the grid's edge, ITK and ANTs use zero. {consequence}"
    )
    logger.warning(message)
    warnings.append(message)


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


def _kind(component: vtk.vtkAbstractTransform) -> str:
    """``linear``, ``grid`` (copyable from-parent grid), ``other_grid`` (grid that must be resampled), ``other``."""
    if component.IsA("vtkHomogeneousTransform"):
        matrix = _matrix_ras(component)
        affine = np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0], atol=_IDENTITY_TOLERANCE)
        return "linear" if affine and abs(np.linalg.det(matrix[:3, :3])) > 1e-12 else "other"
    if component.IsA("vtkGridTransform"):
        return "other_grid" if component.GetInverseFlag() else "grid"
    return "other"


def _matrix_ras(component: vtk.vtkHomogeneousTransform) -> np.ndarray:
    return _array_from_vtk_matrix(component.GetMatrix())


def _array_from_vtk_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _vtk_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def _product(matrices_in_application_order: list[np.ndarray]) -> np.ndarray:
    result = np.eye(4)
    for matrix in matrices_in_application_order:
        result = matrix @ result
    return result


def _registration_matrix(matrix_ras: np.ndarray) -> RegistrationMatrix | None:
    if np.allclose(matrix_ras, np.eye(4), rtol=0.0, atol=_IDENTITY_TOLERANCE):
        return None
    return RegistrationMatrix(geometry.ras_to_lps_matrix(matrix_ras))


def _grid_index_to_ras(component: vtk.vtkGridTransform) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Index -> RAS matrix of the first grid point (extent minimum) and the grid size (n_i, n_j, n_k)."""
    image = component.GetDisplacementGrid()
    if image is None or image.GetNumberOfPoints() == 0:
        raise TransformInputError(
            f"A grid transform ({component.GetClassName()}) has no displacement field data; "
            "reload or recompute the transform."
        )
    direction = np.eye(4)
    if component.IsA("vtkOrientedGridTransform") and component.GetGridDirectionMatrix() is not None:
        direction = _array_from_vtk_matrix(component.GetGridDirectionMatrix())
    extent = image.GetExtent()
    dims = (extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1)
    index_to_ras = geometry.index_to_patient_matrix(np.array(image.GetOrigin()), direction[:3, :3], image.GetSpacing())
    first = index_to_ras @ np.array([extent[0], extent[2], extent[4], 1.0])
    index_to_ras[:3, 3] = first[:3]
    return index_to_ras, dims


def _orthogonal_geometry(index_to_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(origin, unit direction, spacing) of an index matrix whose axes are orthogonal, else None."""
    axes = index_to_ras[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    if np.any(spacing <= 0) or not np.all(np.isfinite(axes)):
        return None
    direction = axes / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), rtol=0.0, atol=geometry.EXACT_DIRECTION_TOLERANCE):
        return None
    return index_to_ras[:3, 3].copy(), direction, spacing


def _exact_grid(component: vtk.vtkGridTransform, pre_inverse_ras: np.ndarray) -> DisplacementGrid | None:
    """The grid's vectors on its geometry mapped by the inverse pre-matrix: a grid that refers to the
    node's vectors and converts them to LPS float32 plane by plane as it is written (no copy of the field)."""
    index_to_ras, dims = _grid_index_to_ras(component)
    orthogonal = _orthogonal_geometry(pre_inverse_ras @ index_to_ras)
    if orthogonal is None:
        return None
    origin_ras, direction_ras, spacing = orthogonal
    vectors_ras = _image_vectors(component.GetDisplacementGrid(), dims)
    return DisplacementGrid.from_ras(
        origin_ras,
        direction_ras,
        spacing,
        vectors_ras,
        displacement_scale=component.GetDisplacementScale(),
        displacement_shift=component.GetDisplacementShift(),
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


def _grid_sampling_geometry(component: vtk.vtkGridTransform, pre_ras: np.ndarray) -> _SamplingGeometry | None:
    """The grid's geometry in the world (fixed) frame, mapped back through the linear transform
    before it; None when that is not an orthogonal grid."""
    index_to_ras, dims = _grid_index_to_ras(component)
    orthogonal = _orthogonal_geometry(np.linalg.inv(pre_ras) @ index_to_ras)
    if orthogonal is None:
        return None
    origin_ras, direction_ras, spacing = orthogonal
    return _SamplingGeometry(
        geometry.ras_to_lps_points(origin_ras), geometry.ras_to_lps_direction(direction_ras), spacing, dims
    )


@dataclass
class _SamplingGeometry:
    """An orthogonal grid geometry in LPS: first point, unit axes (columns), spacing, size (n_i, n_j, n_k)."""

    origin_lps: np.ndarray
    direction_lps: np.ndarray
    spacing_mm: np.ndarray
    dimensions: tuple[int, int, int]

    @classmethod
    def from_reference(cls, ijk_to_lps: np.ndarray, dimensions: Sequence[int]) -> _SamplingGeometry:
        matrix = np.asarray(ijk_to_lps, dtype=np.float64)
        dims = tuple(int(n) for n in dimensions)
        if matrix.shape != (4, 4) or len(dims) != 3 or min(dims) < 1:
            raise TransformInputError(
                f"The reference (fixed image) geometry must be a 4x4 IJK->LPS matrix and 3 positive sizes; "
                f"got a {matrix.shape} matrix and {dimensions!r}."
            )
        orthogonal = _orthogonal_geometry(matrix)
        if orthogonal is None:
            raise TransformInputError(
                "The reference (fixed image) IJK->LPS matrix has skewed or degenerate axes; a displacement "
                f"grid needs an orthogonal reference. Matrix: {np.round(matrix, 6).tolist()}"
            )
        return cls(*orthogonal, dims)

    @property
    def index_to_lps(self) -> np.ndarray:
        return geometry.index_to_patient_matrix(self.origin_lps, self.direction_lps, self.spacing_mm)

    @property
    def spacing_along_patient_axes(self) -> np.ndarray:
        """Spacing of the grid axis closest to each of the L, P, S axes (mm)."""
        return self.spacing_mm[np.argmax(np.abs(self.direction_lps), axis=1)]

    @property
    def lengths_mm(self) -> np.ndarray:
        return (np.array(self.dimensions) - 1) * self.spacing_mm

    def coarse(self) -> _SamplingGeometry:
        """Two points per axis on the image's first and last voxel centres (one for a single slice)."""
        dims = tuple(2 if n > 1 else 1 for n in self.dimensions)
        spacing = np.where(np.array(dims) > 1, self.lengths_mm, self.spacing_mm)
        return _SamplingGeometry(self.origin_lps, self.direction_lps, spacing, dims)

    def with_spacing(self, spacing_mm: float | Sequence[float] | None, warnings: list[str]) -> _SamplingGeometry:
        """The same box and axes at another spacing (default: twice the image spacing)."""
        spacing = self._clamped(spacing_mm, self.spacing_mm, warnings)
        dims = _count(self.lengths_mm, spacing)
        return _SamplingGeometry(self.origin_lps, self.direction_lps, spacing, dims)

    def corners_lps(self) -> np.ndarray:
        """The 8 corner voxel centres (8, 3), LPS."""
        corners_index = np.array([[i, j, k, 1.0] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
        corners_index[:, :3] *= np.array(self.dimensions) - 1
        return (corners_index @ self.index_to_lps.T)[:, :3]

    def axis_aligned_box(
        self, spacing_mm: float | Sequence[float] | None, warnings: list[str], *, clamp: bool = True
    ) -> _SamplingGeometry:
        """A box along +L, +P, +S covering every voxel centre of this geometry."""
        corners = self.corners_lps()
        low, high = corners.min(axis=0), corners.max(axis=0)
        image_spacing = self.spacing_along_patient_axes
        spacing = (
            self._clamped(spacing_mm, image_spacing, warnings)
            if clamp
            else np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)).copy()
        )
        return _SamplingGeometry(low, np.eye(3), spacing, _count(high - low, spacing))

    @staticmethod
    def _clamped(
        spacing_mm: float | Sequence[float] | None, image_spacing: np.ndarray, warnings: list[str]
    ) -> np.ndarray:
        if spacing_mm is None:
            return 2.0 * image_spacing
        requested = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)).copy()
        if not np.all(np.isfinite(requested)) or np.any(requested <= 0):
            raise TransformInputError(f"The grid spacing must be positive (mm); got {spacing_mm!r}.")
        if np.any(requested < image_spacing - 1e-9):
            clamped = np.maximum(requested, image_spacing)
            message = (
                f"The requested grid spacing {requested.tolist()} mm is finer than the fixed image spacing "
                f"{np.round(image_spacing, 4).tolist()} mm; using {np.round(clamped, 4).tolist()} mm."
            )
            logger.warning(message)
            warnings.append(message)
            requested = clamped
        return requested


def _count(lengths_mm: np.ndarray, spacing_mm: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(math.ceil(length / step - 1e-9)) + 1 for length, step in zip(lengths_mm, spacing_mm))


def _sample(transform_node: slicer.vtkMRMLTransformNode, target: _SamplingGeometry) -> DisplacementGrid:
    """Sample the node's from-world displacement on `target` with vtkSlicerTransformLogic (float32)."""
    reference_image = vtk.vtkImageData()
    # Only the extent is read; no voxel memory is allocated for the reference.
    reference_image.SetDimensions(*target.dimensions)
    reference = slicer.vtkMRMLScalarVolumeNode()
    reference.SetAndObserveImageData(reference_image)
    reference.SetIJKToRASMatrix(_vtk_matrix(geometry.lps_to_ras_index_matrix(target.index_to_lps)))
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


# ----------------------------------------------------------------------------------------------
# Import side: Registration -> transform nodes


def from_parent_components(
    item: RegistrationItem,
    progress: Progress | None = None,
) -> list[tuple[str, vtk.vtkAbstractTransform]]:
    """VTK transforms (RAS) that, applied in list order, perform the item's registered -> source mapping.

    Returns ``(role, transform)`` pairs, role ``"pre"``, ``"grid"`` or ``"post"``; identity
    matrices are left out. The grid is a :class:`vtkOrientedGridTransform` used as a from-parent
    (resampling) transform. A Spatial Registration (66.1) item gives one ``"post"`` matrix, the
    inverse of its stored source -> registered matrix (see
    :meth:`RegistrationItem.registered_to_source_parts`); an identity item gives no component.

    A pre-deformation matrix ``A`` is handled exactly: when ``A`` keeps the grid axes orthogonal
    (rigid, uniform scale) the order is ``A, G', post`` with G' the grid geometry mapped by ``A``
    and the vectors unchanged; otherwise (anisotropic scale, shear) the order is
    ``G'', A, post`` with G'' on the original geometry and vectors ``inv(A_3x3) @ D`` — since
    ``A(x + inv(A_3x3) D(x)) = A x + D(x)`` this is exact up to float32 rounding of the vectors.

    The grid's vectors are copied once (float32, RAS), plane by plane, and checked in the same
    pass if they were not yet; `progress` follows the planes (see :mod:`.progress`).

    Raises
    ------
    InvalidRegistrationError
        If a vector is infinite or partly NaN.
    """
    if not isinstance(item, RegistrationItem):
        raise TypeError("from_parent_components takes one RegistrationItem; see Registration.choose_item")
    pre_matrix, grid, post_matrix = item.registered_to_source_parts()
    pre = _matrix_or_none(pre_matrix)
    post = _matrix_or_none(post_matrix)
    components: list[tuple[str, vtk.vtkAbstractTransform]] = []
    if grid is None:
        if pre is not None:
            components.append(("pre", _linear_transform(pre)))
    else:
        moved = None if pre is None else _orthogonal_geometry(pre @ grid.index_to_lps)
        if pre is None:
            components.append(("grid", _grid_transform(grid.index_to_lps, grid, progress=progress)))
        elif moved is not None:
            components.append(("pre", _linear_transform(pre)))
            components.append(("grid", _grid_transform(pre @ grid.index_to_lps, grid, progress=progress)))
        else:
            linear = np.linalg.inv(pre[:3, :3])
            components.append(("grid", _grid_transform(grid.index_to_lps, grid, linear, progress)))
            components.append(("pre", _linear_transform(pre)))
    if post is not None:
        components.append(("post", _linear_transform(post)))
    return components


def nodes_from_registration(
    item: RegistrationItem,
    scene: slicer.vtkMRMLScene,
    name: str = "Deformable registration",
    progress: Progress | None = None,
) -> list[slicer.vtkMRMLTransformNode]:
    """Create transform nodes in `scene` that reproduce one item's fixed -> moving mapping.

    The nodes are chained parent -> child in the order of :func:`from_parent_components`
    (pre-matrix node, grid node, post-matrix node — or grid, pre, post for a shearing pre-matrix;
    one linear node for a Spatial Registration (66.1) item); each stores its part as a
    **from-parent** transform, the grid as a :class:`vtkMRMLGridTransformNode` in RAS. Place the
    moving volume under the **last** node of the returned list: its from-world transform is then
    :meth:`RegistrationItem.map_points`. An identity item gives one linear identity node, so that
    there is always a node to place the moving volume under.

    `progress` follows the copying of the grid's vectors (see :func:`from_parent_components`).

    Returns
    -------
    list of vtkMRMLTransformNode
        Root first, leaf (the node for the moving volume) last.
    """
    components = from_parent_components(item, progress) or [("post", _linear_transform(np.eye(4)))]
    nodes: list[slicer.vtkMRMLTransformNode] = []
    for role, transform in components:
        node_class = "vtkMRMLGridTransformNode" if role == "grid" else "vtkMRMLLinearTransformNode"
        node = scene.AddNewNodeByClass(node_class, scene.GenerateUniqueName(f"{name} {role}"))
        if role == "grid":
            node.SetAndObserveTransformFromParent(transform)
        else:
            node.SetMatrixTransformFromParent(transform.GetMatrix())
        if nodes:
            node.SetAndObserveTransformNodeID(nodes[-1].GetID())
        nodes.append(node)
    return nodes


def _matrix_or_none(matrix: RegistrationMatrix | None) -> np.ndarray | None:
    if matrix is None or matrix.is_identity:
        return None
    return np.array(matrix.matrix_lps)


def _linear_transform(matrix_lps: np.ndarray) -> vtk.vtkTransform:
    transform = vtk.vtkTransform()
    transform.SetMatrix(_vtk_matrix(geometry.lps_to_ras_matrix(matrix_lps)))
    return transform


def _grid_transform(
    index_to_lps: np.ndarray,
    grid: DisplacementGrid,
    linear: np.ndarray | None = None,
    progress: Progress | None = None,
) -> vtk.vtkAbstractTransform:
    """A from-parent vtkOrientedGridTransform (RAS) on `index_to_lps` holding the grid's vectors
    (times `linear`, if given), copied plane by plane: float64 exists for one plane at most, and
    the file's pages under a plane read from a REG's memory map leave resident memory once copied."""
    index_to_ras = geometry.lps_to_ras_index_matrix(index_to_lps)
    origin_ras, direction_ras, spacing = _orthogonal_geometry(index_to_ras) or _raise_skewed(index_to_lps)
    n_i, n_j, n_k = grid.dimensions
    report = progress or ignore_progress
    vectors_ras = np.empty((n_k, n_j, n_i, 3), dtype=np.float32)
    for k, plane in enumerate(grid.checked_planes()):
        if linear is None:
            vectors_ras[k] = plane
        else:
            vectors_ras[k] = plane.astype(np.float64) @ linear.T
        geometry.lps_to_ras_vectors_in_place(vectors_ras[k])
        release_mapped_pages(plane)
        report((k + 1) / n_k, "Building the grid transform")
    vectors_ras = vectors_ras.reshape(-1, 3)
    image = vtk.vtkImageData()
    image.SetDimensions(n_i, n_j, n_k)
    image.SetOrigin(*origin_ras)
    image.SetSpacing(*spacing)
    array = numpy_support.numpy_to_vtk(vectors_ras, deep=False, array_type=vtk.VTK_FLOAT)
    array.SetName("DisplacementField")
    image.GetPointData().SetScalars(array)
    direction = np.eye(4)
    direction[:3, :3] = direction_ras
    transform = slicer.vtkOrientedGridTransform()
    transform.SetDisplacementGridData(image)
    transform.SetGridDirectionMatrix(_vtk_matrix(direction))
    transform.SetInterpolationModeToLinear()
    return transform


def _raise_skewed(index_to_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    raise InvalidRegistrationError(
        f"The grid axes are not orthogonal: {np.round(index_to_lps, 6).tolist()}; a grid transform "
        "cannot represent a skewed grid."
    )


# ----------------------------------------------------------------------------------------------
# Scene helpers for the Slicer module (no Qt)


def volume_geometry(volume_node: slicer.vtkMRMLVolumeNode) -> tuple[np.ndarray, tuple[int, int, int]]:
    """``(ijk_to_lps, (n_i, n_j, n_k))`` of a volume node: its own voxel grid, parent transforms ignored."""
    if volume_node is None or volume_node.GetImageData() is None:
        name = None if volume_node is None else volume_node.GetName()
        raise TransformInputError(f"Volume {name!r} has no image data; load the image first.")
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    dims = tuple(int(n) for n in volume_node.GetImageData().GetDimensions())
    return geometry.ras_to_lps_index_matrix(_array_from_vtk_matrix(matrix)), dims


def resolve_fixed_and_moving(
    transform_node: slicer.vtkMRMLTransformNode,
    fixed_node: slicer.vtkMRMLVolumeNode | None = None,
    moving_node: slicer.vtkMRMLVolumeNode | None = None,
    scene: slicer.vtkMRMLScene | None = None,
) -> tuple[slicer.vtkMRMLVolumeNode, slicer.vtkMRMLVolumeNode]:
    """Find the fixed and moving volumes of a registration transform.

    Order of precedence: the arguments; the node references that registration modules set on their
    output transform (``spatialRegistrationFixed`` / ``spatialRegistrationMoving``); for the moving
    volume only, the one volume placed under `transform_node`.

    Raises
    ------
    TransformInputError
        If a volume cannot be found or is ambiguous, if both are the same node, or if the fixed
        volume is itself transformed (its world position would no longer be its DICOM position).
    """
    if transform_node is None:
        raise TransformInputError("No transform node was given; select the registration result transform.")
    scene = scene or transform_node.GetScene()
    name = transform_node.GetName()
    fixed = fixed_node or transform_node.GetNodeReference(transform_node.GetFixedNodeReferenceRole())
    moving = moving_node or transform_node.GetNodeReference(transform_node.GetMovingNodeReferenceRole())
    if moving is None and scene is not None:
        under = [
            node
            for node in _nodes_of_class(scene, "vtkMRMLVolumeNode")
            if node.GetParentTransformNode() is not None
            and node.GetParentTransformNode().GetID() == transform_node.GetID()
        ]
        if len(under) > 1:
            raise TransformInputError(
                f"Several volumes are placed under transform '{name}' ("
                f"{', '.join(n.GetName() for n in under)}); choose the moving volume explicitly."
            )
        moving = under[0] if under else None
    if fixed is None:
        raise TransformInputError(
            f"The fixed volume of transform '{name}' is unknown: it has no '"
            f"{transform_node.GetFixedNodeReferenceRole()}' reference. Choose the fixed volume."
        )
    if moving is None:
        raise TransformInputError(
            f"The moving volume of transform '{name}' is unknown: it has no '"
            f"{transform_node.GetMovingNodeReferenceRole()}' reference and no volume is placed under it. "
            "Choose the moving volume."
        )
    if fixed.GetID() is not None and fixed.GetID() == moving.GetID():
        raise TransformInputError(f"The fixed and the moving volume are the same node ('{fixed.GetName()}').")
    if fixed.GetParentTransformNode() is not None:
        raise TransformInputError(
            f"The fixed volume '{fixed.GetName()}' is under transform "
            f"'{fixed.GetParentTransformNode().GetName()}': the registration must be expressed in the fixed "
            "image's own coordinates. Remove the transform from the fixed volume."
        )
    return fixed, moving


def _nodes_of_class(scene: slicer.vtkMRMLScene, class_name: str) -> list[slicer.vtkMRMLNode]:
    collection = scene.GetNodesByClass(class_name)
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]
