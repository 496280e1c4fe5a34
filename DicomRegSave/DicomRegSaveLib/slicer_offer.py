"""Which subject hierarchy items Slicer's DICOM export dialog is offered a REG export for, and with what.

The decision (offer or not, why, how confident, which series tags to propose) is made here on a
real subject hierarchy; DicomRegSavePlugin.examineForExport only turns it into exportables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import slicer

from . import mrml
from .dicom_input import HeaderLookup
from .errors import TransformInputError
from .export import ExportOptions
from .slicer_provenance import found, instance_uids, no_dicom_origin_message, scalar_volumes

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

#: Confidence of the export offer for a transform with a non-linear part (the dialog ranks offers by it).
DEFORMABLE_CONFIDENCE = 1.0
#: A purely linear transform is better written as a (rigid) Spatial Registration, so other exporters
#: that do that are ranked first; it is still offered (zero grid + post-deformation matrix).
LINEAR_CONFIDENCE = 0.5


@dataclass
class ExportDecision:
    """Whether a subject hierarchy item is offered for REG export, and with what.

    Attributes
    ----------
    offer:
        ``True`` if the item can be exported.
    reason:
        When not offered: why, in a sentence saying what to do. When offered: a short description
        for the export dialog's tooltip.
    confidence:
        0..1, how clearly this is the right exporter for the item.
    series_tags:
        Keyword -> proposed value of the series-level tags (:data:`SERIES_TAG_KEYWORDS`).
    """

    offer: bool
    reason: str
    transform_node: slicer.vtkMRMLTransformNode | None = None
    fixed_node: slicer.vtkMRMLVolumeNode | None = None
    moving_node: slicer.vtkMRMLVolumeNode | None = None
    confidence: float = 0.0
    series_tags: dict[str, str] = field(default_factory=dict)


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
        return ExportDecision(False, f"'{item_name}' is not a transform; only transforms are exported as registrations.")
    try:
        fixed, moving = mrml.resolve_fixed_and_moving(node)
    except TransformInputError as exc:
        return ExportDecision(False, str(exc), node)
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
                    node, fixed, moving,
                )
    linear = is_linear_chain(node)
    description = (
        f"DICOM Deformable Spatial Registration of '{moving.GetName()}' to '{fixed.GetName()}'"
        + (" (linear transform: written as a zero grid with a post-deformation matrix)" if linear else "")
    )
    return ExportDecision(
        True, description, node, fixed, moving,
        LINEAR_CONFIDENCE if linear else DEFORMABLE_CONFIDENCE,
        series_tags_defaults(node, fixed, moving),
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
            volume for volume in scalar_volumes(transform_node.GetScene())
            if volume.GetParentTransformNode() is not None
            and volume.GetParentTransformNode().GetID() == transform_node.GetID()
        ]
        moving = under[0] if len(under) == 1 else None
    return fixed, moving


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

    Content Description (LO, 64 characters) names the moving and fixed volumes and the transform.
    """
    options = options or ExportOptions()
    description = (
        f"{moving_node.GetName()} to {fixed_node.GetName()} by {transform_node.GetName()}"
    )
    return {
        "SeriesDescription": options.series_description or "",
        "SeriesNumber": str(options.series_number),
        "ContentLabel": options.content_label,
        "ContentDescription": options.content_description or _truncate(description, 64),
        "Manufacturer": options.manufacturer,
        "ManufacturerModelName": options.manufacturer_model_name,
        "SoftwareVersions": "\\".join(options.software_versions),
    }


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
