"""DICOM browser plugin: export a registration transform as a DICOM Deformable Spatial Registration
(REG) from Slicer's "Export to DICOM..." dialog, and load REG files as transform nodes.

Thin glue: every decision is made in DicomRegSaveLib's slicer_* modules (tested headless).
"""

import importlib
import logging

import slicer
from DICOMLib import DICOMLoadable, DICOMPlugin
from DicomRegSaveLib.model import DEFORMABLE_SPATIAL_REGISTRATION_SOP_CLASS_UID

#: Above SlicerRT's REG loader (0.9), which applies the vectors in the opposite direction.
LOAD_CONFIDENCE = 0.95


def engine(name):
    """The engine module DicomRegSaveLib.`name`; pydicom and highdicom are imported on first use."""
    try:
        return importlib.import_module(f"DicomRegSaveLib.{name}")
    except ImportError as exc:
        raise ImportError(
            f"DicomRegSave needs pydicom and highdicom, which could not be imported ({exc}). Install them in "
            "Slicer's Python console with slicer.util.pip_install('highdicom') and restart Slicer."
        ) from exc


def databaseHeaderLookup():
    """SOP Instance UID -> file path in Slicer's DICOM database ("" if absent); None without a database."""
    database = getattr(slicer, "dicomDatabase", None)
    if database is None or not database.isOpen:
        return None
    return database.fileForInstance


class DicomRegSavePluginClass(DICOMPlugin):
    """Exports transforms as DICOM REG and loads DICOM REG as transforms (see DicomRegSaveLib's slicer_* modules)."""

    def __init__(self):
        super().__init__()
        self.loadType = "Deformable Registration (DicomRegSave)"
        self.tags["sopClassUID"] = "0008,0016"
        self.tags["instanceUID"] = "0008,0018"
        self.tags["modality"] = "0008,0060"

    # Import

    def examineForImport(self, fileLists):
        loadables = []
        for files in fileLists:
            cached = self.getCachedLoadables(files)
            if cached is None:
                cached = self.examineFiles(files)
                self.cacheLoadables(files, cached)
            loadables += cached
        return loadables

    def examineFiles(self, files):
        loadables = []
        for path in files:
            if slicer.dicomDatabase.fileValue(path, self.tags["sopClassUID"]) != DEFORMABLE_SPATIAL_REGISTRATION_SOP_CLASS_UID:
                continue
            try:
                info = engine("slicer_import").describe_registration_file(path)
            except ImportError as exc:
                logging.error(str(exc))
                return []
            if info is None:
                continue
            loadable = DICOMLoadable()
            loadable.files = [path]
            loadable.name = info.name
            loadable.tooltip = info.tooltip
            loadable.selected = True
            loadable.confidence = LOAD_CONFIDENCE
            loadable.referencedInstanceUIDs = info.referenced_instance_uids
            loadables.append(loadable)
        return loadables

    def load(self, loadable):
        slicer_import = engine("slicer_import")
        from DicomRegSaveLib.errors import DicomRegSaveError

        try:
            result = slicer_import.import_registration(loadable.files[0], slicer.mrmlScene, databaseHeaderLookup())
        except DicomRegSaveError as exc:
            logging.error(f"Could not load {loadable.files[0]} as a deformable registration: {exc}")
            return False
        self.addSeriesInSubjectHierarchy(loadable, result.leaf)
        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
        studyItemID = shNode.GetItemParent(shNode.GetItemByDataNode(result.leaf))
        engine("slicer_hierarchy").place_in_subject_hierarchy(shNode, result.nodes[:-1], studyItemID)
        for message in result.messages:
            logging.warning(message)
        return True

    # Export

    def examineForExport(self, subjectHierarchyItemID):
        try:
            slicer_offer = engine("slicer_offer")
        except ImportError as exc:
            logging.warning(str(exc))
            return []
        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
        decision = slicer_offer.examine_transform_item(shNode, subjectHierarchyItemID, databaseHeaderLookup())
        if not decision.offer:
            log = logging.info if decision.transform_node is not None else logging.debug
            log(f"DicomRegSave does not offer DICOM REG export of '{shNode.GetItemName(subjectHierarchyItemID)}': {decision.reason}")
            return []
        exportable = slicer.qSlicerDICOMExportable()
        exportable.name = self.loadType
        exportable.tooltip = decision.reason
        exportable.subjectHierarchyItemID = subjectHierarchyItemID
        exportable.pluginClass = self.__module__
        exportable.confidence = decision.confidence
        exportable.setTag("Modality", "REG")
        for keyword, value in decision.series_tags.items():
            exportable.setTag(keyword, value)
        return [exportable]

    def export(self, exportables):
        slicer_offer, slicer_fields, slicer_export = (
            engine("slicer_offer"), engine("slicer_fields"), engine("slicer_export")
        )
        from DicomRegSaveLib.errors import DicomRegSaveError

        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
        lookup = databaseHeaderLookup()
        constants = slicer.vtkMRMLSubjectHierarchyConstants
        shownKeywords = list(constants.GetDICOMPatientTagNames()) + list(constants.GetDICOMStudyTagNames())
        errors = []
        for exportable in exportables:
            decision = slicer_offer.examine_transform_item(shNode, exportable.subjectHierarchyItemID, lookup)
            if not decision.offer:
                errors.append(decision.reason)
                continue
            try:
                options = slicer_fields.options_from_tags(
                    {keyword: exportable.tag(keyword) for keyword in slicer_offer.SERIES_TAG_KEYWORDS}
                )
                result = slicer_export.export_from_nodes(
                    decision.transform_node, decision.fixed_node, decision.moving_node, lookup,
                    exportable.directory, options,
                )
            except DicomRegSaveError as exc:
                errors.append(f"'{decision.transform_node.GetName()}': {exc}")
                continue
            except Exception as exc:  # the dialog would only say "Error occurred in exporter"
                logging.exception("DicomRegSave export failed")
                errors.append(
                    f"'{decision.transform_node.GetName()}': unexpected error {type(exc).__name__}: {exc}. "
                    "This is a bug in DicomRegSave; the Python console shows the details."
                )
                continue
            shown = {keyword: exportable.tag(keyword) for keyword in shownKeywords if exportable.tag(keyword)}
            for message in engine("slicer_hierarchy").patient_study_differences(shown, result.dataset) + result.report.warnings:
                logging.warning(message)
            logging.info(f"Wrote DICOM registration {result.path}")
        return "\n".join(errors)


class DicomRegSavePlugin:
    """Hidden hook module that registers DicomRegSavePluginClass with the DICOM module."""

    def __init__(self, parent):
        parent.title = "DICOM Deformable Registration Plugin"
        parent.categories = ["Developer Tools.DICOM Plugins"]
        parent.contributors = ["DicomRegSave contributors"]
        parent.helpText = """
Plugin of the DICOM module: exports registration transforms as DICOM Deformable Spatial Registration
objects ("Export to DICOM..." in the Data module) and loads them as transforms. No interface of its own;
see the DICOM Registration Export module.
"""
        parent.acknowledgementText = """
Built on 3D Slicer's DICOM plugin architecture, pydicom and highdicom.
"""
        parent.hidden = True
        try:
            slicer.modules.dicomPlugins
        except AttributeError:
            slicer.modules.dicomPlugins = {}
        slicer.modules.dicomPlugins["DicomRegSavePlugin"] = DicomRegSavePluginClass
