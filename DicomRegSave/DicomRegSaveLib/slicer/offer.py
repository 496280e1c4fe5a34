"""Which subject hierarchy items Slicer's DICOM export dialog is offered a REG export for, and with what.

The decision (offer or not, why, how confident, which series tags to propose) is made here on a
real subject hierarchy; DicomRegSavePlugin.examineForExport only turns it into exportables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import slicer
from pydicom.dataset import Dataset

from DicomRegSaveLib.errors import TransformInputError
from DicomRegSaveLib.export.pipeline import ExportOptions
from DicomRegSaveLib.inputs.lookup import HeaderLookup
from DicomRegSaveLib.mrml import nodes as mrml
from DicomRegSaveLib.slicer.linking import acquisition_transform
from DicomRegSaveLib.slicer.provenance import (
    found,
    instance_header,
    instance_uids,
    no_dicom_origin_message,
    scalar_volumes,
)

#: Series-level tags offered for editing in Slicer's DICOM export dialog (``exportable.setTag``).
SERIES_TAG_KEYWORDS = (
    "SeriesDescription",
    "SeriesNumber",
    "ContentLabel",
    "ContentDescription",
    "Manufacturer",
    "ManufacturerModelName",
    "SoftwareVersions",
)

#: Confidence that makes Slicer's export dialog preselect DicomRegSave. The dialog
#: (Modules/Scripted/DICOMLib/Widgets/qSlicerDICOMExportDialog.cxx, examineSelectedItem; lines 257, 294,
#: 307, 311-314 and 337 at Slicer commit 583e9b37) groups the exportables by pluginClass in a
#: QMultiMap<QString, ...> (so plugins are visited in pluginClass order, uniqueKeys()), inserts each group
#: into a QMultiMap<double, ...> keyed by 1 - mean confidence, lists the groups key by key with
#: values(key) — most recently inserted first — and preselects row 0 (setCurrentRow(0)).
#: SlicerRT's DicomSroImportExportPlugin answers 1.0 for any transform with fixed and moving references
#: and is inserted after "DicomRegSavePlugin", so at a tie it is listed first and preselected; only a
#: mean above 1.0 sorts before it. 1.001 is still shown as "100%" (the row text formats
#: (1 - key) * 100 with no decimals).
#: Used for every exportable registration, linear (Spatial Registration, 66.1) or not (66.3): SlicerRT's
#: reader applies REGs inverted, so DicomRegSave goes first for both.
PRESELECTED_CONFIDENCE = 1.001
#: A transform with a registration hint that cannot be exported yet is still listed, last, with what to
#: do in its tooltip, so the REG option never disappears without a word; its export writes nothing.
BLOCKED_CONFIDENCE = 0.05

#: How a user sets the volumes of a registration transform, appended to the reasons the export dialog shows.
SET_VOLUMES_HINT = (
    " To export it, use the DICOM Registration Export module (choose the fixed and moving volumes there and "
    "save), or set the transform's registration references in the Python console: "
    "transformNode.SetNodeReferenceID(transformNode.GetFixedNodeReferenceRole(), fixedVolume.GetID()) "
    "(and GetMovingNodeReferenceRole() for the moving volume), then open Export to DICOM again."
)


@dataclass
class ExportDecision:
    """Whether a subject hierarchy item is offered for REG export, and with what.

    Attributes
    ----------
    offer:
        ``True`` if the item can be exported.
    listed:
        ``True`` if the export dialog lists the item for DicomRegSave: offered, or a transform with a
        registration hint (:func:`has_registration_hint`) that cannot be exported yet.
    reason:
        When not offered: why, in a sentence saying what to do. When offered: a short description
        for the export dialog's tooltip.
    transform_node:
        The item's transform, ``None`` when the item is no transform (then nothing is listed).
    confidence:
        How clearly this is the right exporter for the item (:data:`PRESELECTED_CONFIDENCE`, or
        :data:`BLOCKED_CONFIDENCE` for a transform not offered).
    series_tags:
        Keyword -> proposed value of the series-level tags (:data:`SERIES_TAG_KEYWORDS`).
    fixed_header:
        The fixed image's first DICOM header (patient and study of the REG), when a lookup found it.
    registration_class:
        "Spatial" (66.1, a linear transform) or "Deformable" (66.3): what the export writes.
    """

    offer: bool
    reason: str
    transform_node: slicer.vtkMRMLTransformNode | None = None
    fixed_node: slicer.vtkMRMLVolumeNode | None = None
    moving_node: slicer.vtkMRMLVolumeNode | None = None
    confidence: float = BLOCKED_CONFIDENCE
    series_tags: dict[str, str] = field(default_factory=dict)
    fixed_header: Dataset | None = None
    registration_class: str = "Deformable"
    listed: bool = True


def examine_transform_item(
    sh_node: slicer.vtkMRMLSubjectHierarchyNode,
    item_id: int,
    header_lookup: HeaderLookup | None = None,
) -> ExportDecision:
    """Decide whether subject hierarchy item `item_id` can be exported as a DICOM REG.

    Offered: a transform node whose fixed and moving volumes are known (node references set by the
    registration module, or the one volume under the transform) and were both loaded from DICOM
    (``DICOM.instanceUIDs``); with `header_lookup` every instance must also be found by it.

    Parameters
    ----------
    header_lookup:
        SOP Instance UID -> header or file path, or ``None``/``""`` when unknown (in Slicer:
        ``slicer.dicomDatabase.fileForInstance``). ``None`` skips that check.
    """
    node = sh_node.GetItemDataNode(item_id)
    item_name = sh_node.GetItemName(item_id) or f"item {item_id}"
    if node is None or not node.IsA("vtkMRMLTransformNode"):
        return ExportDecision(
            False, f"'{item_name}' is not a transform; only transforms are exported as registrations.", listed=False
        )
    try:
        fixed, moving = mrml.resolve_fixed_and_moving(node)
    except TransformInputError as exc:
        fixed = suggested_volumes(node)[0]
        # choosing other volumes is no answer to a fixed volume under a transform (only to the other refusals)
        under_transform = fixed is not None and fixed.GetParentTransformNode() is not None
        hint = "" if under_transform and str(exc) == mrml.fixed_under_transform_message(fixed) else SET_VOLUMES_HINT
        return ExportDecision(False, str(exc) + hint, node, listed=has_registration_hint(node))
    for role, volume in (("fixed", fixed), ("moving", moving)):
        uids = instance_uids(volume)
        if not uids:
            return ExportDecision(False, no_dicom_origin_message(role, volume), node, fixed, moving)
        if header_lookup is not None:
            missing = [uid for uid in uids if not found(header_lookup(uid))]
            if missing:
                return ExportDecision(
                    False,
                    f"{len(missing)} of the {len(uids)} DICOM instances of the {role} volume '{volume.GetName()}' "
                    f"are not in the DICOM database (first: {missing[0]}). Import the {role} image series into "
                    "the DICOM database, or export from the DicomRegSave module choosing its DICOM folder.",
                    node,
                    fixed,
                    moving,
                )
    fixed_header = instance_header(header_lookup, instance_uids(fixed)[0])
    linear = is_linear_chain(node)
    kind = "Spatial Registration (a matrix)" if linear else "Deformable Spatial Registration"
    return ExportDecision(
        True,
        f"DICOM {kind} of '{moving.GetName()}' to '{fixed.GetName()}'",
        node,
        fixed,
        moving,
        PRESELECTED_CONFIDENCE,
        series_tags_defaults(node, fixed, moving),
        fixed_header,
        "Spatial" if linear else "Deformable",
    )


def suggested_volumes(
    transform_node: slicer.vtkMRMLTransformNode | None,
) -> tuple[slicer.vtkMRMLVolumeNode | None, slicer.vtkMRMLVolumeNode | None]:
    """The fixed and moving volumes to pre-select for a transform; ``None`` where none is known.

    Uses the registration references, and for the moving volume the one volume under the transform.
    """
    if transform_node is None:
        return None, None
    fixed = transform_node.GetNodeReference(transform_node.GetFixedNodeReferenceRole())
    moving = transform_node.GetNodeReference(transform_node.GetMovingNodeReferenceRole())
    if moving is None and transform_node.GetScene() is not None:
        under = [
            volume
            for volume in scalar_volumes(transform_node.GetScene())
            if volume.GetParentTransformNode() is not None
            and volume.GetParentTransformNode().GetID() == transform_node.GetID()
        ]
        moving = under[0] if len(under) == 1 else None
    return fixed, moving


def has_registration_hint(transform_node: slicer.vtkMRMLTransformNode) -> bool:
    """True if a transform looks like a registration: it has a fixed or moving volume reference, or a
    volume is under it that is not just the volume of Slicer's acquisition transform."""
    if transform_node.GetNodeReference(transform_node.GetFixedNodeReferenceRole()) or transform_node.GetNodeReference(
        transform_node.GetMovingNodeReferenceRole()
    ):
        return True
    scene = transform_node.GetScene()
    return scene is not None and any(
        volume.GetParentTransformNode() is transform_node and acquisition_transform(volume) is not transform_node
        for volume in scalar_volumes(scene)
    )


def is_linear_chain(transform_node: slicer.vtkMRMLTransformNode) -> bool:
    """True if the node and all its parent transforms are linear."""
    node = transform_node
    while node is not None:
        if not node.IsLinear():
            return False
        node = node.GetParentTransformNode()
    return True


def series_tags_defaults(
    transform_node: slicer.vtkMRMLTransformNode,
    fixed_node: slicer.vtkMRMLVolumeNode,
    moving_node: slicer.vtkMRMLVolumeNode,
    options: ExportOptions | None = None,
) -> dict[str, str]:
    """Proposed series-level tag values (keyword -> text), from `options` (default ExportOptions).

    Content Description (LO, 64 characters) names the moving and fixed volumes and the transform. An
    automatic Series Number is offered empty, so that an unedited row stays automatic and the number is
    chosen when the REG is written (among the series the DICOM database holds in the fixed image's study).
    """
    options = options or ExportOptions()
    description = f"{moving_node.GetName()} to {fixed_node.GetName()} by {transform_node.GetName()}"
    return {
        "SeriesDescription": options.series_description or "",
        "SeriesNumber": "" if options.series_number is None else str(options.series_number),
        "ContentLabel": options.content_label,
        "ContentDescription": options.content_description or _truncate(description, 64),
        "Manufacturer": options.manufacturer,
        "ManufacturerModelName": options.manufacturer_model_name,
        "SoftwareVersions": "\\".join(options.software_versions),
    }


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
