"""Where registrations sit in Slicer's subject hierarchy: the patient/study rows Slicer's export dialog
shows for an item and which edits of them can be written, the fixed image's study that an exported REG
belongs to, and placing loaded transform nodes under a study.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import slicer
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from DicomRegSaveLib.reg.tags import IDENTITY_KEYWORDS
from DicomRegSaveLib.slicer.fields import describe_keyword, header_text


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


def dialog_rows(sh_node: slicer.vtkMRMLSubjectHierarchyNode, item_id: int) -> dict[str, str]:
    """Tag name -> value of the patient and study rows Slicer's export dialog shows for an item.

    As ``qSlicerDICOMTagEditorWidget::setExportables`` (Modules/Scripted/DICOMLib/Widgets/
    qSlicerDICOMTagEditorWidget.cxx): the study is the item's parent, the patient the study's parent;
    every ``DICOM.*`` attribute of both becomes a row (and a tag of every exportable), the standard tag
    names they lack as empty rows. Empty when the dialog finds no study or patient ("No study found",
    "No patient found": the exportables then carry no patient or study tags). Reads the tree only.
    """
    constants = slicer.vtkMRMLSubjectHierarchyConstants
    prefix = constants.GetDICOMAttributePrefix()
    invalid = slicer.vtkMRMLSubjectHierarchyNode.GetInvalidItemID()
    study = sh_node.GetItemParent(item_id)
    patient = sh_node.GetItemParent(study) if study != invalid else invalid
    if invalid in (study, patient):
        return {}
    rows: dict[str, str] = {}
    for parent, names in ((patient, constants.GetDICOMPatientTagNames()), (study, constants.GetDICOMStudyTagNames())):
        rows.update(dict.fromkeys(names, ""))
        for attribute in sh_node.GetItemAttributeNames(parent):
            if attribute.startswith(prefix):
                rows[attribute[len(prefix) :]] = sh_node.GetItemAttribute(parent, attribute)
    return rows


def fixed_image_texts(
    names: Sequence[str],
    instance_uid: str,
    file_for_instance: Callable[[str], str],
    file_value: Callable[[str, str], str],
) -> dict[str, str]:
    """Name -> the fixed image's value of each DICOM keyword among `names`, as Slicer decodes it.

    `file_for_instance` and `file_value` are the DICOM database's (``slicer.dicomDatabase``): its cached,
    DCMTK-decoded tag values, the same text its subject hierarchy items and dialog rows are made of.
    Names that are no DICOM keyword are left out.
    """
    path = file_for_instance(instance_uid)
    texts = {}
    for name in names:
        tag = tag_for_keyword(name)
        if tag is not None and path:
            texts[name] = file_value(path, f"{tag >> 16:04X},{tag & 0xFFFF:04X}")
    return texts


def dialog_edit_refusals(
    shown: Mapping[str, str], tag_values: Mapping[str, str | None], fixed_texts: Mapping[str, str]
) -> list[str]:
    """Why the patient/study values of an export-dialog exportable cannot be written (empty: they can).

    An edit is a value the user changed relative to the row the dialog showed (`shown`, recorded when
    the plugin examined the item): rows filled from another series of the patient (Slicer fills the
    patient and study items once, from the first series loaded) are not edits. The REG is filed in the
    fixed image's study, so every patient and study value it carries must agree with that study's
    images: an edit that differs from the fixed image's own value (`fixed_texts`, as Slicer decodes it)
    is refused — identity and study-level values alike — and the REG always takes the fixed image's
    values.

    Returns
    -------
    list of str
        One sentence per refused edit, saying what to do; nothing is written when there is any.
    """
    refusals = []
    for name, before in shown.items():
        value = str(tag_values.get(name) or "")
        if value.strip() == str(before).strip() or value.strip() == fixed_texts.get(name, "").strip():
            continue
        expected = fixed_texts.get(name, "")
        entity = "patient" if name.startswith("Patient") else "study"
        label = describe_keyword(name) if tag_for_keyword(name) is not None else name
        reason = (
            "a registration cannot be filed under another patient or study than its fixed image"
            if name in IDENTITY_KEYWORDS
            else f"a registration filed in the fixed image's study must carry that {entity}'s values, as its images do"
        )
        refusals.append(
            f"{label} was changed to {value!r} in the export dialog, but the registration belongs to the fixed "
            f"image's {entity}, where it is {expected!r}: {reason}. Restore the value (or correct the fixed image's "
            "own DICOM data), then export again. Nothing was written."
        )
    return refusals


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
