"""The report's pictures: matplotlib PNGs on three orthogonal planes through an item's focus point.

Image planes (checkerboard, differences) are planes of the fixed image's voxel grid through the
voxel nearest the focus point; the Jacobian map and the displacement map of a deformable item are
planes of its own displacement grid through the grid point nearest the focus point (the values
there are computed, not interpolated). Drawn with matplotlib's object interface (no pyplot, no
global backend), so that it runs inside 3D Slicer as well.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from DicomRegSaveLib.progress import Progress, ignore_progress
from DicomRegSaveLib.qa.evaluate import ItemQuality
from DicomRegSaveLib.qa.jacobian import displacement_plane
from DicomRegSaveLib.qa.volumes import Volume, sample

_AXIS_NAMES = "LPS"
#: Checkerboard tiles across the larger side of a plane.
_TILES = 8
#: Arrows across the larger side of a displacement plane.
_ARROWS = 16


@dataclass
class Picture:
    """One PNG: its file name, a caption for the page and its bytes."""

    name: str
    caption: str
    png: bytes


@dataclass
class _Plane:
    """One plane of a grid: which axis is fixed, at which index, and how to draw it."""

    axis: int
    index: int
    title: str
    aspect: float


def _axis_label(direction: np.ndarray) -> str:
    """The patient axis a grid axis runs along most, e.g. '+S'."""
    strongest = int(np.argmax(np.abs(direction)))
    return f"{'+' if direction[strongest] > 0 else '-'}{_AXIS_NAMES[strongest]}"


def _planes(ijk_to_lps: np.ndarray, dimensions: tuple[int, int, int], focus_lps: np.ndarray) -> list[_Plane]:
    index = np.linalg.inv(ijk_to_lps) @ np.append(focus_lps, 1.0)
    nearest = np.clip(np.round(index[:3]).astype(int), 0, np.array(dimensions) - 1)
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    directions = ijk_to_lps[:3, :3] / spacing
    planes = []
    for axis in (2, 1, 0):
        rows, columns = (1, 0) if axis == 2 else ((2, 0) if axis == 1 else (2, 1))
        title = (
            f"{'ijk'[axis]} = {nearest[axis]} (normal {_axis_label(directions[:, axis])}); "
            f"rows {_axis_label(directions[:, rows])}, columns {_axis_label(directions[:, columns])}"
        )
        planes.append(_Plane(axis, int(nearest[axis]), title, float(spacing[rows] / spacing[columns])))
    return planes


def _take(volume_kji: np.ndarray, axis: int, index: int) -> np.ndarray:
    """Plane of a (k, j, i, ...) array: rows j / k / k, columns i / i / j."""
    return volume_kji[index] if axis == 2 else (volume_kji[:, index, :] if axis == 1 else volume_kji[:, :, index])


def _plane_points(ijk_to_lps: np.ndarray, dimensions: tuple[int, int, int], plane: _Plane) -> np.ndarray:
    n_i, n_j, n_k = dimensions
    k, j, i = np.meshgrid(np.arange(n_k), np.arange(n_j), np.arange(n_i), indexing="ij")
    index = np.stack(
        [_take(i, plane.axis, plane.index), _take(j, plane.axis, plane.index), _take(k, plane.axis, plane.index)],
        axis=-1,
    )
    return index.astype(np.float64) @ ijk_to_lps[:3, :3].T + ijk_to_lps[:3, 3]


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def _figure(rows: int) -> Figure:
    return Figure(figsize=(13.5, 4.4 * rows), dpi=80, layout="constrained")


def _show(axes, image: np.ndarray, plane: _Plane, **options) -> object:
    # k grows along the slice normal; drawn upwards so that a head-first axial stack shows superior up
    drawn = axes.imshow(
        image, origin="lower" if plane.axis != 2 else "upper", aspect=plane.aspect, interpolation="nearest", **options
    )
    axes.set_title(plane.title, fontsize=8)
    axes.set_xticks([])
    axes.set_yticks([])
    return drawn


def _window(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [1, 99])
    return float(low), float(high if high > low else low + 1.0)


def image_pictures(quality: ItemQuality, fixed: Volume, moving: Volume) -> list[Picture]:
    """Checkerboard of the fixed and the warped moving image, and the differences before and after."""
    planes = _planes(fixed.ijk_to_lps, fixed.dimensions, quality.focus_lps)
    rows = []
    for plane in planes:
        points = _plane_points(fixed.ijk_to_lps, fixed.dimensions, plane)
        shape = points.shape[:2]
        fixed_plane = _take(fixed.voxels, plane.axis, plane.index).astype(np.float64)
        before = sample(moving, points.reshape(-1, 3)).reshape(shape)
        after = sample(moving, quality.item.map_points(points.reshape(-1, 3))).reshape(shape)
        rows.append((plane, fixed_plane, before, after))
    low, high = _window(fixed.voxels[:: max(1, fixed.voxels.shape[0] // 16)])

    checker = _figure(1)
    for column, (plane, fixed_plane, _, after) in enumerate(rows):
        tile = max(1, max(fixed_plane.shape) // _TILES)
        r, c = np.indices(fixed_plane.shape)
        board = np.where(((r // tile) + (c // tile)) % 2 == 0, fixed_plane, after)
        _show(checker.add_subplot(1, 3, column + 1), board, plane, cmap="gray", vmin=low, vmax=high)
    checker.suptitle(f"Item {quality.number}: fixed / warped moving checkerboard (blank: outside the moving image)")

    difference = _figure(2)
    span = max(
        (
            float(np.nanmax(np.abs(fixed_plane - moved)))
            for _, fixed_plane, before, after in rows
            for moved in (before, after)
            if np.isfinite(fixed_plane - moved).any()
        ),
        default=1.0,
    )
    for column, (plane, fixed_plane, before, after) in enumerate(rows):
        for row, (moved, label) in enumerate(((before, "before"), (after, "after"))):
            axes = difference.add_subplot(2, 3, row * 3 + column + 1)
            drawn = _show(axes, fixed_plane - moved, plane, cmap="RdBu_r", vmin=-span, vmax=span)
            axes.set_ylabel(f"fixed - moving, {label}", fontsize=8)
    difference.colorbar(drawn, ax=difference.axes, shrink=0.6, label="intensity difference")
    difference.suptitle(f"Item {quality.number}: difference before (identity) and after (through the registration)")
    return [
        Picture(
            f"item{quality.number}_checkerboard.png",
            "Checkerboard of the fixed and the warped moving image",
            _png(checker),
        ),
        Picture(
            f"item{quality.number}_difference.png",
            "Fixed minus moving image, before and after registration",
            _png(difference),
        ),
    ]


def jacobian_picture(quality: ItemQuality) -> Picture:
    """The Jacobian determinant on three planes of the grid, folded points (det <= 0) marked in black."""
    grid = quality.item.grid
    determinant = quality.jacobian.determinant
    planes = _planes(grid.index_to_lps, grid.dimensions, quality.focus_lps)
    low = min(float(np.nanmin(determinant)) if np.isfinite(determinant).any() else 1.0, 0.999)
    high = max(float(np.nanmax(determinant)) if np.isfinite(determinant).any() else 1.0, 1.001)
    figure = _figure(1)
    for column, plane in enumerate(planes):
        values = _take(determinant, plane.axis, plane.index).astype(np.float64)
        axes = figure.add_subplot(1, 3, column + 1)
        drawn = _show(axes, values, plane, cmap="RdBu_r", norm=TwoSlopeNorm(1.0, low, high))
        folded = np.ma.masked_where(~(values <= 0), np.ones_like(values))
        _show(axes, folded, plane, cmap="gray_r", vmin=0.0, vmax=1.0)
    figure.colorbar(drawn, ax=figure.axes, shrink=0.8, label="det J (1 = volume kept; black: folded, det <= 0)")
    figure.suptitle(
        f"Item {quality.number}: Jacobian determinant, {quality.jacobian.folded_count} folded grid point(s)"
    )
    return Picture(f"item{quality.number}_jacobian.png", "Jacobian determinant with folding marked", _png(figure))


def displacement_picture(quality: ItemQuality, fixed: Volume) -> Picture:
    """|phi(x) - x| on three planes with arrows of its in-plane part (grid planes for a deformable item,
    fixed image planes for a linear one)."""
    item = quality.item
    if item.grid is not None:
        ijk_to_lps, dimensions = item.grid.index_to_lps, item.grid.dimensions

        def vectors_on(plane: _Plane) -> np.ndarray:
            return displacement_plane(item, plane.axis, plane.index)[1]
    else:
        ijk_to_lps, dimensions = fixed.ijk_to_lps, fixed.dimensions

        def vectors_on(plane: _Plane) -> np.ndarray:
            points = _plane_points(ijk_to_lps, dimensions, plane)
            return item.map_points(points.reshape(-1, 3)).reshape(points.shape) - points

    return _displacement_figure(quality, ijk_to_lps, dimensions, vectors_on)


def _displacement_figure(
    quality: ItemQuality,
    ijk_to_lps: np.ndarray,
    dimensions: tuple[int, int, int],
    vectors_on: Callable[[_Plane], np.ndarray],
) -> Picture:
    planes = _planes(ijk_to_lps, dimensions, quality.focus_lps)
    directions = ijk_to_lps[:3, :3] / np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    figure = _figure(1)
    top = quality.displacement.max or 1.0
    for column, plane in enumerate(planes):
        vectors = vectors_on(plane)
        magnitude = np.linalg.norm(vectors, axis=-1)
        axes = figure.add_subplot(1, 3, column + 1)
        drawn = _show(axes, magnitude, plane, cmap="viridis", vmin=0.0, vmax=top)
        rows_axis, columns_axis = (1, 0) if plane.axis == 2 else ((2, 0) if plane.axis == 1 else (2, 1))
        step = max(1, max(magnitude.shape) // _ARROWS)
        r, c = np.mgrid[0 : magnitude.shape[0] : step, 0 : magnitude.shape[1] : step]
        along_columns = vectors[r, c] @ directions[:, columns_axis]
        along_rows = vectors[r, c] @ directions[:, rows_axis]
        # angles="xy": arrows in data (row, column) coordinates, so a flipped row axis flips them too
        axes.quiver(
            c, r, along_columns, along_rows, color="white", angles="xy", scale_units="xy", scale=None, width=0.004
        )
    figure.colorbar(drawn, ax=figure.axes, shrink=0.8, label="|phi(x) - x| (mm)")
    figure.suptitle(f"Item {quality.number}: displacement magnitude, arrows: in-plane part")
    return Picture(
        f"item{quality.number}_displacement.png", "Displacement magnitude with in-plane arrows", _png(figure)
    )


def item_pictures(
    quality: ItemQuality, fixed: Volume, moving: Volume | None, progress: Progress | None = None
) -> list[Picture]:
    """Every picture of one item: image pictures when it was paired with the moving image, the
    Jacobian map of a deformable item, and the displacement map; `progress` follows the figures
    (see :mod:`.progress`)."""
    figures: list[Callable[[], list[Picture]]] = []
    if quality.similarity is not None and moving is not None:
        figures.append(lambda: image_pictures(quality, fixed, moving))
    if quality.jacobian is not None:
        figures.append(lambda: [jacobian_picture(quality)])
    figures.append(lambda: [displacement_picture(quality, fixed)])
    report = progress or ignore_progress
    step = f"Drawing the pictures of item {quality.number}"
    pictures: list[Picture] = []
    for number, figure in enumerate(figures):
        report(number / len(figures), step)
        pictures.extend(figure())
    report(1.0, step)
    return pictures
