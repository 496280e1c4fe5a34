"""The linear part of a registration item as numbers a physicist checks (TG-132 rigid QA).

The mapping is ``phi(x) = A x + t`` from the registered (fixed) frame to the source (moving) frame,
LPS mm: for a Spatial Registration (66.1) the inverse of the stored matrix (what ``to-transform``
writes), for a Deformable Spatial Registration (66.3) ``M_post @ M_pre``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from DicomRegSaveLib import geometry
from DicomRegSaveLib.model import RegistrationItem


@dataclass(frozen=True)
class LinearDecomposition:
    """``A = R @ S``: a rotation ``R`` and a symmetric stretch ``S`` (polar decomposition), and ``t``.

    Attributes
    ----------
    matrix_lps:
        The 4x4 fixed -> moving matrix, LPS mm.
    rotation_deg:
        Angles (alpha, beta, gamma) about the L, P and S axes in degrees with ``R = Rz(gamma) @ Ry(beta)
        @ Rx(alpha)``; ``None`` when ``det A <= 0`` (a mirroring has no rotation angles).
    translation_mm:
        ``t`` (LPS mm): where the LPS origin maps to.
    scale:
        Diagonal of ``S`` (stretch along L, P, S; 1 = none).
    shear:
        Off-diagonal elements of ``S`` (LP, LS, PS; 0 = none).
    determinant:
        ``det A``: the volume change, 1 for a rigid mapping.
    matrix_type:
        ``RIGID``, ``RIGID_SCALE`` or ``AFFINE`` (:func:`geometry.classify_matrix`, tolerance
        :data:`geometry.ORTHONORMAL_TOLERANCE`).
    """

    matrix_lps: np.ndarray
    rotation_deg: tuple[float, float, float] | None
    translation_mm: tuple[float, float, float]
    scale: tuple[float, float, float]
    shear: tuple[float, float, float]
    determinant: float
    matrix_type: str

    @property
    def is_rigid(self) -> bool:
        return self.matrix_type == "RIGID"

    def as_dict(self) -> dict[str, object]:
        return {
            "rotation_deg": None if self.rotation_deg is None else list(self.rotation_deg),
            "translation_mm": list(self.translation_mm),
            "is_rigid": self.is_rigid,
            "matrix_type": self.matrix_type,
            "scale": list(self.scale),
            "shear": list(self.shear),
            "determinant": self.determinant,
            "matrix_lps": np.asarray(self.matrix_lps).tolist(),
        }


def linear_matrix(item: RegistrationItem) -> np.ndarray:
    """The item's linear fixed -> moving part (4x4, LPS mm): ``M_post @ M_pre``, identity if absent."""
    pre, _, post = item.registered_to_source_parts()
    matrix = np.eye(4)
    for part in (pre, post):
        if part is not None:
            matrix = part.matrix_lps @ matrix
    return matrix


def rotation_from_angles(angles_deg: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    """``Rz(gamma) @ Ry(beta) @ Rx(alpha)`` for angles (alpha, beta, gamma) in degrees about L, P, S."""
    alpha, beta, gamma = np.radians(np.asarray(angles_deg, dtype=np.float64))
    cos_a, sin_a, cos_b, sin_b, cos_g, sin_g = (
        np.cos(alpha),
        np.sin(alpha),
        np.cos(beta),
        np.sin(beta),
        np.cos(gamma),
        np.sin(gamma),
    )
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cos_a, -sin_a], [0.0, sin_a, cos_a]])
    ry = np.array([[cos_b, 0.0, sin_b], [0.0, 1.0, 0.0], [-sin_b, 0.0, cos_b]])
    rz = np.array([[cos_g, -sin_g, 0.0], [sin_g, cos_g, 0.0], [0.0, 0.0, 1.0]])
    return rz @ ry @ rx


def decompose(matrix_lps: np.ndarray) -> LinearDecomposition:
    """Decompose a 4x4 fixed -> moving matrix (LPS mm); see :class:`LinearDecomposition`.

    The rotation is the orthogonal factor of the polar decomposition (the rotation nearest to
    ``A``), so for a rigid matrix it is ``A`` itself. Angles: ``beta = asin(-R[2,0])`` in
    [-90, 90] degrees, ``alpha = atan2(R[2,1], R[2,2])``, ``gamma = atan2(R[1,0], R[0,0])``.
    """
    matrix = np.asarray(matrix_lps, dtype=np.float64)
    matrix_type = geometry.classify_matrix(matrix)
    linear = matrix[:3, :3]
    u, singular, vt = np.linalg.svd(linear)
    rotation = u @ vt
    stretch = vt.T @ np.diag(singular) @ vt
    determinant = float(np.linalg.det(linear))
    angles = None
    if determinant > 0:
        beta = np.arcsin(np.clip(-rotation[2, 0], -1.0, 1.0))
        alpha = np.arctan2(rotation[2, 1], rotation[2, 2])
        gamma = np.arctan2(rotation[1, 0], rotation[0, 0])
        # + 0.0 turns -0.0 into 0.0, which a report should not show
        angles = tuple(float(np.degrees(a)) + 0.0 for a in (alpha, beta, gamma))
    return LinearDecomposition(
        matrix_lps=matrix,
        rotation_deg=angles,
        translation_mm=tuple(float(v) for v in matrix[:3, 3]),
        scale=tuple(float(v) for v in np.diag(stretch)),
        shear=(float(stretch[0, 1]), float(stretch[0, 2]), float(stretch[1, 2])),
        determinant=determinant,
        matrix_type=matrix_type,
    )
