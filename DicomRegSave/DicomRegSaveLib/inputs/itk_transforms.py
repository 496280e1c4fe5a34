"""ITK transform files read without VTK or Slicer: text (``.tfm``/``.txt``), MATLAB v4 (``.mat``) and
HDF5 (``.h5``/``.hdf5``), into :mod:`transform_chain` parts (LPS, fixed -> moving).

An ITK transform file holds a resampling transform (fixed -> moving, LPS), which Slicer reads as
the node's from-parent transform, converting LPS <-> RAS and nothing else. Linear transforms
become their ``GetMatrix()``/``GetOffset()`` as ITK computes them from the parameters (Slicer's
converter reads exactly these), displacement fields (HDF5) their vectors, B-splines their
coefficient grid. A composite transform lists its parts in the reverse of the order they are
applied (ITK applies the last one first). Whatever is not read here (ITKv3 B-splines with a bulk
transform, thin-plate splines, inverse-flagged non-linear transforms, other classes) gives None,
and the caller reads the file through Slicer.
"""

from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from DicomRegSaveLib.bspline import BSplineGrid
from DicomRegSaveLib.errors import InvalidRegistrationError
from DicomRegSaveLib.model import DisplacementGrid
from DicomRegSaveLib.transform_chain import BSplinePart, FieldPart, LinearPart, Part

logger = logging.getLogger(__name__)

#: ``AffineTransform_double_3_3`` -> class, scalar type, input and output dimension.
_CLASS_NAME = re.compile(r"^([A-Za-z0-9]+)_(double|float)_(\d+)_(\d+)$")
#: Longest text transform file read (a text B-spline of 100^3 control points is ~40 MiB).
_MAX_TEXT_BYTES = 256 << 20
_MATLAB_PRECISION = {0: "d", 1: "f"}


@dataclass(frozen=True)
class ItkTransform:
    """One transform as an ITK file stores it: class name (``AffineTransform``), scalar type, parameters."""

    class_name: str
    scalar: str
    parameters: np.ndarray
    fixed_parameters: np.ndarray


def read_parts(path: Path, extension: str) -> list[Part] | None:
    """The file's transform as parts in application order, or None when Slicer must read it
    (unknown layout or class, unreadable file, or a Python without h5py as 3D Slicer's may be:
    Slicer then reads it, or reports what is wrong)."""
    try:
        if extension in (".tfm", ".txt"):
            transforms = _read_text(path)
        elif extension == ".mat":
            transforms = _read_matlab(path)
        else:
            transforms = _read_hdf5(path)
        return _parts(transforms)
    except (
        ImportError,
        OSError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        struct.error,
        InvalidRegistrationError,
    ) as error:
        logger.info("The ITK transform reader does not take %s (%s); reading it through Slicer.", path, error)
        return None


def _parts(transforms: list[ItkTransform]) -> list[Part] | None:
    if not transforms:
        return None
    if transforms[0].class_name == "CompositeTransform":
        # ITK's MATLAB writer stores a composite without its parts
        listed = transforms[1:] or None
    elif len(transforms) == 1:
        listed = transforms
    else:
        # e.g. an ITKv3 B-spline followed by its bulk transform: Slicer's own convention
        listed = None
    if listed is None:
        return None
    parts = [_part(transform) for transform in reversed(listed)]
    return None if any(part is None for part in parts) else parts


def _part(transform: ItkTransform) -> Part | None:
    name = transform.class_name
    if name == "DisplacementFieldTransform":
        return FieldPart(_displacement_grid(transform))
    if name == "BSplineTransform":
        return BSplinePart(_bspline_grid(transform), "an ITK BSplineTransform")
    matrix = linear_matrix_lps(transform)
    return None if matrix is None else LinearPart(matrix)


def linear_matrix_lps(transform: ItkTransform) -> np.ndarray | None:
    """The 4x4 LPS matrix ``[GetMatrix() | GetOffset()]`` of a linear ITK transform; None for a class
    that is not linear (or not known here). Computed in double precision for ``_float_`` transforms
    too: Slicer's reader (ITK's double-precision transform file reader) converts them."""
    p = transform.parameters
    fixed = transform.fixed_parameters
    name = transform.class_name
    center = fixed[:3] if fixed.size >= 3 else np.zeros(3)
    translation = np.zeros(3)
    if name in ("AffineTransform", "MatrixOffsetTransformBase", "Rigid3DTransform"):
        matrix, translation = p[:9].reshape(3, 3), p[9:12]
    elif name == "CenteredAffineTransform":
        matrix, center, translation = p[:9].reshape(3, 3), p[9:12], p[12:15]
    elif name == "Euler3DTransform":
        matrix, translation = _euler(p[:3], fixed.size > 3 and fixed[3] != 0), p[3:6]
    elif name == "CenteredEuler3DTransform":
        matrix, center, translation = _euler(p[:3], False), p[3:6], p[6:9]
    elif name == "VersorTransform":
        matrix = _versor(p[:3])
    elif name == "VersorRigid3DTransform":
        matrix, translation = _versor(p[:3]), p[3:6]
    elif name == "Similarity3DTransform":
        matrix, translation = p[6] * _versor(p[:3]), p[3:6]
    elif name == "ScaleVersor3DTransform":
        # ITK adds the scale to the rotation's diagonal (it does not multiply)
        matrix, translation = _versor(p[:3]) + np.diag(p[6:9] - 1), p[3:6]
    elif name == "ScaleSkewVersor3DTransform" and p.size == 12:
        # ITK >= 5: rotation @ scale @ an upper triangular skew (older ITK wrote 6 skew values)
        skew = np.array([[1, p[9], p[10]], [0, 1, p[11]], [0, 0, 1]])
        matrix, translation = _versor(p[:3]) @ (np.diag(p[6:9]) @ skew), p[3:6]
    elif name == "QuaternionRigidTransform":
        quaternion = p[:4] / np.sqrt(np.sum(p[:4] ** 2))
        matrix, translation = _rotation(*quaternion), p[4:7]
    elif name == "ScaleTransform":
        matrix = np.diag(p[:3])
    elif name == "ScaleLogarithmicTransform":
        matrix = np.diag(np.exp(p[:3]))
    elif name == "TranslationTransform":
        matrix, center, translation = np.eye(3), np.zeros(3), p[:3]
    elif name == "IdentityTransform":
        matrix = np.eye(3)
    else:
        return None
    matrix = np.asarray(matrix, np.float64)
    # MatrixOffsetTransformBase::ComputeOffset, in its order of operations
    offset = translation + center
    for column in range(3):
        offset = offset - matrix[:, column] * center[column]
    result = np.eye(4)
    result[:3, :3] = matrix
    result[:3, 3] = offset
    return result


def _euler(angles: np.ndarray, zyx: bool) -> np.ndarray:
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rotate_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rotate_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rotate_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rotate_z @ rotate_y @ rotate_x if zyx else rotate_z @ rotate_x @ rotate_y


def _versor(axis: np.ndarray) -> np.ndarray:
    """itk::Versor set from its vector part (the scalar part makes it a unit quaternion)."""
    norm = min(float(np.sum(axis**2)), 1.0)
    return _rotation(*axis, np.sqrt(1.0 - norm))


def _rotation(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Rotation matrix of the unit quaternion ``w + xi + yj + zk``."""
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ],
    )


def _displacement_grid(transform: ItkTransform) -> DisplacementGrid:
    """ITK's DisplacementFieldTransform: fixed parameters size, origin, spacing, direction (row by row);
    parameters the LPS vectors, interleaved, i fastest."""
    fixed = transform.fixed_parameters
    n_i, n_j, n_k = (int(n) for n in fixed[:3])
    vectors = transform.parameters.reshape(n_k, n_j, n_i, 3)
    # converted to float32 (Vector Grid Data's precision) as Slicer's reading is; checked when written
    return DisplacementGrid(fixed[3:6], fixed[9:18].reshape(3, 3), fixed[6:9], vectors, check_vectors=False)


def _bspline_grid(transform: ItkTransform) -> BSplineGrid:
    """ITK's BSplineTransform: fixed parameters = the coefficient grid's size, origin, spacing,
    direction (row by row); parameters = the x, then y, then z coefficients, each i fastest."""
    fixed = transform.fixed_parameters
    n_i, n_j, n_k = (int(n) for n in fixed[:3])
    coefficients = transform.parameters.astype(np.float64).reshape(3, n_k, n_j, n_i)
    return BSplineGrid(fixed[3:6], fixed[9:18].reshape(3, 3), fixed[6:9], np.moveaxis(coefficients, 0, -1))


def _transform(type_name: str, parameters: np.ndarray, fixed_parameters: np.ndarray) -> ItkTransform:
    match = _CLASS_NAME.match(type_name.strip())
    if match is None:
        if type_name.strip().startswith("CompositeTransform_"):
            return ItkTransform("CompositeTransform", "double", parameters, fixed_parameters)
        raise ValueError(f"unknown transform type {type_name!r}")
    class_name, scalar, n_in, n_out = match.groups()
    if (n_in, n_out) != ("3", "3"):
        raise ValueError(f"{type_name} is not a 3-D transform")
    return ItkTransform(
        class_name, scalar, np.asarray(parameters, np.float64), np.asarray(fixed_parameters, np.float64)
    )


def _read_text(path: Path) -> list[ItkTransform]:
    """``#Insight Transform File V1.0``: per transform ``Transform:``, ``Parameters:``, ``FixedParameters:`` lines."""
    if path.stat().st_size > _MAX_TEXT_BYTES:
        raise ValueError("text transform file too large")
    records: list[dict[str, str]] = []
    for line in path.read_text(encoding="ascii").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "Transform":
            records.append({"Transform": value})
        elif key in ("Parameters", "FixedParameters") and records:
            records[-1][key] = value
    return [
        _transform(
            record["Transform"],
            np.array(record.get("Parameters", "").split(), dtype=np.float64),
            np.array(record.get("FixedParameters", "").split(), dtype=np.float64),
        )
        for record in records
    ]


def _read_matlab(path: Path) -> list[ItkTransform]:
    """MATLAB v4 as ITK's MatlabTransformIO writes it: a matrix named after the transform class
    (the parameters) followed by one named ``fixed`` (the fixed parameters), per transform."""
    data = path.read_bytes()
    position = 0
    variables: list[tuple[str, np.ndarray]] = []
    while position < len(data):
        order = "<"
        kind, rows, columns, imaginary, name_length = struct.unpack_from("<5i", data, position)
        if not 0 <= kind < 10000:
            order = ">"
            kind, rows, columns, imaginary, name_length = struct.unpack_from(">5i", data, position)
        big_endian, precision = kind // 1000, kind // 10 % 10
        if imaginary or kind % 10 or big_endian != (order == ">") or precision not in _MATLAB_PRECISION:
            raise ValueError(f"unsupported MATLAB matrix type {kind}")
        position += 20
        name = data[position : position + name_length].rstrip(b"\x00").decode("ascii")
        position += name_length
        count = rows * columns
        code = _MATLAB_PRECISION[precision]
        values = np.frombuffer(data, dtype=np.dtype(order + code), count=count, offset=position)
        position += count * struct.calcsize(code)
        variables.append((name, values.astype(np.float64)))
    transforms = []
    for index in range(0, len(variables), 2):
        (name, parameters), (fixed_name, fixed) = variables[index], variables[index + 1]
        if fixed_name != "fixed":
            raise ValueError(f"expected the fixed parameters after {name}, found {fixed_name!r}")
        transforms.append(_transform(name, parameters, fixed))
    return transforms


def _read_hdf5(path: Path) -> list[ItkTransform]:
    """ITK's HDF5 layout: ``/TransformGroup/<n>/TransformType``, ``TransformParameters``,
    ``TransformFixedParameters`` for n = 0, 1, ... (a composite: group 0 names it, the parts follow)."""
    import h5py

    transforms = []
    with h5py.File(path, "r") as file:
        group = file["TransformGroup"]
        for index in range(len(group)):
            entry = group[str(index)]
            type_name = entry["TransformType"][0]
            type_name = type_name.decode("ascii") if isinstance(type_name, bytes) else str(type_name)
            parameters = entry["TransformParameters"][()] if "TransformParameters" in entry else np.zeros(0)
            fixed = entry["TransformFixedParameters"][()] if "TransformFixedParameters" in entry else np.zeros(0)
            transforms.append(_transform(type_name, parameters, fixed))
    return transforms
