"""Loading a DICOM REG in Slicer: what the DICOM browser shows about a file, and the transform nodes
it becomes, applied to the loaded moving volume.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import slicer
from pydicom.dataset import Dataset
from pydicom.uid import DeformableSpatialRegistrationStorage, SpatialRegistrationStorage

from DicomRegSaveLib.dicom_file import read_dicom_file
from DicomRegSaveLib.errors import DicomRegSaveError
from DicomRegSaveLib.inputs.lookup import HeaderLookup
from DicomRegSaveLib.model import Registration, RegistrationItem
from DicomRegSaveLib.mrml import nodes as mrml
from DicomRegSaveLib.reg.reader import read_dataset, read_registration
from DicomRegSaveLib.slicer.linking import RegistrationLink, dicom_instance_uids, mark_linear_grids
from DicomRegSaveLib.slicer.provenance import INSTANCE_UIDS_ATTRIBUTE, instance_header, scalar_volumes

#: SOP Classes the DICOM browser offers to load as registrations, and how the browser names them.
LOADABLE_SOP_CLASS_UIDS = {
    DeformableSpatialRegistrationStorage: "DICOM Deformable Spatial Registration",
    SpatialRegistrationStorage: "DICOM Spatial Registration",
}


@dataclass
class RegistrationFileInfo:
    """What the DICOM browser shows about a REG file before loading it."""

    path: Path
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str
    name: str
    tooltip: str
    referenced_instance_uids: list[str]


_DESCRIBE_KEYWORDS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "SeriesNumber",
    "SeriesDescription",
    "ContentLabel",
    "ContentDescription",
    "FrameOfReferenceUID",
    "SpecificCharacterSet",
    "ReferencedSeriesSequence",
    "StudiesContainingOtherReferencedInstancesSequence",
)


def describe_registration_file(path: str | os.PathLike) -> RegistrationFileInfo | None:
    """Describe a Deformable Spatial Registration file, or ``None`` if it is not one.

    Reads only top-level attributes (Vector Grid Data is skipped), so it is fast for the browser.
    Referenced instances are those listed in the Common Instance Reference module.
    """
    path = Path(path)
    try:
        header = read_dicom_file(path, specific_tags=list(_DESCRIBE_KEYWORDS))
    except DicomRegSaveError:
        return None
    kind = LOADABLE_SOP_CLASS_UIDS.get(str(header.get("SOPClassUID", "")))
    if kind is None:
        return None
    referenced: list[str] = []
    series_items = list(header.get("ReferencedSeriesSequence") or [])
    for study in header.get("StudiesContainingOtherReferencedInstancesSequence") or []:
        series_items.extend(study.get("ReferencedSeriesSequence") or [])
    for series in series_items:
        for instance in series.get("ReferencedInstanceSequence") or []:
            referenced.append(str(instance.ReferencedSOPInstanceUID))
    label = str(header.get("ContentLabel", "") or "")
    name = _series_name(header)
    tooltip = (
        f"{kind} ({label}): {header.get('ContentDescription', '') or 'no description'}; "
        f"references {len(referenced)} image instance(s). Loaded as transform nodes that map the fixed image to "
        "the moving image (the moving volume is placed under them)."
    )
    return RegistrationFileInfo(
        path,
        str(header.get("SOPInstanceUID", "")),
        str(header.get("SeriesInstanceUID", "")),
        str(header.get("StudyInstanceUID", "")),
        str(header.get("FrameOfReferenceUID", "")),
        name,
        tooltip,
        referenced,
    )


def examine_warning(info: RegistrationFileInfo, scene: slicer.vtkMRMLScene) -> str:
    """What the DICOM browser should warn about before loading `info` into `scene` (``""`` if nothing).

    Slicer's browser shows ``loadable.warning`` and asks before loading (DICOMBrowser.py,
    ``warnUserIfLoadableWarningsAndProceed``): a moving series loaded several times (the registration
    goes to the most recently loaded copy), or the same REG already loaded. Volumes are recognised by
    the DICOM UIDs of their subject hierarchy items (no file is read; clones do not count).
    """
    warnings = []
    referenced = set(info.referenced_instance_uids)
    sh_node = scene.GetSubjectHierarchyNode()
    constants = slicer.vtkMRMLSubjectHierarchyConstants
    copies: dict[str, list[str]] = {}
    for volume in scalar_volumes(scene):
        uids = dicom_instance_uids(volume)
        if not uids or not uids <= referenced:
            continue
        item = sh_node.GetItemByDataNode(volume)
        if sh_node.GetItemAttribute(item, constants.GetDICOMFrameOfReferenceUIDAttributeName()) == (
            info.frame_of_reference_uid
        ):
            continue
        copies.setdefault(sh_node.GetItemUID(item, constants.GetDICOMUIDName()), []).append(volume.GetName())
    for names in copies.values():
        if len(names) > 1:
            warnings.append(
                f"The registration's moving series is loaded {len(names)} times ({', '.join(map(repr, names))}); "
                f"it will be applied to the most recently loaded one, '{names[-1]}'."
            )
    collection = scene.GetNodesByClass("vtkMRMLTransformNode")
    for index in range(collection.GetNumberOfItems()):
        node = collection.GetItemAsObject(index)
        if node.GetAttribute(INSTANCE_UIDS_ATTRIBUTE) == info.sop_instance_uid:
            warnings.append(
                f"This registration is already loaded as '{node.GetName()}'; loading it again moves the moving "
                "volume under the new copy."
            )
            break
    return " ".join(warnings)


@dataclass
class LoadedItem:
    """The transform chain made from one registration item.

    Attributes
    ----------
    item:
        The registration item (registered -> source mapping).
    nodes:
        Transform nodes, root first; the moving volume goes under the last one (``leaf``).
    """

    item: RegistrationItem
    nodes: list[slicer.vtkMRMLTransformNode]

    @property
    def leaf(self) -> slicer.vtkMRMLTransformNode:
        return self.nodes[-1]


@dataclass
class ImportResult:
    """What :func:`import_registration` created.

    Attributes
    ----------
    items:
        One transform chain per registration item that moves anything (identity items make none).
    """

    items: list[LoadedItem]
    registration: Registration
    dataset: Dataset

    @property
    def nodes(self) -> list[slicer.vtkMRMLTransformNode]:
        """Every created transform node, item by item, root first."""
        return [node for loaded in self.items for node in loaded.nodes]

    @property
    def leaf(self) -> slicer.vtkMRMLTransformNode:
        """The leaf of the first item's chain (the node Slicer's DICOM browser puts in the REG's series item)."""
        return self.items[0].leaf

    @property
    def leaves(self) -> list[slicer.vtkMRMLTransformNode]:
        """The leaf of every item's chain (what :func:`slicer_linking.link_registrations` links)."""
        return [loaded.leaf for loaded in self.items]

    @property
    def fixed_node(self) -> slicer.vtkMRMLVolumeNode | None:
        return self.leaf.GetNodeReference(self.leaf.GetFixedNodeReferenceRole())

    @property
    def moving_node(self) -> slicer.vtkMRMLVolumeNode | None:
        return self.leaf.GetNodeReference(self.leaf.GetMovingNodeReferenceRole())


def moving_items(registration: Registration) -> list[RegistrationItem]:
    """The items that move anything: all but identity items (source frame = registered frame, no grid,
    no matrix other than identity)."""
    return [item for item in registration.items if not _is_identity(item, registration.frame_of_reference_uid)]


def _is_identity(item: RegistrationItem, registered_frame_of_reference_uid: str) -> bool:
    return item.source_frame_of_reference_uid == registered_frame_of_reference_uid and item.is_identity


def import_registration(
    path: str | os.PathLike,
    scene: slicer.vtkMRMLScene,
    header_lookup: HeaderLookup | None = None,
    apply_to_moving: bool = True,
    name: str | None = None,
) -> ImportResult:
    """Load a REG file as transform chains that map the fixed image onto each moving image.

    One chain per item that moves anything, named `name` (default: as the DICOM browser names the
    series, :func:`describe_registration_file`), followed by the source series' description when
    there are several. Each leaf gets the REG's SOP Instance UID as ``DICOM.instanceUIDs`` and the
    instances it applies to (:class:`slicer_linking.RegistrationLink`); each grid node is marked as
    linearly interpolated (:func:`slicer_linking.mark_linear_grids`). Nothing is linked here: the
    plugin's :class:`slicer_linking.RegistrationWatcher` (or :func:`slicer_linking.link_registrations`)
    links them with the volumes, once.

    Raises
    ------
    InvalidRegistrationError
        If the file is not a readable, valid registration.
    """
    dataset = read_dataset(path)
    registration = read_registration(dataset)
    if name is None:
        name = _series_name(dataset)
    fixed_uids = frozenset(
        reference.sop_instance_uid
        for item in registration.items
        if item not in moving_items(registration)
        for reference in item.referenced_images
    )
    items = moving_items(registration)
    loaded = []
    for item in items:
        item_name = name if len(items) == 1 else f"{name} - {_source_series_name(item, header_lookup)}"
        nodes = mrml.nodes_from_registration(item, scene, name=item_name)
        mark_linear_grids(nodes)
        leaf = nodes[-1]
        leaf.SetAttribute(INSTANCE_UIDS_ATTRIBUTE, str(dataset.SOPInstanceUID))
        RegistrationLink(
            frozenset(reference.sop_instance_uid for reference in item.referenced_images),
            fixed_uids,
            registration.frame_of_reference_uid,
            apply_to_moving,
        ).store(leaf)
        loaded.append(LoadedItem(item, nodes))
    return ImportResult(loaded, registration, dataset)


def _series_name(header: Dataset) -> str:
    label = str(header.get("ContentLabel", "") or "")
    description = str(header.get("SeriesDescription", "") or "") or label or "Registration"
    number = header.get("SeriesNumber")
    return f"{number}: {description}" if number not in (None, "") else description


def _source_series_name(item: RegistrationItem, header_lookup: HeaderLookup | None) -> str:
    for reference in item.referenced_images[:1]:
        header = instance_header(header_lookup, reference.sop_instance_uid, ["SeriesDescription", "SeriesNumber"])
        if header is not None and header.get("SeriesDescription"):
            return _series_name(header)
    return f"frame of reference {item.source_frame_of_reference_uid}"
