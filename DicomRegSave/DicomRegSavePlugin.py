"""DICOM browser plugin: export a registration transform as a DICOM Deformable Spatial Registration
(REG) from Slicer's "Export to DICOM..." dialog, and load REG files as transforms.

Thin glue: every decision is made in DicomRegSaveLib.slicer (tested headless). This file is imported at
Slicer start-up (it holds the hidden hook module), so it imports only what is light: the engine is
imported by each entry point, after the one requirements check :func:`engineProblem`.
"""

import functools
import logging
import pathlib

import qt
import slicer
from DICOMLib import DICOMLoadable, DICOMPlugin
from slicer.i18n import tr as _

from DicomRegSaveLib.requirements import unmet_requirements
from DicomRegSaveLib.slicer.attributes import GRID_INTERPOLATION_ATTRIBUTE, MOVING_INSTANCES_ATTRIBUTE

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

    The one requirements check of the extension: Resources/requirements.txt against package metadata
    only (no engine import), once per session, logged once.
    """
    unmet = unmet_requirements(REQUIREMENTS_FILE)
    if not unmet:
        return None
    version = slicer.app.applicationVersion
    problem = _(
        "DicomRegSave needs 3D Slicer {minimum} or later, which bundles the Python packages it uses; this "
        "Slicer ({version}) has {unmet}. Install Slicer {minimum} or later. Do not pip-install these packages "
        "into this Slicer: that would replace the pydicom that Slicer's own DICOM module relies on."
    ).format(minimum=MINIMUM_SLICER_VERSION, version=version, unmet=", ".join(unmet))
    logging.error(problem)
    return problem


def requireEngine():
    """Raise EngineUnavailable (with engineProblem()) on a Slicer too old for DicomRegSave."""
    problem = engineProblem()
    if problem:
        raise EngineUnavailable(problem)


def databaseHeaderLookup():
    """SOP Instance UID -> file path in Slicer's DICOM database ("" if absent); None without a database."""
    database = getattr(slicer, "dicomDatabase", None)
    if database is None or not database.isOpen:
        return None
    return database.fileForInstance


def databaseSeriesNumbers():
    """Study Instance UID -> the Series Numbers of the DICOM database's series of that study; None without a database."""
    database = getattr(slicer, "dicomDatabase", None)
    if database is None or not database.isOpen:
        return None
    from DicomRegSaveLib.slicer.provenance import database_series_numbers

    return functools.partial(
        database_series_numbers,
        series_for_study=database.seriesForStudy,
        files_for_series=database.filesForSeries,
        file_value=database.fileValue,
    )


def reportLinking(message):
    """What linking a registration changed that could surprise the user: logged (Slicer's error log and
    Python console show it), never a modal popup, since it happens after a load the user is not watching."""
    logging.warning(message)


@functools.cache
def registrationWatcher():
    """The one watcher that applies loaded registrations to volumes as they arrive in slicer.mrmlScene.

    slicer.mrmlScene lives as long as the application, so one watcher per session. It is started by a REG
    load and by a scene import that brings a DicomRegSave registration (:class:`DicomRegSavePlugin`), and
    stops itself at scene close. It links after the current event, never inside it.
    """
    requireEngine()
    from DicomRegSaveLib.slicer.linking import RegistrationWatcher

    return RegistrationWatcher(slicer.mrmlScene, lambda function: qt.QTimer.singleShot(0, function), reportLinking)


def fixedImageTexts(decision, names):
    """The fixed image's values of the dialog's patient/study rows, as Slicer decodes them (DICOM database)."""
    from DicomRegSaveLib.slicer.hierarchy import fixed_image_texts
    from DicomRegSaveLib.slicer.provenance import instance_uids

    database = slicer.dicomDatabase
    return fixed_image_texts(names, instance_uids(decision.fixed_node)[0], database.fileForInstance, database.fileValue)


class DicomRegSavePluginClass(DICOMPlugin):
    """Exports transforms as DICOM REG and loads DICOM REG as transforms (see DicomRegSaveLib.slicer)."""

    #: Subject hierarchy item -> the patient/study rows the export dialog showed for it, recorded at
    #: examineForExport (the dialog makes a new plugin instance for each call).
    shownRows = {}

    def __init__(self):
        super().__init__()
        self.loadType = _("Registration (DicomRegSave)")
        self.tags["sopClassUID"] = "0008,0016"
        self.tags["instanceUID"] = "0008,0018"
        self.tags["modality"] = "0008,0060"

    # Import

    def examineForImport(self, fileLists):
        if engineProblem():
            return []
        from DicomRegSaveLib.slicer.importing import examine_warning

        loadables = []
        for files in fileLists:
            cached = self.getCachedLoadables(files)
            if cached is None:
                cached = self.examineFiles(files)
                self.cacheLoadables(files, cached)
            loadables += cached
        # What is loaded changes between examinations, the cached file descriptions do not.
        for loadable in loadables:
            loadable.warning = examine_warning(loadable.info, slicer.mrmlScene)
        return loadables

    def examineFiles(self, files):
        if engineProblem():
            return []
        from DicomRegSaveLib.slicer.importing import LOADABLE_SOP_CLASS_UIDS, describe_registration_file

        loadables = []
        for path in files:
            if slicer.dicomDatabase.fileValue(path, self.tags["sopClassUID"]) not in LOADABLE_SOP_CLASS_UIDS:
                continue
            info = describe_registration_file(path)
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
        """Transform nodes from the REG; the watcher links them with their volumes after this load.

        Problems are logged and reported by returning False: the DICOM browser then lists
        "Could not load ..." with the other messages of the batch (DICOMUtils.loadLoadables).
        """
        if engineProblem():
            return False
        from DicomRegSaveLib.errors import DicomRegSaveError
        from DicomRegSaveLib.slicer.hierarchy import place_in_subject_hierarchy
        from DicomRegSaveLib.slicer.importing import import_registration

        registrationWatcher().start()
        try:
            result = import_registration(
                loadable.files[0], slicer.mrmlScene, databaseHeaderLookup(), name=loadable.name
            )
        except DicomRegSaveError as exc:
            logging.error(
                _("Could not load {path} as a registration: {reason}").format(path=loadable.files[0], reason=exc)
            )
            return False
        self.addSeriesInSubjectHierarchy(loadable, result.leaf)
        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
        studyItemID = shNode.GetItemParent(shNode.GetItemByDataNode(result.leaf))
        place_in_subject_hierarchy(shNode, [node for node in result.nodes if node is not result.leaf], studyItemID)
        return True

    # Export

    def examineForExport(self, subjectHierarchyItemID):
        """Read-only: the dialog calls it on every selection, and moving its current item would make the
        tree reset the selection and call it again (qMRMLSubjectHierarchyTreeView)."""
        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
        node = shNode.GetItemDataNode(subjectHierarchyItemID)
        if node is None or not node.IsA("vtkMRMLTransformNode"):
            return []
        problem = engineProblem()
        if problem:
            return [self.exportable(subjectHierarchyItemID, 0.0, problem, {})]
        from DicomRegSaveLib.slicer.hierarchy import dialog_rows
        from DicomRegSaveLib.slicer.offer import examine_transform_item

        decision = examine_transform_item(shNode, subjectHierarchyItemID, databaseHeaderLookup())
        if not decision.listed:
            return []
        DicomRegSavePluginClass.shownRows[subjectHierarchyItemID] = dialog_rows(shNode, subjectHierarchyItemID)
        name = (
            _("{kind} Registration (DicomRegSave)").format(kind=decision.registration_class) if decision.offer else None
        )
        return [
            self.exportable(subjectHierarchyItemID, decision.confidence, decision.reason, decision.series_tags, name)
        ]

    def exportable(self, subjectHierarchyItemID, confidence, tooltip, seriesTags, name=None):
        """An exportable; without `name` one that cannot be exported yet (the tooltip says why)."""
        exportable = slicer.qSlicerDICOMExportable()
        exportable.name = name or _("{loadType}: cannot export yet, see the tooltip").format(loadType=self.loadType)
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
        errors = [self.exportOne(exportable) for exportable in exportables]
        return "\n".join(error for error in errors if error)

    def exportOne(self, exportable):
        """Write one exportable into its directory; "" on success, else why nothing was written."""
        from DicomRegSaveLib.errors import DicomRegSaveError
        from DicomRegSaveLib.slicer.export import export_from_nodes
        from DicomRegSaveLib.slicer.fields import options_from_tags
        from DicomRegSaveLib.slicer.hierarchy import dialog_edit_refusals, place_in_fixed_study
        from DicomRegSaveLib.slicer.offer import SERIES_TAG_KEYWORDS, examine_transform_item

        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
        lookup = databaseHeaderLookup()
        itemID = exportable.subjectHierarchyItemID
        decision = examine_transform_item(shNode, itemID, lookup)
        if not decision.offer:
            return decision.reason
        name = decision.transform_node.GetName()
        if (exportable.tag("Modality") or "REG") != "REG":
            return _(
                "'{name}': Modality must stay REG for a registration (it was changed to {modality!r}); "
                "nothing was written."
            ).format(name=name, modality=exportable.tag("Modality"))
        if decision.fixed_header is None:
            return _(
                "'{name}': the fixed image's DICOM header was not found in the DICOM database; nothing was written."
            ).format(name=name)
        shown = DicomRegSavePluginClass.shownRows.get(itemID, {})
        refusals = dialog_edit_refusals(
            shown, {row: exportable.tag(row) for row in shown}, fixedImageTexts(decision, list(shown))
        )
        if refusals:
            return f"'{name}': " + " ".join(refusals)
        try:
            options = options_from_tags({keyword: exportable.tag(keyword) for keyword in SERIES_TAG_KEYWORDS})
            result = export_from_nodes(
                decision.transform_node,
                decision.fixed_node,
                decision.moving_node,
                lookup,
                exportable.directory,
                options,
                series_numbers_in_study=databaseSeriesNumbers(),
            )
        except DicomRegSaveError as exc:
            return f"'{name}': {exc}"
        except Exception as exc:  # the dialog would only say "Error occurred in exporter"
            logging.exception("DicomRegSave export failed")
            return _(
                "'{name}': unexpected error {error}: {message}. This is a bug in DicomRegSave; the Python console "
                "shows the details."
            ).format(name=name, error=type(exc).__name__, message=exc)
        # The REG belongs to the fixed image's study; the tree shows it there once it is written.
        place_in_fixed_study(shNode, itemID, decision.fixed_header)
        for message in result.report.warnings:
            logging.warning(message)
        logging.info(_("Wrote DICOM registration {path}").format(path=result.path))
        return ""


class DicomRegSavePlugin:
    """Hidden hook module: registers DicomRegSavePluginClass with the DICOM module and watches scene imports.

    A scene saved with a registration that waits for its moving series must apply it when that series
    is loaded, also after a restart; nothing started only by a user action survives one. And Slicer reads
    the registration's grids back with cubic interpolation, which the watcher turns back to linear after
    the load. So this hook, created at every start-up, keeps one light observer on the scene's end of
    import (no engine import until a scene brings a DicomRegSave registration), removed at application exit.
    """

    def __init__(self, parent):
        parent.title = "DICOM Deformable Registration Plugin"  # no tr: shown to developers only, as Slicer's plugins
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
        self.sceneObserverTag = None
        # As Slicer's own modules do for work that needs the application's scene (e.g. SampleData).
        slicer.app.connect("startupCompleted()", self.observeScene)
        slicer.app.connect("aboutToQuit()", self.onApplicationExit)

    def observeScene(self):
        self.sceneObserverTag = slicer.mrmlScene.AddObserver(slicer.vtkMRMLScene.EndImportEvent, self.onSceneImported)

    @staticmethod
    def onSceneImported(scene, event):
        if scene.IsClosing() or engineProblem():
            return
        transforms = scene.GetNodesByClass("vtkMRMLTransformNode")
        for index in range(transforms.GetNumberOfItems()):
            node = transforms.GetItemAsObject(index)
            if node.GetAttribute(MOVING_INSTANCES_ATTRIBUTE) or node.GetAttribute(GRID_INTERPOLATION_ATTRIBUTE):
                registrationWatcher().start()
                return

    def onApplicationExit(self):
        if self.sceneObserverTag is not None:
            slicer.mrmlScene.RemoveObserver(self.sceneObserverTag)
        if registrationWatcher.cache_info().currsize:
            registrationWatcher().stop()
