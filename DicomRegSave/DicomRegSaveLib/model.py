"""The Slicer-free model of a DICOM spatial registration, in DICOM patient coordinates (LPS, mm).

A :class:`Registration` holds the *registered* frame of reference (the fixed image's) and one
:class:`RegistrationItem` per *source* frame of reference (a moving image's). Every item maps
registered-frame points to its source frame (:meth:`RegistrationItem.map_points`), the direction
in which a moving image is resampled onto the fixed one. The two SOP classes store that mapping
in opposite directions, and this module (with :mod:`geometry`) is where that is resolved:

* Deformable Spatial Registration (66.3) stores registered -> source (PS3.3 C.20.3.1.1)::

      source_point_lps = M_post @ (M_pre @ x_lps + D(x_lps))

  where ``D`` is the displacement grid, indexed at the registered point ``x`` itself.
* Spatial Registration (66.1) stores a matrix ``M`` that maps **source -> registered**
  (PS3.3 C.20.2.1.1, PS3.17 O.1), so ``source_point_lps = inv(M) @ x_lps``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from pydicom.sr.coding import Code

from DicomRegSaveLib import geometry
from DicomRegSaveLib.errors import InvalidRegistrationError, RegistrationChoiceError
from DicomRegSaveLib.values import problem_uid, require

#: Registration Type Code Sequence default (CID 7100): intensity-based registration.
IMAGE_CONTENT_BASED_ALIGNMENT = Code("125024", "DCM", "Image Content-based Alignment")
#: CID 7100 code of the optional leading item that registers the fixed frame to itself.
FRAME_OF_REFERENCE_IDENTITY = Code("125021", "DCM", "Frame of Reference Identity")

#: Largest deviation from the identity matrix of an identity item's matrix (dimensionless, and mm for
#: the translation): it moves no point of a 1 m field by more than 1e-3 mm.
IDENTITY_ITEM_TOLERANCE = 1e-6

#: Vector Grid Data is OF with a 32-bit length; 0xFFFFFFFF is reserved for undefined length.
MAX_VECTOR_GRID_BYTES = 0xFFFFFFFE

# Bounds the temporary boolean arrays of the finiteness check (elements per chunk).
_CHECK_CHUNK_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class ImageReference:
    """One DICOM instance that a registration item applies to.

    Parameters
    ----------
    sop_class_uid, sop_instance_uid:
        Referenced SOP Class / Instance UID.
    series_instance_uid, study_instance_uid:
        Where the instance lives; needed for the Common Instance Reference module. ``None`` only
        for an instance read from a file whose Common Instance Reference module does not list it.
    frame_of_reference_uid:
        The instance's Frame of Reference UID (``None`` only when the header has none).
    frame_numbers:
        Referenced Frame Number values (1-based) when only a subset of a multi-frame image applies.
    segment_numbers:
        Referenced Segment Number values when the instance is a segmentation.
    """

    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str | None
    study_instance_uid: str | None
    frame_of_reference_uid: str | None = None
    frame_numbers: tuple[int, ...] = ()
    segment_numbers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("sop_class_uid", "sop_instance_uid"):
            require(problem_uid, getattr(self, name), f"Referenced image {name}")
        for name in ("series_instance_uid", "study_instance_uid"):
            if getattr(self, name) is not None:
                require(problem_uid, getattr(self, name), f"Referenced image {name}")
        if self.frame_of_reference_uid is not None:
            require(problem_uid, self.frame_of_reference_uid, "Referenced image Frame of Reference UID")
        for name in ("frame_numbers", "segment_numbers"):
            numbers = tuple(int(n) for n in getattr(self, name))
            if any(n < 1 for n in numbers):
                raise InvalidRegistrationError(f"{name} of {self.sop_instance_uid} must be 1 or more; got {numbers}.")
            object.__setattr__(self, name, numbers)


@dataclass(frozen=True)
class RegistrationMatrix:
    """A Pre or Post Deformation Matrix: a 4x4 homogeneous matrix in LPS (mm) with its type.

    Parameters
    ----------
    matrix_lps:
        Row-major 4x4 matrix acting on LPS points, bottom row ``0 0 0 1``.
    matrix_type:
        ``"RIGID"``, ``"RIGID_SCALE"`` or ``"AFFINE"``; detected (the most specific) when ``None``.
        A declared type that the matrix does not satisfy raises InvalidRegistrationError.
    """

    matrix_lps: np.ndarray
    matrix_type: str | None = None

    def __post_init__(self) -> None:
        matrix = np.array(self.matrix_lps, dtype=np.float64)
        detected = geometry.classify_matrix(matrix)
        if self.matrix_type is None:
            object.__setattr__(self, "matrix_type", detected)
        else:
            geometry.check_matrix_type(matrix, self.matrix_type)
        matrix.setflags(write=False)
        object.__setattr__(self, "matrix_lps", matrix)

    @classmethod
    def identity(cls) -> RegistrationMatrix:
        return cls(np.eye(4), "RIGID")

    @property
    def is_identity(self) -> bool:
        return bool(np.array_equal(self.matrix_lps, np.eye(4)))

    def inverse(self) -> RegistrationMatrix:
        """The inverse matrix; its type is detected again (the inverse of a RIGID matrix is RIGID)."""
        return RegistrationMatrix(np.linalg.inv(self.matrix_lps))

    def compose(self, then: RegistrationMatrix) -> RegistrationMatrix:
        """The matrix that applies this one first and `then` second (``then @ self``)."""
        return RegistrationMatrix(then.matrix_lps @ self.matrix_lps)


class DisplacementGrid:
    """A displacement vector grid in the registered frame of reference (LPS, mm).

    Parameters
    ----------
    origin_lps:
        Centre of the first voxel (i = j = k = 0), mm, LPS: Image Position (Patient).
    direction_lps:
        3x3 matrix whose columns are the unit i, j, k axes in LPS. Orthonormal; either handedness
        (a left-handed grid is flipped along k when written, see :meth:`right_handed`).
    spacing_mm:
        Distance between grid points along i, j, k in mm (Grid Resolution), all positive.
    vectors_lps:
        Displacements of shape (n_k, n_j, n_i, 3), LPS components in mm, converted to float32 if
        needed (no copy when it already is float32). A whole-NaN triple means "undefined here".
    check_vectors:
        Check the vector values (no infinity, no partly NaN triple) here, which reads the whole
        field. ``False`` defers the check to the one pass that consumes the field: every writer of
        the engine (Vector Grid Data, field files, transform nodes) checks planes it has not seen
        checked as it writes them (:meth:`checked_planes`), so a field is read once.

    Raises
    ------
    InvalidRegistrationError
        On a wrong shape, non-positive spacing, non-orthonormal direction, a field too large for
        Vector Grid Data, infinite values or a partly NaN triple.
    """

    def __init__(
        self,
        origin_lps: Sequence[float] | np.ndarray,
        direction_lps: np.ndarray,
        spacing_mm: Sequence[float] | np.ndarray,
        vectors_lps: np.ndarray,
        *,
        check_vectors: bool = True,
    ) -> None:
        self._set_unchecked(origin_lps, direction_lps, spacing_mm, np.asarray(vectors_lps), None)
        if self._vectors.dtype != np.float32:
            self._vectors = self._vectors.astype(np.float32)
        if check_vectors:
            self.check_vectors()

    def _set_unchecked(
        self,
        origin_lps: Sequence[float] | np.ndarray,
        direction_lps: np.ndarray,
        spacing_mm: Sequence[float] | np.ndarray,
        vectors: np.ndarray,
        plane_to_lps: Callable[[np.ndarray], np.ndarray] | None,
    ) -> None:
        """Validate and set the geometry; hold `vectors` as they are, their values not yet checked,
        and `plane_to_lps` that turns one of their k planes into LPS float32 (``None``: they are)."""
        origin = np.array(origin_lps, dtype=np.float64).reshape(-1)
        spacing = np.array(spacing_mm, dtype=np.float64).reshape(-1)
        if origin.shape != (3,) or not np.all(np.isfinite(origin)):
            raise InvalidRegistrationError(f"The grid origin must be 3 finite numbers (mm); got {origin_lps!r}.")
        if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
            raise InvalidRegistrationError(
                f"The grid spacing must be 3 positive numbers (mm); got {np.asarray(spacing_mm).tolist()}."
            )
        direction = geometry.check_direction(direction_lps)
        shape = vectors.shape
        if len(shape) != 4 or shape[3] != 3 or min(shape[:3]) < 1:
            raise InvalidRegistrationError(f"The displacement vectors must have shape (n_k, n_j, n_i, 3); got {shape}.")
        check_grid_size((shape[2], shape[1], shape[0]))
        self.origin_lps = origin
        self.direction_lps = direction
        self.spacing_mm = spacing
        self._vectors = vectors
        self._plane_to_lps = plane_to_lps
        #: Whole-NaN triples found by the value check (complete once `vectors_checked` is true).
        self.undefined = UndefinedVectors()
        #: False until the vector values have been checked; see `check_vectors` above.
        self.vectors_checked = False

    @classmethod
    def from_ras(
        cls,
        origin_ras: Sequence[float] | np.ndarray,
        direction_ras: np.ndarray,
        spacing_mm: Sequence[float] | np.ndarray,
        vectors_ras: np.ndarray,
        *,
        displacement_scale: float = 1.0,
        displacement_shift: float = 0.0,
    ) -> DisplacementGrid:
        """Build a grid from RAS geometry and RAS displacement vectors (3D Slicer's convention).

        `vectors_ras` (n_k, n_j, n_i, 3), float32 or float64, is not copied: the grid refers to it
        and converts one k plane at a time to LPS float32 where the field is consumed
        (:meth:`plane_lps`, :meth:`checked_planes`: Vector Grid Data, field files, transform nodes),
        so that a Slicer node's field is not held in memory twice. Reading :attr:`vectors_lps`
        converts the whole field once (a copy, kept). Do not change `vectors_ras` while the grid
        is in use. The vectors are ``displacement_scale * vectors_ras + displacement_shift`` (as a
        VTK grid transform applies them; computed in float64 when not 1 and 0), rounded to float32.
        Their values are checked where the grid is written, in the same pass as the writing.
        """
        grid = cls.__new__(cls)
        grid._set_unchecked(
            geometry.ras_to_lps_points(origin_ras),
            geometry.ras_to_lps_direction(direction_ras),
            spacing_mm,
            np.asarray(vectors_ras),
            partial(_ras_plane_to_lps, scale=displacement_scale, shift=displacement_shift),
        )
        return grid

    @property
    def vectors_lps(self) -> np.ndarray:
        """Displacements (n_k, n_j, n_i, 3), LPS components in mm, float32.

        For a grid made by :meth:`from_ras` the first access converts the whole field (a copy of
        it, kept); code that goes through the field plane by plane uses :meth:`plane_lps`.
        """
        if self._plane_to_lps is not None:
            converted = np.empty(self._vectors.shape, dtype=np.float32)
            for k in range(converted.shape[0]):
                converted[k] = self._plane_to_lps(self._vectors[k])
            self._vectors, self._plane_to_lps = converted, None
        return self._vectors

    def plane_lps(self, k: int) -> np.ndarray:
        """The k-th plane (n_j, n_i, 3) of :attr:`vectors_lps`, float32, unchecked: a view of the
        vectors, or for a grid made by :meth:`from_ras` a new array converted from RAS."""
        if self._plane_to_lps is None:
            return self._vectors[k]
        return self._plane_to_lps(self._vectors[k])

    @property
    def dimensions(self) -> tuple[int, int, int]:
        """Grid Dimensions (n_i, n_j, n_k)."""
        n_k, n_j, n_i, _ = self._vectors.shape
        return (n_i, n_j, n_k)

    @property
    def index_to_lps(self) -> np.ndarray:
        """4x4 matrix from grid index (i, j, k) to LPS (mm)."""
        return geometry.index_to_patient_matrix(self.origin_lps, self.direction_lps, self.spacing_mm)

    @property
    def is_right_handed(self) -> bool:
        return geometry.is_right_handed(self.direction_lps)

    def on_geometry(
        self, origin_lps: np.ndarray, direction_lps: np.ndarray, spacing_mm: np.ndarray
    ) -> DisplacementGrid:
        """The same vectors (not copied, converted and checked as this grid's are) on another geometry."""
        grid = object.__new__(DisplacementGrid)
        grid._set_unchecked(origin_lps, direction_lps, spacing_mm, self._vectors, self._plane_to_lps)
        return grid

    def right_handed(self) -> DisplacementGrid:
        """This grid if right-handed, else the same grid described with the k axis reversed."""
        if self.is_right_handed:
            return self
        # Checked before flipping, so that a message names the grid point as the caller indexes it.
        self.check_vectors()
        origin, direction, vectors = geometry.flip_k_axis(
            self.origin_lps, self.direction_lps, self.spacing_mm, self._vectors
        )
        grid = object.__new__(DisplacementGrid)
        grid._set_unchecked(origin, direction, self.spacing_mm.copy(), vectors, self._plane_to_lps)
        grid.vectors_checked = True
        grid.undefined = self.undefined
        return grid

    def checked_planes(self) -> Iterator[np.ndarray]:
        """The k planes of `vectors_lps` (n_j, n_i, 3) in order, as :meth:`plane_lps` gives them, each
        checked before it is yielded unless the whole field has been checked already (then
        `vectors_checked` becomes true).

        Raises
        ------
        InvalidRegistrationError
            At the first plane holding an infinite value or a partly NaN triple.
        """
        n_i, n_j, n_k = self.dimensions
        planes = map(self.plane_lps, range(n_k))
        if self.vectors_checked:
            yield from planes
            return
        self.undefined = UndefinedVectors()
        yield from check_planes(planes, n_i, n_j, self.undefined)
        self.vectors_checked = True

    def check_vectors(self) -> None:
        """Check the vector values now, if that has not been done (see `check_vectors` above)."""
        for _ in self.checked_planes():
            pass

    def describe_undefined(self) -> str:
        """'N of M grid points are undefined (NaN), the first at (i, j, k), LPS (x, y, z) mm' once checked."""
        n_i, n_j, n_k = self.dimensions
        point = self.undefined.first_point or 0
        index = np.array(grid_point_ijk(point, n_i, n_j))
        position = self.index_to_lps[:3, :3] @ index + self.index_to_lps[:3, 3]
        return (
            f"{self.undefined.count} of {n_i * n_j * n_k} grid points are undefined (NaN vectors), "
            f"the first at grid point (i={index[0]}, j={index[1]}, k={index[2]}), LPS "
            f"({position[0]:.2f}, {position[1]:.2f}, {position[2]:.2f}) mm"
        )

    def displacement_at(self, points_lps: np.ndarray) -> np.ndarray:
        """Trilinear displacement (mm, LPS) at points (N, 3) in LPS; NaN outside the grid."""
        self.check_vectors()
        points = np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
        lps_to_index = np.linalg.inv(self.index_to_lps)
        index = points @ lps_to_index[:3, :3].T + lps_to_index[:3, 3]
        return geometry.trilinear_sample(self.vectors_lps, index)


def _ras_plane_to_lps(plane_ras: np.ndarray, scale: float, shift: float) -> np.ndarray:
    """One plane of RAS vectors as a new LPS float32 array, ``scale * v + shift`` computed in float64."""
    if scale != 1.0 or shift != 0.0:
        plane_ras = plane_ras.astype(np.float64) * scale + shift
    return geometry.ras_to_lps_vectors_in_place(np.array(plane_ras, dtype=np.float32))


@dataclass
class UndefinedVectors:
    """A tally of whole-NaN triples ("undefined here") met while checking a field's values.

    Attributes
    ----------
    count:
        How many grid points are undefined.
    first_point:
        Grid point index (``i + n_i * (j + n_j * k)``) of the first, or ``None``.
    """

    count: int = 0
    first_point: int | None = None


def check_grid_size(dimensions: Sequence[int]) -> None:
    """Refuse a grid of `dimensions` (n_i, n_j, n_k) whose vectors Vector Grid Data cannot hold.

    Raises
    ------
    InvalidRegistrationError
        If 12 bytes per grid point exceed the 32-bit length of an OF value (4 GiB - 2 bytes).
    """
    n_i, n_j, n_k = (int(d) for d in dimensions)
    n_bytes = 12 * n_i * n_j * n_k
    if n_bytes > MAX_VECTOR_GRID_BYTES:
        raise InvalidRegistrationError(
            f"The displacement grid {n_i}x{n_j}x{n_k} needs {n_bytes} bytes, more than "
            f"Vector Grid Data (OF) can hold ({MAX_VECTOR_GRID_BYTES} bytes, 4 GiB - 2). "
            "Choose a coarser grid spacing."
        )


def grid_point_ijk(point: int, n_i: int, n_j: int) -> tuple[int, int, int]:
    """(i, j, k) of grid point index ``i + n_i * (j + n_j * k)``."""
    return point % n_i, (point // n_i) % n_j, point // (n_i * n_j)


def vector_kinds(triples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks over (N, 3) `triples`: (partly NaN, infinite, whole NaN). A displacement is finite, or
    NaN in all three components to mark its grid point as undefined; the first two are invalid."""
    nan_count = np.isnan(triples).sum(axis=1)
    return (nan_count > 0) & (nan_count < 3), np.isinf(triples).any(axis=1), nan_count == 3


def check_vector_values(
    triples: np.ndarray, first_index: int, n_i: int, n_j: int, undefined: UndefinedVectors | None = None
) -> None:
    """Reject infinite values and partly NaN triples in (N, 3) `triples`, chunk by chunk so that
    temporaries stay small, and count whole-NaN triples into `undefined`.

    Parameters
    ----------
    triples:
        Consecutive vectors of a grid, i fastest; `first_index` is the grid point index of the
        first (``i + n_i * (j + n_j * k)``), so that the message can name the grid point.

    Raises
    ------
    InvalidRegistrationError
        Naming the first offending grid point.
    """
    step = max(1, _CHECK_CHUNK_ELEMENTS // 3)
    for start in range(0, triples.shape[0], step):
        chunk = triples[start : start + step]
        if np.isfinite(chunk).all():
            continue
        partial, infinite, whole = vector_kinds(chunk)
        bad = np.flatnonzero(partial | infinite)
        if bad.size:
            voxel = first_index + start + int(bad[0])
            i, j, k = grid_point_ijk(voxel, n_i, n_j)
            raise InvalidRegistrationError(
                f"The displacement at grid point (i={i}, j={j}, k={k}) is {chunk[bad[0]].tolist()}: vectors "
                "must be finite, or all three components NaN to mark the point as undefined "
                f"({bad.size} such point(s) in this part of the grid). Fix or mask the transform."
            )
        if undefined is not None:
            whole_points = np.flatnonzero(whole)
            if whole_points.size and undefined.first_point is None:
                undefined.first_point = first_index + start + int(whole_points[0])
            undefined.count += int(whole_points.size)


def check_planes(planes: Iterable[np.ndarray], n_i: int, n_j: int, undefined: UndefinedVectors) -> Iterator[np.ndarray]:
    """Yield the k planes (n_j, n_i, 3) of a field in order, each after :func:`check_vector_values`;
    `undefined` counts the whole-NaN triples from zero."""
    undefined.count, undefined.first_point = 0, None
    for k, plane in enumerate(planes):
        check_vector_values(plane.reshape(-1, 3), k * n_j * n_i, n_i, n_j, undefined)
        yield plane


@dataclass
class RegistrationItem:
    """One registration item: how the registered frame maps to one source frame.

    An item is either *deformable* (an item of the Deformable Registration Sequence of a 66.3:
    `grid`, `pre_deformation_matrix`, `post_deformation_matrix`) or *spatial* (an item of the
    Registration Sequence of a 66.1: `matrix_registration`), never both; an item with none of
    them is an identity item.

    Parameters
    ----------
    source_frame_of_reference_uid:
        Source Frame of Reference UID (the moving image's frame); in a 66.1 it is written as the
        item's Frame of Reference UID (0020,0052).
    referenced_images:
        The source instances this item applies to (Referenced Image Sequence).
    grid:
        The displacement grid, or ``None`` for an item without deformation (e.g. identity item).
    pre_deformation_matrix, post_deformation_matrix:
        Linear parts before and after the displacement (LPS); ``None`` means identity.
    matrix_registration:
        The Spatial Registration (66.1) matrix of the Matrix Registration Sequence (0070,0309).
        It maps **source-frame** LPS points to the **registered** frame, the opposite direction
        of the deformable parts; :meth:`map_points` applies its inverse.
    registration_type:
        One CID 7100 code, or ``None`` for an empty Registration Type Code Sequence.
    comment:
        Frame of Reference Transformation Comment, optional free text.
    """

    source_frame_of_reference_uid: str
    referenced_images: Sequence[ImageReference] = ()
    grid: DisplacementGrid | None = None
    pre_deformation_matrix: RegistrationMatrix | None = None
    post_deformation_matrix: RegistrationMatrix | None = None
    registration_type: Code | None = IMAGE_CONTENT_BASED_ALIGNMENT
    comment: str | None = None
    matrix_registration: RegistrationMatrix | None = None

    def __post_init__(self) -> None:
        require(problem_uid, self.source_frame_of_reference_uid, "Source Frame of Reference UID")
        self.referenced_images = tuple(self.referenced_images)
        for reference in self.referenced_images:
            if not isinstance(reference, ImageReference):
                raise TypeError("referenced_images must hold ImageReference objects")
            if reference.frame_of_reference_uid not in (None, self.source_frame_of_reference_uid):
                raise InvalidRegistrationError(
                    f"Image {reference.sop_instance_uid} is in frame of reference "
                    f"{reference.frame_of_reference_uid}, not in the item's source frame "
                    f"{self.source_frame_of_reference_uid}: an item may only reference images of its source frame."
                )
        if self.grid is not None and not isinstance(self.grid, DisplacementGrid):
            raise TypeError("grid must be a DisplacementGrid or None")
        for name in ("pre_deformation_matrix", "post_deformation_matrix", "matrix_registration"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), RegistrationMatrix):
                raise TypeError(f"{name} must be a RegistrationMatrix or None")
        if self.matrix_registration is not None and self.is_deformable:
            raise InvalidRegistrationError(
                "A registration item holds either a Spatial Registration matrix (66.1) or a displacement grid "
                "with pre/post deformation matrices (66.3), not both."
            )

    @property
    def is_deformable(self) -> bool:
        """True if the item has a grid or a pre/post deformation matrix (only a 66.3 can hold it)."""
        return any(part is not None for part in (self.grid, self.pre_deformation_matrix, self.post_deformation_matrix))

    @property
    def is_identity(self) -> bool:
        """True if the item maps every point to itself: no grid, and every matrix absent or identity.

        Planning systems write such an item for the registered frame itself (Frame of Reference
        Identity); it does not describe how to move a moving image. Matrices within
        :data:`IDENTITY_ITEM_TOLERANCE` of the identity count as identity (decimal rounding in files).
        """
        matrices = (self.pre_deformation_matrix, self.post_deformation_matrix, self.matrix_registration)
        return self.grid is None and all(
            m is None or np.allclose(m.matrix_lps, np.eye(4), rtol=0.0, atol=IDENTITY_ITEM_TOLERANCE) for m in matrices
        )

    def registered_to_source_parts(
        self,
    ) -> tuple[RegistrationMatrix | None, DisplacementGrid | None, RegistrationMatrix | None]:
        """``(pre, grid, post)``: the item as ``source = post(pre x + D(x))``, registered -> source, LPS.

        For a 66.1 item this is ``(None, None, inv(matrix_registration))``; ``None`` means identity.
        """
        if self.matrix_registration is not None:
            return None, None, self.matrix_registration.inverse()
        return self.pre_deformation_matrix, self.grid, self.post_deformation_matrix

    def map_points(self, points_lps: np.ndarray) -> np.ndarray:
        """Map registered-frame points (N, 3, LPS mm) to the source frame (for 66.1: by the inverse matrix)."""
        points = np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
        pre, grid, post = self.registered_to_source_parts()
        mapped = points
        if pre is not None:
            mapped = _apply(pre.matrix_lps, mapped)
        if grid is not None:
            mapped = mapped + grid.displacement_at(points)
        if post is not None:
            mapped = _apply(post.matrix_lps, mapped)
        return mapped

    def describe(self) -> str:
        """One line for messages: source frame, kind and referenced series."""
        if self.is_identity:
            kind = "identity"
        elif self.grid is not None:
            kind = "displacement grid"
        else:
            kind = "matrix only"
        series = sorted({r.series_instance_uid or "not listed" for r in self.referenced_images})
        return (
            f"source Frame of Reference UID {self.source_frame_of_reference_uid} ({kind}); referenced series: "
            f"{', '.join(series) if series else 'none listed'}"
        )


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:3, :3].T + matrix[:3, 3]


@dataclass
class Registration:
    """A spatial registration: the registered frame of reference and every item of the file.

    Parameters
    ----------
    frame_of_reference_uid:
        The registered (fixed image) Frame of Reference UID: the REG object's own frame.
    items:
        Registration items in file order (identity items included), at least one.
    """

    frame_of_reference_uid: str
    items: list[RegistrationItem] = field(default_factory=list)

    def __post_init__(self) -> None:
        require(problem_uid, self.frame_of_reference_uid, "Registered Frame of Reference UID")
        self.items = list(self.items)
        if not self.items:
            raise InvalidRegistrationError("A registration needs at least one item; none was given.")
        for item in self.items:
            if not isinstance(item, RegistrationItem):
                raise TypeError("items must hold RegistrationItem objects")

    def choose_item(self, source_frame_of_reference_uid: str | None = None) -> RegistrationItem:
        """The item that moves one moving image onto the fixed image.

        Parameters
        ----------
        source_frame_of_reference_uid:
            Choose the item for this source frame. ``None``: the one item that is not an identity
            item (see :attr:`RegistrationItem.is_identity`); when every item is an identity item,
            the one whose source frame differs from the registered frame.

        Raises
        ------
        RegistrationChoiceError
            If no item or several items qualify; the message lists every item's source Frame of
            Reference UID and referenced series, so the user can choose.
        """
        if source_frame_of_reference_uid is not None:
            candidates = [i for i in self.items if i.source_frame_of_reference_uid == source_frame_of_reference_uid]
            if len(candidates) > 1:
                candidates = [i for i in candidates if not i.is_identity]
            if len(candidates) == 1:
                return candidates[0]
            problem = (
                f"no item has the source Frame of Reference UID {source_frame_of_reference_uid}"
                if not candidates
                else f"{len(candidates)} items have the source Frame of Reference UID {source_frame_of_reference_uid}"
            )
            raise RegistrationChoiceError(f"The registration cannot be used: {problem}.\n{self.describe_items()}")
        candidates = [i for i in self.items if not i.is_identity]
        if not candidates:
            candidates = [i for i in self.items if i.source_frame_of_reference_uid != self.frame_of_reference_uid]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise RegistrationChoiceError(
                "The registration holds only identity items of the registered frame "
                f"{self.frame_of_reference_uid}; there is no moving image to move.\n{self.describe_items()}"
            )
        raise RegistrationChoiceError(
            f"The registration holds {len(candidates)} items that move different images; choose one by its "
            f"source Frame of Reference UID.\n{self.describe_items()}"
        )

    def describe_items(self) -> str:
        """One line per item (number, source frame, kind, referenced series) for messages."""
        return "\n".join(f"  item {number}: {item.describe()}" for number, item in enumerate(self.items, start=1))

    @property
    def referenced_images(self) -> list[ImageReference]:
        """Every image referenced by any item, in item order, without repeats."""
        seen: dict[str, ImageReference] = {}
        for item in self.items:
            for reference in item.referenced_images:
                seen.setdefault(reference.sop_instance_uid, reference)
        return list(seen.values())


@dataclass
class Deformation:
    """What a transform contributes to one registration item, in LPS (mm).

    Parameters
    ----------
    grid:
        Displacement grid in the registered (fixed) frame, indexed at the registered point.
    pre_deformation_matrix, post_deformation_matrix:
        Linear parts before / after the displacement; ``None`` means identity.
    exact:
        ``True`` when the grid and matrices reproduce the transform exactly (vectors copied, at most
        converted from float64 to float32); ``False`` when the transform was resampled onto a grid,
        so that between grid points the sampling error of trilinear interpolation applies.
    warnings:
        Sentences for the user about choices made (clamped spacing, resampling and why).
    linear:
        ``True`` when the transform is linear as a whole (the grid is all zero, there only because
        the deformable form needs one): it can then be written as a Spatial Registration (66.1).
    """

    grid: DisplacementGrid
    pre_deformation_matrix: RegistrationMatrix | None = None
    post_deformation_matrix: RegistrationMatrix | None = None
    exact: bool = True
    warnings: list[str] = field(default_factory=list)
    linear: bool = False

    def spatial_item(self, source_frame_of_reference_uid: str, **kwargs: object) -> RegistrationItem:
        """A Spatial Registration (66.1) :class:`RegistrationItem` for a linear deformation.

        The deformation maps registered -> source (``post @ pre``); the 66.1 matrix maps source ->
        registered, so the item stores the inverse.

        Raises
        ------
        InvalidRegistrationError
            If the deformation is not linear.
        """
        if not self.linear:
            raise InvalidRegistrationError(
                "The transform is not linear (it holds a displacement field, B-spline or other non-linear part), so it "
                "cannot be written as a Spatial Registration (66.1), which holds matrices only. Export it as a "
                "Deformable Spatial Registration (66.3)."
            )
        identity = RegistrationMatrix.identity()
        registered_to_source = (self.pre_deformation_matrix or identity).compose(
            self.post_deformation_matrix or identity
        )
        return RegistrationItem(
            source_frame_of_reference_uid, matrix_registration=registered_to_source.inverse(), **kwargs
        )

    def item(self, source_frame_of_reference_uid: str, **kwargs: object) -> RegistrationItem:
        """A :class:`RegistrationItem` carrying this deformation (further item fields as keywords)."""
        return RegistrationItem(
            source_frame_of_reference_uid,
            grid=self.grid,
            pre_deformation_matrix=self.pre_deformation_matrix,
            post_deformation_matrix=self.post_deformation_matrix,
            **kwargs,
        )


def axis_aligned_grid(grid: DisplacementGrid) -> DisplacementGrid | None:
    """The same grid re-indexed so that its axes are +L, +P, +S, or ``None`` if it is oblique.

    Only reorders and reverses grid axes (vectors are along patient axes and stay as they are), so
    the result is exact. Returns a new contiguous vector array unless nothing needs to change, or,
    for a grid made by :meth:`DisplacementGrid.from_ras`, a grid over a view of the same RAS vectors
    (re-indexing commutes with their plane-by-plane conversion, so the field is still not copied).
    """
    direction = grid.direction_lps
    rounded = np.round(direction)
    if (
        not np.allclose(direction, rounded, atol=geometry.EXACT_DIRECTION_TOLERANCE)
        or not np.allclose(np.abs(rounded).sum(axis=0), 1.0)
        or not np.allclose(np.abs(rounded).sum(axis=1), 1.0)
    ):
        return None
    if np.array_equal(rounded, np.eye(3)):
        return grid
    # source grid axis (0=i, 1=j, 2=k) along each LPS axis, and its sign
    source_axis = np.argmax(np.abs(rounded), axis=1)
    sign = rounded[np.arange(3), source_axis]
    dims = np.array(grid.dimensions)
    vectors = grid._vectors.transpose(2 - source_axis[2], 2 - source_axis[1], 2 - source_axis[0], 3)
    reverse = tuple(2 - axis for axis in range(3) if sign[axis] < 0)
    if reverse:
        vectors = np.flip(vectors, axis=reverse)
    spacing = grid.spacing_mm[source_axis]
    origin = grid.origin_lps.copy()
    origin += np.where(sign < 0, -(dims[source_axis] - 1) * spacing, 0.0)
    if grid._plane_to_lps is not None:
        aligned = object.__new__(DisplacementGrid)
        aligned._set_unchecked(origin, np.eye(3), spacing, vectors, grid._plane_to_lps)
        return aligned
    return DisplacementGrid(origin, np.eye(3), spacing, np.ascontiguousarray(vectors))
