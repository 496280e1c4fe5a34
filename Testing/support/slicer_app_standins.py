"""Stand-ins for the parts of the 3D Slicer application that slicer-core lacks (DICOMLib, the DICOM
database, the DICOM browser and export dialog, qt's event loop), doing what Slicer's own source does,
in Slicer's order.

Each stand-in names the Slicer source it follows (Slicer/Slicer at commit 583e9b37, 2026, read for these
tests; no Slicer code is copied). Where slicer-core has Slicer's own C++ code (subject hierarchy clone,
vtkSlicerVolumesLogic.CloneVolume, vtkSlicerCropVolumeLogic.CropVoxelBased, scene bundles, vtkMRMLScene.Import,
HardenTransform), the stand-ins call it instead of imitating it.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import types
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import slicer
import vtk

PLUGIN_FOLDER = Path(__file__).resolve().parents[2] / "DicomRegSave"
#: DICOM/ScalarVolume/AcquisitionGeometryRegularization values (DICOMScalarVolumePlugin.settingsPanelEntry).
REGULARIZATION_SETTINGS = ("default", "none", "hardenTransform")


class Database:
    """slicer.dicomDatabase (ctkDICOMDatabase): fileValue, instanceValue, fileForInstance, seriesForStudy,
    filesForSeries (at most `hits` files; all for -1), isOpen, and
    indexing a folder (ctkDICOMIndexer.addDirectory). Values are pydicom's decoded text, multi-values joined
    with a backslash, as DCMTK gives them to ctkDICOMDatabase."""

    isOpen = True

    def __init__(self, folders):
        self._headers: dict[str, pydicom.Dataset] = {}
        self._files: dict[str, str] = {}
        for folder in folders:
            self.add_folder(folder)

    def add_folder(self, folder):
        for path in sorted(Path(folder).rglob("*.dcm")):
            self.add(path)

    def add(self, path):
        header = pydicom.dcmread(path, stop_before_pixels=True)
        self._headers[str(path)] = header
        self._files[str(header.SOPInstanceUID)] = str(path)

    def fileForInstance(self, uid):
        return self._files.get(uid, "")

    def seriesForStudy(self, study_uid):
        return sorted({str(h.SeriesInstanceUID) for h in self._headers.values() if h.StudyInstanceUID == study_uid})

    def filesForSeries(self, series_uid, hits=-1):
        files = sorted(path for path, h in self._headers.items() if h.SeriesInstanceUID == series_uid)
        return files if hits < 0 else files[:hits]

    def instanceValue(self, uid, tag):
        path = self.fileForInstance(uid)
        return self.fileValue(path, tag) if path else ""

    def fileValue(self, path, tag):
        header = self._headers.get(str(path))
        if header is None:
            self.add(path)
            header = self._headers[str(path)]
        group, element = (int(part, 16) for part in tag.split(","))
        element = header.get((group, element))
        if element is None or element.value is None:
            return ""
        value = element.value
        if isinstance(value, pydicom.multival.MultiValue):
            return "\\".join(str(v) for v in value)
        return str(value).strip()


class DICOMLoadable:
    """DICOMLib.DICOMLoadable (Modules/Scripted/DICOMLib/DICOMPlugin.py lines 38-59): its defaults."""

    def __init__(self):
        self.files = []
        self.name = "Unknown"
        self.tooltip = "No further information available"
        self.warning = ""
        self.selected = False
        self.confidence = 0.5


class DICOMPlugin:
    """DICOMLib.DICOMPlugin (DICOMPlugin.py): loadable cache (lines 221-235) and addSeriesInSubjectHierarchy.

    addSeriesInSubjectHierarchy follows DICOMPlugin.py lines 306-468: the series item is created for the
    node under the scene, gets the Series Instance UID, the series attributes, the instance UIDs and the
    referenced instance UIDs; vtkSlicerSubjectHierarchyModuleLogic.InsertDicomSeriesInHierarchy (Slicer's own
    code) puts it under its patient and study; patient and study items new to the scene get their DICOM
    attributes from this series' first file, with Slicer's placeholders ("No name", "No study description",
    "Patient-" + Study Instance UID) — existing ones keep what the first series gave them.
    """

    def __init__(self):
        self.loadType = "Generic DICOM"
        self.tags = {}
        self._cache = {}

    def getCachedLoadables(self, files):
        return self._cache.get(tuple(files))

    def cacheLoadables(self, files, loadables):
        self._cache[tuple(files)] = loadables

    def addSeriesInSubjectHierarchy(self, loadable, dataNode):
        database = slicer.dicomDatabase
        constants = slicer.vtkMRMLSubjectHierarchyConstants
        prefix = constants.GetDICOMAttributePrefix()
        first = loadable.files[0]

        def value(tag):
            return database.fileValue(first, tag)

        sh = slicer.mrmlScene.GetSubjectHierarchyNode()
        series = sh.CreateItem(sh.GetSceneItemID(), dataNode)
        series_uid = value("0020,000E")
        sh.SetItemUID(series, constants.GetDICOMUIDName(), series_uid)
        for name, tag in (
            (constants.GetDICOMSeriesModalityAttributeName(), "0008,0060"),
            (constants.GetDICOMSeriesNumberAttributeName(), "0020,0011"),
            (constants.GetDICOMFrameOfReferenceUIDAttributeName(), "0020,0052"),
            (prefix + "SeriesDescription", "0008,103E"),
            (prefix + "SeriesDate", "0008,0021"),
            (prefix + "SeriesTime", "0008,0031"),
            (prefix + "ContentDate", "0008,0023"),
            (prefix + "ContentTime", "0008,0033"),
            (prefix + "Manufacturer", "0008,0070"),
            (prefix + "Model", "0008,1090"),
        ):
            sh.SetItemAttribute(series, name, value(tag))
        uids = [database.fileValue(f, "0008,0018") or "Unknown" for f in loadable.files]
        sh.SetItemUID(series, constants.GetDICOMInstanceUIDName(), " ".join(uids))
        sh.SetItemAttribute(
            series,
            constants.GetDICOMReferencedInstanceUIDsAttributeName(),
            " ".join(getattr(loadable, "referencedInstanceUIDs", [])),
        )
        study_uid = value("0020,000D")
        patient_id = value("0010,0020") or "Patient-" + study_uid
        had_patient = sh.GetItemByUID(constants.GetDICOMUIDName(), patient_id)
        had_study = sh.GetItemByUID(constants.GetDICOMUIDName(), study_uid)
        slicer.vtkSlicerSubjectHierarchyModuleLogic.InsertDicomSeriesInHierarchy(sh, patient_id, study_uid, series_uid)
        if not had_patient:
            patient = sh.GetItemByUID(constants.GetDICOMUIDName(), patient_id)
            name = value("0010,0010") or "No name"
            for attribute, text in (
                ("PatientName", name),
                ("PatientID", patient_id),
                ("PatientSex", value("0010,0040")),
                ("PatientBirthDate", value("0010,0030")),
                ("PatientComments", value("0010,4000")),
            ):
                sh.SetItemAttribute(patient, prefix + attribute, text)
            sh.SetItemName(patient, name)
        if not had_study:
            study = sh.GetItemByUID(constants.GetDICOMUIDName(), study_uid)
            description = value("0008,1030") or "No study description"
            for attribute, text in (
                ("StudyDescription", description),
                ("StudyInstanceUID", study_uid),
                ("StudyID", value("0020,0010")),
                ("StudyDate", value("0008,0020")),
                ("StudyTime", value("0008,0030")),
            ):
                sh.SetItemAttribute(study, prefix + attribute, text)
            sh.SetItemName(study, description)


class ScalarVolumePlugin(DICOMPlugin):
    """DICOMScalarVolumePlugin (Modules/Scripted/DICOMPlugins/DICOMScalarVolumePlugin.py) for one series of
    single-frame images, in the order of ``load`` (lines 603-632):

    1. ``loadFilesWithSeriesReader`` (lines 422-473): vtkITK's series reader sorts the slices along their
       normal and takes the first slice's position as origin and the distance between the first two
       slices as slice spacing (an irregular series is therefore regular here); the node is added to
       the scene with a unique name.
    2. ``setVolumeNodeProperties`` (lines 475-510): addSeriesInSubjectHierarchy, then ``DICOM.instanceUIDs``
       and ``DICOM.instanceNumbers`` with SetAttribute.
    3. ``AcquisitionModeling.createAcquisitionTransform`` (lines 920-947): slice corners from the node's
       IJK-to-RAS and from each instance's Image Position/Orientation and Pixel Spacing (read with
       ``slicer.dicomDatabase.instanceValue``); above 1e-3 mm and with regularization on,
       ``gridTransformFromCorners`` (lines 798-839) adds "<name> acquisition transform", places it in the
       volume's folder, calls ``volumeNode.SetAndObserveTransformNodeID`` and only then fills the
       displacements; the corners mapped with ``TransformPointToWorld`` through the volume's whole
       transform chain must match the DICOM corners, else "Acquisition transform didn't fix slice
       corners!" is raised; then, with the harden setting, ``volumeNode.HardenTransform()``.

    `regularization` is the DICOM/ScalarVolume/AcquisitionGeometryRegularization setting.
    """

    def __init__(self, regularization="default"):
        super().__init__()
        self.loadType = "Scalar Volume"
        assert regularization in REGULARIZATION_SETTINGS
        self.regularization = regularization

    def examineFiles(self, files):
        """One loadable, its files in slice order along the normal (examineFiles sorts them, lines 191-380)."""
        headers = {str(path): pydicom.dcmread(path, stop_before_pixels=True) for path in files}
        first = headers[str(files[0])]
        normal = np.cross(*(np.array(first.ImageOrientationPatient[i : i + 3], dtype=float) for i in (0, 3)))
        loadable = DICOMLoadable()
        loadable.files = sorted(
            (str(path) for path in files),
            key=lambda path: float(np.dot(normal, np.array(headers[path].ImagePositionPatient, dtype=float))),
        )
        database = slicer.dicomDatabase
        number = database.fileValue(files[0], "0020,0011")
        loadable.name = f"{number}: {database.fileValue(files[0], '0008,103E')}"
        loadable.selected = True
        return [loadable]

    def load(self, loadable):
        node = self.loadFilesWithSeriesReader(loadable.files, loadable.name)
        self.setVolumeNodeProperties(node, loadable)
        self.createAcquisitionTransform(node)
        return node

    @staticmethod
    def loadFilesWithSeriesReader(files, name):
        headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in files]
        row, column = (np.array(headers[0].ImageOrientationPatient[i : i + 3], dtype=float) for i in (0, 3))
        normal = np.cross(row, column)
        origin = np.array(headers[0].ImagePositionPatient, dtype=float)
        second = np.array(headers[1].ImagePositionPatient, dtype=float) if len(headers) > 1 else origin + normal
        spacing_row, spacing_column = (float(v) for v in headers[0].PixelSpacing)
        slice_spacing = float(np.linalg.norm(second - origin))
        ijk_to_lps = np.eye(4)
        ijk_to_lps[:3, 0] = row * spacing_column
        ijk_to_lps[:3, 1] = column * spacing_row
        ijk_to_lps[:3, 2] = normal * slice_spacing
        ijk_to_lps[:3, 3] = origin
        ijk_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ijk_to_lps
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", slicer.mrmlScene.GenerateUniqueName(name))
        image = vtk.vtkImageData()
        image.SetDimensions(int(headers[0].Columns), int(headers[0].Rows), len(headers))
        image.AllocateScalars(vtk.VTK_SHORT, 1)
        image.GetPointData().GetScalars().Fill(0)
        node.SetAndObserveImageData(image)
        matrix = vtk.vtkMatrix4x4()
        matrix.DeepCopy(ijk_to_ras.ravel())
        node.SetIJKToRASMatrix(matrix)
        return node

    def setVolumeNodeProperties(self, node, loadable):
        self.addSeriesInSubjectHierarchy(loadable, node)
        database = slicer.dicomDatabase
        node.SetAttribute(
            "DICOM.instanceUIDs", " ".join(database.fileValue(f, "0008,0018") or "Unknown" for f in loadable.files)
        )
        node.SetAttribute(
            "DICOM.instanceNumbers", " ".join(database.fileValue(f, "0020,0013") or "?" for f in loadable.files)
        )

    def createAcquisitionTransform(self, node, corner_epsilon=1e-3):
        original = self.slice_corners_from_ijk_to_ras(node)
        target = self.slice_corners_from_dicom(node)
        if float(np.abs(original - target).max()) <= corner_epsilon:
            return
        logging.warning("Irregular volume geometry detected. Adding acquisition transform to regularize geometry.")
        if self.regularization == "none":
            return
        self.grid_transform_from_corners(node, original, target)
        fixed = self.corners_to_world(node, original)
        if not np.allclose(fixed, target):
            raise Exception("Acquisition transform didn't fix slice corners!")
        if self.regularization == "hardenTransform":
            node.HardenTransform()

    @staticmethod
    def slice_corners_from_ijk_to_ras(node):
        matrix = vtk.vtkMatrix4x4()
        node.GetIJKToRASMatrix(matrix)
        columns, rows, slices = node.GetImageData().GetDimensions()
        corners = np.zeros((slices, 2, 2, 3))
        for k in range(slices):
            for column in range(2):
                for row in range(2):
                    corners[k, row, column] = matrix.MultiplyPoint([column * columns, row * rows, k, 1])[:3]
        return corners

    @staticmethod
    def slice_corners_from_dicom(node):
        database = slicer.dicomDatabase
        columns, rows, slices = node.GetImageData().GetDimensions()
        corners = np.zeros((slices, 2, 2, 3))
        for k, uid in enumerate(node.GetAttribute("DICOM.instanceUIDs").split()):
            position = np.array([float(v) for v in database.instanceValue(uid, "0020,0032").split("\\")])
            orientation = [float(v) for v in database.instanceValue(uid, "0020,0037").split("\\")]
            spacing = [float(v) for v in database.instanceValue(uid, "0028,0030").split("\\")]
            lps_to_ras = np.array([-1.0, -1.0, 1.0])
            row_vector = columns * spacing[1] * np.array(orientation[:3]) * lps_to_ras
            column_vector = rows * spacing[0] * np.array(orientation[3:]) * lps_to_ras
            for column in range(2):
                for row in range(2):
                    corners[k, row, column] = position * lps_to_ras + column * row_vector + row * column_vector
        return corners

    @staticmethod
    def grid_transform_from_corners(node, source, target):
        columns, rows, slices = node.GetImageData().GetDimensions()
        grid_node = slicer.vtkMRMLGridTransformNode()
        grid_node.SetName(slicer.mrmlScene.GenerateUniqueName(node.GetName() + " acquisition transform"))
        slicer.mrmlScene.AddNode(grid_node)
        sh = slicer.mrmlScene.GetSubjectHierarchyNode()
        sh.SetItemParent(sh.GetItemByDataNode(grid_node), sh.GetItemParent(sh.GetItemByDataNode(node)))
        image = vtk.vtkImageData()
        image.SetOrigin(*node.GetOrigin())
        image.SetDimensions(2, 2, slices)
        spacing = node.GetSpacing()
        image.SetSpacing(spacing[0] * columns, spacing[1] * rows, spacing[2])
        image.AllocateScalars(vtk.VTK_DOUBLE, 3)
        transform = slicer.vtkOrientedGridTransform()
        direction = vtk.vtkMatrix4x4()
        node.GetIJKToRASDirectionMatrix(direction)
        transform.SetGridDirectionMatrix(direction)
        transform.SetDisplacementGridData(image)
        grid_node.SetAndObserveTransformToParent(transform)
        node.SetAndObserveTransformNodeID(grid_node.GetID())
        displacements = slicer.util.arrayFromGridTransform(grid_node)
        displacements[:] = target - source

    @staticmethod
    def corners_to_world(node, corners):
        world = np.zeros(corners.shape)
        for index in np.ndindex(corners.shape[:3]):
            point = [0.0, 0.0, 0.0]
            node.TransformPointToWorld(list(corners[index]), point)
            world[index] = point
        return world


class Browser:
    """DICOMBrowser.proceedWithReferencedLoadablesSelection (Modules/Scripted/DICOMLib/DICOMBrowser.py lines
    641-673) calling DICOMUtils.loadLoadables (DICOMUtils.py lines 850-915): each selected loadable by the
    last plugin that selected it, in plugin order; before each load the progress callback runs
    ``slicer.app.processEvents()``; an exception of a plugin's load is logged with its traceback and, like a
    False result, listed as "Could not load: <name> as a <loadType>"; the messages are shown together
    after the batch (``warningDisplay``)."""

    def __init__(self, app):
        self.app = app
        self.messages = []

    def load(self, loadables_by_plugin):
        selected = {}
        for plugin, loadables in loadables_by_plugin.items():
            for loadable in loadables:
                if loadable.selected:
                    selected[loadable] = plugin
        loaded = []
        for loadable, plugin in selected.items():
            self.app.process_events()
            try:
                node = plugin.load(loadable)
            except Exception:
                node = None
                logging.exception(f"DICOM plugin failed to load '{loadable.name}' as a '{plugin.loadType}'.")
            if not node:
                self.messages.append(f"Could not load: {loadable.name} as a {plugin.loadType}")
            loadable.loadSuccess = bool(node)
            loaded.append(node)
        if self.messages:
            self.app.popups.append("\n".join(self.messages))
        return loaded


def create_items_for_added_nodes(scene):
    """qSlicerSubjectHierarchyPluginLogic::onNodeAdded: an item under the scene for every data node added."""

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def on_node_added(caller, event, node):
        if node.IsA("vtkMRMLTransformNode") or node.IsA("vtkMRMLVolumeNode"):
            sh = scene.GetSubjectHierarchyNode()
            if not sh.GetItemByDataNode(node):
                sh.CreateItem(sh.GetSceneItemID(), node)

    return scene.AddObserver(slicer.vtkMRMLScene.NodeAddedEvent, on_node_added)


class Exportable:
    """slicer.qSlicerDICOMExportable: properties, tag()/setTag(); tag() of an unset name is empty."""

    def __init__(self):
        self.name = ""
        self.tooltip = ""
        self.subjectHierarchyItemID = 0
        self.pluginClass = ""
        self.directory = ""
        self.confidence = 0.0
        self.tags = {}

    def setTag(self, name, value):
        self.tags[name] = value

    def tag(self, name):
        return self.tags.get(name, "")


class SlicerRtRegPlugin:
    """SlicerRT's DicomSroImportExportPlugin.examineForExport: confidence 1.0 for any transform with fixed and
    moving references (DicomSroImportExport/DicomSroImportExportPlugin.py)."""

    def examineForExport(self, item):
        sh = slicer.mrmlScene.GetSubjectHierarchyNode()
        node = sh.GetItemDataNode(item)
        if node is None or not node.IsA("vtkMRMLTransformNode"):
            return []
        if (
            node.GetNodeReference(node.GetMovingNodeReferenceRole()) is None
            or node.GetNodeReference(node.GetFixedNodeReferenceRole()) is None
        ):
            return []
        exportable = slicer.qSlicerDICOMExportable()
        exportable.confidence = 1.0
        exportable.setTag("Modality", "REG")
        exportable.name = "REG"
        exportable.subjectHierarchyItemID = item
        exportable.pluginClass = "DicomSroImportExportPlugin"
        exportable.setTag("SeriesDescription", "No series description")
        exportable.setTag("SeriesNumber", "1")
        return [exportable]


def open_export_dialog_from_data_module(item):
    """qSlicerSubjectHierarchyDICOMPlugin::openDICOMExportDialog (Modules/Scripted/DICOMLib/
    SubjectHierarchyPlugins/qSlicerSubjectHierarchyDICOMPlugin.cxx, the Data module's right-click "Export to
    DICOM..."): an item not under study < patient prompts "Create new patient and study for DICOM export?";
    on OK the study of the first item it references (DICOM references, then vtkMRMLScene::GetReferencedNodes:
    the node, its parent transform, then its references by role, "spatialRegistrationFixed" before "...Moving")
    that has one is used, the item and every item it references are moved under it; then the dialog opens."""
    sh = slicer.mrmlScene.GetSubjectHierarchyNode()
    constants = slicer.vtkMRMLSubjectHierarchyConstants
    study = sh.GetItemParent(item)
    if (
        study
        and sh.IsItemLevel(study, constants.GetDICOMLevelStudy())
        and sh.IsItemLevel(sh.GetItemParent(study), constants.GetDICOMLevelPatient())
    ):
        return ExportDialog()
    referenced = list(sh.GetItemsReferencedFromItemByDICOM(item))
    nodes = slicer.mrmlScene.GetReferencedNodes(sh.GetItemDataNode(item))
    for index in range(nodes.GetNumberOfItems()):
        node_item = sh.GetItemByDataNode(nodes.GetItemAsObject(index))
        if node_item and node_item not in referenced:
            referenced.append(node_item)
    study = 0
    for referenced_item in referenced:
        found = sh.GetItemAncestorAtLevel(referenced_item, constants.GetDICOMLevelStudy())
        if found and not study:
            study = found
    assert study, "the stand-in covers registrations whose volumes are in a study"
    sh.SetItemParent(item, study)
    for referenced_item in referenced:
        sh.SetItemParent(referenced_item, study)
    return ExportDialog()


class ExportDialog:
    """qSlicerDICOMExportDialog + qSlicerDICOMTagEditorWidget (Modules/Scripted/DICOMLib/Widgets/).

    examine(item) = examineSelectedItem (qSlicerDICOMExportDialog.cxx lines 212-339): every registered
    plugin's examineForExport(item); exportables grouped by pluginClass (QMultiMap, keys visited in sorted
    order), each group keyed by 1 - mean confidence in a QMultiMap whose values(key) lists the most
    recently inserted group first; rows in that order, row 0 selected.
    select(row) = onExportableSelectedAtRow -> setExportables (qSlicerDICOMTagEditorWidget.cxx lines
    393-500): the study is the exported item's parent ("No study found" only without one), the patient the
    study's parent ("No patient found" — the exportables are kept, so Export still runs, without patient and
    study tags); the standard patient/study tag names the items lack are added to them as empty attributes;
    every DICOM.* attribute of both items becomes a row and a tag of every exportable.
    export(folder, edits, to_database) = onExport/exportSeries (lines 393-640): edited rows become the
    exportables' tags, the plugin's export(exportables) runs into the folder; with "export to database" into
    a temporary folder that the dialog then indexes into the database and removes.
    """

    def __init__(self):
        self.rows = []
        self.error = ""
        self.exportables = []
        self.shown = {}

    def examine(self, item):
        by_plugin = defaultdict(list)
        for plugin_class in slicer.modules.dicomPlugins.values():
            for exportable in plugin_class().examineForExport(item):
                by_plugin[exportable.pluginClass].append(exportable)
        by_key = defaultdict(list)
        for plugin in sorted(by_plugin):
            group = by_plugin[plugin]
            key = 1.0 - sum(e.confidence for e in group) / len(group)
            by_key[key].insert(0, group)
        self.rows = [group for key in sorted(by_key) for group in by_key[key]]
        return self.rows

    def select(self, row=0):
        self.exportables = self.rows[row]
        self.shown = {}
        sh = slicer.mrmlScene.GetSubjectHierarchyNode()
        constants = slicer.vtkMRMLSubjectHierarchyConstants
        prefix = constants.GetDICOMAttributePrefix()
        study = sh.GetItemParent(self.exportables[0].subjectHierarchyItemID)
        if not study:
            self.error = "No study found"
            return self.error
        patient = sh.GetItemParent(study)
        if not patient:
            self.error = "No patient found"
            return self.error
        for parent, names in (
            (patient, constants.GetDICOMPatientTagNames()),
            (study, constants.GetDICOMStudyTagNames()),
        ):
            attributes = list(sh.GetItemAttributeNames(parent))
            for name in names:
                if prefix + name not in attributes:
                    sh.SetItemAttribute(parent, prefix + name, "")
            for attribute in sh.GetItemAttributeNames(parent):
                if attribute.startswith(prefix):
                    self.shown[attribute[len(prefix) :]] = sh.GetItemAttribute(parent, attribute)
        for exportable in self.exportables:
            for name, value in self.shown.items():
                exportable.setTag(name, value)
        self.error = ""
        return ""

    def export(self, directory=None, edits=None, to_database=False):
        """The user edits rows, presses Export; returns the plugin's message ("" = success)."""
        folder = Path(tempfile.mkdtemp(prefix="DICOMExportTemp_")) if to_database else Path(directory)
        for exportable in self.exportables:
            for name, value in (edits or {}).items():
                exportable.setTag(name, value)
            exportable.directory = str(folder)
        plugin = slicer.modules.dicomPlugins[self.exportables[0].pluginClass]()
        try:
            message = plugin.export(self.exportables)
        except Exception:
            logging.exception(f"Failed to export using plugin {type(plugin).__name__}")
            message = "DICOM export failed. See application log for details"
        if to_database:
            if message == "":
                slicer.dicomDatabase.add_folder(folder)
            shutil.rmtree(folder)
        return message


def clone_item(node):
    """The Data module's "Clone": vtkSlicerSubjectHierarchyModuleLogic::CloneSubjectHierarchyItem (Slicer's code)."""
    sh = slicer.mrmlScene.GetSubjectHierarchyNode()
    item = slicer.vtkSlicerSubjectHierarchyModuleLogic.CloneSubjectHierarchyItem(sh, sh.GetItemByDataNode(node))
    return sh.GetItemDataNode(item)


def crop_volume(node):
    """Crop Volume with a new output volume, as vtkSlicerCropVolumeLogic::Apply (Modules/Loadable/CropVolume/
    Logic/vtkSlicerCropVolumeLogic.cxx lines 229-265): the input is cloned with vtkSlicerVolumesLogic::CloneVolume
    (Slicer's code: copies attributes and node references), the clone is taken out of a non-linear parent
    transform, then cropped. The default interpolated crop resamples with the ResampleScalarVectorDWIVolume
    CLI, absent from slicer-core: here the clone keeps the middle half of the voxels instead (the
    same voxels of the same grid, which is what matters to DicomRegSave: a new volume, no parent)."""
    output = slicer.vtkSlicerVolumesLogic.CloneVolume(slicer.mrmlScene, node, f"{node.GetName()} cropped")
    parent = output.GetParentTransformNode()
    if parent is not None and not parent.IsTransformToWorldLinear():
        output.SetAndObserveTransformNodeID(None)
    dimensions = node.GetImageData().GetDimensions()
    extract = vtk.vtkExtractVOI()
    extract.SetInputData(node.GetImageData())
    extract.SetVOI(*[bound for n in dimensions for bound in (n // 4, n // 4 + max(n // 2, 1) - 1)])
    extract.Update()
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    output.SetAndObserveImageData(extract.GetOutput())
    output.SetIJKToRASMatrix(ijk_to_ras)
    output.ShiftImageDataExtentToZeroStart()
    return output


def save_scene_bundle(scene, path):
    """File > Save as a .mrb: vtkMRMLApplicationLogic::SaveSceneToSlicerDataBundleDirectory and Zip (Slicer's code)."""
    logic = slicer.vtkMRMLApplicationLogic()
    logic.SetMRMLScene(scene)
    folder = Path(tempfile.mkdtemp(prefix="bundle_")) / Path(path).stem
    folder.mkdir()
    assert logic.SaveSceneToSlicerDataBundleDirectory(str(folder))
    assert logic.Zip(str(path), str(folder))
    shutil.rmtree(folder.parent)


def load_scene_bundle(scene, path, clear=True):
    """File > Load scene (clear=True: vtkMRMLScene::Connect, a batch of Close and Import) or Add data
    (Import into the scene) of a .mrb, as vtkMRMLApplicationLogic::OpenSlicerDataBundle unpacks it."""
    logic = slicer.vtkMRMLApplicationLogic()
    logic.SetMRMLScene(scene)
    folder = Path(tempfile.mkdtemp(prefix="bundle_open_"))
    mrml = logic.UnpackSlicerDataBundle(str(path), str(folder))
    assert mrml, f"{path} holds no scene"
    scene.SetURL(mrml)
    assert (scene.Connect() if clear else scene.Import()) == 1


class Application:
    """Installs the stand-ins (with pytest's monkeypatch), including qt's event loop: ``qt.QTimer.singleShot``
    queues the call, :meth:`process_events` runs what is queued (what Qt does when control returns to the
    event loop, or at ``slicer.app.processEvents()``). Then it imports the real DicomRegSavePlugin.py and
    creates its hook module, as Slicer does at start-up."""

    def __init__(self, monkeypatch, database, regularization="default"):
        self.scene = slicer.vtkMRMLScene()
        self.popups = []
        self.queued = []
        dicomlib = types.ModuleType("DICOMLib")
        dicomlib.DICOMPlugin = DICOMPlugin
        dicomlib.DICOMLoadable = DICOMLoadable
        monkeypatch.setitem(sys.modules, "DICOMLib", dicomlib)
        qt = types.ModuleType("qt")
        qt.QTimer = types.SimpleNamespace(singleShot=lambda msec, function: self.queued.append(function))
        monkeypatch.setitem(sys.modules, "qt", qt)
        i18n = types.ModuleType("slicer.i18n")
        i18n.tr = lambda text: text
        i18n.translate = lambda context, text: text
        monkeypatch.setitem(sys.modules, "slicer.i18n", i18n)
        self.slots = defaultdict(list)
        app = types.SimpleNamespace(
            applicationVersion="5.12.0",
            processEvents=self.process_events,
            connect=lambda signal, slot: self.slots[signal].append(slot),
        )
        monkeypatch.setattr(slicer, "app", app, raising=False)
        monkeypatch.setattr(slicer, "mrmlScene", self.scene, raising=False)
        monkeypatch.setattr(slicer, "qSlicerDICOMExportable", Exportable, raising=False)
        monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
        monkeypatch.setattr(slicer, "modules", types.SimpleNamespace(), raising=False)
        for name in ("warningDisplay", "errorDisplay", "infoDisplay"):
            monkeypatch.setattr(slicer.util, name, lambda text, **kwargs: self.popups.append(text), raising=False)
        monkeypatch.syspath_prepend(str(PLUGIN_FOLDER))
        monkeypatch.delitem(sys.modules, "DicomRegSavePlugin", raising=False)
        import DicomRegSavePlugin

        self.plugin_module = DicomRegSavePlugin
        self.hook = DicomRegSavePlugin.DicomRegSavePlugin(types.SimpleNamespace())
        self.emit("startupCompleted()")  # qSlicerApplication, once every module is created
        create_items_for_added_nodes(self.scene)
        self.scalar = ScalarVolumePlugin(regularization)
        self.browser = Browser(self)

    @property
    def plugin(self):
        return slicer.modules.dicomPlugins["DicomRegSavePlugin"]()

    def process_events(self):
        while self.queued:
            self.queued.pop(0)()

    def load_series(self, paths):
        """The DICOM browser loading one series; returns the volume (None if it could not be loaded)."""
        [loadable] = self.scalar.examineFiles([str(p) for p in paths])
        [node] = self.browser.load({self.scalar: [loadable]})
        self.process_events()
        return node

    def load_reg(self, path):
        plugin = self.plugin
        [loadable] = plugin.examineForImport([[str(path)]])
        assert self.browser.load({plugin: [loadable]}) == [True]
        self.process_events()
        return loadable

    def emit(self, signal):
        for slot in self.slots[signal]:
            slot()

    def quit(self):
        self.emit("aboutToQuit()")

    def close(self):
        self.quit()
        sys.modules.pop("DicomRegSavePlugin", None)
