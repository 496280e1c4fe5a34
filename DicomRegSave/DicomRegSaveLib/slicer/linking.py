"""Applying loaded registrations to their volumes whenever those volumes arrive in the scene.

A REG may be loaded before its moving series, in the same DICOM browser batch, or long after it.
Each transform chain made from a registration item keeps, on its leaf node, which instances it
applies to (MRML attributes, so the link survives saving the scene). :func:`link_registrations`
matches those against the ``DICOM.instanceUIDs`` of the loaded volumes — the way Slicer's DICOM
loaders identify a volume — sets the ``spatialRegistrationFixed`` / ``Moving`` references and places
the moving volume under the leaf. It is idempotent: calling it again changes nothing unless a new
volume arrived. :class:`RegistrationWatcher` calls it when a volume gets its instance UIDs.

Order of events in Slicer's ``DICOMScalarVolumePlugin.load`` (Modules/Scripted/DICOMPlugins/
DICOMScalarVolumePlugin.py, ``loadFilesWithSeriesReader`` then ``setVolumeNodeProperties``; lines 462,
483 and 510 at Slicer commit 583e9b37): the node is added to the scene, then
``addSeriesInSubjectHierarchy`` fills its series item, and only then is ``DICOM.instanceUIDs`` set with
``volumeNode.SetAttribute`` — so a volume is recognised on the ``ModifiedEvent`` of that call, not when
it is added.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import slicer
import vtk

from DicomRegSaveLib.inputs.series import HeaderLookup
from DicomRegSaveLib.slicer.provenance import instance_header, instance_uids, scalar_volumes

#: Leaf-node attributes recording what a loaded registration item applies to.
MOVING_INSTANCES_ATTRIBUTE = "DicomRegSave.movingInstanceUIDs"
FIXED_INSTANCES_ATTRIBUTE = "DicomRegSave.fixedInstanceUIDs"
REGISTERED_FRAME_ATTRIBUTE = "DicomRegSave.registeredFrameOfReferenceUID"
APPLY_ATTRIBUTE = "DicomRegSave.applyToMoving"
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


def link_registrations(scene: slicer.vtkMRMLScene, header_lookup: HeaderLookup | None = None) -> list[str]:
    """Connect every loaded registration item with its loaded fixed and moving volumes.

    Moving volume: among the loaded volumes whose instances are all among the item's moving
    instances, the most recently loaded one (scene order). When it is not yet the leaf's moving
    reference, the reference is set and (unless the link says otherwise) the volume is placed under
    the leaf; an earlier copy that the leaf was applied to is taken out from under it. Fixed volume:
    the most recently loaded volume listed among the fixed instances, else (with `header_lookup`)
    in the registered frame of reference; set only while the leaf has no fixed reference.

    Returns
    -------
    list of str
        Sentences for the user about what changed and could surprise them (several copies of a
        series, a volume taken from under another transform); empty when nothing changed.
    """
    messages: list[str] = []
    volumes = [volume for volume in scalar_volumes(scene) if instance_uids(volume)]
    for leaf in registration_leaves(scene):
        link = RegistrationLink.of(leaf)
        moving_candidates = [v for v in volumes if set(instance_uids(v)) <= link.moving_instance_uids]
        if moving_candidates:
            messages += _set_moving(leaf, moving_candidates, link.apply_to_moving)
        if leaf.GetNodeReference(leaf.GetFixedNodeReferenceRole()) is None:
            moving = leaf.GetNodeReference(leaf.GetMovingNodeReferenceRole())
            fixed_candidates = [
                v
                for v in volumes
                if v is not moving and v not in moving_candidates and _is_fixed(v, link, header_lookup)
            ]
            if fixed_candidates:
                leaf.SetNodeReferenceID(leaf.GetFixedNodeReferenceRole(), fixed_candidates[-1].GetID())
    return messages


def _set_moving(
    leaf: slicer.vtkMRMLTransformNode, candidates: list[slicer.vtkMRMLVolumeNode], apply: bool
) -> list[str]:
    newest = candidates[-1]
    current = leaf.GetNodeReference(leaf.GetMovingNodeReferenceRole())
    if current is newest:
        acquisition = acquisition_transform(newest)
        if apply and acquisition is not None and acquisition.GetParentTransformNode() is None:
            # The loader put the volume under its acquisition transform after the registration was applied.
            acquisition.SetAndObserveTransformNodeID(leaf.GetID())
        return []
    messages = []
    if len(candidates) > 1:
        messages.append(
            f"The moving series of registration '{leaf.GetName()}' is loaded {len(candidates)} times "
            f"({', '.join(repr(v.GetName()) for v in candidates)}); the registration is applied to the most "
            f"recently loaded one, '{newest.GetName()}'."
        )
    if current is not None:
        earlier = acquisition_transform(current) or current
        if _parent_id(earlier) == leaf.GetID():
            earlier.SetAndObserveTransformNodeID(None)
            messages.append(f"'{current.GetName()}' is no longer under registration '{leaf.GetName()}'.")
    leaf.SetNodeReferenceID(leaf.GetMovingNodeReferenceRole(), newest.GetID())
    # The registration maps the fixed frame to the moving image's patient coordinates; an acquisition
    # transform maps those to the regularised voxel grid, so it stays between the volume and the leaf.
    target = acquisition_transform(newest) or newest
    if apply and _parent_id(target) != leaf.GetID():
        previous = target.GetParentTransformNode()
        if previous is not None:
            messages.append(
                f"'{target.GetName()}' was under transform '{previous.GetName()}'; it is now under "
                f"'{leaf.GetName()}' from the registration file."
            )
        target.SetAndObserveTransformNodeID(leaf.GetID())
    return messages


def acquisition_transform(volume: slicer.vtkMRMLVolumeNode) -> slicer.vtkMRMLTransformNode | None:
    """The acquisition transform Slicer's scalar volume loader put the volume under, if any.

    For a series with irregular slices (gantry tilt, varying spacing) ``DICOMScalarVolumePlugin``
    (AcquisitionModeling.createAcquisitionTransform, DICOMScalarVolumePlugin.py lines 808-831 at Slicer
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


def _parent_id(volume: slicer.vtkMRMLVolumeNode) -> str | None:
    parent = volume.GetParentTransformNode()
    return None if parent is None else parent.GetID()


def _is_fixed(volume: slicer.vtkMRMLVolumeNode, link: RegistrationLink, header_lookup: HeaderLookup | None) -> bool:
    uids = instance_uids(volume)
    if link.fixed_instance_uids:
        return set(uids) <= link.fixed_instance_uids
    header = instance_header(header_lookup, uids[0], ["FrameOfReferenceUID"])
    return header is not None and str(header.get("FrameOfReferenceUID", "")) == link.registered_frame_of_reference_uid


class RegistrationWatcher:
    """Runs :func:`link_registrations` when a volume of the scene gets its DICOM instance UIDs, and when a
    DICOM volume is put under another transform (Slicer's loader may add an acquisition transform).

    Parameters
    ----------
    scene:
        The scene to observe (in Slicer ``slicer.mrmlScene``, which lives as long as the application).
    header_lookup:
        Called at each link to get the current SOP Instance UID -> header/file lookup (the DICOM
        database may be opened or changed during the session), or ``None``.
    notify:
        Receives the sentences of one :func:`link_registrations` call, one per line, when there are any.
    """

    def __init__(
        self,
        scene: slicer.vtkMRMLScene,
        header_lookup: Callable[[], HeaderLookup | None],
        notify: Callable[[str], None],
    ) -> None:
        self.scene = scene
        self.header_lookup = header_lookup
        self.notify = notify
        self._scene_tags: list[int] = []
        #: Volume ID -> (volume, observer tag, parent transform ID when last seen).
        self._volumes: dict[str, tuple[slicer.vtkMRMLVolumeNode, int, str | None]] = {}
        self._linking = False

    @property
    def started(self) -> bool:
        return bool(self._scene_tags)

    def start(self) -> None:
        """Observe the scene (again a no-op when started) and link what is already loaded."""
        if not self.started:
            self._scene_tags = [
                self.scene.AddObserver(slicer.vtkMRMLScene.NodeAddedEvent, self._on_node_added),
                self.scene.AddObserver(slicer.vtkMRMLScene.NodeAboutToBeRemovedEvent, self._on_node_removed),
            ]
            for volume in scalar_volumes(self.scene):
                self._watch(volume)
        self.link()

    def stop(self) -> None:
        for tag in self._scene_tags:
            self.scene.RemoveObserver(tag)
        self._scene_tags = []
        for volume, tag, _ in self._volumes.values():
            volume.RemoveObserver(tag)
        self._volumes = {}

    def link(self) -> None:
        if self._linking:  # linking moves volumes, which calls back here
            return
        self._linking = True
        try:
            messages = link_registrations(self.scene, self.header_lookup())
        finally:
            self._linking = False
        for volume_id, (volume, tag, _) in list(self._volumes.items()):
            self._volumes[volume_id] = (volume, tag, _parent_id(volume))
        if messages:
            self.notify("\n".join(messages))

    def _watch(self, volume: slicer.vtkMRMLVolumeNode) -> None:
        """Observe a volume: its ModifiedEvent until it has instance UIDs, then its TransformModifiedEvent."""
        if volume.GetID() in self._volumes:
            return
        if instance_uids(volume):
            tag = volume.AddObserver(
                slicer.vtkMRMLTransformableNode.TransformModifiedEvent, self._on_transform_modified
            )
        else:
            tag = volume.AddObserver(vtk.vtkCommand.ModifiedEvent, self._on_volume_modified)
        self._volumes[volume.GetID()] = (volume, tag, _parent_id(volume))

    def _unwatch(self, volume_id: str) -> None:
        volume, tag, _ = self._volumes.pop(volume_id)
        volume.RemoveObserver(tag)

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def _on_node_added(self, caller: object, event: str, node: slicer.vtkMRMLNode) -> None:
        if node is None or not node.IsA("vtkMRMLScalarVolumeNode"):
            return
        self._watch(node)
        if instance_uids(node):
            self.link()

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def _on_node_removed(self, caller: object, event: str, node: slicer.vtkMRMLNode) -> None:
        if node is not None and node.GetID() in self._volumes:
            self._unwatch(node.GetID())

    def _on_volume_modified(self, volume: slicer.vtkMRMLVolumeNode, event: str) -> None:
        if not instance_uids(volume):
            return
        self._unwatch(volume.GetID())
        self._watch(volume)
        self.link()

    def _on_transform_modified(self, volume: slicer.vtkMRMLVolumeNode, event: str) -> None:
        # Also sent when a parent transform's matrix changes (the user editing it); only a new parent matters.
        _, tag, parent = self._volumes[volume.GetID()]
        if _parent_id(volume) != parent:
            self.link()
