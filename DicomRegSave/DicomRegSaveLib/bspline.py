"""Cubic B-spline displacements (ITK's BSplineTransform, Slicer's vtkOrientedBSplineTransform) sampled on grids.

A cubic B-spline displacement is a tensor product: at continuous control-grid index ``(u, v, w)``
it is ``sum_abc B(u - a) B(v - b) B(w - c) C[c, b, a]`` over the 4 x 4 x 4 control points around
the point. On a sampling grid whose axes are parallel to the control grid's (any spacing, origin,
order or sign of the axes) each control axis depends on one sampling axis only, so the sum
factorizes into one small basis matrix per axis applied along that axis in turn: two matrix
products per control plane and four scaled additions per sampled plane, instead of 64
coefficients gathered per point. Planes are produced one at a time (a few control planes of
partial sums are kept), so memory stays bounded by a few sampled planes.

What happens where the 4 x 4 x 4 control points are not all on the grid differs between the two
toolkits, so it is part of the B-spline's definition here (:attr:`BSplineGrid.outside`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from DicomRegSaveLib import geometry

#: How far (control-grid index units) a sampling grid may drift off the control axis it is parallel
#: to, across the whole grid, for the tensor product: the displacement then moves by at most this
#: times its change over one control spacing (a few mm), far below 1e-5 mm.
_PARALLEL_TOLERANCE = 1e-7


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

    def displacement_planes(self, points_index_to_lps: np.ndarray, dims: tuple[int, int, int]) -> Iterator[np.ndarray]:
        """The displacement (n_j, n_i, 3), float64 LPS mm, at the points of a grid, k plane by k plane.

        Parameters
        ----------
        points_index_to_lps:
            4x4 index -> LPS matrix of the points' grid (any affine grid). When its axes are
            parallel to the control grid's (:meth:`is_parallel`) the tensor-product evaluation
            runs; otherwise each point gathers its 64 control points (vectorized over blocks of planes).
        dims:
            (n_i, n_j, n_k) of the points' grid.
        """
        if self.is_parallel(points_index_to_lps, dims):
            return self._parallel_planes(points_index_to_lps, dims)
        return self._pointwise_planes(points_index_to_lps, dims)

    def _pointwise_planes(self, points_index_to_lps: np.ndarray, dims: tuple[int, int, int]) -> Iterator[np.ndarray]:
        to_control = np.linalg.inv(self.index_to_lps) @ points_index_to_lps
        n_i, n_j, n_k = dims
        j, i = np.meshgrid(np.arange(n_j), np.arange(n_i), indexing="ij")
        plane_index = np.stack([i.ravel(), j.ravel()], axis=1).astype(np.float64)
        coefficients = self.coefficients_lps.reshape(-1, 3)
        control_dims = np.array(self.dimensions)
        # flat index step of each control axis
        strides = np.array([1, control_dims[0], control_dims[0] * control_dims[1]])
        # planes per block: about 2^18 points evaluated together
        block = max(1, (1 << 18) // (n_i * n_j))
        for start in range(0, n_k, block):
            ks = np.arange(start, min(n_k, start + block))
            u = (plane_index @ to_control[:3, :2].T)[None] + (to_control[:3, 3] + ks[:, None] * to_control[:3, 2])[
                :, None
            ]
            u = u.reshape(-1, 3)
            first = np.floor(u).astype(np.int64) - 1
            weights = _cubic_weights(u - np.floor(u))  # (N, 3 axes, 4 nodes)
            nodes = first[:, :, None] + np.arange(4)
            on_grid = (nodes >= 0) & (nodes < control_dims[None, :, None])
            weights *= on_grid
            if self.outside == "itk":
                inside = np.all((u >= 1.0) & (u < control_dims - 2.0), axis=1)
                weights[:, 0] *= inside[:, None]
            offsets = np.where(on_grid, nodes, 0) * strides[None, :, None]
            planes = np.zeros((u.shape[0], 3))
            for c in range(4):
                for b in range(4):
                    offset = offsets[:, 2, c] + offsets[:, 1, b]
                    weight = weights[:, 2, c] * weights[:, 1, b]
                    for a in range(4):
                        gathered = np.take(coefficients, offset + offsets[:, 0, a], axis=0)
                        gathered *= (weight * weights[:, 0, a])[:, None]
                        planes += gathered
            yield from planes.reshape(len(ks), n_j, n_i, 3)

    def _parallel_planes(self, points_index_to_lps: np.ndarray, dims: tuple[int, int, int]) -> Iterator[np.ndarray]:
        to_control = np.linalg.inv(self.index_to_lps) @ points_index_to_lps
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
        coefficients = np.transpose(self.coefficients_lps, (*(2 - control_axis[::-1]), 3))
        w_i, w_j, w_k = weights
        n_i, n_j, _ = dims
        # partial sums over i for every control plane and row: small (control k, control j, n_i, 3)
        along_i = np.einsum("im,kjmc->kjic", w_i, coefficients, optimize=True)
        partial: dict[int, np.ndarray] = {}
        for row in w_k:
            nodes = np.flatnonzero(row)
            for node in list(partial):
                if node not in nodes:
                    del partial[node]
            plane = np.zeros((n_j, n_i, 3))
            for node in nodes:
                if node not in partial:
                    partial[node] = (w_j @ along_i[node].reshape(along_i.shape[1], -1)).reshape(n_j, n_i, 3)
                plane += row[node] * partial[node]
            yield plane

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


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """Cubic B-spline weights (..., 4) of the nodes floor(u) - 1 ... floor(u) + 2 at t = u - floor(u)."""
    return np.stack(
        [(1 - t) ** 3 / 6, (3 * t**3 - 6 * t**2 + 4) / 6, (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6, t**3 / 6], axis=-1
    )


def _inside_itk(u: np.ndarray, n: int) -> np.ndarray:
    """ITK's valid region of a cubic B-spline along one axis: continuous index in [1, n - 2)."""
    return (u >= 1.0) & (u < n - 2.0)
