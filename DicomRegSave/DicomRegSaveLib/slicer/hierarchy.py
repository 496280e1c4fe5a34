"""Where registrations sit in Slicer's subject hierarchy: the patient/study Slicer shows for an item,
the fixed image's study that an exported REG belongs to, what the export dialog's patient/study rows
may change, and placing loaded transform nodes under a study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import slicer
from pydicom.dataset import Dataset

from DicomRegSaveLib.reg.tags import IDENTITY_KEYWORDS
from DicomRegSaveLib.slicer.fields import describe_keyword, header_text


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


def dialog_tag_names() -> list[str]:
    """The patient and study tag names Slicer's export dialog copies into every exportable."""
    constants = slicer.vtkMRMLSubjectHierarchyConstants
    return list(constants.GetDICOMPatientTagNames()) + list(constants.GetDICOMStudyTagNames())


def slicer_shown_value(keyword: str, fixed_header: Dataset) -> str:
    """The fixed image's value of a patient/study attribute as Slicer shows it in the subject hierarchy.

    ``DICOMPlugin.addSeriesInSubjectHierarchy`` (Modules/Scripted/DICOMLib/DICOMPlugin.py) shows an
    empty Patient Name as "No name", an empty Study Description as "No study description" and an
    empty Patient ID as "Patient-" + Study Instance UID.
    """
    value = header_text(fixed_header, keyword)
    if value.strip():
        return value
    placeholders = {
        "PatientName": "No name",
        "StudyDescription": "No study description",
        "PatientID": "Patient-" + header_text(fixed_header, "StudyInstanceUID"),
    }
    return placeholders.get(keyword, value)


def dialog_patient_study_edits(
    tag_values: Mapping[str, str | None], fixed_header: Dataset
) -> tuple[dict[str, str], list[str]]:
    """Split the patient/study values of an export-dialog exportable into edits to write and refusals.

    The dialog fills these tags from the patient and study items the exported item sits under
    (``qSlicerDICOMTagEditorWidget::setExportables``); the plugin places the transform in the fixed
    image's study first, so a value that differs from the fixed image's (as Slicer shows it) was
    edited by the user. Without any identity value the exportable was not filled by the dialog
    (e.g. a script calling ``export()``): nothing is an edit.

    Returns
    -------
    (edits, refusals)
        Keyword -> edited text for attributes that may be changed (checked and written like the
        module panel's fields), and one sentence per edited identity attribute
        (:data:`IDENTITY_KEYWORDS`) saying why it cannot be written.
    """
    shown = {keyword: str(tag_values.get(keyword) or "") for keyword in dialog_tag_names()}
    if not any(shown[keyword].strip() for keyword in IDENTITY_KEYWORDS):
        return {}, []
    edits: dict[str, str] = {}
    refusals: list[str] = []
    for keyword, value in shown.items():
        expected = slicer_shown_value(keyword, fixed_header)
        if value.strip() == expected.strip():
            continue
        if keyword in IDENTITY_KEYWORDS:
            entity = "patient" if keyword.startswith("Patient") else "study"
            refusals.append(
                f"{describe_keyword(keyword)} was changed to {value!r} in the export dialog, but the registration "
                f"belongs to the fixed image's {entity}, where it is {expected!r}. A registration cannot be filed under "
                f"another {entity} than its fixed image: restore the value (or correct the fixed image's own DICOM "
                "data), then export again. Nothing was written."
            )
        else:
            edits[keyword] = value
    return edits, refusals


def place_in_fixed_study(sh_node: slicer.vtkMRMLSubjectHierarchyNode, item_id: int, fixed_header: Dataset) -> int:
    """Move `item_id` under the subject hierarchy study of the fixed image; return that study item.

    The study is found by its DICOM UID (the fixed image's Study Instance UID, read from its
    header, not from where the fixed volume sits in the hierarchy — the Data module's "Export to
    DICOM..." may have moved it, qSlicerSubjectHierarchyDICOMPlugin::openDICOMExportDialog). Missing
    patient and study items are created with the attributes ``DICOMPlugin.addSeriesInSubjectHierarchy``
    gives them, so Slicer's export dialog shows the fixed image's patient and study.
    """
    constants = slicer.vtkMRMLSubjectHierarchyConstants
    uid_name = constants.GetDICOMUIDName()
    prefix = constants.GetDICOMAttributePrefix()
    study_uid = header_text(fixed_header, "StudyInstanceUID")
    study = sh_node.GetItemByUID(uid_name, study_uid)
    if not study:
        patient_id = slicer_shown_value("PatientID", fixed_header)
        patient = sh_node.GetItemByUID(uid_name, patient_id)
        if not patient:
            patient = sh_node.CreateSubjectItem(
                sh_node.GetSceneItemID(), slicer_shown_value("PatientName", fixed_header)
            )
            sh_node.SetItemUID(patient, uid_name, patient_id)
            for keyword in constants.GetDICOMPatientTagNames():
                sh_node.SetItemAttribute(patient, prefix + keyword, slicer_shown_value(keyword, fixed_header))
        study = sh_node.CreateStudyItem(patient, slicer_shown_value("StudyDescription", fixed_header))
        sh_node.SetItemUID(study, uid_name, study_uid)
        for keyword in constants.GetDICOMStudyTagNames():
            sh_node.SetItemAttribute(study, prefix + keyword, slicer_shown_value(keyword, fixed_header))
    if sh_node.GetItemParent(item_id) != study:
        sh_node.SetItemParent(item_id, study)
    return study


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
