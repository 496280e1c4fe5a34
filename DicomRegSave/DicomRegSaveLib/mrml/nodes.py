"""Registration items -> 3D Slicer transform nodes, and volume-node helpers (node -> Deformation: :mod:`mrml.deformation`).

The same code runs inside the Slicer application and headless with the ``slicer-core`` package:
it uses MRML classes only, never ``slicer.app``, Qt or the DICOM database.

Direction convention. A moving volume placed under a transform node is resampled through the
node's *from-world* transform (the node's from-parent transform, preceded by its parents'):
a world (= fixed) point ``x`` shows the moving volume's content at ``FromWorld(x)``. That is the
mapping a DICOM Deformable Spatial Registration stores (registered -> source)::

    source_point_lps = M_post @ (M_pre @ x_lps + D(x_lps))

The from-world chain is a list of components applied one after the other, the root's from-parent
transform first and the node's own last. A chain ``A`` (linear), ``G`` (grid), ``B`` (linear) gives
``source = B(A x + D_G(A x))``, so ``M_pre = A``, ``M_post = B`` and ``D(x) = D_G(A x)``: the same
vectors on the grid geometry mapped by ``inv(A)`` (exact whenever the mapped axes stay orthogonal).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from DicomRegSaveLib import geometry, transform_chain
from DicomRegSaveLib.errors import InvalidRegistrationError, OutputError, TransformInputError
from DicomRegSaveLib.mapped_pages import release_mapped_pages
from DicomRegSaveLib.model import DisplacementGrid, RegistrationItem, RegistrationMatrix
from DicomRegSaveLib.native_log import captured_native_output, summarize
from DicomRegSaveLib.progress import Progress, ignore_progress


def array_from_vtk_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    """A vtkMatrix4x4 as a 4x4 numpy array."""
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def vtk_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    """A 4x4 array as a vtkMatrix4x4."""
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


# ----------------------------------------------------------------------------------------------
# Import side: Registration -> transform nodes


def from_parent_components(
    item: RegistrationItem,
    progress: Progress | None = None,
) -> list[tuple[str, vtk.vtkAbstractTransform]]:
    """VTK transforms (RAS) that, applied in list order, perform the item's registered -> source mapping.

    Returns ``(role, transform)`` pairs, role ``"pre"``, ``"grid"`` or ``"post"``; identity
    matrices are left out. The grid is a :class:`vtkOrientedGridTransform` used as a from-parent
    (resampling) transform. A Spatial Registration (66.1) item gives one ``"post"`` matrix, the
    inverse of its stored source -> registered matrix (see
    :meth:`RegistrationItem.registered_to_source_parts`); an identity item gives no component.

    A pre-deformation matrix ``A`` is handled exactly: when ``A`` keeps the grid axes orthogonal
    (rigid, uniform scale) the order is ``A, G', post`` with G' the grid geometry mapped by ``A``
    and the vectors unchanged; otherwise (anisotropic scale, shear) the order is
    ``G'', A, post`` with G'' on the original geometry and vectors ``inv(A_3x3) @ D`` — since
    ``A(x + inv(A_3x3) D(x)) = A x + D(x)`` this is exact up to float32 rounding of the vectors.

    The grid's vectors are copied once (float32, RAS), plane by plane, and checked in the same
    pass if they were not yet; `progress` follows the planes (see :mod:`.progress`).

    Raises
    ------
    InvalidRegistrationError
        If a vector is infinite or partly NaN.
    """
    if not isinstance(item, RegistrationItem):
        raise TypeError("from_parent_components takes one RegistrationItem; see Registration.choose_item")
    pre_matrix, grid, post_matrix = item.registered_to_source_parts()
    pre = _matrix_or_none(pre_matrix)
    post = _matrix_or_none(post_matrix)
    components: list[tuple[str, vtk.vtkAbstractTransform]] = []
    if grid is None:
        if pre is not None:
            components.append(("pre", _linear_transform(pre)))
    else:
        moved = None if pre is None else transform_chain.orthogonal_geometry(pre @ grid.index_to_lps)
        if pre is None:
            components.append(("grid", _grid_transform(grid.index_to_lps, grid, progress=progress)))
        elif moved is not None:
            components.append(("pre", _linear_transform(pre)))
            components.append(("grid", _grid_transform(pre @ grid.index_to_lps, grid, progress=progress)))
        else:
            linear = np.linalg.inv(pre[:3, :3])
            components.append(("grid", _grid_transform(grid.index_to_lps, grid, linear, progress)))
            components.append(("pre", _linear_transform(pre)))
    if post is not None:
        components.append(("post", _linear_transform(post)))
    return components


def nodes_from_registration(
    item: RegistrationItem,
    scene: slicer.vtkMRMLScene,
    name: str = "Deformable registration",
    progress: Progress | None = None,
) -> list[slicer.vtkMRMLTransformNode]:
    """Create transform nodes in `scene` that reproduce one item's fixed -> moving mapping.

    The nodes are chained parent -> child in the order of :func:`from_parent_components`
    (pre-matrix node, grid node, post-matrix node — or grid, pre, post for a shearing pre-matrix;
    one linear node for a Spatial Registration (66.1) item); each stores its part as a
    **from-parent** transform, the grid as a :class:`vtkMRMLGridTransformNode` in RAS. Place the
    moving volume under the **last** node of the returned list: its from-world transform is then
    :meth:`RegistrationItem.map_points`. An identity item gives one linear identity node, so that
    there is always a node to place the moving volume under.

    `progress` follows the copying of the grid's vectors (see :func:`from_parent_components`).

    Returns
    -------
    list of vtkMRMLTransformNode
        Root first, leaf (the node for the moving volume) last.
    """
    components = from_parent_components(item, progress) or [("post", _linear_transform(np.eye(4)))]
    nodes: list[slicer.vtkMRMLTransformNode] = []
    for role, transform in components:
        node_class = "vtkMRMLGridTransformNode" if role == "grid" else "vtkMRMLLinearTransformNode"
        node = scene.AddNewNodeByClass(node_class, scene.GenerateUniqueName(f"{name} {role}"))
        if role == "grid":
            node.SetAndObserveTransformFromParent(transform)
        else:
            node.SetMatrixTransformFromParent(transform.GetMatrix())
        if nodes:
            node.SetAndObserveTransformNodeID(nodes[-1].GetID())
        nodes.append(node)
    return nodes


def _matrix_or_none(matrix: RegistrationMatrix | None) -> np.ndarray | None:
    if matrix is None or matrix.is_identity:
        return None
    return np.array(matrix.matrix_lps)


def _linear_transform(matrix_lps: np.ndarray) -> vtk.vtkTransform:
    transform = vtk.vtkTransform()
    transform.SetMatrix(vtk_matrix(geometry.lps_to_ras_matrix(matrix_lps)))
    return transform


def _grid_transform(
    index_to_lps: np.ndarray,
    grid: DisplacementGrid,
    linear: np.ndarray | None = None,
    progress: Progress | None = None,
) -> vtk.vtkAbstractTransform:
    """A from-parent vtkOrientedGridTransform (RAS) on `index_to_lps` holding the grid's vectors
    (times `linear`, if given), copied plane by plane: float64 exists for one plane at most, and
    the file's pages under a plane read from a REG's memory map leave resident memory once copied."""
    index_to_ras = geometry.lps_to_ras_index_matrix(index_to_lps)
    origin_ras, direction_ras, spacing = transform_chain.orthogonal_geometry(index_to_ras) or _raise_skewed(
        index_to_lps
    )
    n_i, n_j, n_k = grid.dimensions
    report = progress or ignore_progress
    vectors_ras = np.empty((n_k, n_j, n_i, 3), dtype=np.float32)
    for k, plane in enumerate(grid.checked_planes()):
        if linear is None:
            vectors_ras[k] = plane
        else:
            vectors_ras[k] = plane.astype(np.float64) @ linear.T
        geometry.lps_to_ras_vectors_in_place(vectors_ras[k])
        release_mapped_pages(plane)
        report((k + 1) / n_k, "Building the grid transform")
    vectors_ras = vectors_ras.reshape(-1, 3)
    image = vtk.vtkImageData()
    image.SetDimensions(n_i, n_j, n_k)
    image.SetOrigin(*origin_ras)
    image.SetSpacing(*spacing)
    array = numpy_support.numpy_to_vtk(vectors_ras, deep=False, array_type=vtk.VTK_FLOAT)
    array.SetName("DisplacementField")
    image.GetPointData().SetScalars(array)
    direction = np.eye(4)
    direction[:3, :3] = direction_ras
    transform = slicer.vtkOrientedGridTransform()
    transform.SetDisplacementGridData(image)
    transform.SetGridDirectionMatrix(vtk_matrix(direction))
    transform.SetInterpolationModeToLinear()
    return transform


def interpolate_grids_linearly(node: slicer.vtkMRMLTransformNode) -> bool:
    """Interpolate every displacement grid `node` stores (in either direction, also inside a composite)
    trilinearly, as ITK and every REG receiver do; True if one was interpolated otherwise.

    Slicer reads every grid from a file with cubic interpolation (``vtkITKTransformConverter.h`` lines
    1230-1231 at Slicer 583e9b37), a scene's saved grids included; sampled cubically, a grid maps up to
    about a millimetre differently between its points.
    """
    changed = False
    for stored in (node.GetTransformFromParent(), node.GetTransformToParent()):
        if stored is None:
            continue
        components = vtk.vtkCollection()
        slicer.vtkMRMLTransformNode.FlattenGeneralTransform(components, stored)
        for index in range(components.GetNumberOfItems()):
            component = components.GetItemAsObject(index)
            if component.IsA("vtkGridTransform") and component.GetInterpolationMode() != vtk.VTK_LINEAR_INTERPOLATION:
                component.SetInterpolationModeToLinear()
                changed = True
    return changed


def _raise_skewed(index_to_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    raise InvalidRegistrationError(
        f"The grid axes are not orthogonal: {np.round(index_to_lps, 6).tolist()}; a grid transform "
        "cannot represent a skewed grid."
    )


# ----------------------------------------------------------------------------------------------
# Scene helpers for the Slicer module (no Qt)


def volume_geometry(volume_node: slicer.vtkMRMLVolumeNode) -> tuple[np.ndarray, tuple[int, int, int]]:
    """``(ijk_to_lps, (n_i, n_j, n_k))`` of a volume node: its own voxel grid, parent transforms ignored."""
    if volume_node is None or volume_node.GetImageData() is None:
        name = None if volume_node is None else volume_node.GetName()
        raise TransformInputError(f"Volume {name!r} has no image data; load the image first.")
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    dims = tuple(int(n) for n in volume_node.GetImageData().GetDimensions())
    return geometry.ras_to_lps_index_matrix(array_from_vtk_matrix(matrix)), dims


def resolve_fixed_and_moving(
    transform_node: slicer.vtkMRMLTransformNode,
    fixed_node: slicer.vtkMRMLVolumeNode | None = None,
    moving_node: slicer.vtkMRMLVolumeNode | None = None,
    scene: slicer.vtkMRMLScene | None = None,
) -> tuple[slicer.vtkMRMLVolumeNode, slicer.vtkMRMLVolumeNode]:
    """Find the fixed and moving volumes of a registration transform.

    Order of precedence: the arguments; the node references that registration modules set on their
    output transform (``spatialRegistrationFixed`` / ``spatialRegistrationMoving``); for the moving
    volume only, the one volume placed under `transform_node`.

    Raises
    ------
    TransformInputError
        If a volume cannot be found or is ambiguous, if both are the same node, or if the fixed
        volume is itself transformed (its world position would no longer be its DICOM position).
    """
    if transform_node is None:
        raise TransformInputError("No transform node was given; select the registration result transform.")
    scene = scene or transform_node.GetScene()
    name = transform_node.GetName()
    fixed = fixed_node or transform_node.GetNodeReference(transform_node.GetFixedNodeReferenceRole())
    moving = moving_node or transform_node.GetNodeReference(transform_node.GetMovingNodeReferenceRole())
    if moving is None and scene is not None:
        under = [
            node
            for node in _nodes_of_class(scene, "vtkMRMLVolumeNode")
            if node.GetParentTransformNode() is not None
            and node.GetParentTransformNode().GetID() == transform_node.GetID()
        ]
        if len(under) > 1:
            raise TransformInputError(
                f"Several volumes are placed under transform '{name}' ("
                f"{', '.join(n.GetName() for n in under)}); choose the moving volume explicitly."
            )
        moving = under[0] if under else None
    if fixed is None:
        raise TransformInputError(
            f"The fixed volume of transform '{name}' is unknown: it has no '"
            f"{transform_node.GetFixedNodeReferenceRole()}' reference. Choose the fixed volume."
        )
    if moving is None:
        raise TransformInputError(
            f"The moving volume of transform '{name}' is unknown: it has no '"
            f"{transform_node.GetMovingNodeReferenceRole()}' reference and no volume is placed under it. "
            "Choose the moving volume."
        )
    if fixed.GetID() is not None and fixed.GetID() == moving.GetID():
        raise TransformInputError(f"The fixed and the moving volume are the same node ('{fixed.GetName()}').")
    if fixed.GetParentTransformNode() is not None:
        raise TransformInputError(fixed_under_transform_message(fixed))
    return fixed, moving


def fixed_under_transform_message(fixed: slicer.vtkMRMLVolumeNode) -> str:
    """Why a fixed volume under a transform cannot be exported, and what to do.

    A REG's registered frame is the fixed series' patient coordinates. Slicer shows a volume under a
    transform moved by it, so the alignment the user sees in the scene is relative to the moved fixed
    image, while the file would map from where the DICOM images are: the two would disagree by the
    fixed volume's transform.
    """
    return (
        f"The fixed volume '{fixed.GetName()}' is under transform '{fixed.GetParentTransformNode().GetName()}', "
        "so Slicer shows it away from where its DICOM series places it; a DICOM registration maps from the "
        "fixed series' own patient coordinates, so what you see aligned is not what would be written. Take the "
        "fixed volume out from under the transform (Data module: drag it to the top level, or Transforms "
        "module), check the alignment, and export again; if the registration was computed with the fixed "
        "image moved, compute it again with the fixed volume untransformed."
    )


def _nodes_of_class(scene: slicer.vtkMRMLScene, class_name: str) -> list[slicer.vtkMRMLNode]:
    collection = scene.GetNodesByClass(class_name)
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]


def write_with_storage_node(
    storage: slicer.vtkMRMLStorageNode, node: slicer.vtkMRMLNode, path: Path, what: str
) -> None:
    """Write `node` through `storage` (its file name already set) as Slicer saves it.

    Raises
    ------
    OutputError
        When Slicer fails; the message names `what` and `path` (the user's file, not a temporary one)
        and folds Slicer's native log into one sentence.
    """
    with captured_native_output() as native:
        written = storage.WriteData(node)
    if not written:
        detail = native.summary() or summarize(storage.GetUserMessages().GetAllMessagesAsString())
        # Slicer names the temporary file it was given; the user knows only `path`
        temporary = Path(storage.GetFileName())
        detail = detail.replace(str(temporary), str(path)).replace(temporary.name, path.name)
        raise OutputError(f"Slicer could not write the {what} to {path}{': ' + detail if detail else ''}.")
