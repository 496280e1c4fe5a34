"""Stand-ins for the parts of the 3D Slicer application that slicer-core lacks (DICOMLib, the DICOM
database, the export dialog, qt), doing what Slicer's own source does, in Slicer's order.

Each stand-in names the Slicer source it follows (Slicer/Slicer main, 2026). Written for these tests;
no Slicer code is copied.
"""

from __future__ import annotations

import sys
import types
from collections import defaultdict
from pathlib import Path

import pydicom
import slicer
import vtk

from DicomRegSaveLib import geometry
from DicomRegSaveLib.inputs.series import read_image_series
from mrml_helpers import vtk_matrix

PLUGIN_FOLDER = Path(__file__).resolve().parents[2] / "DicomRegSave"


class Database:
    """slicer.dicomDatabase (ctkDICOMDatabase): fileValue(path, "gggg,eeee"), fileForInstance(uid), isOpen."""

    isOpen = True

    def __init__(self, folders):
        self._headers: dict[str, pydicom.Dataset] = {}
        self._files: dict[str, str] = {}
        for folder in folders:
            for path in sorted(Path(folder).rglob("*.dcm")):
                self.add(path)

    def add(self, path):
        header = pydicom.dcmread(path, stop_before_pixels=True)
        self._headers[str(path)] = header
        self._files[str(header.SOPInstanceUID)] = str(path)

    def fileForInstance(self, uid):
        return self._files.get(uid, "")

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
        return str(value)


class DICOMLoadable:
    """DICOMLib.DICOMLoadable (Modules/Scripted/DICOMLib/DICOMPlugin.py): the defaults of its constructor."""

    def __init__(self):
        self.files = []
        self.name = "Unknown"
        self.tooltip = "No further information available"
        self.warning = ""
        self.selected = False
        self.confidence = 0.5


class DICOMPlugin:
    """DICOMLib.DICOMPlugin: loadable cache and addSeriesInSubjectHierarchy.

    addSeriesInSubjectHierarchy follows DICOMPlugin.py: the series item is (re)created for the node
    under the scene, gets the Series Instance UID, series attributes, instance UIDs and referenced
    instance UIDs, and is then put under its patient and study by
    vtkSlicerSubjectHierarchyModuleLogic.InsertDicomSeriesInHierarchy; new patient/study items get
    the DICOM attributes with Slicer's placeholders ("No name", "No study description").
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
            ("Modality", "0008,0060"),
            ("SeriesNumber", "0020,0011"),
            ("SeriesDescription", "0008,103E"),
            ("FrameOfReferenceUID", "0020,0052"),
        ):
            sh.SetItemAttribute(series, prefix + name, value(tag))
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
    """DICOMScalarVolumePlugin (Modules/Scripted/DICOMPlugins/DICOMScalarVolumePlugin.py), for one series.

    load(): the volume node is added to the scene (loadFilesWithSeriesReader: AddNewNodeByClass with a
    unique name), then setVolumeNodeProperties calls addSeriesInSubjectHierarchy and only after that
    sets DICOM.instanceUIDs with SetAttribute.
    """

    def __init__(self):
        super().__init__()
        self.loadType = "Scalar Volume"
        #: Emulate a series with irregular slices: AcquisitionModeling.createAcquisitionTransform adds a grid
        #: transform named "<volume> acquisition transform", puts it in the volume's folder and the volume
        #: under it, after setVolumeNodeProperties (DICOMScalarVolumePlugin.py, load and lines 808-831).
        self.irregular_slices = False

    def examineFiles(self, files):
        loadable = DICOMLoadable()
        loadable.files = list(files)
        database = slicer.dicomDatabase
        number = database.fileValue(files[0], "0020,0011")
        loadable.name = f"{number}: {database.fileValue(files[0], '0008,103E')}"
        loadable.selected = True
        return [loadable]

    def load(self, loadable):
        series = read_image_series(loadable.files, "image")
        node = slicer.mrmlScene.AddNewNodeByClass(
            "vtkMRMLScalarVolumeNode", slicer.mrmlScene.GenerateUniqueName(loadable.name)
        )
        image = vtk.vtkImageData()
        image.SetDimensions(*series.dimensions)
        image.AllocateScalars(vtk.VTK_SHORT, 1)
        node.SetAndObserveImageData(image)
        node.SetIJKToRASMatrix(vtk_matrix(geometry.lps_to_ras_index_matrix(series.ijk_to_lps)))
        self.addSeriesInSubjectHierarchy(loadable, node)
        paths_in_slice_order = [str(path) for path in series.paths]
        uids = [slicer.dicomDatabase.fileValue(path, "0008,0018") for path in paths_in_slice_order]
        node.SetAttribute("DICOM.instanceUIDs", " ".join(uids))
        if self.irregular_slices:
            acquisition = slicer.vtkMRMLGridTransformNode()
            acquisition.SetName(slicer.mrmlScene.GenerateUniqueName(node.GetName() + " acquisition transform"))
            slicer.mrmlScene.AddNode(acquisition)
            sh = slicer.mrmlScene.GetSubjectHierarchyNode()
            sh.SetItemParent(sh.GetItemByDataNode(acquisition), sh.GetItemParent(sh.GetItemByDataNode(node)))
            grid = vtk.vtkImageData()
            grid.SetDimensions(2, 2, series.dimensions[2])
            grid.AllocateScalars(vtk.VTK_DOUBLE, 3)
            grid.GetPointData().GetScalars().Fill(0.0)
            transform = slicer.vtkOrientedGridTransform()
            transform.SetDisplacementGridData(grid)
            acquisition.SetAndObserveTransformToParent(transform)
            node.SetAndObserveTransformNodeID(acquisition.GetID())
        return node


def load_loadables(loadables_by_plugin):
    """DICOMUtils.loadLoadables: each selected loadable by its plugin, plugins in dictionary order."""
    selected = {}
    for plugin, loadables in loadables_by_plugin.items():
        for loadable in loadables:
            if loadable.selected:
                selected[loadable] = plugin
    return [bool(plugin.load(loadable)) for loadable, plugin in selected.items()]


def create_items_for_added_nodes(scene):
    """The subject hierarchy plugin logic creates an item for every data node added to the scene."""

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


class ExportDialog:
    """qSlicerDICOMExportDialog + qSlicerDICOMTagEditorWidget (Modules/Scripted/DICOMLib/Widgets/).

    examine(item): every registered plugin's examineForExport(item); exportables grouped by pluginClass
    (QMultiMap, keys visited in sorted order), each group keyed by 1 - mean confidence in a QMultiMap
    whose values(key) lists the most recently inserted group first; rows in that order, row 0 selected.
    select(row): setExportables — the study is the exported item's parent ("No study found" if none,
    the exportables are kept), the patient its parent; their DICOM.* attributes are copied into every
    exportable with setTag; a series tag the item has as DICOM.* attribute replaces the plugin's value.
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
        sh = slicer.mrmlScene.GetSubjectHierarchyNode()
        prefix = slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMAttributePrefix()
        study = sh.GetItemParent(self.exportables[0].subjectHierarchyItemID)
        if study == sh.GetSceneItemID() or not study:
            self.error = "No study found"
            return self.error
        patient = sh.GetItemParent(study)
        self.shown = {}
        for parent, names in (
            (patient, slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMPatientTagNames()),
            (study, slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMStudyTagNames()),
        ):
            for name in names:
                if not sh.HasItemAttribute(parent, prefix + name):
                    sh.SetItemAttribute(parent, prefix + name, "")
                self.shown[name] = sh.GetItemAttribute(parent, prefix + name)
        for exportable in self.exportables:
            for name, value in self.shown.items():
                exportable.setTag(name, value)
            item = exportable.subjectHierarchyItemID
            for name in list(exportable.tags):
                if name not in self.shown and sh.HasItemAttribute(item, prefix + name):
                    exportable.setTag(name, sh.GetItemAttribute(item, prefix + name))
        return ""

    def export(self, directory, edits=None):
        """The user edits tag values, presses Export; returns the plugin's message ("" = success)."""
        for exportable in self.exportables:
            for name, value in (edits or {}).items():
                exportable.setTag(name, value)
            exportable.directory = str(directory)
        plugin = slicer.modules.dicomPlugins[self.exportables[0].pluginClass]()
        return plugin.export(self.exportables)


class Application:
    """Installs the stand-ins (with pytest's monkeypatch) and imports the real DicomRegSavePlugin.py."""

    def __init__(self, monkeypatch, database):
        self.scene = slicer.vtkMRMLScene()
        self.popups = []
        dicomlib = types.ModuleType("DICOMLib")
        dicomlib.DICOMPlugin = DICOMPlugin
        dicomlib.DICOMLoadable = DICOMLoadable
        monkeypatch.setitem(sys.modules, "DICOMLib", dicomlib)
        qt = types.ModuleType("qt")
        qt.QTimer = types.SimpleNamespace(singleShot=lambda msec, function: function())
        monkeypatch.setitem(sys.modules, "qt", qt)
        monkeypatch.setattr(slicer, "mrmlScene", self.scene, raising=False)
        monkeypatch.setattr(slicer, "qSlicerDICOMExportable", Exportable, raising=False)
        monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
        monkeypatch.setattr(slicer, "modules", types.SimpleNamespace(), raising=False)
        monkeypatch.setattr(
            slicer.util, "warningDisplay", lambda text, **kwargs: self.popups.append(text), raising=False
        )
        monkeypatch.syspath_prepend(str(PLUGIN_FOLDER))
        monkeypatch.delitem(sys.modules, "DicomRegSavePlugin", raising=False)
        import DicomRegSavePlugin

        self.plugin_module = DicomRegSavePlugin
        DicomRegSavePlugin.DicomRegSavePlugin(types.SimpleNamespace())
        create_items_for_added_nodes(self.scene)
        self.scalar = ScalarVolumePlugin()

    @property
    def plugin(self):
        return slicer.modules.dicomPlugins["DicomRegSavePlugin"]()

    def load_series(self, paths):
        [loadable] = self.scalar.examineFiles([str(p) for p in paths])
        return self.scalar.load(loadable)

    def load_reg(self, path):
        plugin = self.plugin
        [loadable] = plugin.examineForImport([[str(path)]])
        assert plugin.load(loadable)
        return loadable

    def close(self):
        sys.modules.pop("DicomRegSavePlugin", None)
