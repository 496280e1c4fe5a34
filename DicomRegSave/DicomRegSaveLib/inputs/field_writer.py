"""Write a displacement grid as a float32 displacement field file: NRRD, MetaImage or NIfTI.

The files are what ITK (and so 3D Slicer, SimpleITK, ANTs) reads as a resampling displacement field
(fixed -> moving): NRRD and MetaImage in LPS with interleaved vectors, NIfTI-1 with the RAS geometry
and RAS vector components that ITK's NIfTI reader converts back (intent ``NIFTI_INTENT_DISPVECT``,
components stored one after the other). The vectors stay float32, the precision of Vector Grid
Data: Slicer's transform writer would widen them to float64 and double the file. They are written
plane by plane, so no second copy of the field is made.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from DicomRegSaveLib import geometry
from DicomRegSaveLib.model import DisplacementGrid
from DicomRegSaveLib.progress import Progress, ignore_progress

#: NIfTI-1 constants (nifti1.h): displacement vector intent, float32 datatype, mm and s units.
_NIFTI_INTENT_DISPVECT = 1006
_NIFTI_TYPE_FLOAT32 = 16
_NIFTI_UNITS_MM_SEC = 2 | 8
_NIFTI_HEADER_BYTES = 348
_NIFTI_VOX_OFFSET = 352


def _numbers(values: np.ndarray) -> str:
    return " ".join(repr(float(v)) for v in values)


def _nrrd_vector(values: np.ndarray) -> str:
    return "(" + ",".join(repr(float(v)) for v in values) + ")"


def _write_planes_lps(stream: BinaryIO, grid: DisplacementGrid, progress: Progress | None) -> None:
    """The vectors, k plane by k plane, each checked (unless the grid was) just before it is written."""
    report = progress or ignore_progress
    n_k = grid.dimensions[2]
    for k, plane in enumerate(grid.checked_planes()):
        stream.write(memoryview(np.ascontiguousarray(plane, dtype="<f4")).cast("B"))
        report((k + 1) / n_k, "Writing the displacement field")


def write_nrrd(grid: DisplacementGrid, stream: BinaryIO, progress: Progress | None = None) -> None:
    """A NRRD displacement field (LPS, raw little-endian float32, ``displacement field type:=resampling``)."""
    n_i, n_j, n_k = grid.dimensions
    axes = grid.direction_lps * grid.spacing_mm
    header = "\n".join(
        [
            "NRRD0004",
            "type: float",
            "dimension: 4",
            "space: left-posterior-superior",
            f"sizes: 3 {n_i} {n_j} {n_k}",
            "space directions: none " + " ".join(_nrrd_vector(axes[:, axis]) for axis in range(3)),
            "kinds: vector domain domain domain",
            "endian: little",
            "encoding: raw",
            f"space origin: {_nrrd_vector(grid.origin_lps)}",
            "displacement field type:=resampling",
            "",
            "",
        ]
    )
    stream.write(header.encode("ascii"))
    _write_planes_lps(stream, grid, progress)


def write_metaimage(grid: DisplacementGrid, stream: BinaryIO, progress: Progress | None = None) -> None:
    """A MetaImage (``.mha``) displacement field: LPS, 3 interleaved float32 channels, data in the same file."""
    header = "\n".join(
        [
            "ObjectType = Image",
            "NDims = 3",
            "BinaryData = True",
            "BinaryDataByteOrderMSB = False",
            "CompressedData = False",
            # MetaImage lists the axis vectors one after the other (the columns of the direction matrix).
            f"TransformMatrix = {_numbers(grid.direction_lps.T.ravel())}",
            f"Offset = {_numbers(grid.origin_lps)}",
            "CenterOfRotation = 0 0 0",
            f"ElementSpacing = {_numbers(grid.spacing_mm)}",
            f"DimSize = {' '.join(str(n) for n in grid.dimensions)}",
            "ElementNumberOfChannels = 3",
            "ElementType = MET_FLOAT",
            "ElementDataFile = LOCAL",
            "",
        ]
    )
    stream.write(header.encode("ascii"))
    _write_planes_lps(stream, grid, progress)


def _quaternion(rotation: np.ndarray) -> tuple[float, float, float]:
    """(b, c, d) of a proper rotation's unit quaternion with a >= 0 (nifti_mat44_to_quatern)."""
    r = rotation
    a = 0.5 * np.sqrt(max(0.0, 1.0 + r[0, 0] + r[1, 1] + r[2, 2]))
    if a > 0.5 * np.sqrt(0.5):
        b, c, d = (r[2, 1] - r[1, 2]) / (4 * a), (r[0, 2] - r[2, 0]) / (4 * a), (r[1, 0] - r[0, 1]) / (4 * a)
    else:
        b = 0.5 * np.sqrt(max(0.0, 1.0 + r[0, 0] - r[1, 1] - r[2, 2]))
        c = 0.5 * np.sqrt(max(0.0, 1.0 - r[0, 0] + r[1, 1] - r[2, 2]))
        d = 0.5 * np.sqrt(max(0.0, 1.0 - r[0, 0] - r[1, 1] + r[2, 2]))
        # the largest of b, c, d fixes the signs of the others
        if b >= c and b >= d:
            c, d, a = (r[0, 1] + r[1, 0]) / (4 * b), (r[0, 2] + r[2, 0]) / (4 * b), (r[2, 1] - r[1, 2]) / (4 * b)
        elif c >= d:
            b, d, a = (r[0, 1] + r[1, 0]) / (4 * c), (r[1, 2] + r[2, 1]) / (4 * c), (r[0, 2] - r[2, 0]) / (4 * c)
        else:
            b, c, a = (r[0, 2] + r[2, 0]) / (4 * d), (r[1, 2] + r[2, 1]) / (4 * d), (r[1, 0] - r[0, 1]) / (4 * d)
        if a < 0:
            b, c, d = -b, -c, -d
    return float(b), float(c), float(d)


def _nifti_header(grid: DisplacementGrid) -> bytes:
    n_i, n_j, n_k = grid.dimensions
    index_to_ras = geometry.lps_to_ras_index_matrix(grid.index_to_lps)
    direction_ras = geometry.lps_to_ras_direction(grid.direction_lps)
    qfac = 1.0 if geometry.is_right_handed(direction_ras) else -1.0
    rotation = direction_ras.copy()
    rotation[:, 2] *= qfac
    header = bytearray(_NIFTI_HEADER_BYTES)
    struct.pack_into("<i", header, 0, _NIFTI_HEADER_BYTES)
    struct.pack_into("<8h", header, 40, 5, n_i, n_j, n_k, 1, 3, 1, 1)
    struct.pack_into("<h", header, 68, _NIFTI_INTENT_DISPVECT)
    struct.pack_into("<hh", header, 70, _NIFTI_TYPE_FLOAT32, 32)
    struct.pack_into("<8f", header, 76, qfac, *grid.spacing_mm, 0.0, 0.0, 0.0, 0.0)
    struct.pack_into("<f", header, 108, float(_NIFTI_VOX_OFFSET))
    struct.pack_into("<ff", header, 112, 1.0, 0.0)
    header[123] = _NIFTI_UNITS_MM_SEC
    struct.pack_into("<hh", header, 252, 1, 1)
    struct.pack_into("<6f", header, 256, *_quaternion(rotation), *index_to_ras[:3, 3])
    struct.pack_into("<12f", header, 280, *index_to_ras[:3, :].ravel())
    header[344:348] = b"n+1\x00"
    return bytes(header)


def write_nifti(grid: DisplacementGrid, stream: BinaryIO, progress: Progress | None = None) -> None:
    """A NIfTI-1 displacement field as ITK writes one: RAS geometry and RAS vector components,
    intent DISPVECT, dimensions (n_i, n_j, n_k, 1, 3) with the components stored one after the other."""
    report = progress or ignore_progress
    stream.write(_nifti_header(grid))
    stream.write(b"\x00" * (_NIFTI_VOX_OFFSET - _NIFTI_HEADER_BYTES))
    n_k = grid.dimensions[2]
    for component in range(3):
        # LPS -> RAS negates x and y
        sign = -1.0 if component < 2 else 1.0
        planes = grid.checked_planes() if component == 0 else map(grid.plane_lps, range(n_k))
        for k, plane in enumerate(planes):
            stream.write(np.ascontiguousarray(sign * plane[..., component], dtype="<f4").tobytes())
            report((component * n_k + k + 1) / (3 * n_k), "Writing the displacement field")


#: The writer of each of :data:`transform_file_types.FIELD_WRITE_TYPES`, and whether it gzips.
_WRITERS: dict[str, tuple[Callable[[DisplacementGrid, BinaryIO, Progress | None], None], bool]] = {
    ".nrrd": (write_nrrd, False),
    ".mha": (write_metaimage, False),
    ".nii": (write_nifti, False),
    ".nii.gz": (write_nifti, True),
}


def write_displacement_field(
    grid: DisplacementGrid, path: Path, extension: str, progress: Progress | None = None
) -> None:
    """Write `grid` to `path` as the float32 displacement field format of `extension` (one of
    :data:`transform_file_types.FIELD_WRITE_TYPES`; given separately because `path` may be a temporary name).

    Vector values not yet checked are checked plane by plane as they are written; `progress`
    follows the planes (see :mod:`.progress`).
    """
    writer, compressed = _WRITERS[extension]
    with open(path, "wb") as raw:
        if compressed:
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as stream:
                writer(grid, stream, progress)
        else:
            writer(grid, raw, progress)
