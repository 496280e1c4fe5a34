"""Loading a DICOM REG in Slicer: what the DICOM browser shows about a file, and the transform nodes
it becomes, applied to the loaded moving volume.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import slicer
from pydicom.dataset import Dataset

from . import mrml
from .dicom_file import read_dicom_file
from .dicom_input import HeaderLookup
from .errors import DicomRegSaveError
from .model import DEFORMABLE_SPATIAL_REGISTRATION_SOP_CLASS_UID, Registration
from .reader import read_dataset, read_registration
from .slicer_provenance import INSTANCE_UIDS_ATTRIBUTE, found, instance_uids, scalar_volumes

@dataclass
class RegistrationFileInfo:
    """What the DICOM browser shows about a REG file before loading it."""

    path: Path
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    name: str
    tooltip: str
    referenced_instance_uids: list[str]


_DESCRIBE_KEYWORDS = (
    "SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "SeriesNumber", "SeriesDescription",
    "ContentLabel", "ContentDescription", "FrameOfReferenceUID", "SpecificCharacterSet",
    "ReferencedSeriesSequence", "StudiesContainingOtherReferencedInstancesSequence",
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
    if str(header.get("SOPClassUID", "")) != DEFORMABLE_SPATIAL_REGISTRATION_SOP_CLASS_UID:
        return None
    referenced: list[str] = []
    series_items = list(header.get("ReferencedSeriesSequence") or [])
    for study in header.get("StudiesContainingOtherReferencedInstancesSequence") or []:
        series_items.extend(study.get("ReferencedSeriesSequence") or [])
    for series in series_items:
        for instance in series.get("ReferencedInstanceSequence") or []:
            referenced.append(str(instance.ReferencedSOPInstanceUID))
    label = str(header.get("ContentLabel", "") or "")
    description = str(header.get("SeriesDescription", "") or "") or label or "Deformable registration"
    number = header.get("SeriesNumber")
    name = f"{number}: {description}" if number not in (None, "") else description
    tooltip = (
        f"DICOM Deformable Spatial Registration ({label}): {header.get('ContentDescription', '') or 'no description'}; "
        f"references {len(referenced)} image instance(s). Loaded as transform nodes that map the fixed image to "
        "the moving image (the moving volume is placed under them)."
    )
    return RegistrationFileInfo(
        path, str(header.get("SOPInstanceUID", "")), str(header.get("SeriesInstanceUID", "")),
        str(header.get("StudyInstanceUID", "")), name, tooltip, referenced,
    )


@dataclass
class ImportResult:
    """What :func:`import_registration` created and found.

    Attributes
    ----------
    nodes:
        Transform nodes, root first; place the moving volume under the last one (``leaf``).
    fixed_node, moving_node:
        Loaded volumes recognised as the registration's fixed and moving images, or ``None``.
    messages:
        Sentences for the user (volumes not found, ambiguous, moved under the transform).
    """

    nodes: list[slicer.vtkMRMLTransformNode]
    registration: Registration
    dataset: Dataset
    fixed_node: slicer.vtkMRMLVolumeNode | None = None
    moving_node: slicer.vtkMRMLVolumeNode | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def leaf(self) -> slicer.vtkMRMLTransformNode:
        return self.nodes[-1]


def import_registration(
    path: str | os.PathLike,
    scene: slicer.vtkMRMLScene,
    header_lookup: HeaderLookup | None = None,
    apply_to_moving: bool = True,
) -> ImportResult:
    """Load a REG file as transform nodes that map the fixed image onto the moving image.

    The leaf node gets the REG's SOP Instance UID as ``DICOM.instanceUIDs`` and, when the volumes
    are recognised among the loaded ones, the ``spatialRegistrationFixed`` / ``Moving`` references;
    with `apply_to_moving` the moving volume is placed under the leaf node.

    Raises
    ------
    InvalidRegistrationError
        If the file is not a readable, valid Deformable Spatial Registration.
    """
    dataset = read_dataset(path)
    registration = read_registration(dataset)
    name = str(dataset.get("SeriesDescription", "") or "") or str(dataset.get("ContentLabel", "") or "") or "Deformable registration"
    nodes = mrml.nodes_from_registration(registration, scene, name=name)
    leaf = nodes[-1]
    leaf.SetAttribute(INSTANCE_UIDS_ATTRIBUTE, str(dataset.SOPInstanceUID))
    fixed, moving, messages = find_registered_volumes(scene, registration, header_lookup)
    if fixed is not None:
        leaf.SetNodeReferenceID(leaf.GetFixedNodeReferenceRole(), fixed.GetID())
    if moving is not None:
        leaf.SetNodeReferenceID(leaf.GetMovingNodeReferenceRole(), moving.GetID())
        if apply_to_moving:
            previous = moving.GetParentTransformNode()
            if previous is not None:
                messages.append(
                    f"The moving volume '{moving.GetName()}' was under transform '{previous.GetName()}'; it is now "
                    f"under '{leaf.GetName()}' from the registration file."
                )
            moving.SetAndObserveTransformNodeID(leaf.GetID())
    return ImportResult(nodes, registration, dataset, fixed, moving, messages)


def find_registered_volumes(
    scene: slicer.vtkMRMLScene,
    registration: Registration,
    header_lookup: HeaderLookup | None = None,
) -> tuple[slicer.vtkMRMLVolumeNode | None, slicer.vtkMRMLVolumeNode | None, list[str]]:
    """The loaded fixed and moving volumes of a registration, and messages about what was not found.

    Moving: the volume loaded from the deformable item's referenced instances (all of its
    ``DICOM.instanceUIDs`` referenced). Fixed: the volume loaded from the identity item's instances,
    else (with `header_lookup`) the one volume whose images are in the registered frame of reference.
    """
    volumes = [v for v in scalar_volumes(scene) if instance_uids(v)]
    item = registration.deformable_item
    moving_uids = {r.sop_instance_uid for r in item.referenced_images}
    moving_candidates = [v for v in volumes if set(instance_uids(v)) <= moving_uids]
    messages: list[str] = []
    moving = _single(moving_candidates, "moving", messages)
    fixed_uids = {
        r.sop_instance_uid for other in registration.items if other is not item for r in other.referenced_images
        if other.source_frame_of_reference_uid == registration.frame_of_reference_uid
    }
    fixed_candidates = [v for v in volumes if v is not moving and fixed_uids and set(instance_uids(v)) <= fixed_uids]
    if not fixed_candidates and header_lookup is not None:
        fixed_candidates = [
            v for v in volumes if v is not moving
            and _frame_of_reference(header_lookup, instance_uids(v)[0]) == registration.frame_of_reference_uid
        ]
    fixed = _single(fixed_candidates, "fixed", messages)
    return fixed, moving, messages


def _single(candidates: list, role: str, messages: list[str]):
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        messages.append(f"The {role} image of the registration is not loaded; load it to see the registration applied.")
    else:
        messages.append(
            f"Several loaded volumes ({', '.join(v.GetName() for v in candidates)}) match the {role} image; none was "
            "chosen. Set the transform's fixed/moving volumes yourself."
        )
    return None


def _frame_of_reference(header_lookup: HeaderLookup, uid: str) -> str | None:
    header = header_lookup(uid)
    if not found(header):
        return None
    if not isinstance(header, Dataset):
        try:
            header = read_dicom_file(header, stop_before_pixels=True, specific_tags=["FrameOfReferenceUID"])
        except DicomRegSaveError:
            return None
    value = header.get("FrameOfReferenceUID")
    return None if value is None else str(value)
