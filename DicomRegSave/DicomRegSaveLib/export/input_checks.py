"""Checks that the fixed and moving image series are the ones the transform was made for.

A registration exported with the fixed and moving series swapped loads and validates, but maps the
wrong way: the classic failure in this field. The transform's own grid tells the two apart: a
registration tool computes the displacement field on the fixed (reference) image, so a field whose
grid coincides with the *moving* series, or covers it while leaving most of the fixed image
outside, points to swapped inputs.
"""

from __future__ import annotations

import numpy as np

from DicomRegSaveLib.inputs.series import ImageSeries
from DicomRegSaveLib.model import Deformation, DisplacementGrid

#: Grids whose voxel centres differ by at most this much (mm) count as the same grid.
SAME_GRID_TOLERANCE_MM = 0.01
#: Sample points per axis of an image series when measuring how much of it a grid covers.
_COVERAGE_SAMPLES_PER_AXIS = 9
#: Below this fraction of the fixed image inside the field, with the moving image mostly inside, the
#: inputs look swapped.
_FIXED_COVERAGE_LIMIT = 0.5
_MOVING_COVERAGE_LIMIT = 0.9


def swapped_inputs_warning(deformation: Deformation, fixed: ImageSeries, moving: ImageSeries) -> str | None:
    """A warning when `deformation`'s grid fits the moving series rather than the fixed one, else ``None``.

    Parameters
    ----------
    deformation:
        The transform as exported; only its displacement grid (registered frame, LPS mm) is used.
    fixed, moving:
        The image series given as fixed (registered) and moving (source) image.

    Returns
    -------
    str | None
        One sentence naming what was found and how to check it.
    """
    grid = deformation.grid
    if grid is None or deformation.linear:
        return None
    on_fixed, on_moving = _same_grid(grid, fixed), _same_grid(grid, moving)
    if on_moving and not on_fixed:
        return (
            "The transform's displacement field lies on the voxel grid of the moving series, not of the "
            "fixed one: the fixed and moving inputs look swapped. Registration tools compute the field on "
            "the fixed (reference) image; check which series the registration was run with."
        )
    fixed_inside, moving_inside = _covered_fraction(grid, fixed), _covered_fraction(grid, moving)
    if fixed_inside < _FIXED_COVERAGE_LIMIT <= _MOVING_COVERAGE_LIMIT <= moving_inside:
        return (
            f"Only {fixed_inside:.0%} of the fixed image lies inside the transform's displacement field, "
            f"against {moving_inside:.0%} of the moving image: the fixed and moving inputs look swapped, "
            "or the transform belongs to other images. Check which series the registration was run with."
        )
    return None


def describe_series(series: ImageSeries) -> str:
    """A series as a user recognises it: modality, number, description, date and number of instances.

    For example ``CT series 2 "Planning CT" of 2024-03-15, 64 instances``.
    """
    header = series.first_header
    parts = [series.modality or "image", "series"]
    number = header.get("SeriesNumber")
    if number not in (None, ""):
        parts.append(str(number))
    description = str(header.get("SeriesDescription", "") or "").strip()
    if description:
        parts.append(f'"{description}"')
    text = " ".join(parts)
    date = str(header.get("SeriesDate", "") or header.get("StudyDate", "") or "")
    if len(date) == 8 and date.isdigit():
        text += f" of {date[:4]}-{date[4:6]}-{date[6:]}"
    count = len(series.headers)
    return f"{text}, {count} instance{'s' if count != 1 else ''}"


def _same_grid(grid: DisplacementGrid, series: ImageSeries) -> bool:
    if tuple(grid.dimensions) != tuple(series.dimensions):
        return False
    corners = _corner_indices(series.dimensions)
    grid_points_lps = corners @ grid.index_to_lps[:3, :3].T + grid.index_to_lps[:3, 3]
    series_points_lps = corners @ series.ijk_to_lps[:3, :3].T + series.ijk_to_lps[:3, 3]
    return bool(np.max(np.linalg.norm(grid_points_lps - series_points_lps, axis=1)) <= SAME_GRID_TOLERANCE_MM)


def _covered_fraction(grid: DisplacementGrid, series: ImageSeries) -> float:
    """The fraction of `series`' voxel centres (sampled on a lattice) inside `grid`'s extent."""
    axes = [np.linspace(0.0, n - 1.0, min(n, _COVERAGE_SAMPLES_PER_AXIS)) for n in series.dimensions]
    index = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    points_lps = index @ series.ijk_to_lps[:3, :3].T + series.ijk_to_lps[:3, 3]
    lps_to_grid_index = np.linalg.inv(grid.index_to_lps)
    grid_index = points_lps @ lps_to_grid_index[:3, :3].T + lps_to_grid_index[:3, 3]
    upper = np.array(grid.dimensions, dtype=np.float64) - 0.5
    inside = np.all((grid_index >= -0.5) & (grid_index <= upper), axis=1)
    return float(np.mean(inside))


def _corner_indices(dimensions: tuple[int, int, int]) -> np.ndarray:
    n_i, n_j, n_k = (d - 1 for d in dimensions)
    return np.array([[i, j, k] for i in (0, n_i) for j in (0, n_j) for k in (0, n_k)], dtype=np.float64)
