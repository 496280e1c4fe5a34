"""Applying loaded registrations to their volumes whenever those volumes arrive in the scene.

A REG may be loaded before its moving series, in the same DICOM browser batch, or long after it, and a
scene holding it may be saved and opened again after a restart. Each transform chain made from a
registration item keeps, on its leaf node, which instances it applies to (MRML attributes, so the link
survives saving the scene). :func:`link_registrations` matches those against the DICOM identity of the
volumes and sets the ``spatialRegistrationFixed`` / ``Moving`` references, placing the moving volume
under the leaf.

DICOM identity, not copied attributes: a volume is a copy of a DICOM series only if its subject
hierarchy item carries the instance UIDs that ``DICOMPlugin.addSeriesInSubjectHierarchy`` sets
(Modules/Scripted/DICOMLib/DICOMPlugin.py, ``SetItemUID(seriesItemID, GetDICOMInstanceUIDName(), …)``
at Slicer 583e9b37). Clones and derived volumes copy the node's ``DICOM.instanceUIDs`` attribute
(``vtkMRMLNode::CopyContent``) but their items carry no DICOM UIDs
(``vtkSlicerSubjectHierarchyModuleLogic::CloneSubjectHierarchyItem``, ``vtkSlicerVolumesLogic::CloneVolume``).

A saved scene forgets how a grid is interpolated, and Slicer reads DicomRegSave's linear grids back as cubic
ones; the watcher makes them linear again after the load (:func:`restore_linear_interpolation`).

Never inside Slicer's events: :class:`RegistrationWatcher` only records which nodes were added and links
later, once, through a deferral the caller provides (``qt.QTimer.singleShot(0, …)`` in Slicer). Slicer's
scalar loader puts an irregular series under its acquisition transform and then checks the slice corners
through the volume's whole transform chain (``DICOMScalarVolumePlugin.AcquisitionModeling.
createAcquisitionTransform``); a registration placed above that chain during the load would fail that check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import slicer
import vtk

from DicomRegSaveLib.mrml.nodes import interpolate_grids_linearly
from DicomRegSaveLib.slicer.attributes import (
    APPLIED_TO_REFERENCE_ROLE,
    APPLY_ATTRIBUTE,
    FIXED_INSTANCES_ATTRIBUTE,
    GRID_INTERPOLATION_ATTRIBUTE,
    MOVING_INSTANCES_ATTRIBUTE,
    REGISTERED_FRAME_ATTRIBUTE,
)
from DicomRegSaveLib.slicer.provenance import scalar_volumes

#: The value of GRID_INTERPOLATION_ATTRIBUTE on the grids made from a REG: DICOM's interpolation of Vector Grid Data.
LINEAR = "linear"

#: How DICOMScalarVolumePlugin names the acquisition transform of a volume (see :func:`acquisition_transform`).
ACQUISITION_TRANSFORM_SUFFIX = " acquisition transform"


@dataclass(frozen=True)
class RegistrationLink:
    """What one loaded registration item applies to.

    Attributes
    ----------
    moving_instance_uids:
        SOP Instance UIDs of the item's source (moving) images.
    fixed_instance_uids:
        SOP Instance UIDs the REG lists for the registered (fixed) frame (identity items); may be empty.
    registered_frame_of_reference_uid:
        The REG's Frame of Reference UID: a loaded volume in that frame is the fixed image.
    apply_to_moving:
        Place the moving volume under the leaf node when it is loaded (else only set the reference).
    """

    moving_instance_uids: frozenset[str]
    fixed_instance_uids: frozenset[str]
    registered_frame_of_reference_uid: str
    apply_to_moving: bool = True

    def store(self, leaf: slicer.vtkMRMLTransformNode) -> None:
        """Record the link on the leaf transform node of the item's chain."""
        leaf.SetAttribute(MOVING_INSTANCES_ATTRIBUTE, " ".join(sorted(self.moving_instance_uids)))
        leaf.SetAttribute(FIXED_INSTANCES_ATTRIBUTE, " ".join(sorted(self.fixed_instance_uids)))
        leaf.SetAttribute(REGISTERED_FRAME_ATTRIBUTE, self.registered_frame_of_reference_uid)
        leaf.SetAttribute(APPLY_ATTRIBUTE, "1" if self.apply_to_moving else "0")

    @classmethod
    def of(cls, leaf: slicer.vtkMRMLNode) -> RegistrationLink | None:
        """The link stored on `leaf`, or ``None`` if it is not the leaf of a loaded registration."""
        moving = leaf.GetAttribute(MOVING_INSTANCES_ATTRIBUTE)
        if not moving:
            return None
        return cls(
            frozenset(moving.split()),
            frozenset((leaf.GetAttribute(FIXED_INSTANCES_ATTRIBUTE) or "").split()),
            leaf.GetAttribute(REGISTERED_FRAME_ATTRIBUTE) or "",
            leaf.GetAttribute(APPLY_ATTRIBUTE) != "0",
        )


def registration_leaves(scene: slicer.vtkMRMLScene) -> list[slicer.vtkMRMLTransformNode]:
    """Leaf nodes of loaded registration items in the scene, in the order they were added."""
    collection = scene.GetNodesByClass("vtkMRMLTransformNode")
    nodes = [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]
    return [node for node in nodes if RegistrationLink.of(node) is not None]


def mark_linear_grids(nodes: Iterable[slicer.vtkMRMLTransformNode]) -> None:
    """Mark the grid transform nodes among `nodes` (made from a REG, linearly interpolated) as DicomRegSave's,
    so that :func:`restore_linear_interpolation` finds them again in a scene loaded from a file."""
    for node in nodes:
        if node.IsA("vtkMRMLGridTransformNode"):
            node.SetAttribute(GRID_INTERPOLATION_ATTRIBUTE, LINEAR)


def restore_linear_interpolation(nodes: Iterable[slicer.vtkMRMLNode]) -> list[slicer.vtkMRMLGridTransformNode]:
    """Interpolate DicomRegSave's grids among `nodes` linearly again, as they were made; returns the nodes changed.

    A scene file does not keep a grid's interpolation mode, and Slicer reads a grid transform back with
    cubic interpolation: ``vtkITKTransformConverter::SetVTKOrientedGridTransformFromITKImage`` calls
    ``SetInterpolationModeToCubic`` (Libs/MRML/Core/vtkITKTransformConverter.h lines 1230-1231 at Slicer
    583e9b37), reached from ``vtkMRMLTransformStorageNode::ReadFromImageFile`` for displacement field files
    (vtkMRMLTransformStorageNode.cxx line 333) and, for the scene's default ``.h5`` files, from
    ``ReadFromTransformFile`` through ``CreateVTKTransformFromITK`` and ``SetVTKOrientedGridTransformFromITK``
    (vtkITKTransformConverter.h line 1133). Cubic interpolation maps up to about a millimetre differently
    from the registration DICOM defines (trilinear). Only nodes carrying GRID_INTERPOLATION_ATTRIBUTE
    (:func:`mark_linear_grids`) are changed: other grids keep what their owner chose.
    """
    return [
        node
        for node in nodes
        if node.IsA("vtkMRMLGridTransformNode")
        and node.GetAttribute(GRID_INTERPOLATION_ATTRIBUTE) == LINEAR
        and interpolate_grids_linearly(node)
    ]


def own_grids(scene: slicer.vtkMRMLScene) -> list[slicer.vtkMRMLGridTransformNode]:
    """The grid transform nodes DicomRegSave made from REGs (:func:`mark_linear_grids`) in the scene."""
    collection = scene.GetNodesByClass("vtkMRMLGridTransformNode")
    nodes = [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]
    return [node for node in nodes if node.GetAttribute(GRID_INTERPOLATION_ATTRIBUTE) == LINEAR]


def dicom_instance_uids(volume: slicer.vtkMRMLVolumeNode) -> frozenset[str]:
    """The SOP Instance UIDs on the volume's subject hierarchy item; empty for a clone or derived volume."""
    scene = volume.GetScene()
    sh_node = scene.GetSubjectHierarchyNode() if scene is not None else None
    item = sh_node.GetItemByDataNode(volume) if sh_node is not None else 0
    if not item:
        return frozenset()
    uids = sh_node.GetItemUID(item, slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMInstanceUIDName())
    # DICOMPlugin.addSeriesInSubjectHierarchy writes "Unknown" for a file without SOP Instance UID.
    return frozenset((uids or "").split()) - {"Unknown"}


def _frame_of_reference_uid(volume: slicer.vtkMRMLVolumeNode) -> str:
    sh_node = volume.GetScene().GetSubjectHierarchyNode()
    item = sh_node.GetItemByDataNode(volume)
    name = slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMFrameOfReferenceUIDAttributeName()
    return sh_node.GetItemAttribute(item, name) or ""


def link_registrations(
    scene: slicer.vtkMRMLScene,
    new_leaves: Iterable[slicer.vtkMRMLTransformNode] = (),
    arrived_volumes: Iterable[slicer.vtkMRMLVolumeNode] = (),
) -> list[str]:
    """Connect loaded registration items with the volumes of their DICOM series.

    A new leaf (a registration just loaded or imported) without a moving reference is linked with the
    volumes already in the scene; every leaf is offered the volumes that just arrived. Only volumes with
    a DICOM identity (:func:`dicom_instance_uids`) count. Moving volume: the most recently added of the
    candidates whose instances are all among the item's moving instances; it becomes the moving reference
    and (unless the link says otherwise) goes under the leaf — its acquisition transform, if the loader made
    one, stays between them. A volume that arrived already being a registration's moving reference (a scene
    import brings both) is left to it. When a new copy takes over, the volume DicomRegSave had placed under
    the leaf is taken out only if it is still there; whatever the user did elsewhere is left alone. Fixed
    volume: listed among the fixed instances, else in the registered frame of reference; set only while the
    leaf has none.

    Returns
    -------
    list of str
        Sentences for the user about what changed and could surprise them (several copies of a
        series, a volume taken from under another transform); empty when nothing did.
    """
    identities: dict[str, frozenset[str]] = {}

    def uids(volume):
        if volume.GetID() not in identities:
            identities[volume.GetID()] = dicom_instance_uids(volume)
        return identities[volume.GetID()]

    arrived = [volume for volume in arrived_volumes if uids(volume)]
    new_ids = {leaf.GetID() for leaf in new_leaves}
    if not arrived and not new_ids:
        return []
    leaves = registration_leaves(scene)
    moving_references = {
        leaf.GetNodeReferenceID(leaf.GetMovingNodeReferenceRole())
        for leaf in leaves
        if leaf.GetNodeReferenceID(leaf.GetMovingNodeReferenceRole())
    }
    in_scene = None
    messages: list[str] = []
    for leaf in leaves:
        link = RegistrationLink.of(leaf)
        new = leaf.GetID() in new_ids
        if new:
            if in_scene is None:
                in_scene = [volume for volume in scalar_volumes(scene) if uids(volume)]
            pool = in_scene
        else:
            pool = [volume for volume in arrived if volume.GetID() not in moving_references]
        moving = leaf.GetNodeReference(leaf.GetMovingNodeReferenceRole())
        if not (new and moving is not None):
            candidates = [volume for volume in pool if uids(volume) <= link.moving_instance_uids]
            if candidates:
                messages += _set_moving(leaf, candidates, link.apply_to_moving)
                moving = candidates[-1]
        if leaf.GetNodeReference(leaf.GetFixedNodeReferenceRole()) is None:
            fixed = [
                volume
                for volume in pool
                if volume is not moving
                and not uids(volume) <= link.moving_instance_uids
                and _is_fixed(volume, uids(volume), link)
            ]
            if fixed:
                leaf.SetNodeReferenceID(leaf.GetFixedNodeReferenceRole(), fixed[-1].GetID())
    return messages


def pending_notes(leaves: Iterable[slicer.vtkMRMLTransformNode]) -> list[str]:
    """One sentence per fixed or moving image of `leaves` that is not loaded yet."""
    notes = []
    for leaf in leaves:
        if leaf.GetNodeReference(leaf.GetMovingNodeReferenceRole()) is None:
            notes.append(
                f"The moving image of registration '{leaf.GetName()}' is not loaded yet; it is placed under the "
                "registration when it is loaded."
            )
        if leaf.GetNodeReference(leaf.GetFixedNodeReferenceRole()) is None:
            notes.append(
                f"The fixed image of registration '{leaf.GetName()}' is not loaded yet; it is recognised when it "
                "is loaded."
            )
    return notes


def _set_moving(
    leaf: slicer.vtkMRMLTransformNode, candidates: list[slicer.vtkMRMLVolumeNode], apply: bool
) -> list[str]:
    newest = candidates[-1]
    messages = []
    if len(candidates) > 1:
        messages.append(
            f"The moving series of registration '{leaf.GetName()}' is loaded {len(candidates)} times "
            f"({', '.join(repr(v.GetName()) for v in candidates)}); the registration is applied to the most "
            f"recently loaded one, '{newest.GetName()}'."
        )
    applied = leaf.GetNodeReference(APPLIED_TO_REFERENCE_ROLE)
    if applied is not None and applied is not newest:
        earlier = acquisition_transform(applied) or applied
        if _parent_id(earlier) == leaf.GetID():
            earlier.SetAndObserveTransformNodeID(None)
            messages.append(f"'{applied.GetName()}' is no longer under registration '{leaf.GetName()}'.")
    leaf.SetNodeReferenceID(leaf.GetMovingNodeReferenceRole(), newest.GetID())
    if not apply:
        return messages
    # The registration maps the fixed frame to the moving image's patient coordinates; an acquisition
    # transform maps those to the regularised voxel grid, so it stays between the volume and the leaf.
    target = acquisition_transform(newest) or newest
    if _parent_id(target) != leaf.GetID():
        previous = target.GetParentTransformNode()
        if previous is not None:
            messages.append(
                f"'{target.GetName()}' was under transform '{previous.GetName()}'; it is now under "
                f"'{leaf.GetName()}' from the registration file."
            )
        target.SetAndObserveTransformNodeID(leaf.GetID())
    leaf.SetNodeReferenceID(APPLIED_TO_REFERENCE_ROLE, newest.GetID())
    return messages


def acquisition_transform(volume: slicer.vtkMRMLVolumeNode) -> slicer.vtkMRMLTransformNode | None:
    """The acquisition transform Slicer's scalar volume loader put the volume under, if any.

    For a series with irregular slices (gantry tilt, varying spacing) ``DICOMScalarVolumePlugin``
    (AcquisitionModeling.gridTransformFromCorners, DICOMScalarVolumePlugin.py lines 808-831 at Slicer
    commit 583e9b37) adds a grid transform named ``<volume name> acquisition transform`` (made unique)
    and places the volume under it, unless the user chose to harden it.
    """
    parent = volume.GetParentTransformNode()
    if (
        parent is not None
        and parent.IsA("vtkMRMLGridTransformNode")
        and (parent.GetName() or "").startswith(f"{volume.GetName()}{ACQUISITION_TRANSFORM_SUFFIX}")
    ):
        return parent
    return None


def _parent_id(node: slicer.vtkMRMLTransformableNode) -> str | None:
    parent = node.GetParentTransformNode()
    return None if parent is None else parent.GetID()


def _is_fixed(volume: slicer.vtkMRMLVolumeNode, uids: frozenset[str], link: RegistrationLink) -> bool:
    if link.fixed_instance_uids:
        return uids <= link.fixed_instance_uids
    return _frame_of_reference_uid(volume) == link.registered_frame_of_reference_uid


class RegistrationWatcher:
    """Links registrations with the volumes added to a scene, later and once per batch of additions.

    The scene observer only records the IDs of added volumes and transforms (O(1) per event) and asks
    `defer` to run :meth:`flush` once control returns to the event loop; while the scene imports,
    closes or batch-processes nothing is scheduled, and the recorded nodes are linked once that ends
    (node references are remapped only at the end of ``vtkMRMLScene::Import``). At scene close the
    watcher stops; the DICOM plugin starts it again on the next REG load or scene import that brings one.

    Parameters
    ----------
    scene:
        The scene to observe (in Slicer ``slicer.mrmlScene``, which lives as long as the application).
    defer:
        ``defer(function)`` calls `function` later, after the current event and the code that caused it
        (``lambda f: qt.QTimer.singleShot(0, f)`` in Slicer).
    notify:
        Receives the sentences of one link, one per line, when there are any.
    """

    def __init__(
        self,
        scene: slicer.vtkMRMLScene,
        defer: Callable[[Callable[[], None]], None],
        notify: Callable[[str], None],
    ) -> None:
        self.scene = scene
        self.defer = defer
        self.notify = notify
        self._tags: list[int] = []
        self._added_volumes: list[str] = []
        self._added_transforms: list[str] = []
        self._scheduled = False

    @property
    def started(self) -> bool:
        return bool(self._tags)

    def start(self) -> None:
        """Observe the scene (a no-op when started); registrations already in it that wait for their
        moving volume are linked at the next turn of the event loop."""
        if self.started:
            return
        scene_class = slicer.vtkMRMLScene
        self._tags = [
            self.scene.AddObserver(scene_class.NodeAddedEvent, self._on_node_added),
            self.scene.AddObserver(scene_class.EndImportEvent, self._on_end_state),
            self.scene.AddObserver(scene_class.EndBatchProcessEvent, self._on_end_state),
            self.scene.AddObserver(scene_class.StartCloseEvent, self._on_start_close),
        ]
        self._added_transforms += [node.GetID() for node in registration_leaves(self.scene) + own_grids(self.scene)]
        self._schedule()

    def stop(self) -> None:
        """Stop observing and forget what was recorded (scene close, application exit)."""
        for tag in self._tags:
            self.scene.RemoveObserver(tag)
        self._tags = []
        self._added_volumes = []
        self._added_transforms = []

    def flush(self) -> list[str]:
        """Link what was added since the last link, now; returns the sentences also sent to `notify`.

        DicomRegSave's grids among the added transforms get their linear interpolation back first
        (:func:`restore_linear_interpolation`: a scene load reads them back as cubic).

        Call it only outside scene events (the Python console, a module's button): it moves volumes.
        """
        volumes = self._take(self._added_volumes)
        transforms = self._take(self._added_transforms)
        restore_linear_interpolation(transforms)
        leaves = [node for node in transforms if RegistrationLink.of(node) is not None]
        messages = link_registrations(self.scene, leaves, volumes)
        for note in pending_notes(leaves):
            logging.info(note)
        if messages:
            self.notify("\n".join(messages))
        return messages

    def _take(self, node_ids: list[str]) -> list[slicer.vtkMRMLNode]:
        nodes = [self.scene.GetNodeByID(node_id) for node_id in dict.fromkeys(node_ids)]
        node_ids.clear()
        return [node for node in nodes if node is not None]

    def _busy(self) -> bool:
        return bool(self.scene.IsImporting() or self.scene.IsClosing() or self.scene.IsBatchProcessing())

    def _schedule(self) -> None:
        if self._scheduled or self._busy() or not (self._added_volumes or self._added_transforms):
            return
        self._scheduled = True
        self.defer(self._run)

    def _run(self) -> None:
        self._scheduled = False
        if not self.started or self._busy():
            return  # stopped meanwhile, or the end of the import/batch schedules again
        self.flush()

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def _on_node_added(self, caller: object, event: str, node: slicer.vtkMRMLNode) -> None:
        if node is None:
            return
        if node.IsA("vtkMRMLScalarVolumeNode"):
            self._added_volumes.append(node.GetID())
        elif node.IsA("vtkMRMLTransformNode"):
            self._added_transforms.append(node.GetID())
        else:
            return
        self._schedule()

    def _on_end_state(self, caller: object, event: str) -> None:
        self._schedule()

    def _on_start_close(self, caller: object, event: str) -> None:
        self.stop()
