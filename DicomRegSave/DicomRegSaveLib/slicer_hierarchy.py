"""Where registrations sit in Slicer's subject hierarchy: the patient/study Slicer shows for an item,
how it compares with the fixed image's, and placing loaded transform nodes under a study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import slicer
from pydicom.dataset import Dataset

from . import tags
from .slicer_fields import describe_keyword, header_text

def patient_study_tags_from_sh(sh_node: slicer.vtkMRMLSubjectHierarchyNode, item_id: int) -> dict[str, str]:
    """Keyword -> value of the ``DICOM.*`` patient and study attributes of the item's ancestors.

    These are what Slicer's export dialog copies into every exportable. The study's own UID
    (item UID ``"DICOM"``) stands in for a missing ``DICOM.StudyInstanceUID`` attribute.
    """
    constants = slicer.vtkMRMLSubjectHierarchyConstants
    prefix = constants.GetDICOMAttributePrefix()
    result: dict[str, str] = {}
    for level, names in (
        (constants.GetDICOMLevelPatient(), constants.GetDICOMPatientTagNames()),
        (constants.GetDICOMLevelStudy(), constants.GetDICOMStudyTagNames()),
    ):
        ancestor = sh_node.GetItemAncestorAtLevel(item_id, level)
        if not ancestor:
            continue
        for name in names:
            value = sh_node.GetItemAttribute(ancestor, prefix + name)
            if value:
                result[name] = value
        if level == constants.GetDICOMLevelStudy() and "StudyInstanceUID" not in result:
            uid = sh_node.GetItemUID(ancestor, constants.GetDICOMUIDName())
            if uid:
                result["StudyInstanceUID"] = uid
    return result


def patient_study_differences(shown: Mapping[str, str], fixed_header: Dataset) -> list[str]:
    """Sentences for every patient/study value shown by Slicer that differs from the fixed image's.

    The REG always takes the fixed image's patient and study (it joins the fixed image's study);
    values edited in the export dialog or rearranged in the subject hierarchy are not written.
    """
    messages = []
    for keyword, value in shown.items():
        if keyword not in tags.inherited_keywords() or keyword == "PatientComments":
            continue
        actual = header_text(fixed_header, keyword)
        if str(value).strip() != actual.strip():
            messages.append(
                f"{describe_keyword(keyword)} is {value!r} in Slicer but {actual!r} in the fixed image; the "
                "registration is written with the fixed image's value, as it belongs to the fixed image's study."
            )
    return messages


def place_in_subject_hierarchy(
    sh_node: slicer.vtkMRMLSubjectHierarchyNode, nodes: Sequence[slicer.vtkMRMLNode], parent_item_id: int
) -> list[int]:
    """Put the items of `nodes` (created if missing) under `parent_item_id`; return their item IDs."""
    items = []
    for node in nodes:
        item = sh_node.GetItemByDataNode(node)
        if not item:
            item = sh_node.CreateItem(parent_item_id, node)
        else:
            sh_node.SetItemParent(item, parent_item_id)
        items.append(item)
    return items
