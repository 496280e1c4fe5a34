"""Headers of displacement field images (NRRD, MetaImage, NIfTI) parsed without VTK or Slicer.

:func:`field_layout` says what an image holds (dimensions, components, value type), so that files
that cannot be a 3-D field of 3-vectors are refused with a useful message. :func:`raw_field_header`
finds where a raw field lies in its file: large raw fields (``.mha``/``.mhd``/``.nrrd``/``.nhdr``,
uncompressed, little-endian float32 or float64, 3 interleaved components, LPS) are read straight
into one float32 array (:meth:`RawFieldHeader.read_grid`), because slicer-core converts fields to
float64 (twice the memory, plus a float32 copy afterwards). Both give the same grid (the tests
prove it).
"""

from __future__ import annotations

import gzip
import logging
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from DicomRegSaveLib import geometry
from DicomRegSaveLib.errors import TransformInputError
from DicomRegSaveLib.model import DisplacementGrid

logger = logging.getLogger(__name__)

# Elements read per step when float64 data is narrowed to float32 (bounds the temporary copy).
_CHUNK_ELEMENTS = 1 << 22
#: Longest text header parsed; real headers are below 2 KiB.
MAX_HEADER_BYTES = 1 << 16


def extension_of(path: str | Path) -> str:
    """Lower-case extension, with ``.nii.gz`` as one extension."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


#: NRRD kinds of a non-spatial (component) axis.
_NRRD_COMPONENT_KINDS = frozenset(
    {
        "vector",
        "covariant-vector",
        "normal",
        "list",
        "point",
        "stub",
        "scalar",
        "complex",
        "2-vector",
        "3-color",
        "rgb-color",
        "hsv-color",
        "xyz-color",
        "4-color",
        "rgba-color",
        "3-vector",
        "3-gradient",
        "3-normal",
        "4-vector",
        "quaternion",
        "2d-symmetric-matrix",
        "2d-masked-symmetric-matrix",
        "2d-matrix",
        "2d-masked-matrix",
        "3d-symmetric-matrix",
        "3d-masked-symmetric-matrix",
        "3d-matrix",
        "3d-masked-matrix",
    }
)
_NIFTI_FLOAT_TYPES = {16: "float32", 64: "float64"}


@dataclass(frozen=True)
class FieldLayout:
    """What a displacement field file holds: spatial dimensions, components per point, value type."""

    spatial_dimensions: int
    components: int
    value_type: str
    floating: bool


def field_layout(path: str | Path) -> FieldLayout | None:
    """The layout a NRRD, MetaImage or NIfTI header declares, or ``None`` for other files."""
    path = Path(path)
    extension = extension_of(path)
    if extension in (".nii", ".nii.gz"):
        opener = gzip.open if extension == ".nii.gz" else open
        with opener(path, "rb") as stream:
            head = stream.read(540)
        return _nifti_layout(head)
    if extension not in (".nrrd", ".nhdr", ".mha", ".mhd"):
        return None
    with open(path, "rb") as stream:
        text = stream.read(MAX_HEADER_BYTES).split(b"\n\n")[0].decode("latin-1")
    if extension in (".mha", ".mhd"):
        fields = {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in text.splitlines())}
        if not {"NDims", "DimSize", "ElementType", "ElementDataFile"} <= fields.keys():
            return None  # an incomplete header: Slicer's reader says what is missing
        value_type = fields.get("ElementType", "")
        return FieldLayout(
            int(fields.get("NDims", "0")),
            int(fields.get("ElementNumberOfChannels", "1")),
            value_type,
            value_type in ("MET_FLOAT", "MET_DOUBLE"),
        )
    fields = {}
    for line in text.splitlines()[1:]:
        if line.startswith("#") or ":=" in line:
            continue
        key, _, value = line.partition(":")
        fields[key.strip().lower()] = value.strip()
    if not {"dimension", "sizes", "type"} <= fields.keys():
        return None
    dimension = int(fields["dimension"])
    sizes = [int(v) for v in fields["sizes"].split()]
    kinds = fields.get("kinds", "").lower().split()
    component_axis = (kinds and kinds[0] in _NRRD_COMPONENT_KINDS) or (not kinds and dimension == 4)
    value_type = fields.get("type", "").lower()
    return FieldLayout(
        dimension - 1 if component_axis else dimension,
        sizes[0] if component_axis else 1,
        value_type,
        value_type in ("float", "double"),
    )


def _nifti_layout(head: bytes) -> FieldLayout:
    for order in "<>":
        size = struct.unpack(order + "i", head[:4])[0]
        if size == 348:
            dims = struct.unpack(order + "8h", head[40:56])
            datatype = struct.unpack(order + "h", head[70:72])[0]
            break
        if size == 540:
            datatype = struct.unpack(order + "h", head[12:14])[0]
            dims = struct.unpack(order + "8q", head[16:80])
            break
    else:
        raise ValueError("not a NIfTI header")
    rank = dims[0]
    # ITK writes a vector image as dim = (5, n_i, n_j, n_k, 1, components, ...)
    components = dims[5] if rank >= 5 else 1
    return FieldLayout(
        min(rank, 3),
        components,
        _NIFTI_FLOAT_TYPES.get(datatype, f"NIfTI datatype {datatype}"),
        datatype in _NIFTI_FLOAT_TYPES,
    )


@dataclass
class RawFieldHeader:
    """Where and how a raw displacement field lies in a file, and its LPS geometry."""

    data_path: Path
    data_offset: int
    dtype: np.dtype
    dimensions: tuple[int, int, int]
    origin_lps: np.ndarray
    direction_lps: np.ndarray
    spacing_mm: np.ndarray

    @property
    def n_values(self) -> int:
        n_i, n_j, n_k = self.dimensions
        return 3 * n_i * n_j * n_k

    def read_grid(self) -> DisplacementGrid:
        """The field as a float32 grid: float32 data is memory-mapped read-only (the page cache is the
        only copy), float64 data is narrowed chunk by chunk into one float32 array."""
        n_bytes = self.n_values * self.dtype.itemsize
        if not self.data_path.is_file():
            raise TransformInputError(
                f"The displacement field's data file {self.data_path} does not exist; its header names it. "
                "Keep the header and its data file together (or save the field as one .mha/.nrrd file)."
            )
        size = self.data_path.stat().st_size
        offset = size - n_bytes if self.data_offset < 0 else self.data_offset
        if offset < 0 or offset + n_bytes > size:
            raise TransformInputError(
                f"Displacement field data {self.data_path} is too short: {size} bytes, need {n_bytes} bytes "
                f"of {self.dtype.name} from byte {max(offset, 0)} for a {'x'.join(map(str, self.dimensions))} "
                "field of 3-vectors. The file is truncated or its header is wrong."
            )
        if self.dtype == np.dtype("<f4"):
            values = np.memmap(self.data_path, dtype="<f4", mode="r", offset=offset, shape=(self.n_values,))
        else:
            values = np.empty(self.n_values, dtype=np.float32)
            with open(self.data_path, "rb") as stream:
                stream.seek(offset)
                for start in range(0, self.n_values, _CHUNK_ELEMENTS):
                    count = min(_CHUNK_ELEMENTS, self.n_values - start)
                    values[start : start + count] = np.fromfile(stream, dtype=self.dtype, count=count)
        n_i, n_j, n_k = self.dimensions
        # The values are checked by the writer, in the pass that copies them to the output.
        return DisplacementGrid(
            self.origin_lps, self.direction_lps, self.spacing_mm, values.reshape(n_k, n_j, n_i, 3), check_vectors=False
        )


def raw_field_header(path: str | Path) -> RawFieldHeader | None:
    """Parse a MetaImage or NRRD header if the fast path can read the field exactly, else None.

    None (the caller then reads through Slicer) for compressed or big-endian data, other value
    types, not exactly 3 interleaved components in 3 dimensions, NRRD fields in RAS space, with a
    non-identity measurement frame or marked as modeling (to-parent) transforms, multi-file data,
    and grids whose axes are not orthogonal.

    Raises
    ------
    TransformInputError
        If the header declares a non-positive spacing or an empty dimension.
    """
    path = Path(path)
    extension = extension_of(path)
    if extension not in (".mha", ".mhd", ".nrrd", ".nhdr") or not path.is_file():
        return None
    with open(path, "rb") as stream:
        head = stream.read(MAX_HEADER_BYTES)
    try:
        if extension in (".mha", ".mhd"):
            header = _metaimage_header(path, head)
        else:
            header = _nrrd_header(path, head)
    except (ValueError, IndexError, UnicodeDecodeError) as error:
        logger.info("Fast field reader does not take %s (%s); reading it through Slicer.", path, error)
        return None
    if header is None:
        return None
    direction = header.direction_lps
    if not np.allclose(direction.T @ direction, np.eye(3), rtol=0.0, atol=geometry.EXACT_DIRECTION_TOLERANCE):
        return None
    if np.any(header.spacing_mm <= 0) or min(header.dimensions) < 1:
        # Slicer cannot read such a field either; its own message would not say why.
        raise TransformInputError(
            f"The displacement field {path} declares a grid of {'x'.join(map(str, header.dimensions))} points "
            f"at a spacing of {np.round(header.spacing_mm, 6).tolist()} mm: the spacing must be positive and "
            "every dimension at least 1. The file's header is wrong; re-export the field."
        )
    return header


def _metaimage_header(path: Path, head: bytes) -> RawFieldHeader | None:
    fields: dict[str, str] = {}
    end = 0
    for line in head.splitlines(keepends=True):
        end += len(line)
        key, _, value = line.decode("ascii").partition("=")
        fields[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            break
    else:
        return None

    def flag(name: str, default: str = "False") -> bool:
        return fields.get(name, default).lower() in ("true", "1")

    def numbers(name: str, default: str = "") -> list[float]:
        return [float(v) for v in fields.get(name, default).split()]

    if fields.get("ObjectType", "Image") != "Image" or int(fields.get("NDims", "0")) != 3:
        return None
    if int(fields.get("ElementNumberOfChannels", "1")) != 3 or not flag("BinaryData", "True"):
        return None
    if flag("CompressedData") or flag("BinaryDataByteOrderMSB") or flag("ElementByteOrderMSB"):
        return None
    dtype = {"MET_FLOAT": np.dtype("<f4"), "MET_DOUBLE": np.dtype("<f8")}.get(fields.get("ElementType"))
    if dtype is None:
        return None
    data_file = fields["ElementDataFile"]
    if data_file == "LOCAL":
        data_path, offset = path, end
    elif data_file.upper() == "LIST" or "%" in data_file or " " in data_file:
        return None
    else:
        data_path, offset = path.parent / data_file, 0
    header_size = int(fields.get("HeaderSize", "0"))
    offset = -1 if header_size == -1 else offset + header_size
    dims = tuple(int(v) for v in fields["DimSize"].split())
    spacing = numbers("ElementSpacing", "1 1 1")
    origin = numbers(next((k for k in ("Offset", "Position", "Origin") if k in fields), "Offset"), "0 0 0")
    matrix_key = next((k for k in ("TransformMatrix", "Rotation", "Orientation") if k in fields), None)
    axes = np.array(numbers(matrix_key) if matrix_key else np.eye(3).ravel(), dtype=np.float64).reshape(3, 3)
    # MetaImage lists the axis vectors one after the other: row r of `axes` is axis r.
    return RawFieldHeader(
        data_path,
        offset,
        dtype,
        (dims[0], dims[1], dims[2]),
        np.array(origin[:3]),
        axes.T.copy(),
        np.array(spacing[:3]),
    )


_NRRD_VECTOR = re.compile(r"\(([^)]*)\)")


def _nrrd_header(path: Path, head: bytes) -> RawFieldHeader | None:
    if not head.startswith(b"NRRD000"):
        return None
    fields: dict[str, str] = {}
    key_values: dict[str, str] = {}
    end = None
    position = 0
    for number, line in enumerate(head.splitlines(keepends=True)):
        position += len(line)
        text = line.decode("ascii").rstrip("\r\n")
        if number == 0 or text.startswith("#"):
            continue
        if text == "":
            end = position
            break
        if ":=" in text:
            key, _, value = text.partition(":=")
            key_values[key.strip()] = value.strip()
        else:
            key, _, value = text.partition(":")
            fields[key.strip().lower()] = value.strip()
    if end is None and not any(key in fields for key in ("data file", "datafile")):
        return None
    if key_values.get("displacement field type", "resampling").lower() != "resampling":
        return None
    dtype = {"float": np.dtype("<f4"), "double": np.dtype("<f8")}.get(fields.get("type", "").lower())
    if dtype is None or fields.get("encoding", "").lower() != "raw" or fields.get("endian", "").lower() != "little":
        return None
    if fields.get("dimension") != "4" or fields.get("space", "").lower() not in ("left-posterior-superior", "lps"):
        return None
    sizes = [int(v) for v in fields["sizes"].split()]
    kinds = fields.get("kinds", "").lower().split()
    if sizes[0] != 3 or not kinds or kinds[0] not in ("vector", "3-vector", "covariant-vector"):
        return None
    if int(fields.get("line skip", fields.get("lineskip", "0"))) != 0:
        return None
    if "measurement frame" in fields:
        frame = np.array(
            [[float(v) for v in vector.split(",")] for vector in _NRRD_VECTOR.findall(fields["measurement frame"])]
        )
        if not np.allclose(frame, np.eye(3)):
            return None
    directions = fields["space directions"].split()
    if directions[0].lower() != "none":
        return None
    axes = np.array(
        [[float(v) for v in vector.split(",")] for vector in _NRRD_VECTOR.findall(fields["space directions"])]
    )
    origin = np.array([float(v) for v in _NRRD_VECTOR.findall(fields.get("space origin", "(0,0,0)"))[0].split(",")])
    data_file = fields.get("data file", fields.get("datafile"))
    byte_skip = int(fields.get("byte skip", fields.get("byteskip", "0")))
    if data_file is None:
        data_path, offset = path, end + max(byte_skip, 0)
        if byte_skip < 0:
            offset = -1
    elif data_file.upper().startswith("LIST") or len(data_file.split()) != 1:
        return None
    else:
        data_path = path.parent / data_file
        offset = -1 if byte_skip < 0 else byte_skip
    spacing = np.linalg.norm(axes, axis=1)
    # each NRRD space direction is one axis vector scaled by its spacing
    return RawFieldHeader(
        data_path, offset, dtype, (sizes[1], sizes[2], sizes[3]), origin, (axes / spacing[:, None]).T.copy(), spacing
    )
