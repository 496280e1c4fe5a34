"""slicer_*.py: the Slicer plugin's and panel's decisions on a real slicer-core subject hierarchy,
the node-level export end to end (file read back and compared with VTK's from-world mapping) and import.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import slicer

from DicomRegSaveLib.errors import (
    DicomInputError,
    InvalidRegistrationError,
    OperationCancelled,
    OutputError,
    TransformInputError,
)
from DicomRegSaveLib.export.pipeline import ExportOptions
from DicomRegSaveLib.mrml.nodes import fixed_under_transform_message
from DicomRegSaveLib.reg.reader import read_registration
from DicomRegSaveLib.slicer import (
    export as slicer_export,
    fields as slicer_fields,
    hierarchy as slicer_hierarchy,
    importing as slicer_import,
    linking as slicer_linking,
    offer as slicer_offer,
)
from mrml_helpers import from_world_lps, homogeneous, linear_node
from slicer_cases import (
    PATIENT_ID,
    Scene,
    add_volume,
    fixed_points,
    max_error,
)

EXACT_MM = 1e-4


# Which items are offered, and why not ---------------------------------------------------------------


def test_grid_transform_with_dicom_volumes_is_offered_with_series_tags(world, dicom_case):
    transform = world.registration_transform()
    decision = slicer_offer.examine_transform_item(world.sh, world.item(transform), dicom_case["lookup"])
    assert decision.offer, decision.reason
    assert decision.confidence == slicer_offer.PRESELECTED_CONFIDENCE
    assert decision.fixed_header.SOPInstanceUID == dicom_case["fixed"].headers[0].SOPInstanceUID
    assert decision.fixed_node is world.fixed and decision.moving_node is world.moving
    assert tuple(decision.series_tags) == slicer_offer.SERIES_TAG_KEYWORDS
    defaults = ExportOptions()
    assert decision.series_tags["SeriesNumber"] == "", "automatic: chosen when the REG is written"
    assert decision.series_tags["ContentLabel"] == defaults.content_label
    assert decision.series_tags["SoftwareVersions"].split("\\") == list(defaults.software_versions)
    assert decision.series_tags["ContentDescription"] == "Moving CT to Fixed CT by Registration result"
    assert slicer_fields.field_problems(decision.series_tags) == {}


def test_a_fixed_volume_under_a_transform_is_refused_with_why_and_nothing_is_written(world, dicom_case, tmp_path):
    transform = world.registration_transform()
    display = linear_node(world.scene, homogeneous(np.eye(3), (5.0, 0.0, 0.0)))
    display.SetName("Display shift")
    world.fixed.SetAndObserveTransformNodeID(display.GetID())
    why = fixed_under_transform_message(world.fixed)
    assert why.startswith("The fixed volume 'Fixed CT' is under transform 'Display shift', so Slicer shows it away")
    with pytest.raises(TransformInputError) as refused:
        slicer_export.export_from_nodes(transform, None, None, dicom_case["lookup"], tmp_path)
    assert str(refused.value) == why
    with pytest.raises(TransformInputError) as refused:
        slicer_export.validate_from_nodes(transform, world.fixed, world.moving, dicom_case["lookup"])
    assert str(refused.value) == why
    assert list(tmp_path.iterdir()) == []
    decision = slicer_offer.examine_transform_item(world.sh, world.item(transform), dicom_case["lookup"])
    assert (decision.offer, decision.listed, decision.reason) == (False, True, why)
    world.fixed.SetAndObserveTransformNodeID(None)
    assert slicer_offer.examine_transform_item(world.sh, world.item(transform), dicom_case["lookup"]).offer
    slicer_export.export_from_nodes(transform, None, None, dicom_case["lookup"], tmp_path)
    assert len(list(tmp_path.glob("*.dcm"))) == 1


def test_a_fixed_volume_under_a_transform_keeps_the_hint_for_another_refusal(world, dicom_case):
    transform = world.registration_transform(references=False)
    transform.SetNodeReferenceID(transform.GetFixedNodeReferenceRole(), world.fixed.GetID())
    display = linear_node(world.scene, homogeneous(np.eye(3), (5.0, 0.0, 0.0)))
    world.fixed.SetAndObserveTransformNodeID(display.GetID())
    decision = slicer_offer.examine_transform_item(world.sh, world.item(transform), dicom_case["lookup"])
    assert not decision.offer
    # the refusal is about the moving volume: how to choose it is the answer
    assert "The moving volume of transform 'Registration result' is unknown" in decision.reason
    assert decision.reason.endswith(slicer_offer.SET_VOLUMES_HINT)


def test_an_automatic_series_number_avoids_the_study_s_series_and_the_output_folder_s_files(
    world, dicom_case, tmp_path
):
    transform = world.registration_transform()
    study = dicom_case["fixed"].study_instance_uid
    asked = []

    def in_database(study_instance_uid):
        asked.append(study_instance_uid)
        return {1000, 1001} if study_instance_uid == study else {1002}

    numbers = []
    for _ in range(2):
        result = slicer_export.export_from_nodes(
            transform, None, None, dicom_case["lookup"], tmp_path, series_numbers_in_study=in_database
        )
        numbers.append(int(result.dataset.SeriesNumber))
    assert numbers == [1002, 1003] and asked == [study, study]
    options = slicer_fields.options_from_tags({"SeriesNumber": "1001"})
    result = slicer_export.export_from_nodes(
        transform, None, None, dicom_case["lookup"], tmp_path, options, series_numbers_in_study=in_database
    )
    assert result.dataset.SeriesNumber == 1001


def test_linear_transform_is_offered_as_a_spatial_registration_at_full_confidence(world, dicom_case):
    transform = linear_node(world.scene, homogeneous(np.eye(3), (1.0, 2.0, 3.0)))
    transform.SetNodeReferenceID(transform.GetFixedNodeReferenceRole(), world.fixed.GetID())
    transform.SetNodeReferenceID(transform.GetMovingNodeReferenceRole(), world.moving.GetID())
    decision = slicer_offer.examine_transform_item(world.sh, world.item(transform))
    assert decision.offer and decision.registration_class == "Spatial"
    assert decision.confidence == slicer_offer.PRESELECTED_CONFIDENCE
    assert "DICOM Spatial Registration (a matrix)" in decision.reason


def test_moving_volume_placed_under_the_transform_is_found(world):
    transform = world.registration_transform(references=False)
    transform.SetNodeReferenceID(transform.GetFixedNodeReferenceRole(), world.fixed.GetID())
    world.moving.SetAndObserveTransformNodeID(transform.GetID())
    decision = slicer_offer.examine_transform_item(world.sh, world.item(transform))
    assert decision.offer and decision.moving_node is world.moving


def test_suggested_volumes_follow_references_then_the_volume_under_the_transform(world):
    transform = world.registration_transform()
    assert slicer_offer.suggested_volumes(transform) == (world.fixed, world.moving)
    bare = world.registration_transform(references=False)
    assert slicer_offer.suggested_volumes(bare) == (None, None)
    world.moving.SetAndObserveTransformNodeID(bare.GetID())
    assert slicer_offer.suggested_volumes(bare) == (None, world.moving)
    assert slicer_offer.suggested_volumes(None) == (None, None)


def test_volume_item_is_not_offered(world):
    decision = slicer_offer.examine_transform_item(world.sh, world.item(world.fixed))
    assert not decision.offer
    assert "'Fixed CT' is not a transform" in decision.reason


def test_transform_without_known_volumes_is_not_offered(world):
    transform = world.registration_transform(references=False)
    decision = slicer_offer.examine_transform_item(world.sh, world.item(transform))
    assert not decision.offer and decision.transform_node is transform
    assert not decision.listed, "no reference and no volume under it: not a registration, no row"
    assert decision.confidence == slicer_offer.BLOCKED_CONFIDENCE
    assert "fixed volume" in decision.reason and "DICOM Registration Export module" in decision.reason
    assert "GetFixedNodeReferenceRole" in decision.reason


def test_volume_without_dicom_origin_is_not_offered_and_the_way_forward_is_named(world, dicom_case):
    transform = world.registration_transform(references=False)
    plain = world.volume(dicom_case["fixed"], "Resampled fixed", dicom=False)
    transform.SetNodeReferenceID(transform.GetFixedNodeReferenceRole(), plain.GetID())
    transform.SetNodeReferenceID(transform.GetMovingNodeReferenceRole(), world.moving.GetID())
    decision = slicer_offer.examine_transform_item(world.sh, world.item(transform))
    assert not decision.offer
    assert "fixed volume 'Resampled fixed' was not loaded from DICOM" in decision.reason
    assert "DICOM file or folder" in decision.reason and "Export to DICOM" in decision.reason


def test_instances_missing_from_the_database_are_reported(world):
    transform = world.registration_transform()
    decision = slicer_offer.examine_transform_item(world.sh, world.item(transform), lambda uid: "")
    assert not decision.offer
    assert (
        f"{dicom_count(world.case['fixed'])} of the {dicom_count(world.case['fixed'])} DICOM instances of the fixed"
        in decision.reason
    )
    assert "Import the fixed image series into the DICOM database" in decision.reason


def dicom_count(series):
    return len(series.headers)


# Tag values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keyword", "value", "expected"),
    [
        ("ContentLabel", "my label", "capital letters"),
        ("ContentLabel", "A" * 17, "the limit is 16"),
        ("SeriesNumber", "twelve", "not a whole number"),
        ("Manufacturer", "  ", "must not be empty"),
        ("SeriesDescription", "x" * 65, "limit for LO is 64"),
        ("StudyID", "S" * 17, "limit for SH is 16"),
        ("StudyDate", "2024-06-01", "YYYYMMDD"),
        ("PatientSex", "X", "M, F, O"),
        ("StudyInstanceUID", "1.2.03", "leading zeros"),
        ("SeriesDescription", "two\nlines", "control characters"),
        ("NoSuchKeyword", "x", "not a DICOM keyword"),
    ],
)
def test_tag_problems_say_what_is_wrong(keyword, value, expected):
    problem = slicer_fields.tag_problem(keyword, value)
    assert problem is not None and expected in problem


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("ContentLabel", "DIR 2_A"),
        ("SeriesNumber", "42"),
        ("SeriesNumber", ""),
        ("SeriesDescription", ""),
        ("StudyDate", "20240601"),
        ("SoftwareVersions", "A 1\\B 2"),
        ("PatientName", "Müller^Anna"),
        ("ContentDescription", "x" * 64),
    ],
)
def test_valid_tag_values_pass(keyword, value):
    assert slicer_fields.tag_problem(keyword, value) is None


def test_options_from_tags_sets_fields_and_overrides_only_what_changed():
    inherited = {"PatientName": "Müller^Anna", "StudyID": "F1"}
    options = slicer_fields.options_from_tags(
        {
            "SeriesNumber": "77",
            "SeriesDescription": "DIR to planning CT",
            "SoftwareVersions": "Tool 1\\Lib 2",
            "ContentDescription": "",
            "PatientName": "Müller^Anna",
            "StudyID": "F2",
            "AdmittingDiagnosesDescription": "A\\B",
        },
        inherited,
    )
    assert options.series_number == 77
    assert options.series_description == "DIR to planning CT"
    assert options.software_versions == ["Tool 1", "Lib 2"]
    assert options.content_description is None
    assert options.overrides == {"StudyID": "F2", "AdmittingDiagnosesDescription": ["A", "B"]}


def test_empty_fields_blank_an_attribute_only_against_a_known_inherited_value():
    untouched = slicer_fields.options_from_tags({"PatientName": "", "StudyID": "", "AccessionNumber": ""})
    assert untouched.overrides == {}
    cleared = slicer_fields.options_from_tags({"AccessionNumber": "", "StudyID": ""}, {"AccessionNumber": "ACC1"})
    assert cleared.overrides == {"AccessionNumber": ""}


def test_options_from_tags_lists_every_problem_with_its_tag():
    with pytest.raises(InvalidRegistrationError) as raised:
        slicer_fields.options_from_tags(
            {"SeriesNumber": "x", "ContentLabel": "lower", "Manufacturer": "", "AccessionNumber": "A\\B"}
        )
    message = str(raised.value)
    assert "Accession Number (0008,0050): it holds 2 value(s); the standard allows 1" in message
    assert "Series Number (0020,0011)" in message
    assert "Content Label (0070,0080)" in message
    assert "Manufacturer (0008,0070): must not be empty" in message


def test_panel_fields_inherit_patient_and_study_from_the_fixed_image(dicom_case):
    header = dicom_case["fixed"].first_header
    fields = slicer_fields.panel_fields(header)
    assert list(fields) == ["Patient", "Study", "Series", "Equipment", "Content"]
    assert fields["Patient"]["PatientName"] == "Müller^Anna"
    assert fields["Patient"]["PatientID"] == PATIENT_ID
    assert fields["Study"]["StudyInstanceUID"] == dicom_case["fixed"].study_instance_uid
    assert fields["Study"]["StudyID"] == "F1"
    assert fields["Series"]["SeriesNumber"] == "", "empty: automatic"
    every = {k: v for group in fields.values() for k, v in group.items()}
    assert slicer_fields.field_problems(every) == {}
    options = slicer_fields.options_from_tags(every, slicer_fields.inherited_values(header))
    assert options.overrides == {}


def test_dialog_rows_are_every_dicom_attribute_of_the_parents_and_read_only(world, dicom_case):
    transform = world.registration_transform()
    item = world.item(transform)
    world.sh.SetItemAttribute(world.patient, "DICOM.PatientComments", "from another series")
    rows = slicer_hierarchy.dialog_rows(world.sh, item)
    assert rows["PatientName"] == "Müller^Anna" and rows["PatientID"] == PATIENT_ID
    assert rows["StudyDate"] == "20240315" and rows["PatientComments"] == "from another series"
    assert rows["StudyDescription"] == "" and rows["PatientSex"] == ""
    assert not world.sh.HasItemAttribute(world.study, "DICOM.StudyDescription"), "the dialog adds them, not we"
    world.sh.SetItemParent(item, world.sh.GetSceneItemID())
    assert slicer_hierarchy.dialog_rows(world.sh, item) == {}


def test_dialog_edits_are_what_changed_from_the_rows_shown_and_only_the_fixed_image_s_values_pass(dicom_case):
    header = dicom_case["fixed"].first_header
    shown = {"PatientName": "MUELLER^ANNA", "PatientID": PATIENT_ID, "StudyDate": "20240601", "StudyID": "M1"}
    fixed = {"PatientName": "Müller^Anna", "PatientID": PATIENT_ID, "StudyDate": str(header.StudyDate), "StudyID": "F1"}
    assert slicer_hierarchy.dialog_edit_refusals(shown, dict(shown), fixed) == []
    assert (
        slicer_hierarchy.dialog_edit_refusals(shown, dict(shown, PatientName="Müller^Anna", StudyID="F1"), fixed) == []
    )
    refusals = slicer_hierarchy.dialog_edit_refusals(shown, dict(shown, PatientName="Other^Name", StudyID="X7"), fixed)
    assert len(refusals) == 2
    assert "Patient's Name (0010,0010) was changed to 'Other^Name'" in refusals[0]
    assert "another patient or study than its fixed image" in refusals[0]
    assert "Study ID (0020,0010) was changed to 'X7'" in refusals[1] and "where it is 'F1'" in refusals[1]
    assert "Nothing was written" in refusals[1]
    assert slicer_hierarchy.dialog_edit_refusals({}, {"PatientName": "X"}, fixed) == []


def test_fixed_image_texts_are_read_from_the_database_s_decoded_values(dicom_case):
    path = str(dicom_case["fixed"].paths[0])
    uid = str(dicom_case["fixed"].first_header.SOPInstanceUID)
    asked = []

    def file_value(file, tag):
        asked.append((file, tag))
        return {"0010,0010": "Müller^Anna", "0008,0020": "20240315"}[tag]

    texts = slicer_hierarchy.fixed_image_texts(
        ["PatientName", "StudyDate", "NotAKeyword"], uid, {uid: path}.get, file_value
    )
    assert texts == {"PatientName": "Müller^Anna", "StudyDate": "20240315"}
    assert asked == [(path, "0010,0010"), (path, "0008,0020")]


def test_placeholders_of_slicer_are_the_fixed_image_s_empty_values(dicom_case):
    header = dicom_case["fixed"].first_header.copy()
    header.PatientName = ""
    del header.StudyDescription
    assert slicer_hierarchy.slicer_shown_value("PatientName", header) == "No name"
    assert slicer_hierarchy.slicer_shown_value("StudyDescription", header) == "No study description"
    assert slicer_hierarchy.slicer_shown_value("StudyID", header) == "F1"


# Node-level export end to end ------------------------------------------------------------------------


def test_export_from_nodes_writes_the_from_world_mapping_of_a_grid_under_a_linear_parent(world, dicom_case, tmp_path):
    transform = world.registration_transform()
    options = slicer_fields.options_from_tags({"SeriesNumber": "501", "ContentLabel": "DIR"})
    result = slicer_export.export_from_nodes(transform, None, None, dicom_case["lookup"], tmp_path, options)
    assert result.path.parent == tmp_path and result.path.name == f"{result.dataset.SOPInstanceUID}.dcm"
    registration = read_registration(result.path)
    item = registration.choose_item()
    assert registration.frame_of_reference_uid == dicom_case["fixed"].frame_of_reference_uid
    assert item.source_frame_of_reference_uid == dicom_case["moving"].frame_of_reference_uid
    assert {r.sop_instance_uid for r in item.referenced_images} == {
        str(h.SOPInstanceUID) for h in dicom_case["moving"].headers
    }
    assert item.pre_deformation_matrix is not None and item.pre_deformation_matrix.matrix_type == "RIGID"
    points = fixed_points(dicom_case)
    assert max_error(registration.choose_item().map_points(points), from_world_lps(transform, points)) <= EXACT_MM
    dataset = pydicom.dcmread(result.path, stop_before_pixels=True)
    assert dataset.SeriesNumber == 501 and dataset.ContentLabel == "DIR"
    assert dataset.StudyInstanceUID == dicom_case["fixed"].study_instance_uid
    assert str(dataset.PatientName) == "Müller^Anna"
    assert result.report.ok


def test_validation_runs_every_check_and_leaves_nothing_behind(world, dicom_case, tmp_path):
    transform = world.registration_transform()
    dataset, report = slicer_export.validate_from_nodes(transform, world.fixed, world.moving, dicom_case["lookup"])
    assert report.ok, report.text()
    assert not any("dciodvfy was not run" in w for w in report.warnings), "dciodvfy must be installed for this test"
    assert not any("dcentvfy was not run" in w for w in report.warnings)
    preview = slicer_export.dump_preview(dataset, r"ContentLabel|GridDimensions")
    assert preview.splitlines() and all(
        ("ContentLabel" in line) or ("GridDimensions" in line) for line in preview.splitlines()
    )
    assert "not a valid regular expression" in slicer_export.dump_preview(dataset, "([")


def test_volume_without_dicom_origin_exports_with_chosen_files(world, dicom_case, tmp_path):
    plain_fixed = world.volume(dicom_case["fixed"], "Fixed (no DICOM)", dicom=False)
    transform = world.registration_transform(linear_parent=False, references=False)
    with pytest.raises(DicomInputError) as raised:
        slicer_export.export_from_nodes(transform, plain_fixed, world.moving, dicom_case["lookup"], tmp_path)
    assert "Export to DICOM" in str(raised.value)
    assert list(tmp_path.iterdir()) == []
    result = slicer_export.export_from_nodes(
        transform,
        plain_fixed,
        world.moving,
        dicom_case["lookup"],
        tmp_path / "reg.dcm",
        fixed_files=dicom_case["folder"] / "fixed",
    )
    points = fixed_points(dicom_case)
    assert (
        max_error(read_registration(result.path).choose_item().map_points(points), from_world_lps(transform, points))
        <= EXACT_MM
    )


def test_fixed_volume_that_was_moved_is_refused(world, dicom_case, tmp_path):
    shifted = world.volume(dicom_case["fixed"], "Shifted fixed", shift_mm=1.0)
    transform = world.registration_transform(references=False)
    with pytest.raises(DicomInputError) as raised:
        slicer_export.export_from_nodes(transform, shifted, world.moving, dicom_case["lookup"], tmp_path)
    assert "differ by up to 1 mm" in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_moving_volume_under_another_transform_is_reported(world, dicom_case, tmp_path):
    transform = world.registration_transform()
    other = linear_node(world.scene, np.eye(4))
    other.SetName("Manual nudge")
    world.moving.SetAndObserveTransformNodeID(other.GetID())
    result = slicer_export.export_from_nodes(transform, None, None, dicom_case["lookup"], tmp_path)
    assert any("under transform 'Manual nudge'" in w for w in result.report.warnings)


def test_cancel_and_existing_file_write_nothing(world, dicom_case, tmp_path):
    transform = world.registration_transform()
    steps = []

    def cancel_at_grid(fraction, message):
        steps.append(fraction)
        if message.startswith("Computing"):
            raise OperationCancelled("cancelled")

    with pytest.raises(OperationCancelled):
        slicer_export.export_from_nodes(transform, None, None, dicom_case["lookup"], tmp_path, progress=cancel_at_grid)
    assert steps == [0.05, 0.2, 0.35] and list(tmp_path.iterdir()) == []

    def cancel_while_writing(fraction, message):
        steps.append(fraction)
        if message == "Writing Vector Grid Data" and fraction > 0.8:
            raise OperationCancelled("cancelled")

    steps.clear()
    with pytest.raises(OperationCancelled):
        slicer_export.export_from_nodes(
            transform, None, None, dicom_case["lookup"], tmp_path, progress=cancel_while_writing
        )
    assert steps == sorted(steps) and 0.7 < steps[-1] < 1.0 and list(tmp_path.iterdir()) == []
    target = tmp_path / "reg.dcm"
    target.write_bytes(b"keep")
    with pytest.raises(OutputError):
        slicer_export.export_from_nodes(transform, None, None, dicom_case["lookup"], target)
    assert target.read_bytes() == b"keep"


# Import ---------------------------------------------------------------------------------------------


@pytest.fixture
def exported(world, dicom_case, tmp_path):
    transform = world.registration_transform()
    result = slicer_export.export_from_nodes(
        transform,
        None,
        None,
        dicom_case["lookup"],
        tmp_path,
        slicer_fields.options_from_tags({"SeriesDescription": "DIR result"}),
    )
    return transform, result


def test_describe_registration_file_for_the_browser(exported, dicom_case):
    _, result = exported
    info = slicer_import.describe_registration_file(result.path)
    assert info.name == "1000: DIR result"
    assert info.sop_instance_uid == result.dataset.SOPInstanceUID
    assert info.study_instance_uid == dicom_case["fixed"].study_instance_uid
    assert sorted(info.referenced_instance_uids) == sorted(str(h.SOPInstanceUID) for h in dicom_case["moving"].headers)
    assert slicer_import.describe_registration_file(dicom_case["fixed"].paths[0]) is None


def test_import_round_trip_recreates_the_mapping_and_applies_it_to_the_moving_volume(exported, dicom_case):
    transform, result = exported
    scene = Scene(dicom_case)
    imported = slicer_import.import_registration(result.path, scene.scene, dicom_case["lookup"])
    assert scene.moving.GetParentTransformNode() is None, "import alone links nothing"
    assert slicer_linking.link_registrations(scene.scene, imported.leaves) == []
    leaf = imported.leaf
    points = fixed_points(dicom_case)
    assert max_error(from_world_lps(leaf, points), from_world_lps(transform, points)) <= EXACT_MM
    assert imported.fixed_node is scene.fixed and imported.moving_node is scene.moving
    assert scene.moving.GetParentTransformNode() is leaf
    assert leaf.GetNodeReference(leaf.GetFixedNodeReferenceRole()) is scene.fixed
    assert leaf.GetNodeReference(leaf.GetMovingNodeReferenceRole()) is scene.moving
    assert leaf.GetAttribute("DICOM.instanceUIDs") == result.dataset.SOPInstanceUID
    assert all(node.GetName().startswith("1000: DIR result") for node in imported.nodes)
    items = slicer_hierarchy.place_in_subject_hierarchy(scene.sh, imported.nodes, scene.study)
    assert [scene.sh.GetItemParent(i) for i in items] == [scene.study] * len(imported.nodes)
    assert [scene.sh.GetItemDataNode(i) for i in items] == imported.nodes


def test_import_without_the_images_loaded_says_so(exported, dicom_case):
    _, result = exported
    scene = slicer.vtkMRMLScene()
    imported = slicer_import.import_registration(result.path, scene)
    assert slicer_linking.link_registrations(scene, imported.leaves) == []
    assert imported.fixed_node is None and imported.moving_node is None
    pending = slicer_linking.pending_notes(imported.leaves)
    assert len(pending) == 2
    assert "moving image of registration '1000: DIR result grid' is not loaded yet" in pending[0]


def test_import_of_a_file_that_is_not_a_registration_names_the_file(dicom_case):
    path = Path(dicom_case["fixed"].paths[0])
    with pytest.raises(InvalidRegistrationError) as raised:
        slicer_import.import_registration(path, slicer.vtkMRMLScene())
    assert str(path) in str(raised.value)


def test_import_without_applying_sets_the_references_only(exported, dicom_case):
    _, result = exported
    scene = Scene(dicom_case)
    imported = slicer_import.import_registration(result.path, scene.scene, dicom_case["lookup"], apply_to_moving=False)
    assert slicer_linking.link_registrations(scene.scene, imported.leaves) == []
    assert imported.moving_node is scene.moving and imported.fixed_node is scene.fixed
    assert scene.moving.GetParentTransformNode() is None
    assert slicer_linking.pending_notes(imported.leaves) == []


def test_watcher_links_after_the_event_once_and_only_volumes_with_a_dicom_identity(exported, dicom_case):
    _, result = exported
    world = Scene(dicom_case)
    world.sh.RemoveItem(world.sh.GetItemByDataNode(world.moving))
    world.scene.RemoveNode(world.moving)
    queued, notes = [], []
    watcher = slicer_linking.RegistrationWatcher(world.scene, queued.append, notes.append)
    watcher.start()
    imported = slicer_import.import_registration(result.path, world.scene, dicom_case["lookup"])
    assert len(queued) == 1, "one deferred link for all the nodes of the import"
    queued.pop()()
    assert imported.fixed_node is world.fixed and imported.moving_node is None
    copy = add_volume(world.scene, dicom_case["moving"], "Moving CT clone")  # DICOM.instanceUIDs, no SH item UIDs
    moving = world.volume(dicom_case["moving"], "Moving CT")
    assert moving.GetParentTransformNode() is None and len(queued) == 1
    queued.pop()()
    assert moving.GetParentTransformNode() is imported.leaf and copy.GetParentTransformNode() is None
    watcher.stop()
    again = world.volume(dicom_case["moving"], "Moving CT again")
    assert queued == [] and again.GetParentTransformNode() is None
    assert notes == []
