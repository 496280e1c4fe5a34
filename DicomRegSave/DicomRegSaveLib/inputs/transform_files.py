"""Transform files as 3D Slicer reads and writes them: ITK transform files and displacement field images.

An ITK displacement field file (and ITK transform files in general) holds a *resampling* transform,
fixed -> moving, in LPS: Slicer reads it as the node's from-parent transform, which is the direction
a DICOM deformable registration stores. NRRD fields may instead say ``displacement field
type:=modeling`` (to-parent); Slicer then stores them to-parent and they are resampled. Slicer
evaluates fields read from files with cubic interpolation; ITK (and DICOM receivers) interpolate
trilinearly, which is the meaning the grid values keep here.

Large raw fields (``.mha``/``.mhd``/``.nrrd``/``.nhdr``, uncompressed, little-endian float32 or
float64, 3 interleaved components, LPS) are read by a fast path that parses the text header and
reads the data straight into one float32 array, because slicer-core converts fields to float64
(twice the memory, plus a float32 copy afterwards). Both paths give the same grid (the tests prove it).
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from DicomRegSaveLib import geometry, transform_chain
from DicomRegSaveLib.errors import OutputError, TransformInputError, require_type
from DicomRegSaveLib.inputs import itk_transforms
from DicomRegSaveLib.inputs.field_writer import FIELD_EXTENSIONS, write_displacement_field
from DicomRegSaveLib.model import Deformation, DisplacementGrid, RegistrationItem, axis_aligned_grid, check_grid_size
from DicomRegSaveLib.native_log import captured_native_output, summarize
from DicomRegSaveLib.progress import Progress

if TYPE_CHECKING:
    import slicer

# slicer/vtk (and mrml, which needs them) are imported where used: the fast path for raw fields
# must not pay their ~200 MiB and ~1 s of start-up.

logger = logging.getLogger(__name__)

#: Transform file types that can be read, by extension (lower case).
READABLE_TYPES = {
    ".h5": "ITK transform (HDF5)",
    ".hdf5": "ITK transform (HDF5)",
    ".tfm": "ITK transform (text)",
    ".txt": "ITK transform (text)",
    ".mat": "ITK transform (MATLAB)",
    ".nrrd": "displacement field (NRRD)",
    ".nhdr": "displacement field (NRRD, detached header)",
    ".mha": "displacement field (MetaImage)",
    ".mhd": "displacement field (MetaImage, detached header)",
    ".nii": "displacement field (NIfTI)",
    ".nii.gz": "displacement field (NIfTI, compressed)",
}
#: ITK transform file types, read by :mod:`itk_transforms` where it can.
ITK_TRANSFORM_TYPES = (".h5", ".hdf5", ".tfm", ".txt", ".mat")
#: ITK transform file types that `write_transform_file` writes as a composite transform.
TRANSFORM_WRITE_TYPES = (".h5", ".hdf5", ".tfm", ".txt")
#: Single-file displacement field types that `write_transform_file` writes (float32, see :mod:`field_writer`).
FIELD_WRITE_TYPES = FIELD_EXTENSIONS

# Elements read per step when float64 data is narrowed to float32 (bounds the temporary copy).
_CHUNK_ELEMENTS = 1 << 22
# Longest text header the fast path parses; real headers are below 2 KiB.
_MAX_HEADER_BYTES = 1 << 16


def extension_of(path: str | Path) -> str:
    """Lower-case extension, with ``.nii.gz`` as one extension."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


_DETACHED_DATA = re.compile(rb"^(?:ElementDataFile\s*=|data ?file\s*:)\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)


def source_files(path: str | Path) -> list[Path]:
    """The transform file and, for a detached header (.mhd, .nhdr), the data file it names."""
    path = Path(path)
    files = [path]
    if extension_of(path) in (".mhd", ".nhdr") and path.is_file():
        with open(path, "rb") as stream:
            head = stream.read(_MAX_HEADER_BYTES)
        files += [
            path.parent / os.fsdecode(name)
            for name in _DETACHED_DATA.findall(head)
            if name.upper() not in (b"LOCAL", b"LIST")
        ]
    return files


def _supported_list() -> str:
    return ", ".join(sorted(READABLE_TYPES))


def read_transform_file(path: str | Path, scene: slicer.vtkMRMLScene) -> slicer.vtkMRMLTransformNode:
    """Read a transform file into `scene` as Slicer does (vtkSlicerTransformLogic.AddTransform).

    ITK displacement fields and ITK transform files become from-parent (resampling) transforms;
    a NRRD field marked ``displacement field type:=modeling`` becomes a to-parent transform.

    Raises
    ------
    TransformInputError
        If the file does not exist, has an unsupported extension, or cannot be read.
    """
    path = Path(path)
    extension = extension_of(path)
    if extension not in READABLE_TYPES:
        raise TransformInputError(
            f"Transform file {path}: unsupported type {extension or '(no extension)'!r}. "
            f"Supported: {_supported_list()}."
        )
    if not path.is_file():
        raise TransformInputError(f"Transform file {path} does not exist or is not a file.")
    import slicer

    logic = slicer.vtkSlicerTransformLogic()
    logic.SetMRMLScene(scene)
    messages = slicer.vtkMRMLMessageCollection()
    with captured_native_output() as native:
        node = logic.AddTransform(str(path), scene, messages)
    if node is None:
        detail = native.summary() or summarize(messages.GetAllMessagesAsString())
        raise TransformInputError(
            f"Transform file {path} could not be read as a {READABLE_TYPES[extension]}"
            f"{': ' + detail if detail else ''}. Check that it is a valid transform file; supported: "
            f"{_supported_list()}."
        )
    return node


def deformation_from_file(
    path: str | Path,
    reference_ijk_to_lps: np.ndarray,
    reference_dimensions: Sequence[int],
    *,
    grid_spacing_mm: float | Sequence[float] | None = None,
    axis_aligned: bool = False,
) -> Deformation:
    """The fixed -> moving deformation stored in a transform file (LPS).

    Raw displacement fields without a spacing request are read by the fast path (one float32
    copy of the field in memory, vectors and geometry taken as stored: exact). ITK transform files
    of linear transforms, displacement fields (HDF5) and B-splines are read by
    :mod:`itk_transforms` into a chain encoded by :func:`transform_chain.deformation_from_parts`
    (see there for the keyword arguments and for when the result is resampled), without VTK or
    Slicer unless the chain must be sampled by Slicer. Everything else is read by Slicer and
    converted by :func:`mrml.deformation_from_transform_node`.

    Raises
    ------
    TransformInputError
        If the file cannot be read or describes an unusable transform.
    """
    require_type("path", path, str, os.PathLike)
    if np.shape(reference_ijk_to_lps) != (4, 4) or len(reference_dimensions) != 3:
        raise ValueError(
            "reference_ijk_to_lps must be a 4x4 matrix and reference_dimensions 3 numbers; got shapes "
            f"{np.shape(reference_ijk_to_lps)} and {len(reference_dimensions)}"
        )
    check_transform_file(path)
    if grid_spacing_mm is None:
        header = raw_field_header(path)
        if header is not None:
            grid = header.read_grid()
            if axis_aligned:
                grid = axis_aligned_grid(grid)
            if grid is not None:
                return Deformation(grid)
    extension = extension_of(path)
    parts = itk_transforms.read_parts(Path(path), extension) if extension in ITK_TRANSFORM_TYPES else None
    if parts is not None:
        return transform_chain.deformation_from_parts(
            parts,
            Path(path).name[: -len(extension)],
            reference_ijk_to_lps,
            reference_dimensions,
            partial(_sample_through_slicer, path),
            grid_spacing_mm=grid_spacing_mm,
            axis_aligned=axis_aligned,
        )
    import slicer

    from DicomRegSaveLib.mrml import nodes as mrml

    scene = slicer.vtkMRMLScene()
    node = read_transform_file(path, scene)
    return mrml.deformation_from_transform_node(
        node,
        reference_ijk_to_lps,
        reference_dimensions,
        grid_spacing_mm=grid_spacing_mm,
        axis_aligned=axis_aligned,
    )


def _sample_through_slicer(path: str | Path, target: transform_chain.SamplingGeometry) -> DisplacementGrid:
    """The file's transform sampled on `target` as Slicer evaluates it (read by Slicer for this)."""
    import slicer

    from DicomRegSaveLib.mrml import nodes as mrml

    return mrml.sample_node(read_transform_file(path, slicer.vtkMRMLScene()), target)


#: ITK transform class names as ITK writes them: ``AffineTransform_double_3_3``, ``CompositeTransform_double_3``.
_ITK_TRANSFORM_NAME = re.compile(rb"([A-Za-z]+Transform)_(double|float)_(\d+)(?:_(\d+))?")
#: How far into an HDF5/MATLAB transform file the transform type names are looked for.
_MAX_TYPE_SCAN_BYTES = 16 << 20
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


def check_transform_file(path: str | Path) -> None:
    """Refuse transform files that cannot be a 3-D fixed -> moving transform, before Slicer reads them
    (it would turn a scalar image, a 2-component or an integer field into a "displacement field",
    and a 2-D transform into a 3-D one).

    Raises
    ------
    TransformInputError
        For an image that is not a 3-D field of 3-component floating point vectors, or an ITK
        transform file whose transforms are not 3-D; the message says what the file holds.
    """
    path = Path(path)
    extension = extension_of(path)
    if not path.is_file():
        return
    if extension in ITK_TRANSFORM_TYPES:
        with open(path, "rb") as stream:
            head = stream.read(_MAX_TYPE_SCAN_BYTES)
        for name, _, n_in, n_out in _ITK_TRANSFORM_NAME.findall(head):
            if int(n_in) != 3 or (n_out and int(n_out) != 3):
                dims = n_in.decode() + ("-D to " + n_out.decode() if n_out else "") + "-D"
                raise TransformInputError(
                    f"Transform file {path} holds a {dims} transform ({name.decode()}); a registration of "
                    "DICOM images needs a 3-D transform. Export the 3-D transform from the registration tool."
                )
        return
    try:
        layout = field_layout(path)
    except (ValueError, IndexError, OSError, UnicodeDecodeError, struct.error):
        return  # Slicer reads it and reports what is wrong
    if layout is None:
        return
    problems = []
    if layout.spatial_dimensions != 3:
        problems.append(f"a {layout.spatial_dimensions}-D image")
    if layout.components != 3:
        problems.append("scalar values" if layout.components == 1 else f"{layout.components} components per point")
    if not layout.floating:
        problems.append(f"values of type {layout.value_type}")
    if problems:
        raise TransformInputError(
            f"Transform file {path} is not a displacement field: it holds {', '.join(problems)}. A displacement "
            "field is a 3-D image of 3-component vectors (float or double, mm). Pass the registration's "
            "transform, not an image."
        )


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
        text = stream.read(_MAX_HEADER_BYTES).split(b"\n\n")[0].decode("latin-1")
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


def check_field_fits(path: str | Path, grid_spacing_mm: float | Sequence[float] | None = None) -> None:
    """Refuse, from its header alone, a raw displacement field too large for Vector Grid Data, so
    that an export fails before any image header or vector is read. A requested grid spacing
    resamples the field, so then nothing is refused here.

    Raises
    ------
    InvalidRegistrationError
        As :func:`model.check_grid_size`.
    """
    if grid_spacing_mm is None:
        header = raw_field_header(path)
        if header is not None:
            check_grid_size(header.dimensions)


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
        head = stream.read(_MAX_HEADER_BYTES)
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


def write_transform_file(item: RegistrationItem, path: str | Path, progress: Progress | None = None) -> Path:
    """Write one registration item's fixed -> moving mapping as a transform file Slicer and ITK read.

    ``.h5``/``.hdf5``/``.tfm``/``.txt``: an ITK (composite) transform of the pre-matrix, the
    displacement field and the post-matrix, in the order :func:`mrml.from_parent_components`
    gives — a resampling transform, as ITK, SimpleITK, ANTs and Slicer expect. A Spatial
    Registration (66.1) item becomes one affine transform (the inverse of its stored matrix).
    ``.nrrd``/``.mha``/``.nii``/``.nii.gz``: one float32 displacement field on the item's grid (the
    precision of Vector Grid Data; written by :mod:`field_writer`, not by Slicer, which would widen
    it to float64); pre/post matrices are folded into the vectors (total displacement
    ``M_post(M_pre x + D(x)) - x`` at each grid point), which trilinear interpolation reproduces
    exactly inside the grid because the mapping is affine in x plus linear in D. `progress`
    follows the writing of a field (see :mod:`.progress`).

    Raises
    ------
    OutputError
        For another extension (detached ``.mhd``/``.nhdr`` headers are refused: their data file
        would not follow a rename), a displacement field format for an item without a grid, or
        when Slicer fails to write.
    """
    if not isinstance(item, RegistrationItem):
        raise TypeError("write_transform_file takes one RegistrationItem; see Registration.choose_item")
    path = Path(path)
    extension = extension_of(path)
    if extension in FIELD_WRITE_TYPES:
        if item.grid is None:
            raise OutputError(
                f"Cannot write {path.name}: the registration item is linear (matrices only, as in every Spatial "
                "Registration), and a displacement field would only approximate it on an arbitrary grid. Write an "
                f"ITK transform instead ({', '.join(TRANSFORM_WRITE_TYPES)})."
            )
        try:
            write_displacement_field(_total_displacement_grid(item), path, extension, progress)
        except OSError as error:
            raise OutputError(f"Cannot write the displacement field {path}: {error}.") from error
        return path
    if extension not in TRANSFORM_WRITE_TYPES:
        raise OutputError(
            f"Cannot write a transform to {path}: use one of {', '.join(TRANSFORM_WRITE_TYPES + FIELD_WRITE_TYPES)}."
        )
    import slicer
    import vtk

    from DicomRegSaveLib.mrml import nodes as mrml

    components = [transform for _, transform in mrml.from_parent_components(item)] or [vtk.vtkTransform()]
    if len(components) == 1:
        transform = components[0]
    else:
        transform = vtk.vtkGeneralTransform()
        transform.PostMultiply()
        for component in components:
            transform.Concatenate(component)
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLTransformNode", path.name)
    node.SetAndObserveTransformFromParent(transform)
    storage = slicer.vtkMRMLTransformStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    with captured_native_output() as native:
        written = storage.WriteData(node)
    if not written:
        detail = native.summary() or summarize(storage.GetUserMessages().GetAllMessagesAsString())
        raise OutputError(f"Slicer could not write the transform to {path}{': ' + detail if detail else ''}.")
    return path


def _total_displacement_grid(item: RegistrationItem) -> DisplacementGrid:
    """The item's grid with vectors of its whole mapping minus identity: the grid itself (its
    vectors bit for bit) when both matrices are absent or identities.

    ``M_post(M_pre x + D(x)) - x = A x + b + L D(x)`` with ``A = L_post L_pre - I``,
    ``b = L_post t_pre + t_post`` and ``L = L_post`` (:func:`transform_chain.affine_plus_planes`).
    """
    grid = item.grid
    pre, post = (
        None if m is None or m.is_identity else m.matrix_lps
        for m in (item.pre_deformation_matrix, item.post_deformation_matrix)
    )
    if pre is None and post is None:
        return grid
    pre = np.eye(4) if pre is None else pre
    post = np.eye(4) if post is None else post
    vectors = transform_chain.affine_plus_planes(
        post @ pre - np.eye(4), post[:3, :3], grid.index_to_lps, grid.dimensions, grid.checked_planes()
    )
    # The source planes were checked; the sums are checked as they are written.
    return DisplacementGrid(grid.origin_lps, grid.direction_lps, grid.spacing_mm, vectors, check_vectors=False)
