"""Transform files as 3D Slicer reads them: ITK transform files and displacement field images.

An ITK displacement field file (and ITK transform files in general) holds a *resampling* transform,
fixed -> moving, in LPS: Slicer reads it as the node's from-parent transform, which is the direction
a DICOM deformable registration stores. NRRD fields may instead say ``displacement field
type:=modeling`` (to-parent); Slicer then stores them to-parent and they are resampled. Slicer
evaluates fields read from files with cubic interpolation; ITK (and DICOM receivers) interpolate
trilinearly, which is the meaning the grid values keep here.

Raw fields are read from their headers (:mod:`field_headers`) and ITK transform files by
:mod:`itk_transforms`, both without VTK or Slicer; Slicer reads what they do not take.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from DicomRegSaveLib import transform_chain
from DicomRegSaveLib.errors import TransformInputError, require_type
from DicomRegSaveLib.inputs import itk_transforms
from DicomRegSaveLib.inputs.field_headers import MAX_HEADER_BYTES, extension_of, field_layout, raw_field_header
from DicomRegSaveLib.model import Deformation, DisplacementGrid, axis_aligned_grid, check_grid_size
from DicomRegSaveLib.native_log import captured_native_output, summarize
from DicomRegSaveLib.progress import Progress, ignore_progress
from DicomRegSaveLib.transform_file_types import ITK_TRANSFORM_TYPES, READABLE_TYPES

if TYPE_CHECKING:
    import slicer

# slicer/vtk (and mrml, which needs them) are imported where used: linear transforms, B-splines
# and raw fields must not pay their ~200 MiB and ~1 s of start-up.

_DETACHED_DATA = re.compile(rb"^(?:ElementDataFile\s*=|data ?file\s*:)\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)


def source_files(path: str | Path) -> list[Path]:
    """The transform file and, for a detached header (.mhd, .nhdr), the data file it names."""
    path = Path(path)
    files = [path]
    if extension_of(path) in (".mhd", ".nhdr") and path.is_file():
        with open(path, "rb") as stream:
            head = stream.read(MAX_HEADER_BYTES)
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
    a NRRD field marked ``displacement field type:=modeling`` becomes a to-parent transform. Their
    grids are interpolated trilinearly, as ITK defines the file (and DICOM receivers read a REG),
    not cubically as Slicer reads them for display (:func:`mrml.nodes.interpolate_grids_linearly`).

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

    from DicomRegSaveLib.mrml.nodes import interpolate_grids_linearly

    logic = slicer.vtkSlicerTransformLogic()
    logic.SetMRMLScene(scene)
    messages = slicer.vtkMRMLMessageCollection()
    with captured_native_output() as native:
        node = logic.AddTransform(str(path), scene, messages)
    if node is None:
        detail = native.summary() or summarize(messages.GetAllMessagesAsString())
        kind = READABLE_TYPES[extension]
        raise TransformInputError(
            f"Transform file {path} could not be read as {'an' if kind[0] in 'AEIOU' else 'a'} {kind}"
            f"{': ' + detail if detail else ''}. Check that it is a valid transform file; supported: "
            f"{_supported_list()}."
        )
    interpolate_grids_linearly(node)
    return node


def deformation_from_file(
    path: str | Path,
    reference_ijk_to_lps: np.ndarray,
    reference_dimensions: Sequence[int],
    *,
    grid_spacing_mm: float | Sequence[float] | None = None,
    axis_aligned: bool = False,
    progress: Progress | None = None,
) -> Deformation:
    """The fixed -> moving deformation stored in a transform file (LPS).

    Raw displacement fields without a spacing request are read by the fast path (one float32
    copy of the field in memory, vectors and geometry taken as stored: exact). ITK transform files
    of linear transforms, displacement fields (HDF5) and B-splines are read by
    :mod:`itk_transforms` into a chain encoded by :func:`transform_chain.deformation_from_parts`
    (see there for the keyword arguments and for when the result is resampled), without VTK or
    Slicer unless the chain must be sampled by Slicer. Everything else is read by Slicer and
    converted by :func:`mrml.deformation.deformation_from_transform_node`. `progress` is told the
    reading's start, then follows the sampling or conversion (see :mod:`.progress`).

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
    (progress or ignore_progress)(0.0, f"Reading {path}")
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
            progress=progress,
        )
    import slicer

    from DicomRegSaveLib.mrml import deformation as mrml

    scene = slicer.vtkMRMLScene()
    node = read_transform_file(path, scene)
    return mrml.deformation_from_transform_node(
        node,
        reference_ijk_to_lps,
        reference_dimensions,
        grid_spacing_mm=grid_spacing_mm,
        axis_aligned=axis_aligned,
        progress=progress,
    )


def _sample_through_slicer(path: str | Path, target: transform_chain.SamplingGeometry) -> DisplacementGrid:
    """The file's transform sampled on `target` as Slicer evaluates it (read by Slicer for this)."""
    import slicer

    from DicomRegSaveLib.mrml import deformation as mrml

    return mrml.sample_node(read_transform_file(path, slicer.vtkMRMLScene()), target)


#: ITK transform class names as ITK writes them: ``AffineTransform_double_3_3``, ``CompositeTransform_double_3``.
_ITK_TRANSFORM_NAME = re.compile(rb"([A-Za-z]+Transform)_(double|float)_(\d+)(?:_(\d+))?")
#: How far into an HDF5/MATLAB transform file the transform type names are looked for.
_MAX_TYPE_SCAN_BYTES = 16 << 20


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
