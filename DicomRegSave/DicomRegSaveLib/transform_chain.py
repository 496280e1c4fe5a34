"""A fixed -> moving transform as a chain of parts (LPS), and its encoding as a :class:`Deformation`.

Both front ends describe a transform this way: :mod:`mrml.deformation` from a Slicer node's from-world
transform, :mod:`inputs.itk_transforms` from an ITK transform file (without VTK or Slicer). The
parts are listed in the order they are applied to a fixed point. A chain ``A`` (linear), ``G``
(grid), ``B`` (linear) gives ``source = B(A x + D_G(A x))``, so ``M_pre = A``, ``M_post = B`` and
``D(x) = D_G(A x)``: the same vectors on the grid geometry mapped by ``inv(A)`` (exact whenever the
mapped axes stay orthogonal). Chains without that form are sampled on a grid: a chain of linear
parts around one B-spline by :mod:`bspline` (tensor products when the grids are parallel), anything
else by the front end's sampler (Slicer).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from DicomRegSaveLib import geometry
from DicomRegSaveLib.bspline import BSplineGrid
from DicomRegSaveLib.errors import TransformInputError
from DicomRegSaveLib.model import Deformation, DisplacementGrid, RegistrationMatrix, axis_aligned_grid
from DicomRegSaveLib.progress import Progress, ignore_progress

#: Below this the difference from the identity is rounding noise, not a matrix (dimensionless / mm).
IDENTITY_TOLERANCE = 1e-12

#: A region reaching less than this beyond a displacement field's grid is on it (mm).
_OUTSIDE_FIELD_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class LinearPart:
    """An affine part: ``x -> matrix_lps @ x`` (4x4, LPS, mm)."""

    matrix_lps: np.ndarray


@dataclass(frozen=True)
class FieldPart:
    """A displacement grid (LPS). `to_parent`: the grid holds the inverse (modeling) displacement,
    so the part's own displacement must be computed (sampled); only its geometry is used here.
    `interpolation`: the name of the interpolation the front end applies if not trilinear."""

    grid: DisplacementGrid
    to_parent: bool = False
    interpolation: str | None = None


@dataclass(frozen=True)
class BSplinePart:
    """A cubic B-spline displacement ``x -> x + D(x)``; `description` names it in messages."""

    bspline: BSplineGrid
    description: str
    #: Slicer's additive bulk transform (``x -> bulk_lps @ x + D(x)``), None for none.
    bulk_lps: np.ndarray | None = None


@dataclass(frozen=True)
class OtherPart:
    """A part that only the front end's sampler can evaluate (its class name, for messages)."""

    description: str


Part = LinearPart | FieldPart | BSplinePart | OtherPart


@dataclass
class SamplingGeometry:
    """An orthogonal grid geometry in LPS: first point, unit axes (columns), spacing, size (n_i, n_j, n_k)."""

    origin_lps: np.ndarray
    direction_lps: np.ndarray
    spacing_mm: np.ndarray
    dimensions: tuple[int, int, int]

    @classmethod
    def from_reference(cls, ijk_to_lps: np.ndarray, dimensions: Sequence[int]) -> SamplingGeometry:
        matrix = np.asarray(ijk_to_lps, dtype=np.float64)
        dims = tuple(int(n) for n in dimensions)
        if matrix.shape != (4, 4) or len(dims) != 3 or min(dims) < 1:
            raise TransformInputError(
                f"The reference (fixed image) geometry must be a 4x4 IJK->LPS matrix and 3 positive sizes; "
                f"got a {matrix.shape} matrix and {dimensions!r}."
            )
        orthogonal = orthogonal_geometry(matrix)
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

    def coarse(self) -> SamplingGeometry:
        """Two points per axis on the image's first and last voxel centres (one for a single slice)."""
        dims = tuple(2 if n > 1 else 1 for n in self.dimensions)
        spacing = np.where(np.array(dims) > 1, self.lengths_mm, self.spacing_mm)
        return SamplingGeometry(self.origin_lps, self.direction_lps, spacing, dims)

    def with_spacing(self, spacing_mm: float | Sequence[float] | None, warnings: list[str]) -> SamplingGeometry:
        """The same box and axes at another spacing (default: twice the image spacing)."""
        spacing = _clamped(spacing_mm, self.spacing_mm, _axis_names(self.direction_lps), warnings)
        dims = _count(self.lengths_mm, spacing)
        return SamplingGeometry(self.origin_lps, self.direction_lps, spacing, dims)

    def corners_lps(self) -> np.ndarray:
        """The 8 corner voxel centres (8, 3), LPS."""
        corners_index = np.array([[i, j, k, 1.0] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
        corners_index[:, :3] *= np.array(self.dimensions) - 1
        return (corners_index @ self.index_to_lps.T)[:, :3]

    def axis_aligned_box(
        self, spacing_mm: float | Sequence[float] | None, warnings: list[str], *, clamp: bool = True
    ) -> SamplingGeometry:
        """A box along +L, +P, +S covering every voxel centre of this geometry."""
        corners = self.corners_lps()
        low, high = corners.min(axis=0), corners.max(axis=0)
        image_spacing = self.spacing_along_patient_axes
        spacing = (
            _clamped(spacing_mm, image_spacing, ("x", "y", "z"), warnings)
            if clamp
            else np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)).copy()
        )
        return SamplingGeometry(low, np.eye(3), spacing, _count(high - low, spacing))


def _clamped(
    spacing_mm: float | Sequence[float] | None,
    image_spacing: np.ndarray,
    axis_names: Sequence[str],
    warnings: list[str],
) -> np.ndarray:
    """The grid spacing to write (mm, per grid axis): the requested one, raised to the fixed image's
    spacing along the axes where it is finer (said in `warnings`, naming those axes by `axis_names`
    and the spacing written); twice the image spacing when none is requested."""
    if spacing_mm is None:
        return 2.0 * image_spacing
    requested = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)).copy()
    if not np.all(np.isfinite(requested)) or np.any(requested <= 0):
        raise TransformInputError(f"The grid spacing must be positive (mm); got {spacing_mm!r}.")
    finer = requested < image_spacing - 1e-9
    if not np.any(finer):
        return requested
    written = np.maximum(requested, image_spacing)
    axes = [f"{name} ({_mm(image_spacing[axis])} mm)" for axis, name in enumerate(axis_names) if finer[axis]]
    where = axes[0] if len(axes) == 1 else f"{', '.join(axes[:-1])} and {axes[-1]}"
    asked = _mm(requested[0]) if np.all(requested == requested[0]) else " × ".join(map(_mm, requested))
    warnings.append(
        f"The requested grid spacing {asked} mm is finer than the fixed image in {where}; "
        f"written: {' × '.join(map(_mm, written))} mm."
    )
    return written


def _mm(value: float) -> str:
    """A length in mm as it is read: at most 4 decimals, no trailing zeros."""
    return f"{round(float(value), 4):g}"


def _axis_names(direction_lps: np.ndarray) -> tuple[str, str, str]:
    """The patient axis (x, y, z: L, P, S) each grid axis runs closest to; i, j, k if two share one."""
    names = tuple("xyz"[axis] for axis in np.argmax(np.abs(direction_lps), axis=0))
    return names if len(set(names)) == 3 else ("i", "j", "k")


def _count(lengths_mm: np.ndarray, spacing_mm: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(math.ceil(length / step - 1e-9)) + 1 for length, step in zip(lengths_mm, spacing_mm))


#: Samples the whole chain's fixed -> moving displacement on a geometry (the front end's evaluation).
Sampler = Callable[[SamplingGeometry], DisplacementGrid]


def orthogonal_geometry(index_to_patient: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(origin, unit direction, spacing) of an index matrix whose axes are orthogonal, else None."""
    axes = index_to_patient[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    if np.any(spacing <= 0) or not np.all(np.isfinite(axes)):
        return None
    direction = axes / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), rtol=0.0, atol=geometry.EXACT_DIRECTION_TOLERANCE):
        return None
    return index_to_patient[:3, 3].copy(), direction, spacing


def product(matrices_in_application_order: Iterable[np.ndarray]) -> np.ndarray:
    """One 4x4 matrix applying the given ones in turn."""
    result = np.eye(4)
    for matrix in matrices_in_application_order:
        result = matrix @ result
    return result


def registration_matrix(matrix_lps: np.ndarray) -> RegistrationMatrix | None:
    """The matrix as a RegistrationMatrix, or None when it is the identity up to rounding."""
    if np.allclose(matrix_lps, np.eye(4), rtol=0.0, atol=IDENTITY_TOLERANCE):
        return None
    return RegistrationMatrix(matrix_lps)


def deformation_from_parts(
    parts: Sequence[Part],
    name: str,
    reference_ijk_to_lps: np.ndarray,
    reference_dimensions: Sequence[int],
    sampler: Sampler,
    *,
    grid_spacing_mm: float | Sequence[float] | None = None,
    axis_aligned: bool = False,
    progress: Progress | None = None,
) -> Deformation:
    """Encode a chain of parts (fixed -> moving, in application order) as a Deformation.

    Parameters
    ----------
    parts:
        The chain; an empty chain is the identity.
    name:
        The transform's name in messages.
    reference_ijk_to_lps:
        4x4 voxel index -> LPS (mm) matrix of the fixed (reference) image, voxel centres.
    reference_dimensions:
        Fixed image size (n_i, n_j, n_k).
    sampler:
        Evaluates the chain on a grid when neither the exact forms nor :mod:`bspline` can.
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
        Called before and after the sampling; see :mod:`.progress`.

    Returns
    -------
    Deformation
        Exact (``exact=True``) for ``linear* -> one grid -> linear*`` chains whose linear part
        before the grid keeps the grid axes orthogonal (rigid, or uniform scale), and for purely
        linear chains (zero grid covering the fixed image + the matrix as post matrix). Everything
        else (B-spline, several grids, to-parent grids, shearing pre-matrices, other parts) is sampled.
        A grid that the front end interpolates other than trilinearly is copied like a linear
        one: its values are the transform's samples, and DICOM receivers, like ITK, interpolate
        them trilinearly (a note is added to ``warnings``).
    """
    reference = SamplingGeometry.from_reference(reference_ijk_to_lps, reference_dimensions)
    warnings: list[str] = []
    grid_positions = [index for index, part in enumerate(parts) if isinstance(part, FieldPart)]

    if all(isinstance(part, LinearPart) for part in parts):
        matrix = product(part.matrix_lps for part in parts)
        geometry_ = (reference.axis_aligned_box(None, warnings) if axis_aligned else reference).coarse()
        grid = DisplacementGrid(
            geometry_.origin_lps,
            geometry_.direction_lps,
            geometry_.spacing_mm,
            np.zeros((*geometry_.dimensions[::-1], 3), dtype=np.float32),
        )
        return Deformation(grid, None, registration_matrix(matrix), True, warnings, linear=True)

    reason = None
    if grid_spacing_mm is not None:
        reason = "a grid spacing was requested"
    elif any(isinstance(part, (OtherPart, BSplinePart)) for part in parts):
        others = sorted({part.description for part in parts if isinstance(part, (OtherPart, BSplinePart))})
        reason = f"the transform contains {', '.join(others)}, which has no exact grid form"
    elif len(grid_positions) > 1:
        reason = f"the transform chain holds {len(grid_positions)} displacement grids"
    elif parts[grid_positions[0]].to_parent:
        reason = (
            "its displacement grid is stored as a to-parent (modeling) transform, so the from-parent "
            "displacement must be computed"
        )
    if reason is None:
        position = grid_positions[0]
        field = parts[position]
        pre = product(part.matrix_lps for part in parts[:position])
        post = product(part.matrix_lps for part in parts[position + 1 :])
        grid = _exact_grid(field.grid, np.linalg.inv(pre))
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
                if registration_matrix(pre) is not None:
                    _warn_outside_field(name, field.grid, pre, reference, False, warnings)
                if field.interpolation is not None:
                    warnings.append(
                        f"Slicer interpolates the grid of '{name}' with {field.interpolation.lower()} interpolation, "
                        "receivers of the REG (like ITK) trilinearly: between grid points Slicer's display of this "
                        "transform may differ slightly from the REG, whose grid values are the transform's own."
                    )
                return Deformation(grid, registration_matrix(pre), registration_matrix(post), True, warnings)

    single_grid = None
    linear_then_grid = len(grid_positions) == 1 and all(
        isinstance(part, LinearPart) for part in parts[: grid_positions[0]]
    )
    if linear_then_grid:
        position = grid_positions[0]
        pre = product(part.matrix_lps for part in parts[:position])
        if grid_spacing_mm is None:
            single_grid = _grid_sampling_geometry(parts[position].grid, pre)
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
    if grid_spacing_mm is None:
        # a requested spacing is what the user asked for; the summary shows the grid written
        warnings.append(
            f"Transform '{name}' was resampled onto a {'x'.join(map(str, target.dimensions))} grid of "
            f"{' × '.join(map(_mm, target.spacing_mm))} mm because {reason}; between grid points the "
            "interpolation error of the sampling applies."
        )
    # A to-parent grid's from-parent displacement is computed by inversion, defined beyond its grid.
    if linear_then_grid and not parts[position].to_parent:
        # the fixed image decides: the sampled grid reaches past it (up to a spacing) only to cover it
        _warn_outside_field(name, parts[position].grid, pre, reference, True, warnings)
    _warn_outside_bspline(name, parts, target, warnings)
    report = progress or ignore_progress
    report(0.0, "Sampling the transform on the grid")
    sampled = sample_bspline_chain(parts, target) or sampler(target)
    report(1.0, "Sampling the transform on the grid")
    return Deformation(sampled, None, None, False, warnings)


def _exact_grid(grid: DisplacementGrid, pre_inverse: np.ndarray) -> DisplacementGrid | None:
    """The grid's vectors (not copied) on its geometry mapped by the inverse pre-matrix, or None when
    that geometry is not orthogonal."""
    orthogonal = orthogonal_geometry(pre_inverse @ grid.index_to_lps)
    if orthogonal is None:
        return None
    return grid.on_geometry(*orthogonal)


def _grid_sampling_geometry(grid: DisplacementGrid, pre: np.ndarray) -> SamplingGeometry | None:
    """The grid's geometry in the world (fixed) frame, mapped back through the linear transform
    before it; None when that is not an orthogonal grid."""
    orthogonal = orthogonal_geometry(np.linalg.inv(pre) @ grid.index_to_lps)
    if orthogonal is None:
        return None
    return SamplingGeometry(*orthogonal, grid.dimensions)


def _warn_outside_field(
    name: str,
    grid: DisplacementGrid,
    pre: np.ndarray,
    fixed_image: SamplingGeometry,
    resampled: bool,
    warnings: list[str],
) -> None:
    """Warn when points of the fixed image map (through the linear part before the field) outside the
    field's grid.

    There the field is not defined and the conventions differ: VTK (Slicer) holds the displacement
    of the grid's edge, ITK and ANTs use zero displacement. The fixed image is a box and the mapping
    affine, so its corners decide.
    """
    mapped = fixed_image.corners_lps() @ pre[:3, :3].T + pre[:3, 3]
    lps_to_index = np.linalg.inv(grid.index_to_lps)
    index = mapped @ lps_to_index[:3, :3].T + lps_to_index[:3, 3]
    beyond = np.maximum(0.0, np.maximum(-index, index - (np.array(grid.dimensions) - 1)))
    distance_mm = float(np.linalg.norm(beyond * grid.spacing_mm, axis=1).max())
    if distance_mm <= _OUTSIDE_FIELD_TOLERANCE_MM:
        return
    linear = (
        ""
        if np.allclose(pre, np.eye(4), rtol=0.0, atol=IDENTITY_TOLERANCE)
        else ", after the linear transform applied before it (in an ITK file: a composite listing [field, affine])"
    )
    if resampled:
        consequence = (
            "The REG was sampled there by Slicer, so it follows Slicer's convention (edge displacement held); "
            "ITK-based tools applying the original transform file compute something else there."
        )
    else:
        consequence = (
            "The REG keeps the field's own grid, so there each receiver applies its own convention; "
            "requesting a grid spacing samples the whole fixed image with Slicer's convention instead."
        )
    message = (
        f"Transform '{name}': parts of the fixed image lie up to "
        f"{distance_mm:.3g} mm outside the displacement field's grid{linear}, where the field is undefined: "
        f"Slicer (VTK) holds the displacement of the grid's edge, ITK and ANTs use zero. {consequence}"
    )
    warnings.append(message)


def _warn_outside_bspline(name: str, parts: Sequence[Part], target: SamplingGeometry, warnings: list[str]) -> None:
    """Warn when an ITK B-spline (the first non-linear part) is sampled beyond its valid region: ITK
    (and so this sampling) gives zero displacement there, Slicer fades the displacement out."""
    position = next((i for i, part in enumerate(parts) if not isinstance(part, LinearPart)), None)
    if position is None or not isinstance(parts[position], BSplinePart) or parts[position].bspline.outside != "itk":
        return
    bspline = parts[position].bspline
    pre = product(part.matrix_lps for part in parts[:position])
    corners = target.corners_lps() @ pre[:3, :3].T + pre[:3, 3]
    to_index = np.linalg.inv(bspline.index_to_lps)
    index = corners @ to_index[:3, :3].T + to_index[:3, 3]
    beyond = np.maximum(0.0, np.maximum(1.0 - index, index - (np.array(bspline.dimensions) - 2.0)))
    distance_mm = float(np.linalg.norm(beyond * bspline.spacing_mm, axis=1).max())
    if distance_mm <= _OUTSIDE_FIELD_TOLERANCE_MM:
        return
    message = (
        f"Transform '{name}': parts of the sampled region lie up to {distance_mm:.3g} mm outside the B-spline's "
        "domain (its control grid less one spacing at each end). There the file's transform has zero "
        "displacement as ITK defines it, and so has the REG; Slicer's display of the same file fades the "
        "displacement out over two control spacings instead."
    )
    warnings.append(message)


def sample_bspline_chain(parts: Sequence[Part], target: SamplingGeometry) -> DisplacementGrid | None:
    """The displacement of ``linear* -> one B-spline -> linear*`` on `target`, evaluated by :mod:`bspline`
    (tensor products when the control grid is parallel to the target once mapped through the linear
    part before it), or None for other chains."""
    positions = [index for index, part in enumerate(parts) if isinstance(part, BSplinePart)]
    if len(positions) != 1 or not all(isinstance(part, (LinearPart, BSplinePart)) for part in parts):
        return None
    part = parts[positions[0]]
    pre = product(p.matrix_lps for p in parts[: positions[0]])
    post = product(p.matrix_lps for p in parts[positions[0] + 1 :])
    bulk = np.eye(4) if part.bulk_lps is None else part.bulk_lps
    # post(bulk(pre x) + D(pre x)) - x at x = target.index_to_lps @ (i, j, k, 1)
    vectors = part.bspline.sample(
        pre @ target.index_to_lps,
        target.dimensions,
        affine_lps=(post @ bulk @ pre - np.eye(4))[:3] @ target.index_to_lps,
        linear_lps=post[:3, :3],
    )
    # B-spline values are finite sums of the coefficients; the writer checks the planes it writes.
    return DisplacementGrid(target.origin_lps, target.direction_lps, target.spacing_mm, vectors, check_vectors=False)


def affine_plus_planes(
    affine_lps: np.ndarray,
    linear: np.ndarray,
    index_to_lps: np.ndarray,
    dimensions: tuple[int, int, int],
    planes_lps: Iterable[np.ndarray],
) -> np.ndarray:
    """``A x + b + L d`` at every grid point x, float32 (n_k, n_j, n_i, 3), from the 4x4 `affine_lps`
    (``A``, ``b``), the 3x3 `linear` (``L``) and the grid's displacement planes d (n_j, n_i, 3).

    ``A x + b`` is affine in the grid index, so it is summed from per-axis terms, plane by plane,
    instead of transforming every point.
    """
    # (A x + b) at x = index_to_lps @ (i, j, k, 1): one column per grid axis plus the constant
    per_index = affine_lps[:3, :] @ index_to_lps
    n_i, n_j, n_k = dimensions
    along_i = np.arange(n_i)[:, None] * per_index[:, 0]
    along_j = np.arange(n_j)[:, None, None] * per_index[:, 1]
    identity = np.array_equal(linear, np.eye(3))
    vectors = np.empty((n_k, n_j, n_i, 3), dtype=np.float32)
    for k, plane in enumerate(planes_lps):
        moved = plane if identity else plane.astype(np.float64) @ linear.T
        vectors[k] = along_j + along_i + (per_index[:, 3] + k * per_index[:, 2]) + moved
    return vectors
