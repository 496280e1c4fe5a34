"""Writing one registration item as a transform file that 3D Slicer, ITK, SimpleITK and ANTs read."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from DicomRegSaveLib import transform_chain
from DicomRegSaveLib.errors import OutputError
from DicomRegSaveLib.inputs.field_headers import extension_of
from DicomRegSaveLib.inputs.field_writer import write_displacement_field
from DicomRegSaveLib.model import DisplacementGrid, RegistrationItem
from DicomRegSaveLib.output import atomic_output
from DicomRegSaveLib.progress import Progress, ignore_progress
from DicomRegSaveLib.transform_file_types import FIELD_WRITE_TYPES, TRANSFORM_WRITE_TYPES


def write_transform_file(
    item: RegistrationItem,
    path: str | Path,
    progress: Progress | None = None,
    *,
    force: bool = False,
    inputs: Sequence[str | Path] = (),
) -> Path:
    """Write one registration item's fixed -> moving mapping as a transform file Slicer and ITK read.

    ``.h5``/``.hdf5``/``.tfm``/``.txt``: an ITK (composite) transform of the pre-matrix, the
    displacement field and the post-matrix, in the order :func:`mrml.from_parent_components`
    gives — a resampling transform, as ITK, SimpleITK, ANTs and Slicer expect. A Spatial
    Registration (66.1) item becomes one affine transform (the inverse of its stored matrix).
    ``.nrrd``/``.mha``/``.nii``/``.nii.gz``: one float32 displacement field on the item's grid (the
    precision of Vector Grid Data; written by :mod:`field_writer`, not by Slicer, which would widen
    it to float64); pre/post matrices are folded into the vectors (total displacement
    ``M_post(M_pre x + D(x)) - x`` at each grid point), which trilinear interpolation reproduces
    exactly inside the grid because the mapping is affine in x plus linear in D. `progress` is
    told the writing's start and follows the writing of a field (see :mod:`.progress`). The file
    appears complete or not at all (:func:`output.atomic_output`); an existing file is replaced
    only with `force`, an input never.

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
    # Writers are given a temporary name in the target folder; messages name the user's path. The
    # output's own checks (an input, an existing file) come first, then what the format can hold.
    with atomic_output(path, force, inputs) as temporary:
        (progress or ignore_progress)(0.0, f"Writing {path}")
        if extension in FIELD_WRITE_TYPES and item.grid is None:
            raise OutputError(
                f"Cannot write {path}: the registration item is linear (matrices only, as in every Spatial "
                "Registration), and a displacement field would only approximate it on an arbitrary grid. Write an "
                f"ITK transform instead ({', '.join(TRANSFORM_WRITE_TYPES)})."
            )
        if extension not in FIELD_WRITE_TYPES + TRANSFORM_WRITE_TYPES:
            raise OutputError(
                f"Cannot write a transform to {path}: use one of {', '.join(TRANSFORM_WRITE_TYPES + FIELD_WRITE_TYPES)}."
            )
        if extension in FIELD_WRITE_TYPES:
            try:
                write_displacement_field(_total_displacement_grid(item), temporary, extension, progress)
            except OSError as error:
                raise OutputError(f"Cannot write the displacement field {path}: {error}.") from error
        else:
            _write_itk_transform(item, temporary, path)
    return path


def _write_itk_transform(item: RegistrationItem, temporary: Path, path: Path) -> None:
    """The item as an ITK (composite) transform file written by Slicer's storage node into `temporary`."""
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
    node = scene.AddNewNodeByClass("vtkMRMLTransformNode", path.stem)
    node.SetAndObserveTransformFromParent(transform)
    storage = slicer.vtkMRMLTransformStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(temporary))
    mrml.write_with_storage_node(storage, node, path, "transform")


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
