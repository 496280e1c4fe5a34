"""Cubic B-spline displacements (ITK's BSplineTransform, Slicer's vtkOrientedBSplineTransform) sampled on grids.

A cubic B-spline displacement is a tensor product: at continuous control-grid index ``(u, v, w)``
it is ``sum_abc B(u - a) B(v - b) B(w - c) C[c, b, a]`` over the 4 x 4 x 4 control points around
the point. On a sampling grid whose axes are parallel to the control grid's (any spacing, origin,
order or sign of the axes) each control axis depends on one sampling axis only, so the sum
factorizes into one small basis matrix per axis applied along that axis in turn: per sampled plane
a few scaled additions of small control planes and one matrix product along j, done in bands of
rows that stay in the processor's cache and are rounded to float32 straight into the output,
instead of 64 coefficients gathered per point. Other grids gather the 64 coefficients per point,
vectorized over blocks of points.

Both run on every core the process may use: blocks of planes (or of points) go to a pool of
threads, each writing its part of one preallocated float32 array (numpy's products and
element-wise operations release the GIL), so memory stays at the output plus a small working
set per thread. Each plane or point is computed the same way whatever the split, so the result
does not depend on the number of threads, bit for bit.

What happens where the 4 x 4 x 4 control points are not all on the grid differs between the two
toolkits, so it is part of the B-spline's definition here (:attr:`BSplineGrid.outside`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np

from DicomRegSaveLib import geometry

#: How far (control-grid index units) a sampling grid may drift off the control axis it is parallel
#: to, across the whole grid, for the tensor product: the displacement then moves by at most this
#: times its change over one control spacing (a few mm), far below 1e-5 mm.
_PARALLEL_TOLERANCE = 1e-7

#: float64 values of one band of rows of a sampled plane (256 KiB): a band is summed, shifted and
#: rounded while it is in the core's cache. With a few sampled rows or more per control spacing its
#: matrix product also stays below the size at which OpenBLAS starts threads of its own.
_BAND_VALUES = 1 << 15

#: Points evaluated at once by all threads of the point-by-point evaluation together (about 460
#: bytes of intermediate arrays each).
_POINTS_IN_FLIGHT = 1 << 17

#: Plane blocks per thread of the tensor product: a few, so that a thread slowed by other work
#: leaves its remaining blocks to the others (a block recomputes at most 4 control planes).
_BLOCKS_PER_WORKER = 4


def worker_count() -> int:
    """The number of cores this process may run on (its CPU affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def split_blocks(count: int, number: int) -> list[range]:
    """`count` items (planes or points) as at most `number` contiguous, non-empty blocks in order,
    their sizes differing by at most one."""
    number = min(count, max(1, number))
    edges = [count * block // number for block in range(number + 1)]
    return [range(start, stop) for start, stop in zip(edges[:-1], edges[1:])]


@dataclass(frozen=True)
class BSplineGrid:
    """A cubic B-spline displacement field, LPS.

    Parameters
    ----------
    origin_lps:
        Position of control point (0, 0, 0), mm, LPS (ITK: the coefficient image origin, one
        control spacing before the transform domain).
    direction_lps:
        3x3, columns = unit control grid axes i, j, k in LPS.
    spacing_mm:
        Control point spacing along i, j, k (mm).
    coefficients_lps:
        (n_k, n_j, n_i, 3) float64 displacement coefficients, LPS components (mm).
    outside:
        ``"itk"``: where a point's continuous index lies outside ``[1, n - 2)`` on any axis (its
        4 control points are not all on the grid) the displacement is zero, as
        ``itk::BSplineTransform::TransformPoint`` defines it. ``"zero"``: control points beyond
        the grid count as zero coefficients (VTK's ``BorderModeToZero``, Slicer's mode for
        B-splines read from files), so the displacement fades out over two control spacings.
    """

    origin_lps: np.ndarray
    direction_lps: np.ndarray
    spacing_mm: np.ndarray
    coefficients_lps: np.ndarray
    outside: Literal["itk", "zero"] = "itk"

    @property
    def dimensions(self) -> tuple[int, int, int]:
        n_k, n_j, n_i, _ = self.coefficients_lps.shape
        return (n_i, n_j, n_k)

    @property
    def index_to_lps(self) -> np.ndarray:
        return geometry.index_to_patient_matrix(self.origin_lps, self.direction_lps, self.spacing_mm)

    def sample(
        self,
        points_index_to_lps: np.ndarray,
        dims: tuple[int, int, int],
        *,
        affine_lps: np.ndarray | None = None,
        linear_lps: np.ndarray | None = None,
        workers: int | None = None,
    ) -> np.ndarray:
        """``affine_lps @ (i, j, k, 1) + linear_lps @ D(p)`` at every point p of a grid: float32
        (n_k, n_j, n_i, 3), LPS mm, rounded once from float64.

        Parameters
        ----------
        points_index_to_lps:
            4x4 index -> LPS matrix of the points' grid (any affine grid). When its axes are
            parallel to the control grid's (:meth:`is_parallel`) the tensor-product evaluation
            runs; otherwise each point gathers its 64 control points.
        dims:
            (n_i, n_j, n_k) of the points' grid.
        affine_lps:
            3x4: the vector added at grid index (i, j, k) is ``affine_lps @ (i, j, k, 1)`` (mm,
            LPS); None adds nothing.
        linear_lps:
            3x3 applied to the displacement D (LPS -> LPS); None: the identity.
        workers:
            Threads; None: :func:`worker_count`. The result is the same for any number.
        """
        n_i, n_j, n_k = dims
        affine = None if affine_lps is None or not np.any(affine_lps) else np.asarray(affine_lps, dtype=np.float64)
        coefficients = self.coefficients_lps
        if linear_lps is not None and not np.array_equal(linear_lps, np.eye(3)):
            # the displacement is linear in the coefficients
            coefficients = coefficients @ np.asarray(linear_lps, dtype=np.float64).T
        to_control = np.linalg.inv(self.index_to_lps) @ points_index_to_lps
        vectors = np.empty((n_k, n_j, n_i, 3), dtype=np.float32)
        workers = worker_count() if workers is None else max(1, workers)
        if self.is_parallel(points_index_to_lps, dims):
            fill = self._tensor_product(to_control, dims, coefficients, affine, vectors)
            blocks = split_blocks(n_k, _BLOCKS_PER_WORKER * workers)
        else:
            fill = self._pointwise(to_control, dims, coefficients, affine, vectors)
            points = n_i * n_j * n_k
            block_points = max(1 << 12, _POINTS_IN_FLIGHT // workers)
            blocks = split_blocks(points, max(workers, -(-points // block_points)))
        run_blocks(fill, blocks, workers)
        return vectors

    def _pointwise(
        self,
        to_control: np.ndarray,
        dims: tuple[int, int, int],
        coefficients: np.ndarray,
        affine: np.ndarray | None,
        vectors: np.ndarray,
    ) -> Callable[[range], None]:
        """Fills the points of a block (flat indices of `vectors`' points, k slowest).

        Arrays are component-major, (3, points): numpy's loops then run along the points, not along
        3 components.
        """
        n_i, n_j, _ = dims
        by_component = np.ascontiguousarray(coefficients.reshape(-1, 3).T)
        control_dims = np.array(self.dimensions)
        # flat index step of each control axis
        strides = np.array([1, control_dims[0], control_dims[0] * control_dims[1]])
        flat_vectors = vectors.reshape(-1, 3)

        def fill(points: range) -> None:
            flat = np.arange(points.start, points.stop)
            index = (flat % n_i, flat // n_i % n_j, flat // (n_i * n_j))
            # element-wise rather than a matrix product, which OpenBLAS would spread over threads of its own
            u = to_control[:3, 3, None] + sum(to_control[:3, axis, None] * n for axis, n in enumerate(index))
            floor = np.floor(u)
            weights = np.moveaxis(_cubic_weights(u - floor), -1, 1).copy()  # (3 axes, 4 nodes, points)
            nodes = floor.astype(np.int64)[:, None, :] + np.arange(-1, 3)[:, None]
            on_grid = (nodes >= 0) & (nodes < control_dims[:, None, None])
            weights *= on_grid
            if self.outside == "itk":
                weights[0] *= np.all((u >= 1.0) & (u < control_dims[:, None] - 2.0), axis=0)
            offsets = np.where(on_grid, nodes, 0) * strides[:, None, None]
            displacement = np.zeros((3, len(flat)))
            gathered = np.empty_like(displacement)
            for c in range(4):
                for b in range(4):
                    offset = offsets[2, c] + offsets[1, b]
                    weight = weights[2, c] * weights[1, b]
                    for a in range(4):
                        # the offsets are on the grid: "clip" changes none and lets take write into `out` directly
                        np.take(by_component, offset + offsets[0, a], axis=1, out=gathered, mode="clip")
                        gathered *= weight * weights[0, a]
                        displacement += gathered
            if affine is not None:
                displacement += affine[:, 3, None] + sum(affine[:, axis, None] * n for axis, n in enumerate(index))
            flat_vectors[points.start : points.stop] = displacement.T

        return fill

    def _tensor_product(
        self,
        to_control: np.ndarray,
        dims: tuple[int, int, int],
        coefficients: np.ndarray,
        affine: np.ndarray | None,
        vectors: np.ndarray,
    ) -> Callable[[range], None]:
        """Fills the k planes of a block of `vectors`."""
        # control axis along each sampling axis (i, j, k), and the control index along it
        control_axis = np.argmax(np.abs(to_control[:3, :3]), axis=0)
        weights = [
            self._basis(to_control[axis, 3] + to_control[axis, b] * np.arange(dims[b]), axis)
            for b, axis in enumerate(control_axis)
        ]
        if self.outside == "itk":
            # a point is outside as soon as one axis is: zero its row in that axis's basis
            inside = [
                _inside_itk(to_control[axis, 3] + to_control[axis, b] * np.arange(dims[b]), self.dimensions[axis])
                for b, axis in enumerate(control_axis)
            ]
            weights = [w * ok[:, None] for w, ok in zip(weights, inside)]
        # coefficients with their axes in the order (along k, along j, along i) of the sampling grid
        coefficients = np.ascontiguousarray(np.transpose(coefficients, (*(2 - control_axis[::-1]), 3)))
        w_i, w_j, w_k = weights
        n_i, n_j, _ = dims
        control_rows = w_j.shape[1]
        bands = _row_bands(w_j, max(1, _BAND_VALUES // (3 * n_i)))
        if affine is not None:
            along_i = np.arange(n_i)[:, None] * affine[:, 0]
            along_j = np.arange(n_j)[:, None, None] * affine[:, 1]

        def fill(planes: range) -> None:
            # sums over i of the control planes in use (along k): (control j, n_i * 3)
            summed_i: dict[int, np.ndarray] = {}
            band_buffer = np.empty(max(j1 - j0 for j0, j1, _, _ in bands) * n_i * 3)
            for k in planes:
                row = w_k[k]
                nodes = np.flatnonzero(row)
                for node in [node for node in summed_i if node not in nodes]:
                    del summed_i[node]
                control_plane = np.zeros((control_rows, n_i * 3))
                for node in nodes:
                    if node not in summed_i:
                        summed_i[node] = np.matmul(w_i, coefficients[node]).reshape(control_rows, n_i * 3)
                    control_plane += row[node] * summed_i[node]
                if affine is not None:
                    in_plane = along_i + (affine[:, 3] + k * affine[:, 2])
                for j0, j1, m0, m1 in bands:
                    band = band_buffer[: (j1 - j0) * n_i * 3].reshape(j1 - j0, n_i * 3)
                    np.matmul(w_j[j0:j1, m0:m1], control_plane[m0:m1], out=band)
                    band = band.reshape(j1 - j0, n_i, 3)
                    if affine is not None:
                        band += in_plane
                        band += along_j[j0:j1]
                    vectors[k, j0:j1] = band

        return fill

    def is_parallel(self, points_index_to_lps: np.ndarray, dims: tuple[int, int, int]) -> bool:
        """Whether each axis of the points' grid (n_i, n_j, n_k points) is parallel to one control grid
        axis: across the grid it leaves that axis by less than 1e-7 control spacings."""
        to_control = (np.linalg.inv(self.index_to_lps) @ points_index_to_lps)[:3, :3]
        across_grid = np.abs(to_control) * (np.array(dims) - 1)
        along = np.argmax(np.abs(to_control), axis=0)
        drift = across_grid.copy()
        drift[along, np.arange(3)] = 0.0
        return bool(len(set(along.tolist())) == 3 and drift.max() < _PARALLEL_TOLERANCE)

    def _basis(self, u: np.ndarray, axis: int) -> np.ndarray:
        """(len(u), n) cubic B-spline weights of the control points along `axis` at continuous indices u."""
        n = self.dimensions[axis]
        first = np.floor(u).astype(np.int64) - 1
        node_weights = _cubic_weights(u - np.floor(u))
        basis = np.zeros((u.size, n))
        for offset in range(4):
            node = first + offset
            on_grid = (node >= 0) & (node < n)
            basis[np.flatnonzero(on_grid), node[on_grid]] = node_weights[on_grid, offset]
        return basis


def _row_bands(basis: np.ndarray, rows: int) -> list[tuple[int, int, int, int]]:
    """The basis matrix cut into bands of `rows` rows: (first row, end row, first column, end
    column), the columns spanning the band's non-zero weights (none: an empty span)."""
    nonzero = basis != 0
    used = nonzero.any(axis=1)
    first = np.where(used, np.argmax(nonzero, axis=1), basis.shape[1])
    end = np.where(used, basis.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 0)
    bands = []
    for band in split_blocks(basis.shape[0], -(-basis.shape[0] // rows)):
        start, stop = int(first[band].min()), int(end[band].max())
        bands.append((band.start, band.stop, min(start, stop), stop))
    return bands


def run_blocks(fill: Callable[[range], None], blocks: list[range], workers: int) -> None:
    """fill(block) for every block, on `workers` threads; the first error (or an interrupt) cancels
    the blocks not started and is raised once the running ones have finished."""
    if workers == 1 or len(blocks) == 1:
        for block in blocks:
            fill(block)
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(blocks)), thread_name_prefix="bspline") as pool:
        for _ in pool.map(fill, blocks):
            pass


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """Cubic B-spline weights (..., 4) of the nodes floor(u) - 1 ... floor(u) + 2 at t = u - floor(u).

    Powers are products: exactly rounded wherever numpy's loop handles an element (a vectorized
    ``pow`` may round the elements of a block's tail otherwise), so blocks give the same weights
    however the points are split."""
    s = 1 - t
    t2 = t * t
    t3 = t2 * t
    return np.stack([s * s * s / 6, (3 * t3 - 6 * t2 + 4) / 6, (-3 * t3 + 3 * t2 + 3 * t + 1) / 6, t3 / 6], axis=-1)


def _inside_itk(u: np.ndarray, n: int) -> np.ndarray:
    """ITK's valid region of a cubic B-spline along one axis: continuous index in [1, n - 2)."""
    return (u >= 1.0) & (u < n - 2.0)
