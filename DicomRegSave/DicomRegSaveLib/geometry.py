"""Coordinate conventions: RAS (3D Slicer) <-> LPS (DICOM, ITK), matrix types, grid handedness.

This module and :mod:`DicomRegSaveLib.mrml` (nodes, deformation) are the only places that know the direction and
coordinate conventions; everything else works in DICOM patient coordinates (LPS, mm).
"""

from __future__ import annotations

import numpy as np

from DicomRegSaveLib.errors import InvalidRegistrationError

#: Change of basis between RAS and LPS for homogeneous 4x4 matrices; it is its own inverse.
RAS_LPS_4X4 = np.diag([-1.0, -1.0, 1.0, 1.0])

#: Tolerance on direction cosines and matrix properties (dimensionless).
ORTHONORMAL_TOLERANCE = 1e-4

#: Tolerance on the orthonormality of a grid direction that is copied or moved without resampling
#: (dimensionless). 1e-6 keeps the position error below 1e-3 mm across a 1 m field.
EXACT_DIRECTION_TOLERANCE = 1e-6

MATRIX_TYPES = ("RIGID", "RIGID_SCALE", "AFFINE")


def ras_to_lps_points(points_ras: np.ndarray) -> np.ndarray:
    """Convert points or vectors of shape (..., 3) between RAS and LPS (mm).

    The change of basis negates x and y; it is its own inverse, so the same function converts
    LPS to RAS (:func:`lps_to_ras_points`). Returns a new float64 array.
    """
    points = np.array(points_ras, dtype=np.float64)
    if points.shape[-1] != 3:
        raise ValueError(f"points must have shape (..., 3), got {points.shape}")
    points[..., :2] *= -1.0
    return points


lps_to_ras_points = ras_to_lps_points


def ras_to_lps_vectors_in_place(vectors: np.ndarray) -> np.ndarray:
    """Convert a displacement field (..., 3) between RAS and LPS in place and return it.

    In place because fields are large float32 arrays that must not be copied (or widened to
    float64 as :func:`ras_to_lps_points` does); the conversion is its own inverse.
    """
    if vectors.shape[-1] != 3:
        raise ValueError(f"vectors must have shape (..., 3), got {vectors.shape}")
    vectors[..., :2] *= -1.0
    return vectors


lps_to_ras_vectors_in_place = ras_to_lps_vectors_in_place


def ras_to_lps_matrix(matrix_ras: np.ndarray) -> np.ndarray:
    """Convert a 4x4 homogeneous matrix between RAS and LPS (``F4 @ M @ F4``); its own inverse."""
    matrix = np.asarray(matrix_ras, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"a homogeneous matrix must be 4x4, got {matrix.shape}")
    return RAS_LPS_4X4 @ matrix @ RAS_LPS_4X4


lps_to_ras_matrix = ras_to_lps_matrix


def ras_to_lps_index_matrix(index_to_ras: np.ndarray) -> np.ndarray:
    """Convert a voxel-index -> patient 4x4 matrix (IJKToRAS) between RAS and LPS; its own inverse.

    Only the output side changes basis (``F4 @ M``): the input is voxel indices, not patient points,
    so :func:`ras_to_lps_matrix` (``F4 @ M @ F4``) would be wrong here.
    """
    matrix = np.asarray(index_to_ras, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"an index-to-patient matrix must be 4x4, got {matrix.shape}")
    return RAS_LPS_4X4 @ matrix


lps_to_ras_index_matrix = ras_to_lps_index_matrix


def ras_to_lps_direction(direction_ras: np.ndarray) -> np.ndarray:
    """Convert a 3x3 direction matrix (columns = axes) between RAS and LPS; its own inverse."""
    direction = np.array(direction_ras, dtype=np.float64)
    if direction.shape != (3, 3):
        raise ValueError(f"a direction matrix must be 3x3, got {direction.shape}")
    direction[:2, :] *= -1.0
    return direction


lps_to_ras_direction = ras_to_lps_direction


def check_direction(direction: np.ndarray, what: str = "grid direction") -> np.ndarray:
    """Return `direction` as a float64 3x3 array after checking that its columns are orthonormal.

    Raises
    ------
    InvalidRegistrationError
        If the matrix is not 3x3, not finite, or its columns are not unit length and orthogonal.
    """
    direction = np.asarray(direction, dtype=np.float64)
    if direction.shape != (3, 3) or not np.all(np.isfinite(direction)):
        raise InvalidRegistrationError(
            f"The {what} must be a finite 3x3 matrix of axis direction cosines; got {direction!r}."
        )
    gram = direction.T @ direction
    if not np.allclose(gram, np.eye(3), atol=ORTHONORMAL_TOLERANCE):
        raise InvalidRegistrationError(
            f"The {what} is not orthonormal (columns must be unit vectors at right angles): "
            f"{np.round(direction, 6).tolist()}. DICOM grids cannot be sheared; resample the "
            "transform onto an orthogonal grid (for example on the fixed image geometry)."
        )
    return direction


def is_lps_aligned(direction_lps: np.ndarray) -> bool:
    """True if the grid axes are +L, +P, +S (Image Orientation ``1\\0\\0\\0\\1\\0``)."""
    return bool(np.allclose(direction_lps, np.eye(3), atol=EXACT_DIRECTION_TOLERANCE))


def is_right_handed(direction: np.ndarray) -> bool:
    """True if the third axis equals the cross product of the first two (det > 0)."""
    return bool(np.linalg.det(np.asarray(direction, dtype=np.float64)) > 0)


def index_to_patient_matrix(origin: np.ndarray, direction: np.ndarray, spacing_mm: np.ndarray) -> np.ndarray:
    """4x4 matrix that maps voxel indices (i, j, k) to patient coordinates (same system as `origin`)."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(direction, dtype=np.float64) * np.asarray(spacing_mm, dtype=np.float64)
    matrix[:3, 3] = origin
    return matrix


def classify_matrix(matrix: np.ndarray) -> str:
    """The most specific Frame of Reference Transformation Matrix Type that `matrix` satisfies.

    ``RIGID``: orthonormal rotation with determinant +1 plus translation; ``RIGID_SCALE``: rotation
    times a positive diagonal scale (orthogonal axes); ``AFFINE``: any invertible matrix whose
    bottom row is ``0 0 0 1``.

    Raises
    ------
    InvalidRegistrationError
        If the matrix is not 4x4, not finite, not invertible, or its bottom row is not ``0 0 0 1``.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise InvalidRegistrationError(f"A registration matrix must be a finite 4x4 matrix; got {matrix!r}.")
    if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0], atol=1e-12):
        raise InvalidRegistrationError(
            f"A registration matrix must have the bottom row 0 0 0 1 (no projective part); got {matrix[3]}."
        )
    linear = matrix[:3, :3]
    determinant = np.linalg.det(linear)
    if abs(determinant) < 1e-12:
        raise InvalidRegistrationError("A registration matrix must be invertible; its determinant is 0.")
    gram = linear.T @ linear
    off_diagonal = gram - np.diag(np.diag(gram))
    if determinant > 0 and np.allclose(off_diagonal, 0.0, atol=ORTHONORMAL_TOLERANCE * np.max(np.diag(gram))):
        if np.allclose(np.diag(gram), 1.0, atol=ORTHONORMAL_TOLERANCE):
            return "RIGID"
        return "RIGID_SCALE"
    return "AFFINE"


def check_matrix_type(matrix: np.ndarray, matrix_type: str) -> None:
    """Raise InvalidRegistrationError if `matrix` does not satisfy the declared `matrix_type`."""
    if matrix_type not in MATRIX_TYPES:
        raise InvalidRegistrationError(
            f"Unknown Frame of Reference Transformation Matrix Type {matrix_type!r}; use one of {MATRIX_TYPES}."
        )
    actual = classify_matrix(matrix)
    if MATRIX_TYPES.index(actual) > MATRIX_TYPES.index(matrix_type):
        raise InvalidRegistrationError(
            f"The matrix is declared {matrix_type} but is {actual}: a RIGID matrix may only rotate and "
            "translate, a RIGID_SCALE matrix may add a scale along orthogonal axes. Declare it "
            f"{actual} or remove the scale/shear. Matrix: {np.round(matrix, 6).tolist()}"
        )


def flip_k_axis(
    origin: np.ndarray, direction: np.ndarray, spacing_mm: np.ndarray, vectors_kji: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Describe the same grid with its k axis reversed (origin on the last plane, planes reversed).

    Used to make a left-handed grid right-handed (k = row x column), as DICOM requires.
    Returns ``(origin, direction, vectors_kji)``; the vectors are a view, not a copy.
    """
    n_k = vectors_kji.shape[0]
    direction = np.array(direction, dtype=np.float64)
    origin = np.asarray(origin, dtype=np.float64) + (n_k - 1) * spacing_mm[2] * direction[:, 2]
    direction[:, 2] *= -1.0
    return origin, direction, vectors_kji[::-1]


def trilinear_sample(
    vectors_kji: np.ndarray, continuous_index_ijk: np.ndarray, *, outside: float = np.nan
) -> np.ndarray:
    """Trilinearly interpolate a (k, j, i, 3) vector grid at continuous indices (N, 3) in (i, j, k) order.

    Points outside the grid (beyond the centres of the edge voxels by more than 1e-6 voxel) get
    `outside`. A NaN vector at a corner with non-zero weight makes the result NaN.
    """
    index = np.asarray(continuous_index_ijk, dtype=np.float64).reshape(-1, 3)
    dims_ijk = np.array(vectors_kji.shape[2::-1])
    inside = np.all((index >= -1e-6) & (index <= dims_ijk - 1 + 1e-6), axis=1)
    clamped = np.clip(index, 0, dims_ijk - 1)
    base = np.minimum(np.floor(clamped).astype(np.int64), np.maximum(dims_ijk - 2, 0))
    fraction = clamped - base
    result = np.zeros((index.shape[0], 3))
    for corner in range(8):
        offset = np.array([(corner >> axis) & 1 for axis in range(3)])
        weight = np.prod(np.where(offset == 1, fraction, 1.0 - fraction), axis=1)
        corner_index = np.minimum(base + offset, dims_ijk - 1)
        values = vectors_kji[corner_index[:, 2], corner_index[:, 1], corner_index[:, 0]].astype(np.float64)
        # NaN * 0 would poison points that lie exactly on a defined neighbour.
        result += np.where(weight[:, None] > 0, weight[:, None] * values, 0.0)
    result[~inside] = outside
    return result
