"""Checks of DicomRegSave that only a real 3D Slicer (5.12 or later, DicomRegSave installed) can make.

Run from the repository root::

    Slicer --no-main-window --python-script Testing/real_slicer/run_real_slicer_checks.py

The exit code is the result: 0 when every check passed, 1 otherwise; one line per check is printed
("PASS name" / "FAIL name: why"). Add ``--keep`` to keep the temporary folder (data, bundle, logs).

What it proves, beyond the headless tests (which use stand-ins for Slicer's DICOM browser, loaders and
export dialog, see Testing/support/slicer_app_standins.py):

* gantry_tilt_after_reg: a REG loaded from the DICOM browser, then its moving series acquired with a
  gantry tilt: Slicer's own scalar loader (acquisition-geometry regularization, default setting) loads
  it without "Could not load", the acquisition transform sits between the volume and the registration,
  and 500 fixed-image points map through volume -> acquisition transform -> registration within 1e-3 mm
  of the exported transform (and the same with the "harden" setting).
* export_dialog: the real qSlicerDICOMExportDialog (``execDialog``) lists DicomRegSave first, preselected
  over SlicerRT's REG exporter (SlicerRT's confidence 1.0; a stand-in with that confidence is registered
  when SlicerRT is not installed), and examining leaves the subject hierarchy unchanged.
* clone_and_crop: the Data module's Clone and Crop Volume of the registered moving volume leave the
  original under the registration; no popup.
* scene_reload_linear_grid: the registered scene saved as .mrb and opened again in the same Slicer: Slicer's
  transform reader makes every grid cubic, and DicomRegSave's grid is linear again once the load is over
  (Slicer's own acquisition transform is left as Slicer made it); 500 points map as before saving within
  1e-6 mm.
* bundle_restart: the scene saved as .mrb with a REG whose moving series is not loaded, a new Slicer
  process (a real restart) opens it and loads the moving series: the registration is applied once, its
  grid is linear, nothing logged as an error.
* series_number_from_database: the export dialog's Series Number row is empty (automatic); with the first
  REG (1000) in Slicer's DICOM database, a second export of the same study gets 1001: the real
  ctkDICOMDatabase's seriesForStudy / filesForSeries / fileValue give the study's numbers.
* progress_dialog: the module's export progress dialog is application-modal.

Only the ``main`` phase needs Slicer; the data preparation (:func:`write_case`) and the result bookkeeping
are plain Python, importable without Slicer (Testing/slicer_module/test_real_slicer_script.py does).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom

MAPPING_MM = 1e-3
#: How closely a registration reloaded from a saved scene maps points as before saving (mm).
RELOAD_MM = 1e-6
N_POINTS = 500
GANTRY_TILT_DEGREES = 15.0


@dataclass
class Results:
    """Outcome of each check, printed one per line; the exit code is 0 only if all passed."""

    lines: list[str] = field(default_factory=list)
    failed: int = 0

    def run(self, name: str, check: Callable[[], None]) -> None:
        try:
            check()
        except Exception as exc:  # a check's failure is a result to report, not a crash of the runner
            self.failed += 1
            self.lines.append(f"FAIL {name}: {type(exc).__name__}: {exc}")
            traceback.print_exc()
        else:
            self.lines.append(f"PASS {name}")
        print(self.lines[-1], flush=True)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or not self.lines else 0


def write_case(folder: Path):
    """The demo case (sampledata.make_demo_case) with its moving series acquired with a gantry tilt.

    Each moving slice's Image Position is shifted along the column direction by k * slice spacing *
    tan(tilt) while Image Orientation stays in-plane: the slices are sheared, which Slicer's scalar loader
    regularizes with an acquisition transform. UIDs are kept, so the REG exported on it references them.
    """
    if importlib.util.find_spec("DicomRegSaveLib") is None:  # outside a Slicer with DicomRegSave installed
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "DicomRegSave"))
    from DicomRegSaveLib.inputs import sampledata

    case = sampledata.make_demo_case(folder / "case")
    shear = np.tan(np.radians(GANTRY_TILT_DEGREES))
    paths = sorted(
        case.moving_paths, key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2])
    )
    first = pydicom.dcmread(paths[0], stop_before_pixels=True)
    second = pydicom.dcmread(paths[1], stop_before_pixels=True)
    slice_mm = float(np.linalg.norm(np.subtract(second.ImagePositionPatient, first.ImagePositionPatient, dtype=float)))
    for k, path in enumerate(paths):
        dataset = pydicom.dcmread(path)
        column = np.array(dataset.ImageOrientationPatient[3:], dtype=float)
        position = np.array(dataset.ImagePositionPatient, dtype=float) + column * k * slice_mm * shear
        dataset.ImagePositionPatient = [round(float(v), 6) for v in position]
        dataset.GantryDetectorTilt = GANTRY_TILT_DEGREES
        dataset.save_as(path)
    return case


# Everything below runs inside Slicer ---------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--phase", default="main", choices=("main", "restart"))
    parser.add_argument("--folder", help="(restart phase) the folder of the main phase")
    arguments = parser.parse_args(argv)
    if arguments.phase == "restart":
        return restart_phase(Path(arguments.folder))
    folder = Path(tempfile.mkdtemp(prefix="dicomregsave-real-slicer-"))
    results = Results()
    try:
        run_checks(folder, results)
    finally:
        if not arguments.keep:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"Kept {folder}")
    print(f"{len(results.lines) - results.failed} passed, {results.failed} failed")
    return results.exit_code


def run_checks(folder: Path, results: Results) -> None:
    import slicer
    from DICOMLib import DICOMUtils

    case = write_case(folder)
    with DICOMUtils.TemporaryDICOMDatabase(str(folder / "database")) as database:
        for source in (case.fixed_dir, case.moving_dir):
            DICOMUtils.importDicom(str(source), database)
        reg_dir = folder / "reg"
        reg_dir.mkdir()
        results.run("export_dialog", lambda: check_export_dialog(case, reg_dir))
        DICOMUtils.importDicom(str(reg_dir), database)
        reg_series = [
            s for s in database.seriesForStudy(case.fixed_study_instance_uid) if modality(database, s) == "REG"
        ]
        expected = json.loads((reg_dir / "oracle.json").read_text())
        for setting in ("default", "hardenTransform"):
            results.run(
                f"gantry_tilt_after_reg[{setting}]",
                lambda setting=setting: check_gantry_tilt(case, reg_series[0], expected, setting),
            )
        results.run("series_number_from_database", lambda: check_series_number(case, reg_series[0], folder))
        results.run("clone_and_crop", lambda: check_clone_and_crop(case, reg_series[0], expected))
        results.run("scene_reload_linear_grid", lambda: check_scene_reload(folder, case, reg_series[0], expected))
        results.run("bundle_restart", lambda: check_bundle_restart(folder, case, reg_series[0], expected))
        results.run("progress_dialog", check_progress_dialog)
        slicer.mrmlScene.Clear()


def modality(database, series_uid: str) -> str:
    files = database.filesForSeries(series_uid, 1)
    return database.fileValue(files[0], "0008,0060") if files else ""


def load_series(series_uid: str):
    """Load a series through Slicer's DICOM plugins and let the event loop turn (as after a browser load);
    a plugin that could not load it ("Could not load: ...", DICOMUtils.loadLoadables) fails the check."""
    import slicer
    from DICOMLib import DICOMUtils

    messages = []
    node_ids = DICOMUtils.loadSeriesByUID([series_uid], messages)
    slicer.app.processEvents()
    assert messages == [], messages
    return [slicer.mrmlScene.GetNodeByID(node_id) for node_id in node_ids]


def volume_of(nodes):
    [volume] = [node for node in nodes if node is not None and node.IsA("vtkMRMLScalarVolumeNode")]
    return volume


def registration_transform(fixed, moving):
    """The module test's registration (a smooth grid under a rigid transform) referencing both volumes."""
    from DicomRegSave import DicomRegSaveTest

    node = DicomRegSaveTest.gridWithLinearParent(fixed)
    node.SetNodeReferenceID(node.GetFixedNodeReferenceRole(), fixed.GetID())
    node.SetNodeReferenceID(node.GetMovingNodeReferenceRole(), moving.GetID())
    return node


def check_progress_dialog() -> None:
    """The module's export progress dialog is application-modal (Save cannot be pressed twice)."""
    import qt
    import slicer

    widget = slicer.util.getModuleWidget("DicomRegSave")
    created = []
    original = slicer.util.createProgressDialog

    def capture(*args, **kwargs):
        created.append(original(*args, **kwargs))
        return created[-1]

    slicer.util.createProgressDialog = capture
    try:
        with widget.progressDialog("Checking the progress dialog") as onProgress:
            onProgress(0.5, "half way")
            assert created and created[0].windowModality == qt.Qt.ApplicationModal, "not application-modal"
    finally:
        slicer.util.createProgressDialog = original


def subject_hierarchy_parents():
    import slicer
    import vtk

    sh = slicer.mrmlScene.GetSubjectHierarchyNode()
    children = vtk.vtkIdList()
    sh.GetItemChildren(sh.GetSceneItemID(), children, True)
    return {children.GetId(i): sh.GetItemParent(children.GetId(i)) for i in range(children.GetNumberOfIds())}


def check_export_dialog(case, reg_dir: Path) -> None:
    """Real dialog: DicomRegSave first and preselected over SlicerRT; export writes the REG; the oracle
    (fixed points and their from-world mapping) is saved for the loading checks."""
    import qt
    import slicer

    slicer.mrmlScene.Clear()
    fixed = volume_of(load_series(case.fixed_series_instance_uid))
    moving = volume_of(load_series(case.moving_series_instance_uid))
    transform = registration_transform(fixed, moving)
    if "DicomSroImportExportPlugin" not in slicer.modules.dicomPlugins:
        slicer.modules.dicomPlugins["DicomSroImportExportPlugin"] = slicer_rt_like_plugin()
    sh = slicer.mrmlScene.GetSubjectHierarchyNode()
    item = sh.GetItemByDataNode(transform)
    sh.SetItemParent(item, sh.GetItemParent(sh.GetItemByDataNode(fixed)))
    before = subject_hierarchy_parents()
    seen = {}

    def inspect():
        dialog = slicer.app.activeModalWidget()
        listed = slicer.util.findChild(dialog, "ExportablesListWidget")
        seen["rows"] = [listed.item(row).text() for row in range(listed.count)]
        seen["current"] = listed.currentRow
        seen["parents"] = subject_hierarchy_parents()
        dialog.reject()

    exportDialog = slicer.qSlicerDICOMExportDialog()
    exportDialog.setMRMLScene(slicer.mrmlScene)
    qt.QTimer.singleShot(1500, inspect)
    exportDialog.execDialog(item)
    assert seen.get("rows"), "the export dialog listed nothing"
    assert "DicomRegSave" in seen["rows"][0] and seen["current"] == 0, seen
    assert any("REG" in row and "DicomRegSave" not in row for row in seen["rows"][1:]), seen["rows"]
    assert seen["parents"] == before, "examining for export changed the subject hierarchy"
    plugin = slicer.modules.dicomPlugins["DicomRegSavePlugin"]()
    [exportable] = plugin.examineForExport(item)
    exportable.directory = str(reg_dir)
    assert plugin.export([exportable]) == ""
    from DicomRegSave import DicomRegSaveTest

    points, expected = DicomRegSaveTest.fromWorldMapping(transform, fixed, N_POINTS)
    oracle = {"points_ras": np.asarray(points).tolist(), "expected_ras": np.asarray(expected).tolist()}
    (reg_dir / "oracle.json").write_text(json.dumps(oracle))


def check_series_number(case, reg_series_uid, folder: Path) -> None:
    """The first REG (in the database) took 1000; an export of the same study through the plugin takes 1001."""
    import slicer

    first = slicer.dicomDatabase.filesForSeries(reg_series_uid, 1)[0]
    assert slicer.dicomDatabase.fileValue(first, "0020,0011").strip() == "1000", "the first REG's Series Number"
    slicer.mrmlScene.Clear()
    fixed = volume_of(load_series(case.fixed_series_instance_uid))
    moving = volume_of(load_series(case.moving_series_instance_uid))
    transform = registration_transform(fixed, moving)
    plugin = slicer.modules.dicomPlugins["DicomRegSavePlugin"]()
    [exportable] = plugin.examineForExport(slicer.mrmlScene.GetSubjectHierarchyNode().GetItemByDataNode(transform))
    assert exportable.tag("SeriesNumber") == "", f"the row shows {exportable.tag('SeriesNumber')!r}, not automatic"
    second = folder / "second_reg"
    second.mkdir()
    exportable.directory = str(second)
    assert plugin.export([exportable]) == ""
    [path] = second.glob("*.dcm")
    assert pydicom.dcmread(path, stop_before_pixels=True).SeriesNumber == 1001


def slicer_rt_like_plugin():
    """SlicerRT's REG exporter's examineForExport answer (confidence 1.0 for a transform with fixed and
    moving references), for a Slicer without SlicerRT."""
    import slicer
    from DICOMLib import DICOMPlugin

    class SlicerRtLikeRegExporter(DICOMPlugin):
        def examineForExport(self, item):
            sh = slicer.mrmlScene.GetSubjectHierarchyNode()
            node = sh.GetItemDataNode(item)
            if node is None or not node.IsA("vtkMRMLTransformNode"):
                return []
            exportable = slicer.qSlicerDICOMExportable()
            exportable.name = "REG (SlicerRT-like)"
            exportable.confidence = 1.0
            exportable.subjectHierarchyItemID = item
            exportable.pluginClass = "DicomSroImportExportPlugin"
            exportable.setTag("Modality", "REG")
            return [exportable]

    return SlicerRtLikeRegExporter


def mapped_ras(leaf, expected) -> np.ndarray:
    """The oracle points mapped through the leaf's from-world transform as Slicer evaluates it (RAS)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
    from DicomRegSaveLib import geometry
    from mrml_helpers import from_world_lps

    points_lps = geometry.ras_to_lps_points(np.array(expected["points_ras"]))
    return geometry.lps_to_ras_points(from_world_lps(leaf, points_lps))


def assert_maps(leaf, expected):
    """The leaf's from-world mapping of the oracle points is the exported transform's, within MAPPING_MM."""
    error = float(np.max(np.linalg.norm(mapped_ras(leaf, expected) - np.array(expected["expected_ras"]), axis=1)))
    assert error <= MAPPING_MM, f"the registration maps {error:.3g} mm off the exported transform"


def grid_interpolation() -> dict[str, tuple[bool, int]]:
    """Grid node name -> (made by DicomRegSave, VTK interpolation mode of its stored grid)."""
    import slicer

    from DicomRegSaveLib.slicer.attributes import GRID_INTERPOLATION_ATTRIBUTE

    modes = {}
    for grid in slicer.util.getNodesByClass("vtkMRMLGridTransformNode"):
        # the stored direction: from parent for DicomRegSave's grids, to parent for acquisition transforms
        stored = grid.GetTransformFromParentAs("vtkOrientedGridTransform", False, True) or grid.GetTransformToParentAs(
            "vtkOrientedGridTransform", False, True
        )
        modes[grid.GetName()] = (bool(grid.GetAttribute(GRID_INTERPOLATION_ATTRIBUTE)), stored.GetInterpolationMode())
    return modes


def assert_own_grids_linear() -> None:
    """DicomRegSave's grids are linear (DICOM's interpolation); there is at least one."""
    import vtk

    own = [mode for made, mode in grid_interpolation().values() if made]
    assert own and set(own) == {vtk.VTK_LINEAR_INTERPOLATION}, grid_interpolation()


def registration_leaf(volume):
    """The loaded registration leaf above `volume` (through its acquisition transform, if any)."""
    from DicomRegSaveLib.slicer.linking import acquisition_transform

    leaf = (acquisition_transform(volume) or volume).GetParentTransformNode()
    assert leaf is not None and leaf.GetAttribute("DicomRegSave.movingInstanceUIDs"), (
        f"'{volume.GetName()}' is not under a loaded registration"
    )
    return leaf


class ErrorLog(logging.Handler):
    """Collects what is logged as an error (the DICOM browser logs a plugin's failed load so)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def check_gantry_tilt(case, reg_series_uid, expected, setting) -> None:
    """REG first, then the tilted moving series through Slicer's own scalar loader."""
    import qt
    import slicer

    from DicomRegSaveLib.slicer.linking import acquisition_transform

    slicer.mrmlScene.Clear()
    settings = qt.QSettings()
    settings.setValue("DICOM/ScalarVolume/AcquisitionGeometryRegularization", setting)
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    try:
        load_series(reg_series_uid)
        volume = volume_of(load_series(case.moving_series_instance_uid))
        assert errors.messages == [], errors.messages
        leaf = registration_leaf(volume)
        if setting == "default":
            acquisition = acquisition_transform(volume)
            assert acquisition is not None and acquisition.GetParentTransformNode() is leaf
        else:
            assert volume.GetParentTransformNode() is leaf, "the hardened volume is not directly under the REG"
        assert_maps(leaf, expected)
    finally:
        logging.getLogger().removeHandler(errors)
        settings.setValue("DICOM/ScalarVolume/AcquisitionGeometryRegularization", "default")


def check_clone_and_crop(case, reg_series_uid, expected) -> None:
    import slicer

    slicer.mrmlScene.Clear()
    load_series(case.fixed_series_instance_uid)
    moving = volume_of(load_series(case.moving_series_instance_uid))
    load_series(reg_series_uid)
    leaf = registration_leaf(moving)
    popups = []
    original = slicer.util.warningDisplay
    slicer.util.warningDisplay = lambda text, **kwargs: popups.append(text)
    try:
        sh = slicer.mrmlScene.GetSubjectHierarchyNode()
        slicer.modules.subjecthierarchy.logic().CloneSubjectHierarchyItem(sh, sh.GetItemByDataNode(moving))
        slicer.app.processEvents()
        crop = slicer.modules.cropvolume.logic()
        parameters = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLCropVolumeParametersNode")
        roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
        parameters.SetInputVolumeNodeID(moving.GetID())
        parameters.SetROINodeID(roi.GetID())
        crop.SnapROIToVoxelGrid(parameters)
        crop.FitROIToInputVolume(parameters)
        crop.Apply(parameters)
        slicer.app.processEvents()
    finally:
        slicer.util.warningDisplay = original
    assert registration_leaf(moving) is leaf
    assert leaf.GetNodeReference(leaf.GetMovingNodeReferenceRole()) is moving
    assert popups == [], popups
    assert_maps(leaf, expected)


def check_scene_reload(folder: Path, case, reg_series_uid, expected) -> None:
    """Save the registered scene as .mrb and open it again in this Slicer, as File > Load scene does."""
    import slicer
    import vtk

    slicer.mrmlScene.Clear()
    load_series(case.fixed_series_instance_uid)
    moving = volume_of(load_series(case.moving_series_instance_uid))
    load_series(reg_series_uid)
    before = mapped_ras(registration_leaf(moving), expected)
    acquisition = [name for name, (made, _) in grid_interpolation().items() if not made]
    bundle = folder / "registered.mrb"
    assert slicer.util.saveScene(str(bundle))
    slicer.mrmlScene.Clear()
    assert slicer.util.loadScene(str(bundle))
    slicer.app.processEvents()
    [leaf] = [
        node
        for node in slicer.util.getNodesByClass("vtkMRMLTransformNode")
        if node.GetAttribute("DicomRegSave.movingInstanceUIDs")
    ]
    assert_own_grids_linear()
    # Slicer's acquisition transform is Slicer's: read back as Slicer's reader makes every grid (cubic), left alone.
    others = {name: mode for name, (made, mode) in grid_interpolation().items() if not made}
    assert sorted(others) == sorted(acquisition), (others, acquisition)
    assert set(others.values()) <= {vtk.VTK_CUBIC_INTERPOLATION}, others
    error = float(np.max(np.linalg.norm(mapped_ras(leaf, expected) - before, axis=1)))
    assert error <= RELOAD_MM, f"the reloaded registration maps {error:.3g} mm off its mapping before saving"
    assert_maps(leaf, expected)


def check_bundle_restart(folder: Path, case, reg_series_uid, expected) -> None:
    """Save a scene with the REG waiting for its moving series, then a new Slicer process opens it."""
    import slicer

    slicer.mrmlScene.Clear()
    load_series(case.fixed_series_instance_uid)
    load_series(reg_series_uid)
    bundle = folder / "pending.mrb"
    assert slicer.util.saveScene(str(bundle))
    (folder / "restart.json").write_text(
        json.dumps(
            {
                "bundle": str(bundle),
                "database": str(Path(slicer.dicomDatabase.databaseFilename).parent),
                "moving_series_uid": case.moving_series_instance_uid,
                "expected": expected,
            }
        )
    )
    completed = subprocess.run(
        [
            slicer.app.applicationFilePath(),
            "--no-main-window",
            "--python-script",
            str(Path(__file__).resolve()),
            "--phase",
            "restart",
            "--folder",
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-3000:]


def restart_phase(folder: Path) -> int:
    """In the new Slicer: open the bundle, load the moving series, expect the REG applied once, no error."""
    import slicer
    from DICOMLib import DICOMUtils

    task = json.loads((folder / "restart.json").read_text())
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    results = Results()

    def check():
        DICOMUtils.openDatabase(task["database"])
        assert slicer.util.loadScene(task["bundle"])
        slicer.app.processEvents()
        moving = volume_of(load_series(task["moving_series_uid"]))
        leaf = registration_leaf(moving)
        from DicomRegSaveLib.slicer.linking import acquisition_transform

        under = [
            volume
            for volume in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
            if (acquisition_transform(volume) or volume).GetParentTransformNode() is leaf
        ]
        assert under == [moving], [v.GetName() for v in under]
        assert_own_grids_linear()
        assert_maps(leaf, task["expected"])
        assert errors.messages == [], errors.messages

    results.run("bundle_restart (new process)", check)
    return results.exit_code


if __name__ == "__main__":
    code = main(sys.argv[1:])
    try:
        import slicer

        slicer.util.exit(code)
    except ImportError:
        sys.exit(code)
