"""Loading a REG and its series through the real DicomRegSavePlugin.py, with the stand-in DICOM browser,
scalar volume loader (its acquisition-transform check and harden included) and event loop of
slicer_app_standins.py: the registration is applied after Slicer's own loaders finish, to the volume
with the series' DICOM identity, once, and survives clones, crops and scene reloads.

Every applied registration is checked by mapping fixed-image points through the moving volume's
transform chain against the transform that was exported (reg_case's oracle).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import slicer
import vtk

from DicomRegSaveLib import geometry
from DicomRegSaveLib.slicer import linking
from mrml_helpers import from_world_lps
from slicer_app_standins import PLUGIN_FOLDER, clone_item, crop_volume, load_scene_bundle, save_scene_bundle
from slicer_cases import MAPPING_MM, assert_applied, max_error, nodes, only_leaf, registration_transform

SUPPORT = Path(__file__).resolve().parents[1] / "support"


def series(case, role):
    return case[role].paths


def errors_logged(caplog):
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


# Order of loading ------------------------------------------------------------------------------------


def test_reg_loaded_before_its_series_is_applied_when_they_arrive(app, reg_case):
    loadable = app.load_reg(reg_case["reg"])
    leaf = only_leaf(app.scene)
    assert leaf.GetName().startswith(loadable.name)
    assert leaf.GetNodeReference(leaf.GetMovingNodeReferenceRole()) is None
    fixed = app.load_series(series(reg_case, "fixed"))
    assert leaf.GetNodeReference(leaf.GetFixedNodeReferenceRole()) is fixed
    moving = app.load_series(series(reg_case, "moving"))
    assert leaf.GetNodeReference(leaf.GetMovingNodeReferenceRole()) is moving
    assert_applied(reg_case, moving, leaf)
    assert fixed.GetParentTransformNode() is None
    assert app.popups == [] and app.browser.messages == []


def test_reg_loaded_after_its_series_is_applied_and_joins_the_fixed_study(app, reg_case):
    fixed = app.load_series(series(reg_case, "fixed"))
    moving = app.load_series(series(reg_case, "moving"))
    app.load_reg(reg_case["reg"])
    leaf = only_leaf(app.scene)
    assert_applied(reg_case, moving, leaf)
    assert leaf.GetNodeReference(leaf.GetFixedNodeReferenceRole()) is fixed
    sh = app.scene.GetSubjectHierarchyNode()
    study = sh.GetItemParent(sh.GetItemByDataNode(leaf))
    assert study == sh.GetItemParent(sh.GetItemByDataNode(fixed))
    assert all(
        sh.GetItemParent(sh.GetItemByDataNode(node)) == study for node in nodes(app.scene, "vtkMRMLTransformNode")
    )


def test_linking_runs_once_per_reg_load(app, reg_case, monkeypatch):
    """Issue 14: import and the watcher both linked each REG load; now the watcher alone does, once."""
    calls = []
    link = linking.link_registrations
    monkeypatch.setattr(linking, "link_registrations", lambda *args: calls.append(args) or link(*args))
    app.load_series(series(reg_case, "fixed"))
    moving = app.load_series(series(reg_case, "moving"))
    calls.clear()
    app.load_reg(reg_case["reg"])
    assert len(calls) == 1
    assert_applied(reg_case, moving, only_leaf(app.scene))


@pytest.mark.parametrize("reg_plugin_first", [False, True])
def test_reg_and_series_in_one_browser_batch_in_either_plugin_order(app, reg_case, reg_plugin_first):
    plugin = app.plugin
    reg_loadables = plugin.examineForImport([[str(reg_case["reg"])]])
    series_loadables = [
        app.scalar.examineFiles([str(p) for p in series(reg_case, role)])[0] for role in ("moving", "fixed")
    ]
    batch = {plugin: reg_loadables, app.scalar: series_loadables}
    if not reg_plugin_first:
        batch = {app.scalar: series_loadables, plugin: reg_loadables}
    assert all(app.browser.load(batch))
    app.process_events()
    [moving, fixed] = nodes(app.scene, "vtkMRMLScalarVolumeNode")
    leaf = only_leaf(app.scene)
    assert_applied(reg_case, moving, leaf)
    assert leaf.GetNodeReference(leaf.GetFixedNodeReferenceRole()) is fixed
    assert moving.GetName() == series_loadables[0].name


# Slicer's acquisition transform: the loader's own check, then the registration above it --------------


@pytest.fixture
def missing_slice(reg_case):
    """The moving series without its fourth slice: Slicer's loader regularizes it with an acquisition transform."""
    paths = list(series(reg_case, "moving"))
    return paths[:3] + paths[4:]


def dicom_index_mm(case, paths, points_lps):
    """Where each moving-image point (LPS) lies in the acquired slices, as a continuous index scaled to mm:
    in-plane from the first slice, along the normal interpolated between the real slice positions."""
    first = case["moving"].headers[0]
    row, column = (np.array(first.ImageOrientationPatient[i : i + 3], dtype=float) for i in (0, 3))
    normal = np.cross(row, column)
    positions = np.array(
        [
            float(np.dot(normal, case["moving"].headers[case["moving"].paths.index(p)].ImagePositionPatient))
            for p in paths
        ]
    )
    origin = np.array(first.ImagePositionPatient, dtype=float)
    spacing = [float(v) for v in first.PixelSpacing]
    slice_mm = positions[1] - positions[0]
    along = points_lps @ normal
    k = np.interp(along, positions, np.arange(len(positions)))
    inside = (along >= positions[0]) & (along <= positions[-1])
    return (
        np.stack([(points_lps - origin) @ row, (points_lps - origin) @ column, k * slice_mm], axis=1),
        inside,
        spacing,
    )


@pytest.mark.parametrize("reg_first", [True, False])
def test_series_with_a_missing_slice_loads_under_its_acquisition_transform_below_the_registration(
    app, reg_case, missing_slice, reg_first, caplog
):
    caplog.set_level(logging.WARNING)
    if reg_first:
        app.load_reg(reg_case["reg"])
    moving = app.load_series(missing_slice)
    if not reg_first:
        app.load_reg(reg_case["reg"])
    assert moving is not None and app.browser.messages == [] and errors_logged(caplog) == []
    leaf = only_leaf(app.scene)
    acquisition = moving.GetParentTransformNode()
    assert acquisition.GetName() == f"{moving.GetName()} acquisition transform"
    assert acquisition.GetParentTransformNode() is leaf
    assert leaf.GetNodeReference(leaf.GetMovingNodeReferenceRole()) is moving
    # volume -> acquisition transform -> registration, against the REG and the real slice positions
    points = reg_case["points"]
    assert max_error(from_world_lps(leaf, points), reg_case["expected"]) <= MAPPING_MM
    expected_mm, inside, _ = dicom_index_mm(reg_case, missing_slice, reg_case["expected"])
    assert inside.sum() >= 500
    # The voxel the real slices put each moving point in, through the volume's grid and its acquisition
    # transform (both forward, as the loader built them), lands where the registration maps the point.
    ijk_to_ras = vtk.vtkMatrix4x4()
    moving.GetIJKToRASMatrix(ijk_to_ras)
    to_patient = acquisition.GetTransformToParent()
    voxels = expected_mm[inside] / np.array(moving.GetSpacing())
    through_volume_ras = np.array(
        [to_patient.TransformPoint(ijk_to_ras.MultiplyPoint([*voxel, 1.0])[:3]) for voxel in voxels]
    )
    through_registration_ras = geometry.lps_to_ras_points(from_world_lps(leaf, points[inside]))
    assert max_error(through_volume_ras, through_registration_ras) <= MAPPING_MM


def test_harden_setting_hardens_the_acquisition_transform_and_the_registration_is_applied_to_the_volume(
    app, reg_case, missing_slice, caplog
):
    caplog.set_level(logging.WARNING)
    app.scalar.regularization = "hardenTransform"
    app.load_reg(reg_case["reg"])
    moving = app.load_series(missing_slice)
    assert moving is not None and app.browser.messages == [] and errors_logged(caplog) == []
    leaf = assert_applied(reg_case, moving, only_leaf(app.scene))
    assert [n for n in nodes(app.scene, "vtkMRMLGridTransformNode") if n.GetParentTransformNode() is leaf] == []


def test_linking_inside_the_loader_s_transform_event_would_fail_slicer_s_load(app, reg_case, missing_slice, caplog):
    """What the deferral avoids, and that the stand-in loader catches it: linking inside the volume's
    TransformModifiedEvent (as the first pass did) re-parents the acquisition transform before the
    loader's corner check, which then fails the load like Slicer's browser reports it."""
    app.load_reg(reg_case["reg"])
    watcher = app.plugin_module.registrationWatcher()

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def link_inside_events(scene, event, node):
        if node.IsA("vtkMRMLScalarVolumeNode"):
            node.AddObserver(slicer.vtkMRMLTransformableNode.TransformModifiedEvent, lambda volume, e: watcher.flush())

    app.scene.AddObserver(slicer.vtkMRMLScene.NodeAddedEvent, link_inside_events)
    assert app.load_series(missing_slice) is None
    [message] = app.browser.messages
    assert message.startswith("Could not load: ") and message.endswith(" as a Scalar Volume")
    assert "Acquisition transform didn't fix slice corners!" in caplog.text


# DICOM identity: copies are not the series ----------------------------------------------------------


@pytest.fixture
def registered(app, reg_case):
    fixed = app.load_series(series(reg_case, "fixed"))
    moving = app.load_series(series(reg_case, "moving"))
    app.load_reg(reg_case["reg"])
    return fixed, moving, only_leaf(app.scene)


def test_clone_and_crop_leave_the_original_under_the_registration_without_a_word(app, reg_case, registered, caplog):
    caplog.set_level(logging.WARNING)
    _, moving, leaf = registered
    clone = clone_item(moving)
    app.process_events()
    cropped = crop_volume(moving)
    app.process_events()
    assert clone.GetAttribute("DICOM.instanceUIDs") == moving.GetAttribute("DICOM.instanceUIDs")
    assert cropped.GetAttribute("DICOM.instanceUIDs") == moving.GetAttribute("DICOM.instanceUIDs")
    assert leaf.GetNodeReference(leaf.GetMovingNodeReferenceRole()) is moving
    assert_applied(reg_case, moving, leaf)
    assert clone.GetParentTransformNode() is None
    assert cropped.GetImageData().GetDimensions() != moving.GetImageData().GetDimensions()
    assert app.popups == [] and caplog.records == []


def test_a_new_copy_of_the_series_takes_over_and_the_user_is_told_in_the_log(app, reg_case, registered, caplog):
    _, first, leaf = registered
    caplog.set_level(logging.WARNING)
    second = app.load_series(series(reg_case, "moving"))
    assert_applied(reg_case, second, leaf)
    assert first.GetParentTransformNode() is None
    [message] = [r.getMessage() for r in caplog.records]
    assert f"'{first.GetName()}' is no longer under registration" in message
    assert app.popups == []
    [again] = app.plugin.examineForImport([[str(reg_case["reg"])]])
    assert "loaded 2 times" in again.warning and f"most recently loaded one, '{second.GetName()}'" in again.warning
    assert "already loaded" in again.warning


def test_the_user_s_own_changes_are_left_alone(app, reg_case, registered):
    fixed, moving, leaf = registered
    moving.SetAndObserveTransformNodeID(None)
    app.load_series(series(reg_case, "fixed"))
    assert moving.GetParentTransformNode() is None
    manual = app.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Manual")
    app.process_events()
    moving.SetAndObserveTransformNodeID(manual.GetID())
    assert app.queued == [], "moving a volume schedules nothing"
    newer = app.load_series(series(reg_case, "moving"))
    assert moving.GetParentTransformNode() is manual
    assert_applied(reg_case, newer, leaf)
    assert leaf.GetNodeReference(leaf.GetFixedNodeReferenceRole()) is fixed


# Scenes ---------------------------------------------------------------------------------------------------


def test_scene_saved_and_opened_again_in_the_same_run_keeps_the_registration_applied_once(
    app, reg_case, registered, tmp_path, caplog
):
    caplog.set_level(logging.WARNING)
    bundle = tmp_path / "registered.mrb"
    save_scene_bundle(app.scene, bundle)
    load_scene_bundle(app.scene, bundle)
    app.process_events()
    [moving, _] = sorted(nodes(app.scene, "vtkMRMLScalarVolumeNode"), key=lambda v: v.GetName() != "1: Moving CT")
    leaf = only_leaf(app.scene)
    assert_applied(reg_case, moving, leaf)
    assert leaf.GetNodeReference(leaf.GetMovingNodeReferenceRole()) is moving
    assert caplog.records == []
    # Imported again on top: each copy keeps its own registration, nothing moves between them.
    load_scene_bundle(app.scene, bundle, clear=False)
    app.process_events()
    leaves = [n for n in nodes(app.scene, "vtkMRMLTransformNode") if n.GetAttribute("DICOM.instanceUIDs")]
    assert len(leaves) == 2
    for leaf in leaves:
        assert_applied(reg_case, leaf.GetNodeReference(leaf.GetMovingNodeReferenceRole()), leaf)
    assert caplog.records == []


def grid_interpolation(scene):
    """Grid node name -> the VTK interpolation mode of its stored (from-parent) grid."""
    return {
        grid.GetName(): grid.GetTransformFromParent().GetInterpolationMode()
        for grid in nodes(scene, "vtkMRMLGridTransformNode")
    }


def test_a_reloaded_registration_grid_is_linear_again_after_the_load_and_maps_as_before_saving(
    app, reg_case, registered, tmp_path
):
    leaf = only_leaf(app.scene)
    before = from_world_lps(leaf, reg_case["points"])
    [own] = grid_interpolation(app.scene)
    users = registration_transform(app.scene, reg_case["fixed"], linear_parent=False)
    users.SetName("User's grid")
    users.GetTransformFromParent().SetInterpolationModeToLinear()
    bundle = tmp_path / "registered.mrb"
    save_scene_bundle(app.scene, bundle)
    load_scene_bundle(app.scene, bundle)
    # Slicer's reader makes every grid cubic (vtkITKTransformConverter.h lines 1230-1231 at 583e9b37); the
    # linear mode comes back after the load, not inside Slicer's import event.
    assert grid_interpolation(app.scene) == {
        own: vtk.VTK_CUBIC_INTERPOLATION,
        "User's grid": vtk.VTK_CUBIC_INTERPOLATION,
    }
    app.process_events()
    assert grid_interpolation(app.scene) == {
        own: vtk.VTK_LINEAR_INTERPOLATION,
        "User's grid": vtk.VTK_CUBIC_INTERPOLATION,
    }
    assert max_error(from_world_lps(only_leaf(app.scene), reg_case["points"]), before) <= 1e-6


def test_scene_close_and_application_exit_stop_the_watcher(app, reg_case, registered):
    watcher = app.plugin_module.registrationWatcher()
    assert watcher.started
    app.scene.Clear(0)
    assert not watcher.started
    app.load_reg(reg_case["reg"])
    assert watcher.started
    app.quit()
    assert not watcher.started
    moving = app.load_series(series(reg_case, "moving"))
    assert moving.GetParentTransformNode() is None


def run_fresh_slicer(script, tmp_path, **arguments):
    """A restart: a new Python process with a new stand-in Slicer running `script` (JSON result on stdout)."""
    environment = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(PLUGIN_FOLDER), str(SUPPORT), os.environ.get("PYTHONPATH", "")])
    )
    completed = subprocess.run(
        [
            sys.executable,
            str(SUPPORT / "slicer_restart.py"),
            script,
            json.dumps({k: str(v) for k, v in arguments.items()}),
        ],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("moving_in_scene", [True, False])
def test_saved_scene_applies_the_registration_after_a_restart(app, reg_case, tmp_path, moving_in_scene):
    app.load_reg(reg_case["reg"])
    if moving_in_scene:
        app.load_series(series(reg_case, "moving"))
    before = from_world_lps(only_leaf(app.scene), reg_case["points"])
    bundle = tmp_path / "saved.mrb"
    save_scene_bundle(app.scene, bundle)
    result = run_fresh_slicer(
        "open_then_load_moving",
        tmp_path,
        bundle=bundle,
        database=reg_case["folder"],
        moving=json.dumps([str(p) for p in series(reg_case, "moving")]),
        points=json.dumps(reg_case["points"].tolist()),
        load_moving=not moving_in_scene,
    )
    assert result["errors"] == [] and result["popups"] == []
    assert result["leaves"] == 1 and result["volumes_under_leaf"] == 1
    mapped = np.array(result["mapped"])
    assert float(np.max(np.linalg.norm(mapped - reg_case["expected"], axis=1))) <= MAPPING_MM
    assert list(result["grid_interpolation"].values()) == [vtk.VTK_LINEAR_INTERPOLATION]
    assert max_error(mapped, before) <= 1e-6


def test_scene_without_registration_imports_no_engine(app, reg_case, tmp_path):
    app.load_series(series(reg_case, "fixed"))
    bundle = tmp_path / "plain.mrb"
    save_scene_bundle(app.scene, bundle)
    result = run_fresh_slicer("open_only", tmp_path, bundle=bundle, database=reg_case["folder"])
    assert result["engine_modules"] == [] and result["errors"] == []
