"""Image voxels, scalar sampling and the image agreement of a registration item.

The moving image is sampled at positions in its own frame: at the fixed voxel centres themselves
(*before*, the identity) and at ``phi(x)`` (*after*, through the item). A position is inside the
image when its continuous voxel index lies between the centres of the edge voxels (1e-6 voxel of
rounding allowed), the convention of the engine's grid sampling (:func:`geometry.trilinear_sample`);
inside, trilinear interpolation and nearest neighbour (halves rounded up) give what ITK's
interpolators give. ITK's resampling also fills the half voxel beyond the edge centres, by
extrapolation; that band counts as outside here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from DicomRegSaveLib.errors import DicomInputError
from DicomRegSaveLib.inputs.series import ImageSeries
from DicomRegSaveLib.model import RegistrationItem
from DicomRegSaveLib.progress import Progress, ignore_progress
from DicomRegSaveLib.qa import INTERPOLATIONS

#: Rounding allowed beyond the edge voxels' centres (voxels), as in :func:`geometry.trilinear_sample`.
_EDGE_TOLERANCE = 1e-6


@dataclass
class Volume:
    """Voxel values (n_k, n_j, n_i) float32 and the 4x4 voxel index (i, j, k) -> LPS (mm) matrix."""

    voxels: np.ndarray
    ijk_to_lps: np.ndarray

    @property
    def dimensions(self) -> tuple[int, int, int]:
        n_k, n_j, n_i = self.voxels.shape
        return (n_i, n_j, n_k)

    @property
    def spacing_mm(self) -> np.ndarray:
        return np.linalg.norm(self.ijk_to_lps[:3, :3], axis=0)

    def plane_points_lps(self, k: int) -> np.ndarray:
        """LPS positions (n_j * n_i, 3) of the voxel centres of slice k, i fastest."""
        n_i, n_j, _ = self.dimensions
        j, i = np.meshgrid(np.arange(n_j, dtype=np.float64), np.arange(n_i, dtype=np.float64), indexing="ij")
        index = np.stack([i.ravel(), j.ravel(), np.full(i.size, float(k))], axis=1)
        return index @ self.ijk_to_lps[:3, :3].T + self.ijk_to_lps[:3, 3]


def _rescale(header: Dataset, frame_number: int | None) -> tuple[float, float]:
    """(slope, intercept) of a slice: the instance's own, else the frame's Pixel Value Transformation."""
    if "RescaleSlope" in header or "RescaleIntercept" in header:
        return float(header.get("RescaleSlope", 1.0)), float(header.get("RescaleIntercept", 0.0))
    groups = []
    if frame_number is not None and "PerFrameFunctionalGroupsSequence" in header:
        groups.append(header.PerFrameFunctionalGroupsSequence[frame_number - 1])
    if "SharedFunctionalGroupsSequence" in header:
        groups.append(header.SharedFunctionalGroupsSequence[0])
    for group in groups:
        for item in group.get("PixelValueTransformationSequence", []):
            return float(item.get("RescaleSlope", 1.0)), float(item.get("RescaleIntercept", 0.0))
    return 1.0, 0.0


def read_series_volume(series: ImageSeries, progress: Progress | None = None) -> Volume:
    """The voxel values of an image series in its slice order, rescaled (Rescale Slope/Intercept);
    `progress` follows the slices (see :mod:`.progress`).

    Raises
    ------
    DicomInputError
        If the series was not read from files, or a file's pixel data cannot be decoded.
    """
    if not series.paths:
        raise DicomInputError(
            f"The {series.role} image series {series.series_instance_uid} was built from headers in memory; "
            "its pixel data must be read from files."
        )
    n_i, n_j, n_k = series.dimensions
    voxels = np.empty((n_k, n_j, n_i), dtype=np.float32)
    cache: dict[int, tuple[Dataset, np.ndarray]] = {}
    report = progress or ignore_progress
    step = f"Decoding the {series.role} series"
    report(0.0, step)  # a multi-frame file is decoded whole before its first slice is done
    for k, frame in enumerate(series.frames):
        if frame.header_index not in cache:
            path = Path(series.paths[frame.header_index])
            try:
                dataset = pydicom.dcmread(path)
                pixels = dataset.pixel_array
            except Exception as error:  # pydicom raises many kinds for undecodable pixel data
                raise DicomInputError(
                    f"Cannot read the pixel data of the {series.role} image {path}: {error}. A compressed "
                    "transfer syntax needs its pydicom decoder (pylibjpeg, gdcm); decompress the series or "
                    "install one."
                ) from error
            cache = {frame.header_index: (dataset, pixels)}
        dataset, pixels = cache[frame.header_index]
        plane = pixels[frame.frame_number - 1] if frame.frame_number is not None else pixels
        if plane.shape != (n_j, n_i):
            raise DicomInputError(
                f"The {series.role} image {series.paths[frame.header_index]} has pixel data of shape {plane.shape}, "
                f"not Rows x Columns {n_j} x {n_i}."
            )
        slope, intercept = _rescale(dataset, frame.frame_number)
        voxels[k] = plane.astype(np.float64) * slope + intercept
        report((k + 1) / n_k, step)
    return Volume(voxels, series.ijk_to_lps.copy())


def sample(volume: Volume, points_lps: np.ndarray, interpolation: str = "linear") -> np.ndarray:
    """Voxel values at LPS points (N, 3), float64; NaN outside the image or at a NaN point."""
    points = np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
    lps_to_ijk = np.linalg.inv(volume.ijk_to_lps)
    index = points @ lps_to_ijk[:3, :3].T + lps_to_ijk[:3, 3]
    dims = np.array(volume.dimensions)
    inside = np.all((index >= -_EDGE_TOLERANCE) & (index <= dims - 1 + _EDGE_TOLERANCE), axis=1)
    result = np.full(points.shape[0], np.nan)
    index = index[inside]
    voxels = volume.voxels
    if interpolation == "nearest":
        nearest = np.clip(np.floor(index + 0.5).astype(np.int64), 0, dims - 1)
        result[inside] = voxels[nearest[:, 2], nearest[:, 1], nearest[:, 0]]
        return result
    clamped = np.clip(index, 0, dims - 1)
    base = np.minimum(np.floor(clamped).astype(np.int64), np.maximum(dims - 2, 0))
    fraction = clamped - base
    values = np.zeros(index.shape[0])
    for corner in range(8):
        offset = np.array([(corner >> axis) & 1 for axis in range(3)])
        weight = np.prod(np.where(offset == 1, fraction, 1.0 - fraction), axis=1)
        at = np.minimum(base + offset, dims - 1)
        values += weight * voxels[at[:, 2], at[:, 1], at[:, 0]]
    result[inside] = values
    return result


class _Agreement:
    """Running sums for the mean absolute difference and the normalised cross-correlation."""

    def __init__(self) -> None:
        self.sums = np.zeros(7)

    def add(self, fixed: np.ndarray, moving: np.ndarray) -> None:
        both = np.isfinite(moving)
        f, m = fixed[both], moving[both]
        self.sums += [f.size, f.sum(), m.sum(), (f * f).sum(), (m * m).sum(), (f * m).sum(), np.abs(f - m).sum()]

    def as_dict(self) -> dict[str, float | int | None]:
        n, sf, sm, sff, smm, sfm, sad = self.sums
        if n == 0:
            return {"mad": None, "ncc": None, "voxels": 0}
        covariance = sfm - sf * sm / n
        variance = (sff - sf * sf / n) * (smm - sm * sm / n)
        return {
            "mad": float(sad / n),
            "ncc": float(covariance / np.sqrt(variance)) if variance > 0 else None,
            "voxels": int(n),
        }


def agreement(
    item: RegistrationItem, fixed: Volume, moving: Volume, progress: Progress | None = None
) -> dict[str, dict[str, float | int | None]]:
    """``{"before": ..., "after": ...}``, each ``{"mad", "ncc", "voxels"}``: the fixed image against the
    moving image sampled (trilinear) at the fixed voxel centres through the identity and through
    ``phi``; voxels whose position falls outside the moving image (or where ``phi`` is undefined) are
    left out, so ``voxels`` may differ between the two."""
    report = progress or ignore_progress
    before, after = _Agreement(), _Agreement()
    n_k = fixed.dimensions[2]
    for k in range(n_k):
        points = fixed.plane_points_lps(k)
        values = fixed.voxels[k].reshape(-1).astype(np.float64)
        before.add(values, sample(moving, points))
        after.add(values, sample(moving, item.map_points(points)))
        report((k + 1) / n_k, "Image agreement")
    return {"before": before.as_dict(), "after": after.as_dict()}


def resample(
    item: RegistrationItem,
    fixed_ijk_to_lps: np.ndarray,
    fixed_dimensions: tuple[int, int, int],
    moving: Volume,
    interpolation: str = "linear",
    default_value: float | None = None,
    progress: Progress | None = None,
) -> Volume:
    """The moving image on the fixed voxel grid through the item (``moving(phi(x))``).

    Voxels whose ``phi(x)`` is outside the moving image or undefined get `default_value`, by default
    the moving image's smallest value (air in a CT).
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}")
    report = progress or ignore_progress
    grid = Volume(
        np.empty(tuple(reversed(fixed_dimensions)), dtype=np.float32), np.asarray(fixed_ijk_to_lps, dtype=np.float64)
    )
    fill = float(np.min(moving.voxels)) if default_value is None else float(default_value)
    n_k = fixed_dimensions[2]
    for k in range(n_k):
        values = sample(moving, item.map_points(grid.plane_points_lps(k)), interpolation)
        grid.voxels[k] = np.where(np.isfinite(values), values, fill).reshape(grid.voxels.shape[1:])
        report((k + 1) / n_k, "Resampling the moving image")
    return grid
