"""DICOM Registration Export: write a Slicer registration transform as a DICOM Deformable Spatial
Registration (REG) that references the original fixed and moving DICOM images, and read one back.

Thin Slicer/Qt glue around DicomRegSaveLib (the engine, tested headless); every decision is made there.
Imported at Slicer start-up, so it imports only light modules at the top; the engine is imported by the
widget and logic methods, after the one requirements check (DicomRegSavePlugin.engineProblem).
"""

import contextlib
import json
import logging
import pathlib
import tempfile
from typing import Annotated

import ctk
import numpy as np
import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLTransformNode
from slicer.i18n import tr as _, translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from vtk.util import numpy_support

from DicomRegSaveLib.export.option_table import REGISTRATION_CLASSES
from DicomRegSavePlugin import (
    databaseHeaderLookup,
    databaseSeriesNumbers,
    engineProblem,
    registrationWatcher,
    requireEngine,
)

DICOM_SOURCES = ["database", "file", "folder"]


class DicomRegSave(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DICOM Registration Export")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Registration")]
        self.parent.dependencies = []
        self.parent.contributors = ["DicomRegSave contributors (https://github.com/dicomregsave/DicomRegSave)"]
        self.parent.helpText = _("""
Writes a registration transform (for example the output of a registration module) as a DICOM
Deformable Spatial Registration object that references the original fixed and moving DICOM images,
and loads such objects back as transforms (applied to the moving volume whenever its series is loaded).
Needs 3D Slicer 5.12 or later. See the
<a href="https://github.com/dicomregsave/DicomRegSave#readme">README</a> for the command line, the
direction convention and the checks.<br><br>
<b>Direction.</b> The file stores the mapping from the fixed (registered) image to the moving (source)
image: for a fixed point x, moving point = x + D(x) (plus optional matrices). That is the transform a
moving volume is placed under in Slicer (its "from parent" transform), the ITK displacement-field
convention and what DICOM PS3.3 C.20.3 specifies. Nothing needs inverting: choose the transform that
aligns the moving volume with the fixed one.<br><br>
Also available from the Data module: right-click the transform, "Export to DICOM...".
""")
        self.parent.acknowledgementText = _("""
Built on 3D Slicer, pydicom and highdicom; validated with dicom3tools (dciodvfy, dcentvfy) when installed.
""")


@parameterNodeWrapper
class DicomRegSaveParameterNode:
    """The panel's state, saved with the scene.

    transform, fixedVolume, movingVolume - the registration and its images.
    fixedSource/movingSource - where the DICOM instances are: database (the volume's DICOM origin), file, folder.
    gridSpacingMm - spacing of a resampled grid; 0 = automatic.
    tagValuesJson - edited DICOM attribute values (keyword -> text), inheritedTagsJson - the fixed image's values.
    """

    transform: vtkMRMLTransformNode
    fixedVolume: vtkMRMLScalarVolumeNode
    movingVolume: vtkMRMLScalarVolumeNode
    fixedSource: Annotated[str, Choice(DICOM_SOURCES)] = "database"
    fixedPath: pathlib.Path
    movingSource: Annotated[str, Choice(DICOM_SOURCES)] = "database"
    movingPath: pathlib.Path
    registrationClass: Annotated[str, Choice(list(REGISTRATION_CLASSES))] = "auto"
    gridSpacingMm: Annotated[float, WithinRange(0.0, 100.0)] = 0.0
    axisAligned: bool = False
    identityItem: bool = False
    filterPattern: str = ""
    outputFolder: pathlib.Path
    overwrite: bool = False
    addToDatabase: bool = True
    tagValuesJson: str = "{}"
    inheritedTagsJson: str = "{}"


class DicomRegSaveWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._previewDataset = None
        self._tagEdits = {}
        self._tagProblemLabels = {}
        self.engineProblem = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DicomRegSave.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = DicomRegSaveLogic()
        self.ui.outputPathLineEdit.filters = ctk.ctkPathLineEdit.Dirs

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.transformSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onTransformChanged)
        self.ui.inheritButton.connect("clicked(bool)", self.onInheritButton)
        self.ui.validateButton.connect("clicked(bool)", self.onValidateButton)
        self.ui.saveButton.connect("clicked(bool)", self.onSaveButton)
        self.ui.filterLineEdit.connect("textChanged(QString)", lambda text: self.renderPreview())

        # On a Slicer without the packages DicomRegSave needs, the panel shows that one message and every
        # slot below returns early, instead of failing on each selection change.
        self.engineProblem = engineProblem()
        if self.engineProblem:
            self.setStatus(self.engineProblem, error=True)
            for button in (self.ui.inheritButton, self.ui.validateButton, self.ui.saveButton):
                button.enabled = False
        else:
            self.buildTagFields()
            self.buildQualitySection()
        self.initializeParameterNode()

    def buildQualitySection(self):
        """A Quality section (TG-132) below the panel: the numbers of ``dicomregsave qa`` for the selected transform."""
        section = ctk.ctkCollapsibleButton()
        section.text = _("Quality")
        section.collapsed = True
        column = qt.QVBoxLayout(section)
        button = qt.QPushButton(_("Check quality (adds Jacobian and warped moving volumes)"))
        button.toolTip = _(
            "Linear part, Jacobian determinant, displacement and image agreement of the selected transform"
        )
        self.qualityTextEdit = qt.QPlainTextEdit()
        self.qualityTextEdit.readOnly = True
        saveButton = qt.QPushButton(_("Save QA report..."))
        saveButton.toolTip = _(
            "Check quality, then write index.html and its pictures into a new folder in the chosen one"
        )
        column.addWidget(button)
        column.addWidget(saveButton)
        column.addWidget(self.qualityTextEdit)
        self.layout.addWidget(section)
        button.connect("clicked(bool)", lambda: self.onQualityButton(save=False))
        saveButton.connect("clicked(bool)", lambda: self.onQualityButton(save=True))

    def onQualityButton(self, save):
        from DicomRegSaveLib.mrml.nodes import resolve_fixed_and_moving
        from DicomRegSaveLib.qa.evaluate import summary_text
        from DicomRegSaveLib.slicer.quality import registration_quality, save_report

        p = self._parameterNode
        parent = qt.QFileDialog.getExistingDirectory(None, _("Folder for the QA report")) if save else ""
        if save and not parent:
            return
        try:
            fixed, moving = resolve_fixed_and_moving(p.transform, p.fixedVolume, p.movingVolume)
            result = registration_quality(p.transform, fixed, moving)
            if save:
                name = f"QA {p.transform.GetName()} {qt.QDateTime.currentDateTime().toString('yyyyMMdd-HHmmss')}"
                folder = save_report(result, pathlib.Path(parent) / name)
        except Exception as exc:
            self.reportFailure(exc)
            return
        report = result.report
        self.qualityTextEdit.plainText = summary_text(report)
        if save:
            self.qualityTextEdit.appendPlainText(f"Report: {folder / 'index.html'}")
        self.setStatus(
            f"Quality: {'all checks pass' if report['ok'] else 'NOT all checks pass'}.", error=not report["ok"]
        )

    def buildTagFields(self):
        """One line edit per attribute of PANEL_FIELDS, grouped like the standard's modules."""
        from DicomRegSaveLib.slicer.fields import PANEL_FIELDS, PLACEHOLDERS, describe_keyword

        layout = qt.QVBoxLayout(self.ui.tagFieldsWidget)
        layout.setContentsMargins(0, 0, 0, 0)
        for group, keywords in PANEL_FIELDS.items():
            box = qt.QGroupBox(group)
            form = qt.QFormLayout(box)
            for keyword in keywords:
                edit = qt.QLineEdit()
                edit.toolTip = describe_keyword(keyword)
                edit.placeholderText = PLACEHOLDERS.get(keyword, "")
                problem = qt.QLabel()
                problem.wordWrap = True
                problem.setStyleSheet("color: #c0392b")
                problem.hide()
                column = qt.QVBoxLayout()
                column.addWidget(edit)
                column.addWidget(problem)
                form.addRow(f"{keyword}:", column)
                edit.connect("textEdited(QString)", lambda text, k=keyword: self.onTagEdited(k, text))
                self._tagEdits[keyword] = edit
                self._tagProblemLabels[keyword] = problem
            layout.addWidget(box)

    def cleanup(self):
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
            self.showTagValues()
            self.onParameterNodeModified()

    def onParameterNodeModified(self, caller=None, event=None):
        p = self._parameterNode
        if p is None:
            return
        for source, pathEdit in (
            (p.fixedSource, self.ui.fixedPathLineEdit),
            (p.movingSource, self.ui.movingPathLineEdit),
        ):
            pathEdit.enabled = source != "database"
            pathEdit.filters = ctk.ctkPathLineEdit.Dirs if source == "folder" else ctk.ctkPathLineEdit.Files
        self.ui.addToDatabaseCheckBox.enabled = databaseHeaderLookup() is not None
        ready = p.transform is not None and not self.engineProblem and not self.tagProblems()
        self.ui.validateButton.enabled = ready
        self.ui.saveButton.enabled = ready and self.outputFolder() is not None

    def onTransformChanged(self, node):
        if self._parameterNode is None or node is None or self.engineProblem:
            return
        from DicomRegSaveLib.slicer.offer import suggested_volumes

        fixed, moving = suggested_volumes(node)
        # This slot runs before the wrapper's own connector slot on the same signal; any parameter write
        # makes the wrapper push every parameter back to its widget, so the new transform must be stored
        # first or the selector is reset to the previous one.
        with slicer.util.NodeModify(self._parameterNode):
            self._parameterNode.transform = node
            if fixed is not None:
                self._parameterNode.fixedVolume = fixed
            if moving is not None:
                self._parameterNode.movingVolume = moving

    # DICOM attribute fields

    def tagValues(self):
        return json.loads(self._parameterNode.tagValuesJson) if self._parameterNode else {}

    def tagProblems(self):
        if self.engineProblem or not self._tagEdits:
            return {}
        from DicomRegSaveLib.slicer.fields import field_problems

        return field_problems(self.tagValues())

    def showTagValues(self):
        values = self.tagValues()
        for keyword, edit in self._tagEdits.items():
            edit.text = values.get(keyword, "")
            self.showTagProblem(keyword, edit.text)

    def showTagProblem(self, keyword, text):
        from DicomRegSaveLib.slicer.fields import tag_problem

        problem = tag_problem(keyword, text)
        label = self._tagProblemLabels[keyword]
        label.text = problem or ""
        label.visible = problem is not None

    def onTagEdited(self, keyword, text):
        values = self.tagValues()
        values[keyword] = text
        self._parameterNode.tagValuesJson = json.dumps(values)
        self.showTagProblem(keyword, text)

    def onInheritButton(self):
        if self.engineProblem:
            return
        from DicomRegSaveLib.slicer.fields import inherited_values, panel_fields

        p = self._parameterNode
        try:
            header = self.logic.fixedImageHeader(p.fixedVolume, self.dicomFiles("fixed"))
        except Exception as exc:
            self.setStatus(str(exc), error=True)
            return
        fields = panel_fields(header)
        values = {keyword: text for group in fields.values() for keyword, text in group.items()}
        p.inheritedTagsJson = json.dumps(inherited_values(header))
        p.tagValuesJson = json.dumps(values)
        self.showTagValues()
        self.setStatus(_("Patient and study attributes taken from the fixed image."))

    # Validate, preview, save

    def dicomFiles(self, role):
        """The chosen DICOM file/folder of the fixed or moving image, or None for the database."""
        p = self._parameterNode
        source, path = (p.fixedSource, p.fixedPath) if role == "fixed" else (p.movingSource, p.movingPath)
        if source == "database":
            return None
        if not str(path) or str(path) == ".":
            raise ValueError(
                _("Choose the {role} image's DICOM {source}, or set its source to 'database'.").format(
                    role=role, source=source
                )
            )
        return str(path)

    def outputFolder(self):
        folder = self._parameterNode.outputFolder if self._parameterNode else None
        return None if folder is None or str(folder) in ("", ".") else str(folder)

    def exportArguments(self, **extra):
        p = self._parameterNode
        return dict(
            tags=self.tagValues(),
            inheritedTags=json.loads(p.inheritedTagsJson) or None,
            identityItem=p.identityItem,
            registrationClass=p.registrationClass,
            gridSpacingMm=p.gridSpacingMm,
            axisAligned=p.axisAligned,
            fixedDicom=self.dicomFiles("fixed"),
            movingDicom=self.dicomFiles("moving"),
            **extra,
        )

    def onValidateButton(self):
        p = self._parameterNode
        self.setStatus(_("Validating..."))
        try:
            with self.progressDialog(_("Building and checking the registration...")) as onProgress:
                dataset, report = self.logic.validateRegistration(
                    p.transform, p.fixedVolume, p.movingVolume, **self.exportArguments(progressCallback=onProgress)
                )
        except Exception as exc:
            self.reportFailure(exc)
            return
        self._previewDataset = dataset
        self.renderPreview()
        self.ui.reportTextEdit.plainText = report.text() or _("No findings.")
        self.ui.previewCollapsibleButton.collapsed = False
        self.placeInFixedStudy()
        if report.ok:
            self.setStatus(_("Valid: no errors, {count} warning(s).").format(count=len(report.warnings)))
        else:
            self.setStatus(
                _("{errors} error(s), {warnings} warning(s); see the report.").format(
                    errors=len(report.errors), warnings=len(report.warnings)
                ),
                error=True,
            )

    def placeInFixedStudy(self):
        """The transform joins the fixed image's study in the Data module, where its REG belongs."""
        p = self._parameterNode
        try:
            self.logic.placeInFixedStudy(p.transform, p.fixedVolume, self.dicomFiles("fixed"))
        except Exception as exc:
            logging.warning(_("The transform stays where it is in the Data module: {reason}").format(reason=exc))

    @contextlib.contextmanager
    def progressDialog(self, labelText):
        """A progress dialog and the engine callback that updates it and raises OperationCancelled on Cancel."""
        from DicomRegSaveLib.errors import OperationCancelled

        # Application-modal: nothing else (a second Save, a scene change) may run while the export does.
        progress = slicer.util.createProgressDialog(
            windowTitle=_("DICOM Registration Export"),
            labelText=labelText,
            maximum=100,
            windowModality=qt.Qt.ApplicationModal,
        )

        def onProgress(fraction, message):
            progress.labelText = message
            progress.value = round(100 * fraction)
            slicer.app.processEvents()
            if progress.wasCanceled:
                raise OperationCancelled(_("Cancelled; nothing was written."))

        try:
            yield onProgress
        finally:
            progress.close()

    def onSaveButton(self):
        p = self._parameterNode
        try:
            with self.progressDialog(_("Exporting the registration...")) as onProgress:
                result = self.logic.exportRegistration(
                    p.transform,
                    p.fixedVolume,
                    p.movingVolume,
                    self.outputFolder(),
                    **self.exportArguments(force=p.overwrite, progressCallback=onProgress),
                )
        except Exception as exc:
            self.reportFailure(exc)
            return
        self._previewDataset = result.dataset
        self.renderPreview()
        self.ui.reportTextEdit.plainText = result.report.text() or _("No findings.")
        self.placeInFixedStudy()
        if p.addToDatabase and databaseHeaderLookup() is not None:
            self.logic.addToDatabase(result.path)
            message = _("Wrote {path}; added to the DICOM database").format(path=result.path)
        else:
            message = _("Wrote {path}").format(path=result.path)
        if result.report.warnings:
            message += " " + _("({count} warning(s), see the report)").format(count=len(result.report.warnings))
        self.setStatus(message)

    def renderPreview(self):
        if self._previewDataset is None or self.engineProblem:
            return
        from DicomRegSaveLib.slicer.export import dump_preview

        self.ui.previewTextEdit.plainText = dump_preview(self._previewDataset, self.ui.filterLineEdit.text)

    def reportFailure(self, exc):
        from DicomRegSaveLib.errors import DicomRegSaveError, OperationCancelled

        if isinstance(exc, OperationCancelled):
            self.setStatus(str(exc))
            return
        self.setStatus(str(exc), error=True)
        if not isinstance(exc, (DicomRegSaveError, ValueError, ImportError)):
            logging.exception("DicomRegSave failed")
        slicer.util.errorDisplay(str(exc), windowTitle=_("DICOM Registration Export"))

    def setStatus(self, text, error=False):
        self.ui.statusLabel.text = text
        self.ui.statusLabel.setStyleSheet("color: #c0392b" if error else "")


_CONSOLE_OPTIONS = (
    "force",
    "tags",
    "inheritedTags",
    "identityItem",
    "registrationClass",
    "gridSpacingMm",
    "axisAligned",
    "fixedDicom",
    "movingDicom",
    "progressCallback",
)


class DicomRegSaveLogic(ScriptedLoadableModuleLogic):
    """Console API (no Qt). Example::

    logic = slicer.util.getModuleLogic("DicomRegSave")
    result = logic.exportRegistration(getNode("Transform"), outputPath="/tmp/reg")
    print(result.path, result.report.text())
    nodes = logic.importRegistration("/tmp/reg/1.2.3.dcm").nodes
    """

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return DicomRegSaveParameterNode(super().getParameterNode())

    def exportRegistration(
        self, transformNode, fixedVolumeNode=None, movingVolumeNode=None, outputPath=None, **options
    ):
        """Write the registration that `transformNode` performs from the fixed to the moving volume.

        Fixed and moving volumes default to the transform's registration references (and the volume
        under the transform). `outputPath`: a file path, or an existing folder (file named
        ``<SOP Instance UID>.dcm``).

        Options: force (replace an existing file), tags (DICOM keyword -> text, e.g.
        {"SeriesDescription": "DIR", "ContentLabel": "DIR1"}), inheritedTags (the fixed image's values,
        so unchanged ones are not overrides), identityItem, registrationClass ("auto": Spatial
        Registration for a linear transform, else Deformable; "spatial"; "deformable"), gridSpacingMm (0/None = automatic),
        axisAligned, fixedDicom / movingDicom (DICOM file or folder instead of the database),
        progressCallback(fraction, message), raising DicomRegSaveLib.errors.OperationCancelled to cancel.

        Returns DicomRegSaveLib.export.pipeline.ExportResult (path, dataset, registration, report).
        Raises DicomRegSaveLib.errors.DicomRegSaveError subclasses with messages to act on.
        """
        if not outputPath:
            raise ValueError(_("outputPath is required: the REG file path or an existing folder."))
        from DicomRegSaveLib.slicer.export import export_from_nodes

        arguments = self.engineArguments(options)
        exportOptions, force = arguments.pop("options"), arguments.pop("force")
        return export_from_nodes(
            transformNode,
            fixedVolumeNode,
            movingVolumeNode,
            databaseHeaderLookup(),
            outputPath,
            exportOptions,
            force,
            **arguments,
        )

    def validateRegistration(self, transformNode, fixedVolumeNode=None, movingVolumeNode=None, **options):
        """Build the REG without keeping it and run every check; returns (pydicom Dataset, ConformanceReport)."""
        from DicomRegSaveLib.slicer.export import validate_from_nodes

        arguments = self.engineArguments(options)
        exportOptions = arguments.pop("options")
        arguments.pop("force")
        return validate_from_nodes(
            transformNode, fixedVolumeNode, movingVolumeNode, databaseHeaderLookup(), exportOptions, **arguments
        )

    def registrationQuality(self, transformNode, fixed, moving, landmarks=None):
        """The TG-132 quality report of `transformNode` (fixed -> moving): the same dictionary as
        ``dicomregsave qa --json``. Adds a Jacobian-determinant volume (deformable transforms) and the
        warped moving volume to the scene. `landmarks`: None, or (fixed, moving) markups nodes or files.
        """
        from DicomRegSaveLib.slicer.quality import registration_quality

        return registration_quality(transformNode, fixed, moving, landmarks).report

    def importRegistration(self, path, applyToMoving=True):
        """Load a REG file as transform nodes (fixed -> moving); returns slicer_import.ImportResult.

        Volumes already loaded are linked before this returns (a console call is outside any scene event);
        volumes of the registration loaded later in the session get their references (and the moving
        volume its transform) once they are loaded.
        """
        requireEngine()
        from DicomRegSaveLib.slicer.importing import import_registration

        watcher = registrationWatcher()
        watcher.start()
        result = import_registration(path, slicer.mrmlScene, databaseHeaderLookup(), applyToMoving)
        watcher.flush()
        return result

    def placeInFixedStudy(self, transformNode, fixedVolumeNode=None, dicomFiles=None):
        """Move the transform's subject hierarchy item under the fixed image's study (created if missing)."""
        from DicomRegSaveLib.slicer.hierarchy import place_in_fixed_study

        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
        item = shNode.GetItemByDataNode(transformNode)
        if item:
            fixed = fixedVolumeNode or transformNode.GetNodeReference(transformNode.GetFixedNodeReferenceRole())
            place_in_fixed_study(shNode, item, self.fixedImageHeader(fixed, dicomFiles))

    def addToDatabase(self, path):
        """Add a written file to Slicer's DICOM database (copied into it), so the DICOM browser can load or send it.

        As Slicer's DICOM listener stores received files (DICOMLib/DICOMProcesses.py: indexer.addFile with copy).
        """
        indexer = ctk.ctkDICOMIndexer()
        indexer.addFile(slicer.dicomDatabase, str(path), True)
        if hasattr(indexer, "waitForImportFinished"):
            indexer.waitForImportFinished()

    def fixedImageHeader(self, fixedVolumeNode, dicomFiles=None):
        """The first DICOM header of the fixed image (database, or the given file/folder)."""
        if fixedVolumeNode is None and not dicomFiles:
            raise ValueError(_("Choose the fixed volume (or its DICOM files) first."))
        requireEngine()
        from DicomRegSaveLib.slicer.provenance import image_series_for_volume

        series = image_series_for_volume(fixedVolumeNode, "fixed", databaseHeaderLookup(), dicomFiles)
        return series.first_header

    @staticmethod
    def engineArguments(options):
        """Console option names -> keyword arguments of slicer_export.export_from_nodes."""
        unknown = sorted(set(options) - set(_CONSOLE_OPTIONS))
        if unknown:
            raise TypeError(f"Unknown option(s) {unknown}; known options: {', '.join(_CONSOLE_OPTIONS)}.")
        requireEngine()
        from DicomRegSaveLib.export.pipeline import ExportOptions
        from DicomRegSaveLib.slicer.fields import options_from_tags

        base = ExportOptions(
            identity_item=bool(options.get("identityItem", False)),
            registration_class=options.get("registrationClass") or "auto",
        )
        return {
            "options": options_from_tags(options.get("tags") or {}, options.get("inheritedTags"), base),
            "force": bool(options.get("force", False)),
            "grid_spacing_mm": options.get("gridSpacingMm") or None,
            "axis_aligned": bool(options.get("axisAligned", False)),
            "fixed_files": options.get("fixedDicom") or None,
            "moving_files": options.get("movingDicom") or None,
            "series_numbers_in_study": databaseSeriesNumbers(),
            "progress": options.get("progressCallback"),
        }


class DicomRegSaveTest(ScriptedLoadableModuleTest):
    """Export through the DICOM plugin from a real DICOM database and load the file back through it."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_ExportAndLoadThroughDICOMPlugin()
        self.setUp()
        self.test_LoadRegistrationBeforeItsMovingSeries()
        self.setUp()
        self.test_ConsoleApiRefusesVolumeWithoutDicomOrigin()

    @contextlib.contextmanager
    def registrationInDatabase(self):
        """Fixed and moving demo series in a temporary DICOM database, loaded, with a registration transform.

        Yields (DICOMUtils, database, case, output folder, fixed, moving, transform).
        """
        from DICOMLib import DICOMUtils

        from DicomRegSaveLib.inputs import sampledata

        self.delayDisplay("Writing fixed and moving DICOM series")
        with tempfile.TemporaryDirectory() as folder:
            folder = pathlib.Path(folder)
            case = sampledata.make_demo_case(folder / "case")
            output = folder / "export"
            output.mkdir()
            with DICOMUtils.TemporaryDICOMDatabase(str(folder / "database")) as database:
                DICOMUtils.importDicom(str(case.fixed_dir), database)
                DICOMUtils.importDicom(str(case.moving_dir), database)
                fixed = self.loadVolume(DICOMUtils, case.fixed_series_instance_uid)
                moving = self.loadVolume(DICOMUtils, case.moving_series_instance_uid)
                transform = self.gridWithLinearParent(fixed)
                transform.SetNodeReferenceID(transform.GetFixedNodeReferenceRole(), fixed.GetID())
                transform.SetNodeReferenceID(transform.GetMovingNodeReferenceRole(), moving.GetID())
                yield DICOMUtils, database, case, output, fixed, moving, transform

    def test_ExportAndLoadThroughDICOMPlugin(self):
        with self.registrationInDatabase() as (DICOMUtils, database, case, output, fixed, moving, transform):
            self.delayDisplay("Exporting through the DICOM plugin")
            self.assertIn("DicomRegSavePlugin", slicer.modules.dicomPlugins)
            plugin = slicer.modules.dicomPlugins["DicomRegSavePlugin"]()
            shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
            self.assertEqual(plugin.examineForExport(shNode.GetItemByDataNode(fixed)), [])
            exportables = plugin.examineForExport(shNode.GetItemByDataNode(transform))
            self.assertEqual(len(exportables), 1)
            self.assertEqual(exportables[0].pluginClass, "DicomRegSavePlugin")
            from DicomRegSaveLib.slicer.offer import PRESELECTED_CONFIDENCE

            self.assertEqual(exportables[0].confidence, PRESELECTED_CONFIDENCE)
            self.assertEqual(exportables[0].tag("Modality"), "REG")
            exportables[0].directory = str(output)
            self.assertEqual(plugin.export(exportables), "")
            files = sorted(output.glob("*.dcm"))
            self.assertEqual(len(files), 1)

            self.delayDisplay("Loading the REG back through the DICOM plugin")
            DICOMUtils.importDicom(str(output), database)
            loadables = plugin.examineFiles([str(files[0])])
            self.assertEqual(len(loadables), 1)
            self.assertEqual(loadables[0].confidence, 0.95)
            self.assertTrue(plugin.load(loadables[0]))
            slicer.app.processEvents()  # the registration is linked after the load, when the event loop turns
            leaf = moving.GetParentTransformNode()
            self.assertIsNotNone(leaf)
            self.assertIs(leaf.GetNodeReference(leaf.GetMovingNodeReferenceRole()), moving)
            self.assertIs(leaf.GetNodeReference(leaf.GetFixedNodeReferenceRole()), fixed)

            error = self.maxMappingDifference(transform, leaf, fixed, count=500)
            self.assertLess(error, 1e-3, f"loaded transform differs by {error} mm")
        self.delayDisplay("Test passed")

    def test_LoadRegistrationBeforeItsMovingSeries(self):
        """A REG loaded from the DICOM browser before its moving series is applied once that series is loaded."""
        with self.registrationInDatabase() as (DICOMUtils, database, case, output, fixed, moving, transform):
            points, expected = self.fromWorldMapping(transform, fixed, count=500)
            plugin = slicer.modules.dicomPlugins["DicomRegSavePlugin"]()
            exportables = plugin.examineForExport(
                slicer.mrmlScene.GetSubjectHierarchyNode().GetItemByDataNode(transform)
            )
            exportables[0].directory = str(output)
            self.assertEqual(plugin.export(exportables), "")
            DICOMUtils.importDicom(str(output), database)

            self.delayDisplay("Loading the REG alone, then the moving series")
            slicer.mrmlScene.Clear()
            [regFile] = sorted(output.glob("*.dcm"))
            [loadable] = plugin.examineForImport([[str(regFile)]])
            self.assertTrue(plugin.load(loadable))
            moving = self.loadVolume(DICOMUtils, case.moving_series_instance_uid)
            slicer.app.processEvents()
            leaf = moving.GetParentTransformNode()
            self.assertIsNotNone(leaf, "the moving volume loaded after the REG was not placed under it")
            self.assertIs(leaf.GetNodeReference(leaf.GetMovingNodeReferenceRole()), moving)
            actual = vtk.vtkGeneralTransform()
            leaf.GetTransformFromWorld(actual)
            error = max(
                float(np.linalg.norm(np.subtract(actual.TransformPoint(p), e))) for p, e in zip(points, expected)
            )
            self.assertLess(error, 1e-3, f"loaded transform differs by {error} mm")
            fixed = self.loadVolume(DICOMUtils, case.fixed_series_instance_uid)
            slicer.app.processEvents()
            self.assertIs(leaf.GetNodeReference(leaf.GetFixedNodeReferenceRole()), fixed)
            self.assertIsNone(fixed.GetParentTransformNode())
        self.delayDisplay("Test passed")

    def test_ConsoleApiRefusesVolumeWithoutDicomOrigin(self):
        from DicomRegSaveLib.errors import DicomInputError

        fixed = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "No DICOM")
        image = vtk.vtkImageData()
        image.SetDimensions(4, 4, 4)
        image.AllocateScalars(vtk.VTK_SHORT, 1)
        fixed.SetAndObserveImageData(image)
        moving = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "Also no DICOM")
        transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
        with tempfile.TemporaryDirectory() as folder:
            with self.assertRaises(DicomInputError) as raised:
                DicomRegSaveLogic().exportRegistration(transform, fixed, moving, folder)
            self.assertIn("Export to DICOM", str(raised.exception))
            self.assertEqual(list(pathlib.Path(folder).iterdir()), [])

    @staticmethod
    def loadVolume(DICOMUtils, seriesInstanceUID):
        for nodeID in DICOMUtils.loadSeriesByUID([seriesInstanceUID]):
            node = slicer.mrmlScene.GetNodeByID(nodeID)
            if node is not None and node.IsA("vtkMRMLScalarVolumeNode"):
                return node
        raise AssertionError(f"series {seriesInstanceUID} was not loaded as a volume")

    @staticmethod
    def gridWithLinearParent(fixed):
        """A smooth from-parent grid (linear interpolation) over the fixed volume, under a rigid transform."""
        parent = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Rigid part")
        rotation = vtk.vtkTransform()
        rotation.RotateWXYZ(3.0, 1.0, 2.0, 0.5)
        rotation.Translate(2.0, -1.5, 3.0)
        parent.SetMatrixTransformToParent(rotation.GetMatrix())
        bounds = [0.0] * 6
        fixed.GetRASBounds(bounds)
        low = np.array(bounds[0::2]) - 30.0
        high = np.array(bounds[1::2]) + 30.0
        spacing = 10.0
        dims = [int(n) for n in np.ceil((high - low) / spacing) + 1]
        k, j, i = np.meshgrid(*(np.arange(n) for n in dims[::-1]), indexing="ij")
        points = low + np.stack([i, j, k], axis=-1) * spacing
        vectors = (3.0 * np.sin(points / 40.0) + np.array([1.0, -2.0, 0.5])).astype(np.float32)
        image = vtk.vtkImageData()
        image.SetDimensions(*dims)
        image.SetOrigin(*low)
        image.SetSpacing(spacing, spacing, spacing)
        image.AllocateScalars(vtk.VTK_FLOAT, 3)
        numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = vectors.reshape(-1, 3)
        grid = slicer.vtkOrientedGridTransform()
        grid.SetDisplacementGridData(image)
        grid.SetInterpolationModeToLinear()
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLGridTransformNode", "Registration result")
        node.SetAndObserveTransformFromParent(grid)
        node.SetAndObserveTransformNodeID(parent.GetID())
        return node

    @staticmethod
    def fromWorldMapping(node, fixed, count):
        """`count` random RAS points of the fixed volume and where the node's from-world transform maps them."""
        rng = np.random.default_rng(1)
        ijkToRas = vtk.vtkMatrix4x4()
        fixed.GetIJKToRASMatrix(ijkToRas)
        dims = np.array(fixed.GetImageData().GetDimensions()) - 1
        transform = vtk.vtkGeneralTransform()
        node.GetTransformFromWorld(transform)
        points = [ijkToRas.MultiplyPoint([*index, 1.0])[:3] for index in rng.uniform(0.0, 1.0, (count, 3)) * dims]
        return points, [transform.TransformPoint(point) for point in points]

    @staticmethod
    def maxMappingDifference(expectedNode, actualNode, fixed, count):
        """Largest distance (mm) between two nodes' from-world mappings at random points of the fixed volume."""
        rng = np.random.default_rng(0)
        ijkToRas = vtk.vtkMatrix4x4()
        fixed.GetIJKToRASMatrix(ijkToRas)
        dims = np.array(fixed.GetImageData().GetDimensions()) - 1
        expected, actual = vtk.vtkGeneralTransform(), vtk.vtkGeneralTransform()
        expectedNode.GetTransformFromWorld(expected)
        actualNode.GetTransformFromWorld(actual)
        error = 0.0
        for index in rng.uniform(0.0, 1.0, (count, 3)) * dims:
            point = ijkToRas.MultiplyPoint([*index, 1.0])[:3]
            difference = np.subtract(expected.TransformPoint(point), actual.TransformPoint(point))
            error = max(error, float(np.linalg.norm(difference)))
        return error
