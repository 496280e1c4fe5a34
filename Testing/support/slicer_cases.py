"""A DICOM case and a slicer-core scene for the Slicer front end's tests: patient > study > volumes and a
registration transform, as Slicer's DICOM module and a registration module leave them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import slicer
import vtk

from DicomRegSaveLib import geometry
from DicomRegSaveLib.inputs import sampledata
from DicomRegSaveLib.inputs.series import read_image_series
from mrml_helpers import from_world_lps, grid_node, homogeneous, linear_node, points_in_box, rotation, vtk_matrix
from slicer_app_standins import Database

N_POINTS = 1000
FIXED_DIMS = (20, 18, 10)
FIXED_SPACING = (5.0, 5.0, 6.0)
PATIENT_ID = "DRS-SLICER-1"


def write_dicom_case(folder: Path) -> dict:
    """A fixed and a moving CT series of one patient in two studies and frames, and the header lookup
    the product uses in Slicer: the DICOM database's fileForInstance (here its stand-in's)."""
    common = dict(patient_name="Müller^Anna", patient_id=PATIENT_ID, spacing_mm=FIXED_SPACING)
    fixed_paths = sampledata.write_image_series(
        folder / "fixed",
        **common,
        dimensions=FIXED_DIMS,
        study_id="F1",
        series_description="Fixed CT",
        file_prefix="FIXED",
    )
    moving_paths = sampledata.write_image_series(
        folder / "moving",
        **common,
        dimensions=(16, 16, 8),
        origin_lps=(-35.0, -30.0, -20.0),
        study_id="M1",
        study_date="20240601",
        series_description="Moving CT",
        file_prefix="MOVING",
    )
    return {
        "folder": folder,
        "fixed": read_image_series(fixed_paths, "fixed"),
        "moving": read_image_series(moving_paths, "moving"),
        "lookup": Database([folder]).fileForInstance,
    }


class Scene:
    """A slicer-core scene with a subject hierarchy: patient > study > volumes and a transform."""

    def __init__(self, case):
        self.scene = slicer.vtkMRMLScene()
        slicer.mrmlScene = self.scene
        self.sh = self.scene.GetSubjectHierarchyNode()
        self.case = case
        constants = slicer.vtkMRMLSubjectHierarchyConstants
        fixed_header = case["fixed"].first_header
        self.patient = self.sh.CreateSubjectItem(self.sh.GetSceneItemID(), "Patient")
        self.sh.SetItemUID(self.patient, constants.GetDICOMUIDName(), PATIENT_ID)
        self.sh.SetItemAttribute(
            self.patient, constants.GetDICOMPatientNameAttributeName(), str(fixed_header.PatientName)
        )
        self.sh.SetItemAttribute(self.patient, constants.GetDICOMPatientIDAttributeName(), PATIENT_ID)
        self.study = self.sh.CreateStudyItem(self.patient, "Study")
        self.sh.SetItemUID(self.study, constants.GetDICOMUIDName(), case["fixed"].study_instance_uid)
        self.sh.SetItemAttribute(self.study, constants.GetDICOMStudyDateAttributeName(), str(fixed_header.StudyDate))
        self.fixed = self.volume(case["fixed"], "Fixed CT")
        self.moving = self.volume(case["moving"], "Moving CT")

    def volume(self, series, name, dicom=True, shift_mm=0.0):
        """A volume under the study; with `dicom` its item carries the series' DICOM UIDs, as
        DICOMPlugin.addSeriesInSubjectHierarchy sets them."""
        node = add_volume(self.scene, series, name, dicom, shift_mm)
        item = self.sh.CreateItem(self.study, node)
        if dicom:
            constants = slicer.vtkMRMLSubjectHierarchyConstants
            self.sh.SetItemUID(item, constants.GetDICOMUIDName(), series.series_instance_uid)
            self.sh.SetItemUID(
                item, constants.GetDICOMInstanceUIDName(), " ".join(str(h.SOPInstanceUID) for h in series.headers)
            )
            self.sh.SetItemAttribute(
                item, constants.GetDICOMFrameOfReferenceUIDAttributeName(), str(series.first_header.FrameOfReferenceUID)
            )
        return node

    def item(self, node):
        item = self.sh.GetItemByDataNode(node)
        return item if item else self.sh.CreateItem(self.study, node)

    def registration_transform(self, *, linear_parent=True, references=True, amplitude=2.0):
        node = registration_transform(self.scene, self.case["fixed"], linear_parent=linear_parent, amplitude=amplitude)
        if references:
            node.SetNodeReferenceID(node.GetFixedNodeReferenceRole(), self.fixed.GetID())
            node.SetNodeReferenceID(node.GetMovingNodeReferenceRole(), self.moving.GetID())
        self.item(node)
        return node


def registration_transform(scene, fixed, *, linear_parent=True, amplitude=2.0):
    """A from-parent grid covering the fixed series (and beyond), under a rigid linear parent."""
    parent = None
    if linear_parent:
        matrix = homogeneous(rotation([1.0, -2.0, 0.5], 0.05), (2.0, -3.0, 1.5))
        parent = linear_node(scene, matrix)
    box_ras = geometry.lps_to_ras_points(
        np.array(
            [
                fixed.ijk_to_lps[:3, 3],
                fixed.ijk_to_lps[:3, :3] @ (np.array(fixed.dimensions) - 1) + fixed.ijk_to_lps[:3, 3],
            ]
        )
    )
    low, high = box_ras.min(axis=0) - 20.0, box_ras.max(axis=0) + 20.0
    spacing = np.array([8.0, 9.0, 10.0])
    dims = tuple(int(n) for n in np.ceil((high - low) / spacing) + 1)
    rng = np.random.default_rng(7)
    vectors = rng.uniform(-amplitude, amplitude, (dims[2], dims[1], dims[0], 3)).astype(np.float32)
    node = grid_node(scene, low, np.eye(3), spacing, vectors, parent=parent)
    node.SetName("Registration result")
    return node


def add_volume(scene, series, name, dicom=True, shift_mm=0.0):
    """A volume node on the series' voxel grid (shifted along R by `shift_mm`), with its instance UIDs if `dicom`."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    image = vtk.vtkImageData()
    image.SetDimensions(*series.dimensions)
    image.AllocateScalars(vtk.VTK_SHORT, 1)
    node.SetAndObserveImageData(image)
    ijk_to_ras = geometry.lps_to_ras_index_matrix(series.ijk_to_lps)
    ijk_to_ras[0, 3] += shift_mm
    node.SetIJKToRASMatrix(vtk_matrix(ijk_to_ras))
    if dicom:
        node.SetAttribute("DICOM.instanceUIDs", " ".join(str(h.SOPInstanceUID) for h in series.headers))
    return node


def fixed_points(case, n=N_POINTS):
    return points_in_box(case["fixed"].ijk_to_lps, case["fixed"].dimensions, n=n, seed=3)


def max_error(actual, expected):
    assert np.all(np.isfinite(actual)), "test points must map inside the grid"
    return float(np.max(np.linalg.norm(actual - expected, axis=1)))


MAPPING_MM = 1e-3


def nodes(scene, class_name):
    collection = scene.GetNodesByClass(class_name)
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]


def only_leaf(scene):
    """The one leaf of a loaded registration in the scene."""
    leaves = [node for node in nodes(scene, "vtkMRMLTransformNode") if node.GetAttribute("DICOM.instanceUIDs")]
    assert len(leaves) == 1
    return leaves[0]


def assert_applied(case, moving, leaf=None):
    """The moving volume's transform maps the fixed points like the exported transform (and is `leaf`)."""
    parent = moving.GetParentTransformNode()
    assert parent is not None, f"'{moving.GetName()}' is not under a transform"
    if leaf is not None:
        assert parent is leaf
    assert max_error(from_world_lps(parent, case["points"]), case["expected"]) <= MAPPING_MM
    return parent
