"""The real DicomRegSavePlugin.py driven through the methods Slicer calls (examineForImport, load,
examineForExport, export) on a slicer-core scene, with stand-ins that do what Slicer's DICOM browser,
scalar volume loader and export dialog do, in Slicer's order (slicer_app_standins.py).

Every load asserts the mapping of 1000 fixed-image points through the moving volume's transform
against the transform that was exported; every refused export asserts the message and that no file
was written.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
import slicer
import vtk

from DicomRegSaveLib.mrml.nodes import fixed_under_transform_message
from DicomRegSaveLib.reg.reader import read_registration
from DicomRegSaveLib.slicer import offer as slicer_offer
from mrml_helpers import from_world_lps, homogeneous, linear_node, rotation
from slicer_app_standins import (
    Application,
    Database,
    ExportDialog,
    SlicerRtRegPlugin,
    open_export_dialog_from_data_module,
)
from slicer_cases import MAPPING_MM, max_error, nodes, registration_transform

# Export through the dialog ----------------------------------------------------------------------------


def loaded_registration(app, case):
    """Fixed and moving series loaded from the database, and a registration result at the scene's top level."""
    fixed = app.load_series(case["fixed"].paths)
    moving = app.load_series(case["moving"].paths)
    transform = registration_transform(app.scene, case["fixed"])
    transform.SetNodeReferenceID(transform.GetFixedNodeReferenceRole(), fixed.GetID())
    transform.SetNodeReferenceID(transform.GetMovingNodeReferenceRole(), moving.GetID())
    return fixed, moving, transform


def exported_files(folder):
    return sorted(folder.glob("*.dcm"))


def assert_written(case, folder, transform, fixed_header):
    [path] = exported_files(folder)
    registration = read_registration(path)
    points = case["points"]
    assert max_error(registration.choose_item().map_points(points), from_world_lps(transform, points)) <= MAPPING_MM
    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    assert dataset.StudyInstanceUID == fixed_header.StudyInstanceUID
    assert dataset.PatientID == fixed_header.PatientID
    return dataset


def parents(scene):
    """Item -> parent of every subject hierarchy item."""
    sh = scene.GetSubjectHierarchyNode()
    children = vtk.vtkIdList()
    sh.GetItemChildren(sh.GetSceneItemID(), children, True)
    return {children.GetId(i): sh.GetItemParent(children.GetId(i)) for i in range(children.GetNumberOfIds())}


def test_examine_for_export_changes_no_parent_in_the_subject_hierarchy(app, reg_case):
    slicer.modules.dicomPlugins["DicomSroImportExportPlugin"] = SlicerRtRegPlugin
    _, moving, transform = loaded_registration(app, reg_case)
    sh = app.scene.GetSubjectHierarchyNode()
    sh.SetItemParent(sh.GetItemByDataNode(transform), sh.GetItemParent(sh.GetItemByDataNode(moving)))
    before = parents(app.scene)
    for node in (transform, moving):
        for _ in range(3):  # the dialog examines on every selection
            app.plugin.examineForExport(sh.GetItemByDataNode(node))
    dialog = ExportDialog()
    dialog.examine(sh.GetItemByDataNode(transform))
    assert dialog.select(0) == ""
    assert parents(app.scene) == before


def test_transform_at_the_top_level_is_exported_and_placed_into_the_fixed_study(app, reg_case, tmp_path):
    fixed, _, transform = loaded_registration(app, reg_case)
    sh = app.scene.GetSubjectHierarchyNode()
    item = sh.GetItemByDataNode(transform)
    assert sh.GetItemParent(item) == sh.GetSceneItemID()
    dialog = ExportDialog()
    rows = dialog.examine(item)
    assert rows[0][0].pluginClass == "DicomRegSavePlugin"
    assert dialog.select(0) == "No patient found"
    assert sh.GetItemParent(item) == sh.GetSceneItemID()
    assert dialog.export(tmp_path, {"SeriesDescription": "Edited in the dialog"}) == ""
    dataset = assert_written(reg_case, tmp_path, transform, reg_case["fixed"].first_header)
    assert dataset.SeriesDescription == "Edited in the dialog"
    assert sh.GetItemParent(item) == sh.GetItemParent(sh.GetItemByDataNode(fixed))


def test_data_module_prompt_moving_everything_into_the_moving_study_still_writes_the_fixed_identity(
    app, reg_case, tmp_path
):
    fixed, moving, transform = loaded_registration(app, reg_case)
    sh = app.scene.GetSubjectHierarchyNode()
    item = sh.GetItemByDataNode(transform)
    sh.SetItemParent(sh.GetItemByDataNode(fixed), sh.GetSceneItemID())  # so the moving study is found first
    moving_study = sh.GetItemParent(sh.GetItemByDataNode(moving))
    dialog = open_export_dialog_from_data_module(item)
    assert sh.GetItemParent(item) == moving_study == sh.GetItemParent(sh.GetItemByDataNode(fixed))
    dialog.examine(item)
    assert dialog.select(0) == ""
    assert dialog.shown["StudyInstanceUID"] == reg_case["moving"].study_instance_uid
    assert dialog.export(tmp_path) == ""
    dataset = assert_written(reg_case, tmp_path, transform, reg_case["fixed"].first_header)
    assert dataset.StudyDate == reg_case["fixed"].first_header.StudyDate
    assert sh.GetItemUID(sh.GetItemParent(item), "DICOM") == reg_case["fixed"].study_instance_uid


def test_fixed_study_missing_from_the_hierarchy_is_created_with_the_fixed_image_s_patient_and_study(
    app, reg_case, tmp_path
):
    fixed, moving, transform = loaded_registration(app, reg_case)
    sh = app.scene.GetSubjectHierarchyNode()
    fixed_study = sh.GetItemParent(sh.GetItemByDataNode(fixed))
    sh.SetItemParent(sh.GetItemByDataNode(fixed), sh.GetItemParent(sh.GetItemByDataNode(moving)))
    sh.RemoveItem(fixed_study)
    dialog = ExportDialog()
    dialog.examine(sh.GetItemByDataNode(transform))
    dialog.select(0)
    assert dialog.export(tmp_path) == ""
    assert_written(reg_case, tmp_path, transform, reg_case["fixed"].first_header)
    study = sh.GetItemParent(sh.GetItemByDataNode(transform))
    assert sh.GetItemUID(study, "DICOM") == reg_case["fixed"].study_instance_uid
    assert sh.GetItemAttribute(sh.GetItemParent(study), "DICOM.PatientName") == "Müller^Anna"


@pytest.fixture
def respelled(reg_case, tmp_path, monkeypatch):
    """The moving series with the patient's name spelled "MUELLER^ANNA" (the fixed image has "Müller^Anna"),
    loaded first, so Slicer fills the patient item from it; then the fixed series and a registration."""
    folder = tmp_path / "respelled"
    folder.mkdir()
    paths = []
    for path in reg_case["moving"].paths:
        dataset = pydicom.dcmread(path)
        dataset.PatientName = "MUELLER^ANNA"
        paths.append(folder / Path(path).name)
        dataset.save_as(paths[-1])
    application = Application(monkeypatch, Database([Path(reg_case["fixed"].paths[0]).parent, folder]))
    moving = application.load_series(paths)
    fixed = application.load_series(reg_case["fixed"].paths)
    transform = registration_transform(application.scene, reg_case["fixed"])
    transform.SetNodeReferenceID(transform.GetFixedNodeReferenceRole(), fixed.GetID())
    transform.SetNodeReferenceID(transform.GetMovingNodeReferenceRole(), moving.GetID())
    sh = application.scene.GetSubjectHierarchyNode()
    sh.SetItemParent(sh.GetItemByDataNode(transform), sh.GetItemParent(sh.GetItemByDataNode(fixed)))
    yield application, transform
    application.close()


def test_unedited_export_with_a_differently_spelled_patient_item_writes_the_fixed_identity(
    respelled, reg_case, tmp_path
):
    app, transform = respelled
    dialog = ExportDialog()
    dialog.examine(app.scene.GetSubjectHierarchyNode().GetItemByDataNode(transform))
    assert dialog.select(0) == ""
    assert dialog.shown["PatientName"] == "MUELLER^ANNA"
    assert dialog.export(tmp_path) == ""
    dataset = assert_written(reg_case, tmp_path, transform, reg_case["fixed"].first_header)
    assert str(dataset.PatientName) == "Müller^Anna"


def test_patient_name_corrected_to_the_fixed_image_s_spelling_is_written(respelled, reg_case, tmp_path):
    app, transform = respelled
    dialog = ExportDialog()
    dialog.examine(app.scene.GetSubjectHierarchyNode().GetItemByDataNode(transform))
    dialog.select(0)
    assert dialog.export(tmp_path, {"PatientName": "Müller^Anna"}) == ""
    assert (
        str(assert_written(reg_case, tmp_path, transform, reg_case["fixed"].first_header).PatientName) == "Müller^Anna"
    )


def dialog_in_the_fixed_study(app, case):
    """A registration transform in the fixed image's study, examined and selected in the export dialog."""
    fixed, _, transform = loaded_registration(app, case)
    sh = app.scene.GetSubjectHierarchyNode()
    sh.SetItemParent(sh.GetItemByDataNode(transform), sh.GetItemParent(sh.GetItemByDataNode(fixed)))
    dialog = ExportDialog()
    dialog.examine(sh.GetItemByDataNode(transform))
    assert dialog.select(0) == ""
    return transform, dialog


def test_patient_name_edited_in_the_dialog_is_refused_and_nothing_is_written(app, reg_case, tmp_path):
    transform, dialog = dialog_in_the_fixed_study(app, reg_case)
    message = dialog.export(tmp_path, {"PatientName": "Someone^Else"})
    assert "Patient's Name (0010,0010) was changed to 'Someone^Else'" in message
    assert "Nothing was written" in message
    assert exported_files(tmp_path) == []


def test_study_edits_are_refused_like_identity_edits_and_series_values_are_checked(app, reg_case, tmp_path):
    transform, dialog = dialog_in_the_fixed_study(app, reg_case)
    assert "Content Label (0070,0080)" in dialog.export(tmp_path, {"ContentLabel": "lower case"})
    message = dialog.export(tmp_path, {"ContentLabel": "DIR", "StudyDate": "20240316", "StudyDescription": "Planning"})
    assert "Study Date (0008,0020) was changed to '20240316'" in message and "where it is '20240315'" in message
    assert "Study Description (0008,1030) was changed to 'Planning'" in message
    assert exported_files(tmp_path) == []
    assert (
        dialog.export(tmp_path, {"StudyDate": "20240315", "StudyDescription": dialog.shown["StudyDescription"]}) == ""
    )
    dataset = assert_written(reg_case, tmp_path, transform, reg_case["fixed"].first_header)
    assert dataset.StudyDate == "20240315" and dataset.ContentLabel == "DIR"


def test_export_to_the_database_indexes_the_reg_and_leaves_no_temporary_folder(app, reg_case):
    _, _, transform = loaded_registration(app, reg_case)
    dialog = ExportDialog()
    dialog.examine(app.scene.GetSubjectHierarchyNode().GetItemByDataNode(transform))
    dialog.select(0)
    assert dialog.export(to_database=True) == ""
    [exportable] = dialog.exportables
    assert not Path(exportable.directory).exists()
    written = [uid for uid, path in slicer.dicomDatabase._files.items() if "DICOMExportTemp_" in path]
    assert len(written) == 1
    assert slicer.dicomDatabase.instanceValue(written[0], "0008,0060") == "REG"


def test_the_dialog_s_series_number_is_chosen_at_export_among_the_study_s_series_in_the_database(
    app, reg_case, tmp_path
):
    _, _, transform = loaded_registration(app, reg_case)
    item = app.scene.GetSubjectHierarchyNode().GetItemByDataNode(transform)
    assert pydicom.dcmread(reg_case["reg"], stop_before_pixels=True).SeriesNumber == 1000, "the database's REG"
    for expected in (1001, 1002):
        dialog = ExportDialog()
        [[exportable]] = dialog.examine(item)
        assert exportable.tag("SeriesNumber") == "", "shown empty: an unedited row is no edit"
        dialog.select(0)
        assert dialog.export(to_database=True) == ""
        [latest] = [
            header
            for path, header in slicer.dicomDatabase._headers.items()
            if "DICOMExportTemp_" in path and int(header.SeriesNumber) == expected
        ]
        assert latest.StudyInstanceUID == reg_case["fixed"].study_instance_uid
    dialog = ExportDialog()
    dialog.examine(item)
    dialog.select(0)
    assert dialog.export(tmp_path, {"SeriesNumber": "1000"}) == ""
    [path] = exported_files(tmp_path)
    assert pydicom.dcmread(path, stop_before_pixels=True).SeriesNumber == 1000, "an edited number wins"


def test_only_transforms_with_a_registration_hint_get_a_cannot_export_yet_row(app, reg_case):
    _, moving, transform = loaded_registration(app, reg_case)
    sh = app.scene.GetSubjectHierarchyNode()
    plain = app.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Plain")
    assert app.plugin.examineForExport(sh.GetItemByDataNode(plain)) == []
    app.scalar.regularization = "default"
    irregular = app.load_series(list(reg_case["moving"].paths[:3]) + list(reg_case["moving"].paths[4:]))
    acquisition = irregular.GetParentTransformNode()
    assert acquisition is not None and app.plugin.examineForExport(sh.GetItemByDataNode(acquisition)) == []
    transform.RemoveNodeReferenceIDs(transform.GetMovingNodeReferenceRole())
    [row] = app.plugin.examineForExport(sh.GetItemByDataNode(transform))
    assert row.confidence == slicer_offer.BLOCKED_CONFIDENCE and "moving volume" in row.tooltip


def test_a_fixed_volume_under_a_transform_is_listed_with_why_and_the_dialog_writes_nothing(app, reg_case, tmp_path):
    fixed, _, transform = loaded_registration(app, reg_case)
    display = linear_node(app.scene, homogeneous(np.eye(3), (5.0, 0.0, 0.0)))
    display.SetName("Display shift")
    fixed.SetAndObserveTransformNodeID(display.GetID())
    dialog = ExportDialog()
    [[exportable]] = dialog.examine(app.scene.GetSubjectHierarchyNode().GetItemByDataNode(transform))
    assert exportable.confidence == slicer_offer.BLOCKED_CONFIDENCE
    assert exportable.tooltip == fixed_under_transform_message(fixed)
    assert f"'{fixed.GetName()}' is under transform 'Display shift'" in exportable.tooltip
    dialog.select(0)
    assert dialog.export(tmp_path) == exportable.tooltip
    assert list(tmp_path.iterdir()) == []


def test_transform_without_a_fixed_reference_is_listed_with_what_to_do_and_writes_nothing(app, reg_case, tmp_path):
    _, _, transform = loaded_registration(app, reg_case)
    transform.RemoveNodeReferenceIDs(transform.GetFixedNodeReferenceRole())
    dialog = ExportDialog()
    rows = dialog.examine(app.scene.GetSubjectHierarchyNode().GetItemByDataNode(transform))
    [[exportable]] = rows
    assert exportable.confidence == slicer_offer.BLOCKED_CONFIDENCE
    assert "fixed volume" in exportable.tooltip and "DICOM Registration Export module" in exportable.tooltip
    dialog.select(0)
    assert dialog.export(tmp_path) == exportable.tooltip
    assert exported_files(tmp_path) == []


def test_dicomregsave_is_preselected_over_slicerrt_for_a_deformable_transform(app, reg_case):
    slicer.modules.dicomPlugins["DicomSroImportExportPlugin"] = SlicerRtRegPlugin
    _, _, transform = loaded_registration(app, reg_case)
    rows = ExportDialog().examine(app.scene.GetSubjectHierarchyNode().GetItemByDataNode(transform))
    assert [row[0].pluginClass for row in rows] == ["DicomRegSavePlugin", "DicomSroImportExportPlugin"]
    # The same dialog rule at a tie lists SlicerRT first: why 1.0 is not enough.
    rows[0][0].confidence = 1.0
    by_key = {}
    for group in sorted(rows, key=lambda g: g[0].pluginClass):
        by_key.setdefault(1.0 - group[0].confidence, []).insert(0, group)
    assert [group[0].pluginClass for group in by_key[0.0]] == ["DicomSroImportExportPlugin", "DicomRegSavePlugin"]


def test_linear_transform_goes_out_as_a_spatial_registration_and_comes_back_applied(app, reg_case, tmp_path):
    slicer.modules.dicomPlugins["DicomSroImportExportPlugin"] = SlicerRtRegPlugin
    fixed, moving, _ = loaded_registration(app, reg_case)
    matrix_ras = homogeneous(rotation([0.3, -1.0, 0.4], 0.08), (4.0, -3.0, 2.5))
    rigid = linear_node(app.scene, matrix_ras)
    rigid.SetNodeReferenceID(rigid.GetFixedNodeReferenceRole(), fixed.GetID())
    rigid.SetNodeReferenceID(rigid.GetMovingNodeReferenceRole(), moving.GetID())
    expected = from_world_lps(rigid, reg_case["points"])
    dialog = ExportDialog()
    rows = dialog.examine(app.scene.GetSubjectHierarchyNode().GetItemByDataNode(rigid))
    assert [row[0].pluginClass for row in rows] == ["DicomRegSavePlugin", "DicomSroImportExportPlugin"]
    assert rows[0][0].name == "Spatial Registration (DicomRegSave)"
    dialog.select(0)
    assert dialog.export(tmp_path) == ""
    [path] = exported_files(tmp_path)
    assert pydicom.dcmread(path, stop_before_pixels=True).SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.1"
    app.scene.RemoveNode(rigid)
    [loadable] = app.plugin.examineForImport([[str(path)]])
    assert loadable.confidence > 0.9 and "DICOM Spatial Registration" in loadable.tooltip
    assert app.browser.load({app.plugin: [loadable]}) == [True]
    app.process_events()
    leaf = moving.GetParentTransformNode()
    assert leaf is not None and leaf.GetNodeReference(leaf.GetFixedNodeReferenceRole()) is fixed
    assert max_error(from_world_lps(leaf, reg_case["points"]), expected) <= MAPPING_MM


# An older Slicer -------------------------------------------------------------------------------------


def test_old_slicer_gets_one_message_and_no_traceback(app, reg_case, tmp_path, caplog, monkeypatch):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pydicom>=99.0\nhighdicom-not-installed-anywhere>=0.27\n")
    monkeypatch.setattr(app.plugin_module, "REQUIREMENTS_FILE", requirements)
    app.plugin_module.engineProblem.cache_clear()
    caplog.set_level(logging.ERROR)
    plugin = app.plugin
    assert plugin.examineForImport([[str(reg_case["reg"])]]) == []
    _, _, transform = loaded_registration(app, reg_case)
    item = app.scene.GetSubjectHierarchyNode().GetItemByDataNode(transform)
    [exportable] = plugin.examineForExport(item)
    assert "needs 3D Slicer 5.12 or later" in exportable.tooltip
    assert f"pydicom {pydicom.__version__} (needs >= 99.0)" in exportable.tooltip
    assert "highdicom-not-installed-anywhere (not installed" in exportable.tooltip
    exportable.directory = str(tmp_path / "out")
    assert plugin.export([exportable]) == exportable.tooltip
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "needs 3D Slicer 5.12" in errors[0].getMessage()
    assert not (tmp_path / "out").exists()


def test_requirements_file_of_the_module_is_met_here():
    from DicomRegSaveLib.requirements import read_requirements, unmet_requirements
    from slicer_app_standins import PLUGIN_FOLDER

    path = PLUGIN_FOLDER / "Resources" / "requirements.txt"
    assert dict(read_requirements(path))["pydicom"] == "3.0.2"
    assert unmet_requirements(path) == []


def test_requirements_file_with_other_syntax_is_refused(tmp_path):
    from DicomRegSaveLib.requirements import read_requirements

    path = tmp_path / "requirements.txt"
    path.write_text("# comment\n-c constraints.txt\npydicom~=3.0\n")
    with pytest.raises(ValueError, match="line 3"):
        read_requirements(path)


def test_nothing_maps_differently_from_numpy_oracle(reg_case):
    """The oracle itself: the exported transform moves the points by a few millimetres, so a wrong
    direction or a missing part would fail the 1e-3 mm checks above by far."""
    shift = np.linalg.norm(reg_case["expected"] - reg_case["points"], axis=1)
    assert shift.min() > 0.5 and len(reg_case["points"]) >= 500


# A REG with several items (one per moving series, plus an identity item) ------------------------------


@pytest.fixture
def two_moving_series(tmp_path, monkeypatch):
    """A hand-built REG (reg_builders, not the product's writer) with an identity item for the fixed
    series and one deformable item for each of two moving series in their own frames of reference."""
    from reg_builders import GridSpec, ItemSpec, Patient, build_reg, make_ct_series, smooth_vectors, write

    patient = Patient()
    fixed = make_ct_series(3, patient=patient, series_number=1)
    moving = {
        "MR A": make_ct_series(2, patient=patient, origin_lps=(-8.0, -9.0, 0.0), series_number=2, study_id="S2"),
        "PET B": make_ct_series(3, patient=patient, origin_lps=(-6.0, -7.0, 1.0), series_number=3, study_id="S3"),
    }
    post = np.eye(4)
    post[:3, 3] = (1.5, -2.0, 0.5)
    items = [
        ItemSpec(
            fixed[0].FrameOfReferenceUID, fixed, registration_type=("125021", "DCM", "Frame of Reference Identity")
        )
    ]
    for seed, (description, series) in enumerate(moving.items(), start=1):
        for image in series:
            image.SeriesDescription = description
        grid = GridSpec(
            origin_lps=(-10.0, -12.0, -4.0),
            vectors_lps=smooth_vectors((5, 4, 3), seed=seed),
            spacing_mm=(2.0, 2.5, 3.0),
        )
        items.append(
            ItemSpec(
                series[0].FrameOfReferenceUID,
                series,
                grid=grid,
                post_matrix=post if seed == 2 else None,
                post_type="RIGID" if seed == 2 else None,
            )
        )
    paths = {"fixed": [write(image, tmp_path / f"fixed_{n}.dcm") for n, image in enumerate(fixed)]}
    for description, series in moving.items():
        paths[description] = [write(image, tmp_path / f"{description}_{n}.dcm") for n, image in enumerate(series)]
    paths["reg"] = write(build_reg(fixed, items), tmp_path / "reg.dcm")
    application = Application(monkeypatch, Database([tmp_path]))
    yield application, paths
    application.close()


def test_every_item_of_a_multi_item_reg_goes_to_its_own_moving_series_in_any_order(two_moving_series):
    app, paths = two_moving_series
    pet = app.load_series(paths["PET B"])
    loadable = app.load_reg(paths["reg"])
    fixed = app.load_series(paths["fixed"])
    mr = app.load_series(paths["MR A"])
    registration = read_registration(paths["reg"])
    rng = np.random.default_rng(5)
    points = rng.uniform((-10.0, -12.0, -4.0), (-4.0, -6.0, 2.0), (600, 3))
    leaves = {}
    for volume, item in ((mr, registration.items[1]), (pet, registration.items[2])):
        leaf = volume.GetParentTransformNode()
        assert leaf is not None and leaf.GetNodeReference(leaf.GetFixedNodeReferenceRole()) is fixed
        assert max_error(from_world_lps(leaf, points), item.map_points(points)) <= MAPPING_MM
        leaves[volume.GetName()] = leaf
    assert leaves[mr.GetName()] is not leaves[pet.GetName()]
    assert leaves[mr.GetName()].GetName().startswith(f"{loadable.name} - 2: MR A")
    assert leaves[pet.GetName()].GetName().startswith(f"{loadable.name} - 3: PET B")
    assert fixed.GetParentTransformNode() is None
    assert len([n for n in nodes(app.scene, "vtkMRMLTransformNode") if n.GetAttribute("DICOM.instanceUIDs")]) == 2
