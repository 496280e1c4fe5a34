"""DICOM browser plugin: export a registration transform as a DICOM Deformable Spatial Registration
(REG) from Slicer's "Export to DICOM..." dialog, and load REG files as transforms.

Thin glue: every decision is made in DicomRegSaveLib's slicer_* modules (tested headless).
"""

import functools
import importlib
import logging
import pathlib

import slicer
from DICOMLib import DICOMLoadable, DICOMPlugin

#: Oldest 3D Slicer that bundles the pydicom and highdicom DicomRegSave needs (Resources/requirements.txt).
MINIMUM_SLICER_VERSION = "5.12"
REQUIREMENTS_FILE = pathlib.Path(__file__).parent / "Resources" / "requirements.txt"

#: Above SlicerRT's REG loader (0.9, DicomSroImportExport/Logic/vtkSlicerDicomSroImportExportModuleLogic.cxx),
#: which applies registrations in the opposite direction; for 66.1 and 66.3 alike.
LOAD_CONFIDENCE = 0.95


class EngineUnavailable(ImportError):
    """This Slicer lacks the Python packages DicomRegSave needs; the message says which Slicer to use."""


@functools.cache
def engineProblem():
    """None if DicomRegSave can run in this Slicer, else the one message saying which Slicer is needed.

    Checked once per session from Resources/requirements.txt (package metadata only), and logged once.
    """
    from DicomRegSaveLib.requirements import unmet_requirements

    unmet = unmet_requirements(REQUIREMENTS_FILE)
    if not unmet:
        return None
    version = getattr(getattr(slicer, "app", None), "applicationVersion", "") or "of unknown version"
    problem = (
        f"DicomRegSave needs 3D Slicer {MINIMUM_SLICER_VERSION} or later, which bundles the Python packages "
        f"it uses; this Slicer ({version}) has {', '.join(unmet)}. Install Slicer {MINIMUM_SLICER_VERSION} or "
        "later. Do not pip-install these packages into this Slicer: that would replace the pydicom that "
        "Slicer's own DICOM module relies on."
    )
    logging.error(problem)
    return problem


def engine(name):
    """The engine module DicomRegSaveLib.`name`; raises EngineUnavailable (with engineProblem()) on an old Slicer."""
    problem = engineProblem()
    if problem:
        raise EngineUnavailable(problem)
    return importlib.import_module(f"DicomRegSaveLib.{name}")


def databaseHeaderLookup():
    """SOP Instance UID -> file path in Slicer's DICOM database ("" if absent); None without a database."""
    database = getattr(slicer, "dicomDatabase", None)
    if database is None or not database.isOpen:
        return None
    return database.fileForInstance


def notifyUser(message):
    """Show `message` to the user once the current DICOM browser action has finished, and log it."""
    logging.warning(message)
    import qt

    qt.QTimer.singleShot(0, lambda: slicer.util.warningDisplay(message, windowTitle="DICOM registration"))


@functools.cache
def registrationWatcher():
    """The one watcher that applies loaded registrations to volumes as they arrive in slicer.mrmlScene.

    slicer.mrmlScene lives as long as the application, so one watcher per session; it is started by
    the first REG loaded.
    """
    return engine("slicer.linking").RegistrationWatcher(slicer.mrmlScene, databaseHeaderLookup, notifyUser)


class DicomRegSavePluginClass(DICOMPlugin):
    """Exports transforms as DICOM REG and loads DICOM REG as transforms (see DicomRegSaveLib's slicer_* modules)."""

    def __init__(self):
        super().__init__()
        self.loadType = "Registration (DicomRegSave)"
        self.tags["sopClassUID"] = "0008,0016"
        self.tags["instanceUID"] = "0008,0018"
        self.tags["modality"] = "0008,0060"

    # Import

    def examineForImport(self, fileLists):
        if engineProblem():
            return []
        slicer_import = engine("slicer.importing")
        loadables = []
        for files in fileLists:
            cached = self.getCachedLoadables(files)
            if cached is None:
                cached = self.examineFiles(files)
                self.cacheLoadables(files, cached)
            loadables += cached
        # What is loaded changes between examinations, the cached file descriptions do not.
        for loadable in loadables:
            loadable.warning = slicer_import.examine_warning(loadable.info, slicer.mrmlScene, databaseHeaderLookup())
        return loadables

    def examineFiles(self, files):
        if engineProblem():
            return []
        slicer_import = engine("slicer.importing")
        sopClassUIDs = slicer_import.LOADABLE_SOP_CLASS_UIDS
        loadables = []
        for path in files:
            if slicer.dicomDatabase.fileValue(path, self.tags["sopClassUID"]) not in sopClassUIDs:
                continue
            info = slicer_import.describe_registration_file(path)
            if info is None:
                continue
            loadable = DICOMLoadable()
            loadable.files = [path]
            loadable.name = info.name
            loadable.tooltip = info.tooltip
            loadable.selected = True
            loadable.confidence = LOAD_CONFIDENCE
            loadable.referencedInstanceUIDs = info.referenced_instance_uids
            loadable.info = info
            loadables.append(loadable)
        return loadables

    def load(self, loadable):
        slicer_import = engine("slicer.importing")
        from DicomRegSaveLib.errors import DicomRegSaveError

        try:
            result = slicer_import.import_registration(
                loadable.files[0], slicer.mrmlScene, databaseHeaderLookup(), name=loadable.name
            )
        except DicomRegSaveError as exc:
            logging.error(f"Could not load {loadable.files[0]} as a registration: {exc}")
            return False
        self.addSeriesInSubjectHierarchy(loadable, result.leaf)
        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
        studyItemID = shNode.GetItemParent(shNode.GetItemByDataNode(result.leaf))
        others = [node for node in result.nodes if node is not result.leaf]
        engine("slicer.hierarchy").place_in_subject_hierarchy(shNode, others, studyItemID)
        registrationWatcher().start()
        for message in result.pending:
            logging.info(message)
        if result.messages:
            notifyUser("\n".join(result.messages))
        return True

    # Export

    def examineForExport(self, subjectHierarchyItemID):
        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
        node = shNode.GetItemDataNode(subjectHierarchyItemID)
        if node is None or not node.IsA("vtkMRMLTransformNode"):
            return []
        problem = engineProblem()
        if problem:
            return [self.exportable(subjectHierarchyItemID, 0.0, problem, {})]
        slicer_offer = engine("slicer.offer")
        decision = slicer_offer.examine_transform_item(shNode, subjectHierarchyItemID, databaseHeaderLookup())
        if decision.offer and decision.fixed_header is not None:
            # The dialog reads the patient and study rows from the item's parents after this call.
            engine("slicer.hierarchy").place_in_fixed_study(shNode, subjectHierarchyItemID, decision.fixed_header)
        name = f"{decision.registration_class} Registration (DicomRegSave)" if decision.offer else None
        return [
            self.exportable(subjectHierarchyItemID, decision.confidence, decision.reason, decision.series_tags, name)
        ]

    def exportable(self, subjectHierarchyItemID, confidence, tooltip, seriesTags, name=None):
        """An exportable; without `name` one that cannot be exported yet (the tooltip says why)."""
        exportable = slicer.qSlicerDICOMExportable()
        exportable.name = name or f"{self.loadType}: cannot export yet, see the tooltip"
        exportable.tooltip = tooltip
        exportable.subjectHierarchyItemID = subjectHierarchyItemID
        exportable.pluginClass = self.__module__
        exportable.confidence = confidence
        exportable.setTag("Modality", "REG")
        for keyword, value in seriesTags.items():
            exportable.setTag(keyword, value)
        return exportable

    def export(self, exportables):
        problem = engineProblem()
        if problem:
            return problem
        slicer_offer, slicer_fields, slicer_hierarchy, slicer_export = (
            engine("slicer.offer"),
            engine("slicer.fields"),
            engine("slicer.hierarchy"),
            engine("slicer.export"),
        )
        from DicomRegSaveLib.errors import DicomRegSaveError

        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
        lookup = databaseHeaderLookup()
        errors = []
        for exportable in exportables:
            decision = slicer_offer.examine_transform_item(shNode, exportable.subjectHierarchyItemID, lookup)
            if not decision.offer:
                errors.append(decision.reason)
                continue
            name = decision.transform_node.GetName()
            if (exportable.tag("Modality") or "REG") != "REG":
                errors.append(
                    f"'{name}': Modality must stay REG for a registration (it was changed to "
                    f"{exportable.tag('Modality')!r}); nothing was written."
                )
                continue
            if decision.fixed_header is None:
                errors.append(
                    f"'{name}': the fixed image's DICOM header was not found in the DICOM database; "
                    "nothing was written."
                )
                continue
            edits, refusals = slicer_hierarchy.dialog_patient_study_edits(
                {keyword: exportable.tag(keyword) for keyword in slicer_hierarchy.dialog_tag_names()},
                decision.fixed_header,
            )
            if refusals:
                errors.append(f"'{name}': " + " ".join(refusals))
                continue
            try:
                values = {keyword: exportable.tag(keyword) for keyword in slicer_offer.SERIES_TAG_KEYWORDS}
                options = slicer_fields.options_from_tags(
                    {**values, **edits}, slicer_fields.inherited_values(decision.fixed_header)
                )
                result = slicer_export.export_from_nodes(
                    decision.transform_node,
                    decision.fixed_node,
                    decision.moving_node,
                    lookup,
                    exportable.directory,
                    options,
                )
            except DicomRegSaveError as exc:
                errors.append(f"'{name}': {exc}")
                continue
            except Exception as exc:  # the dialog would only say "Error occurred in exporter"
                logging.exception("DicomRegSave export failed")
                errors.append(
                    f"'{name}': unexpected error {type(exc).__name__}: {exc}. "
                    "This is a bug in DicomRegSave; the Python console shows the details."
                )
                continue
            for message in result.report.warnings:
                logging.warning(message)
            logging.info(f"Wrote DICOM registration {result.path}")
        return "\n".join(errors)


class DicomRegSavePlugin:
    """Hidden hook module that registers DicomRegSavePluginClass with the DICOM module."""

    def __init__(self, parent):
        parent.title = "DICOM Deformable Registration Plugin"
        parent.categories = ["Developer Tools.DICOM Plugins"]
        parent.contributors = ["DicomRegSave contributors (https://github.com/dicomregsave/DicomRegSave)"]
        parent.helpText = """
Plugin of the DICOM module: exports registration transforms as DICOM Deformable Spatial Registration
objects ("Export to DICOM..." in the Data module) and loads them as transforms, applied to the moving
volume whenever that series is loaded. No interface of its own; see the DICOM Registration Export module
and the <a href="https://github.com/dicomregsave/DicomRegSave#readme">README</a>.
"""
        parent.acknowledgementText = """
Built on 3D Slicer's DICOM plugin architecture, pydicom and highdicom.
"""
        parent.hidden = True
        if not hasattr(slicer.modules, "dicomPlugins"):
            slicer.modules.dicomPlugins = {}
        slicer.modules.dicomPlugins["DicomRegSavePlugin"] = DicomRegSavePluginClass
