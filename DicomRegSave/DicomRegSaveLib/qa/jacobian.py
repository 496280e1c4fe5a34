"""Jacobian determinant and displacement magnitude of a registration item, plane by plane.

For a deformable item ``phi(x) = M_post (M_pre x + D(x))`` (registered -> source, LPS mm) the
Jacobian is ``L_post (L_pre + grad D)``, ``L`` the 3x3 parts of the matrices. ``grad D`` is
estimated from the samples of D at the grid points with the :func:`numpy.gradient` convention:
central differences inside, one-sided first-order differences at the grid's first and last
points, along the grid axes in mm; a grid axis with one point contributes no derivative (D is
taken as constant along it). Along grid axes ``G = grad D @ Dir`` (``Dir`` the grid's direction
cosines), so ``det J = det(L_post) det(Dir) det(L_pre Dir + G)``, which is what is computed: the
same number as ``numpy.gradient`` applied to ``phi`` sampled at the grid points.

Memory: the field is read one k plane at a time (three planes of float64 at once), so beyond the
field itself only the determinant and the displacement magnitude are held, one float32 each per
grid point: two thirds of the field's own size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from DicomRegSaveLib.model import DisplacementGrid, RegistrationItem
from DicomRegSaveLib.progress import Progress, ignore_progress


@dataclass
class DisplacementStatistics:
    """``|phi(x) - x|`` over the evaluated points (mm): mean, 95th percentile (linear interpolation,
    as :func:`numpy.percentile`), maximum, and where the maximum is (LPS)."""

    mean: float | None
    p95: float | None
    max: float | None
    points: int
    max_point_lps: tuple[float, float, float] | None

    def as_dict(self) -> dict[str, object]:
        return {
            "mean": self.mean,
            "p95": self.p95,
            "max": self.max,
            "points": self.points,
            "max_point_lps": None if self.max_point_lps is None else list(self.max_point_lps),
        }


@dataclass
class JacobianStatistics:
    """The Jacobian determinant at every grid point where it is defined.

    Attributes
    ----------
    determinant:
        (n_k, n_j, n_i) float32, NaN at undefined (NaN) vectors and where a difference uses one.
    points:
        How many grid points have a determinant (the statistics are over these).
    folded_count, folded_fraction:
        Points with ``det <= 0`` (folding), and their share of `points`.
    worst_index_ijk, worst_point_lps:
        The grid point with the smallest determinant: its index and LPS position (mm).
    """

    determinant: np.ndarray
    min: float | None
    max: float | None
    mean: float | None
    points: int
    folded_count: int
    folded_fraction: float
    worst_index_ijk: tuple[int, int, int] | None
    worst_point_lps: tuple[float, float, float] | None
    grid_points: int = 0
    scheme: str = field(
        default="numpy.gradient: central differences inside, one-sided first-order differences at the grid edges, mm"
    )

    def as_dict(self) -> dict[str, object]:
        return {
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "folded_count": self.folded_count,
            "folded_fraction": self.folded_fraction,
            "points": self.points,
            "grid_points": self.grid_points,
            "worst_index_ijk": None if self.worst_index_ijk is None else list(self.worst_index_ijk),
            "worst_point_lps": None if self.worst_point_lps is None else list(self.worst_point_lps),
            "scheme": self.scheme,
        }


def _parts(item: RegistrationItem) -> tuple[np.ndarray, np.ndarray]:
    """(pre, post) 4x4 matrices of the item, identity where absent."""
    pre, _, post = item.registered_to_source_parts()
    return (np.eye(4) if pre is None else pre.matrix_lps), (np.eye(4) if post is None else post.matrix_lps)


def _plane_points(index_to_lps: np.ndarray, n_i: int, n_j: int, k: int) -> np.ndarray:
    """LPS positions (n_j, n_i, 3) of the grid points of plane k."""
    j, i = np.meshgrid(np.arange(n_j, dtype=np.float64), np.arange(n_i, dtype=np.float64), indexing="ij")
    return (
        i[..., None] * index_to_lps[:3, 0]
        + j[..., None] * index_to_lps[:3, 1]
        + (k * index_to_lps[:3, 2] + index_to_lps[:3, 3])
    )


class _MagnitudeTally:
    """Collects ``|phi(x) - x|`` plane by plane into one float32 array for the percentile."""

    def __init__(self, n_points: int, index_to_lps: np.ndarray, plane_shape: tuple[int, int]) -> None:
        self.values = np.empty(n_points, dtype=np.float32)
        self.index_to_lps = index_to_lps
        self.plane_shape = plane_shape
        self.position = 0
        self.total = 0.0
        self.count = 0
        self.max = -np.inf
        self.max_point: tuple[float, float, float] | None = None

    def add(self, k: int, magnitude: np.ndarray) -> None:
        flat = magnitude.reshape(-1)
        self.values[self.position : self.position + flat.size] = flat
        self.position += flat.size
        finite = np.isfinite(flat)
        if finite.any():
            self.total += float(flat[finite].sum())
            self.count += int(finite.sum())
            where = int(np.nanargmax(flat))
            if flat[where] > self.max:
                self.max = float(flat[where])
                j, i = divmod(where, self.plane_shape[1])
                point = self.index_to_lps[:3, :3] @ np.array([i, j, k], dtype=np.float64) + self.index_to_lps[:3, 3]
                self.max_point = tuple(float(v) for v in point)

    def statistics(self) -> DisplacementStatistics:
        if not self.count:
            return DisplacementStatistics(None, None, None, 0, None)
        # numpy.percentile's linear interpolation, on the array in place (NaN sort last)
        rank = 0.95 * (self.count - 1)
        low, high = int(np.floor(rank)), int(np.ceil(rank))
        self.values.partition([low, high])
        p95 = float(self.values[low]) + (rank - low) * (float(self.values[high]) - float(self.values[low]))
        return DisplacementStatistics(self.total / self.count, p95, self.max, self.count, self.max_point)


def _derivatives(components: np.ndarray, spacing_i: float, spacing_j: float) -> tuple[np.ndarray, np.ndarray]:
    """Derivatives (mm) of a component-major plane (3, n_j, n_i) along i and along j, numpy.gradient's scheme."""
    result = []
    for axis, spacing in ((2, spacing_i), (1, spacing_j)):
        derivative = np.zeros_like(components)
        n = components.shape[axis]
        if n > 1:

            def take(start: int, stop: int | None, axis: int = axis) -> tuple[slice, ...]:
                return (slice(None),) * axis + (slice(start, stop),)

            np.subtract(components[take(2, None)], components[take(0, -2)], out=derivative[take(1, -1)])
            derivative[take(1, -1)] *= np.float32(0.5 / spacing)
            np.subtract(components[take(1, 2)], components[take(0, 1)], out=derivative[take(0, 1)])
            np.subtract(components[take(n - 1, n)], components[take(n - 2, n - 1)], out=derivative[take(n - 1, n)])
            derivative[take(0, 1)] *= np.float32(1.0 / spacing)
            derivative[take(n - 1, n)] *= np.float32(1.0 / spacing)
        result.append(derivative)
    return result[0], result[1]


def field_statistics(
    item: RegistrationItem, progress: Progress | None = None
) -> tuple[JacobianStatistics, DisplacementStatistics]:
    """Jacobian determinant and displacement statistics of a deformable item at its grid points.

    Computed in float32 (the precision of the stored vectors), summed in float64.

    Raises
    ------
    InvalidRegistrationError
        If the field holds infinite values or partly NaN triples (checked as the planes are read).
    """
    grid = item.grid
    if grid is None:
        raise ValueError("field_statistics needs an item with a displacement grid")
    report = progress or ignore_progress
    pre, post = _parts(item)
    n_i, n_j, n_k = grid.dimensions
    spacing = grid.spacing_mm
    index_to_lps = grid.index_to_lps
    constant = (pre[:3, :3] @ grid.direction_lps).astype(np.float32)
    factor = np.float32(np.linalg.det(post[:3, :3]) * np.linalg.det(grid.direction_lps))
    # phi(x) - x = C x + c + L_post D
    affine = post @ pre - np.eye(4)
    has_affine = not np.allclose(affine, 0.0, atol=0.0)
    post_linear = post[:3, :3]
    plain = not has_affine and np.array_equal(post_linear, np.eye(3))
    determinant = np.empty((n_k, n_j, n_i), dtype=np.float32)
    tally = _MagnitudeTally(n_i * n_j * n_k, index_to_lps, (n_j, n_i))
    totals = {"sum": 0.0, "count": 0, "folded": 0, "min": np.inf, "max": -np.inf, "worst": None}

    report(0.0, "Jacobian determinant and displacement")
    planes = grid.checked_planes()
    # component-major planes (3, n_j, n_i): every component a contiguous image
    window: list[np.ndarray] = [np.ascontiguousarray(next(planes).transpose(2, 0, 1))]
    for k in range(n_k):
        if k + 1 < n_k:
            window.append(np.ascontiguousarray(next(planes).transpose(2, 0, 1)))
        current = window[1] if k > 0 else window[0]
        if n_k < 2:
            along_k = np.zeros_like(current)
        elif k == 0 or k == n_k - 1:
            along_k = (window[-1] - window[-2]) * np.float32(1.0 / spacing[2])
        else:
            along_k = (window[2] - window[0]) * np.float32(0.5 / spacing[2])
        along_i, along_j = _derivatives(current, spacing[0], spacing[1])
        columns = (along_i, along_j, along_k)
        for c in range(3):
            for a in range(3):
                columns[c][a] += constant[a, c]
        m = [[columns[c][a] for c in range(3)] for a in range(3)]
        det = m[1][1] * m[2][2]
        det -= m[1][2] * m[2][1]
        det *= m[0][0]
        cofactor = m[1][0] * m[2][2]
        cofactor -= m[1][2] * m[2][0]
        cofactor *= m[0][1]
        det -= cofactor
        cofactor = m[1][0] * m[2][1]
        cofactor -= m[1][1] * m[2][0]
        cofactor *= m[0][2]
        det += cofactor
        det *= factor
        # central differences skip the point itself; an undefined point has no determinant either
        det[np.isnan(current[0])] = np.nan
        determinant[k] = det
        finite = np.isfinite(det)
        values = det if finite.all() else det[finite]
        if values.size:
            totals["sum"] += float(values.sum(dtype=np.float64))
            totals["count"] += int(values.size)
            totals["folded"] += int(np.count_nonzero(values <= 0))
            totals["max"] = max(totals["max"], float(values.max()))
            where = int(np.nanargmin(det))
            if det.flat[where] < totals["min"]:
                totals["min"] = float(det.flat[where])
                j, i = divmod(where, n_i)
                totals["worst"] = (i, j, k)
        if plain:
            squared = current[0] * current[0]
            squared += current[1] * current[1]
            squared += current[2] * current[2]
            tally.add(k, np.sqrt(squared, out=squared))
        else:
            displacement = current.transpose(1, 2, 0).astype(np.float64) @ post_linear.T
            displacement += _plane_points(index_to_lps, n_i, n_j, k) @ affine[:3, :3].T + affine[:3, 3]
            tally.add(k, np.linalg.norm(displacement, axis=-1))
        if k > 0 and len(window) == 3:
            window.pop(0)
        report((k + 1) / n_k, "Jacobian determinant and displacement")
    count = totals["count"]
    worst = totals["worst"]
    worst_lps = None
    if worst is not None:
        worst_lps = tuple(
            float(v) for v in index_to_lps[:3, :3] @ np.array(worst, dtype=np.float64) + index_to_lps[:3, 3]
        )
    jacobian = JacobianStatistics(
        determinant=determinant,
        min=totals["min"] if count else None,
        max=totals["max"] if count else None,
        mean=totals["sum"] / count if count else None,
        points=count,
        folded_count=totals["folded"],
        folded_fraction=totals["folded"] / count if count else 0.0,
        worst_index_ijk=worst,
        worst_point_lps=worst_lps,
        grid_points=n_i * n_j * n_k,
    )
    return jacobian, tally.statistics()


def linear_displacement_statistics(
    matrix_lps: np.ndarray, index_to_lps: np.ndarray, dimensions: tuple[int, int, int], progress: Progress | None = None
) -> DisplacementStatistics:
    """``|phi(x) - x|`` of a linear mapping ``phi`` (4x4, LPS mm) over the voxel centres of an image grid."""
    report = progress or ignore_progress
    n_i, n_j, n_k = dimensions
    affine = np.asarray(matrix_lps, dtype=np.float64) - np.eye(4)
    tally = _MagnitudeTally(n_i * n_j * n_k, index_to_lps, (n_j, n_i))
    for k in range(n_k):
        moved = _plane_points(index_to_lps, n_i, n_j, k) @ affine[:3, :3].T + affine[:3, 3]
        tally.add(k, np.linalg.norm(moved, axis=-1))
        report((k + 1) / n_k, "Displacement")
    return tally.statistics()


def displacement_plane(item: RegistrationItem, axis: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """``phi(x) - x`` (LPS mm) on one plane of the item's grid through grid index `index` along
    `axis` (0 = i, 1 = j, 2 = k): ``(points_lps, vectors_lps)``, both (rows, columns, 3) with the
    plane's remaining axes in (j, i), (k, i) or (k, j) order."""
    grid: DisplacementGrid = item.grid
    pre, post = _parts(item)
    n_i, n_j, n_k = grid.dimensions
    if axis == 2:
        planes = [grid.plane_lps(index)]
        ks = [index]
    else:
        ks = list(range(n_k))
        planes = [grid.plane_lps(k)[:, index, :] if axis == 0 else grid.plane_lps(k)[index, :, :] for k in ks]
    points = []
    for k in ks:
        full = _plane_points(grid.index_to_lps, n_i, n_j, k)
        points.append(full if axis == 2 else (full[:, index, :] if axis == 0 else full[index, :, :]))
    d = np.stack(planes).astype(np.float64) if axis != 2 else planes[0].astype(np.float64)[None]
    x = np.stack(points) if axis != 2 else points[0][None]
    phi = (x @ pre[:3, :3].T + pre[:3, 3] + d) @ post[:3, :3].T + post[:3, 3]
    vectors = phi - x
    if axis == 2:
        return x[0], vectors[0]
    return x, vectors
