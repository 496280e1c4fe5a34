"""Spatial Registration (66.1) export end to end, and the direction of its matrix proven with numbers.

A transform ``T`` (fixed -> moving, LPS, the ITK resampling convention that Slicer applies to a moving
image) is written by SimpleITK as an ITK transform file, exported with ``registration_class="auto"``,
and the file is checked: dciodvfy and dcentvfy report no errors, the writer's own checks pass, the
stored matrix ``M`` (source = moving -> registered = fixed) gives ``M @ T(p) = p`` for 2000 random
fixed-frame points, and ``to-transform`` output read back by SimpleITK maps like ``T``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import DeformableSpatialRegistrationStorage, SpatialRegistrationStorage, generate_uid

import mrml_helpers
from DicomRegSaveLib.cli.main import main
from DicomRegSaveLib.errors import InvalidRegistrationError
from DicomRegSaveLib.export.pipeline import ExportOptions, export_registration
from DicomRegSaveLib.inputs.sampledata import write_image_series
from DicomRegSaveLib.inputs.series import read_image_series
from DicomRegSaveLib.inputs.transform_files import deformation_from_file
from DicomRegSaveLib.reg.reader import read_registration
from DicomRegSaveLib.slicer.importing import import_registration
from DicomRegSaveLib.validation.dicom3tools import run_dcentvfy, run_dciodvfy
from DicomRegSaveLib.validation.iod_rules import check_dataset
from DicomRegSaveLib.validation.validate import validate_file
from mrml_helpers import from_world_lps, homogeneous, new_scene

MAPPING_TOLERANCE_MM = 1e-4
N_POINTS = 2000


def rotation(axis, degrees: float) -> np.ndarray:
    return mrml_helpers.rotation(axis, np.radians(degrees))


#: The 66.1 matrix each case should store (moving -> fixed), by its declared type. T is its inverse.
STORED_MATRICES = {
    "RIGID": homogeneous(rotation((1, -2, 0.5), 17), (12.5, -7.25, 30.0)),
    "RIGID_SCALE": homogeneous(rotation((0.3, 1, 1), -23) @ np.diag([1.1, 0.95, 1.2]), (-4.0, 9.0, -15.5)),
    "AFFINE": homogeneous([[1.05, 0.12, -0.03], [0.02, 0.93, 0.08], [-0.1, 0.04, 1.1]], (3.0, 22.0, -8.0)),
}
OBLIQUE = rotation((1, 1, 0), 20) @ rotation((0, 0, 1), 35)


def write_itk_transform(path, fixed_to_moving_lps: np.ndarray) -> None:
    """An ITK affine transform file written by SimpleITK, independent of the product's code."""
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(fixed_to_moving_lps[:3, :3].ravel().tolist())
    transform.SetTranslation(fixed_to_moving_lps[:3, 3].tolist())
    sitk.WriteTransform(transform, str(path))


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def fixed_points(fixed, n=N_POINTS, seed=0) -> np.ndarray:
    """Random points in the fixed image's voxel box (LPS)."""
    index = np.random.default_rng(seed).uniform(0, 1, size=(n, 3)) * (np.array(fixed.dimensions) - 1)
    return apply(fixed.ijk_to_lps, index)


@dataclass(frozen=True)
class Case:
    matrix_type: str
    oblique: bool
    same_study: bool
    identity_item: bool

    @property
    def name(self) -> str:
        return "-".join(
            [
                self.matrix_type.lower(),
                "oblique" if self.oblique else "axial",
                "same_study" if self.same_study else "cross_study",
                "identity" if self.identity_item else "single",
            ]
        )


CASES = [Case(*values) for values in itertools.product(STORED_MATRICES, (False, True), (False, True), (False, True))]


def write_series(folder, case_oblique: bool, same_study_uid: str | None = None):
    """Fixed and moving phantom series (different frames of reference); returns their ImageSeries."""
    direction = OBLIQUE if case_oblique else np.eye(3)
    fixed_study = generate_uid()
    common = dict(patient_name="Phantom^Rigid", patient_id="RIGID-1", dimensions=(12, 10, 6), direction_lps=direction)
    write_image_series(
        folder / "fixed",
        study_instance_uid=fixed_study,
        spacing_mm=(4.0, 4.0, 5.0),
        origin_lps=(-24.0, -20.0, -15.0),
        **common,
    )
    write_image_series(
        folder / "moving",
        study_instance_uid=fixed_study if same_study_uid else generate_uid(),
        spacing_mm=(4.5, 4.5, 6.0),
        origin_lps=(-20.0, -25.0, -10.0),
        series_number=2,
        **common,
    )
    return read_image_series(folder / "fixed", "fixed"), read_image_series(folder / "moving", "moving")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Exports made on first use, one per case (so that selecting one case exports only that one)."""
    made = {}

    def export(case: Case):
        if case not in made:
            folder = tmp_path_factory.mktemp(case.name)
            fixed, moving = write_series(folder, case.oblique, "same" if case.same_study else None)
            stored = STORED_MATRICES[case.matrix_type]
            fixed_to_moving = np.linalg.inv(stored)
            write_itk_transform(folder / "T.tfm", fixed_to_moving)
            deformation = deformation_from_file(folder / "T.tfm", fixed.ijk_to_lps, fixed.dimensions)
            result = export_registration(
                deformation, fixed, moving, folder / "reg.dcm", ExportOptions(identity_item=case.identity_item)
            )
            made[case] = (result, fixed, moving, fixed_to_moving)
        return made[case]

    return export


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_spatial_registration_validates_and_its_matrix_maps_moving_to_fixed(exports, case):
    result, fixed, moving, fixed_to_moving = exports(case)
    dataset = pydicom.dcmread(result.path)
    assert dataset.SOPClassUID == SpatialRegistrationStorage
    assert dataset.file_meta.MediaStorageSOPClassUID == SpatialRegistrationStorage
    assert "DeformableRegistrationSequence" not in dataset
    # The IOD has General Equipment (same values as a 66.3 writes) and no Enhanced General Equipment.
    assert dataset.Manufacturer == "DicomRegSave" and dataset.DeviceSerialNumber == "DICOMREGSAVE"
    assert dataset.StudyInstanceUID == fixed.study_instance_uid
    assert dataset.FrameOfReferenceUID == fixed.frame_of_reference_uid

    report = run_dciodvfy(result.path)
    assert report.errors == [], report.text()
    assert not any("not run" in warning for warning in report.warnings), report.text()
    assert check_dataset(dataset).errors == []
    cross_file = run_dcentvfy(result.path, [*fixed.paths, *moving.paths])
    assert cross_file.errors == [], cross_file.text()

    items = dataset.RegistrationSequence
    assert len(items) == (2 if case.identity_item else 1)
    if case.identity_item:
        identity = items[0]
        assert identity.FrameOfReferenceUID == fixed.frame_of_reference_uid
        matrix_item = identity.MatrixRegistrationSequence[0].MatrixSequence[0]
        assert np.array_equal(np.array(matrix_item.FrameOfReferenceTransformationMatrix, float), np.eye(4).ravel())
    moving_item = items[-1]
    assert moving_item.FrameOfReferenceUID == moving.frame_of_reference_uid
    assert [r.ReferencedSOPInstanceUID for r in moving_item.ReferencedImageSequence] == [
        r.sop_instance_uid for r in moving.image_references()
    ]
    matrix_registration = moving_item.MatrixRegistrationSequence[0]
    assert matrix_registration.RegistrationTypeCodeSequence[0].CodeValue == "125024"
    (matrix_item,) = matrix_registration.MatrixSequence
    assert matrix_item.FrameOfReferenceTransformationMatrixType == case.matrix_type
    stored = np.array(matrix_item.FrameOfReferenceTransformationMatrix, dtype=float).reshape(4, 4)

    # The direction, with numbers: the stored matrix takes T(p) (moving frame) back to p (fixed frame).
    points = fixed_points(fixed)
    assert np.abs(apply(stored, apply(fixed_to_moving, points)) - points).max() < MAPPING_TOLERANCE_MM
    # ... and the read-back model maps fixed -> moving like T.
    item = read_registration(result.path).choose_item()
    assert item.source_frame_of_reference_uid == moving.frame_of_reference_uid
    assert np.abs(item.map_points(points) - apply(fixed_to_moving, points)).max() < MAPPING_TOLERANCE_MM


@pytest.mark.parametrize("suffix", [".tfm", ".h5", ".txt"])
def test_to_transform_of_a_spatial_registration_reads_back_in_simpleitk_as_t(exports, tmp_path, suffix, capsys):
    result, fixed, _, fixed_to_moving = exports(Case("AFFINE", True, False, True))
    output = tmp_path / f"back{suffix}"
    assert main(["to-transform", str(result.path), str(output)]) == 0
    assert "item 2 of 2" in capsys.readouterr().out
    transform = sitk.ReadTransform(str(output))
    points = fixed_points(fixed, seed=3)
    mapped = np.array([transform.TransformPoint(p.tolist()) for p in points])
    assert np.abs(mapped - apply(fixed_to_moving, points)).max() < MAPPING_TOLERANCE_MM


def test_exported_spatial_registration_imported_in_slicer_moves_the_moving_volume_like_t(exports):
    result, fixed, _, fixed_to_moving = exports(Case("AFFINE", True, False, True))
    scene = new_scene()
    imported = import_registration(result.path, scene)
    (loaded,) = imported.items
    moving_volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    moving_volume.SetAndObserveTransformNodeID(loaded.leaf.GetID())
    # Slicer resamples the moving volume through its parent's from-world transform.
    points = fixed_points(fixed, seed=4)
    mapped = from_world_lps(moving_volume.GetParentTransformNode(), points)
    assert np.abs(mapped - apply(fixed_to_moving, points)).max() < MAPPING_TOLERANCE_MM


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".nii.gz"])
def test_to_transform_refuses_a_displacement_field_for_a_spatial_registration(exports, tmp_path, suffix, capsys):
    result, *_ = exports(Case("RIGID", False, False, False))
    output = tmp_path / f"field{suffix}"
    assert main(["to-transform", str(result.path), str(output)]) == 1
    error = capsys.readouterr().err
    assert "linear" in error and ".tfm" in error
    assert not output.exists() and list(tmp_path.iterdir()) == []


def test_validate_and_inspect_cover_spatial_registration(exports, capsys):
    result, fixed, moving, _ = exports(Case("RIGID_SCALE", False, True, True))
    report = validate_file(result.path, [*fixed.paths, *moving.paths])
    assert report.errors == [], report.text()
    assert (
        main(["validate", str(result.path), "--images", str(fixed.paths[0].parent), str(moving.paths[0].parent)]) == 0
    )
    capsys.readouterr()
    assert main(["inspect", str(result.path), "--filter", "FrameOfReferenceTransformationMatrixType"]) == 0
    assert capsys.readouterr().out.count("RIGID") == 2


# Choice of class -------------------------------------------------------------------------------------------------


def test_deformable_class_keeps_a_linear_transform_as_zero_grid_and_post_matrix(tmp_path):
    fixed, moving = write_series(tmp_path, False)
    fixed_to_moving = np.linalg.inv(STORED_MATRICES["RIGID"])
    write_itk_transform(tmp_path / "T.tfm", fixed_to_moving)
    deformation = deformation_from_file(tmp_path / "T.tfm", fixed.ijk_to_lps, fixed.dimensions)
    result = export_registration(
        deformation, fixed, moving, tmp_path / "reg.dcm", ExportOptions(registration_class="deformable")
    )
    assert result.dataset.SOPClassUID == DeformableSpatialRegistrationStorage
    assert result.dataset.SeriesDescription == "Deformable registration"
    item = read_registration(result.path).choose_item()
    assert not np.any(item.grid.vectors_lps)
    points = fixed_points(fixed)
    assert np.abs(item.map_points(points) - apply(fixed_to_moving, points)).max() < MAPPING_TOLERANCE_MM


def test_spatial_class_refuses_a_displacement_field_with_the_reason(tmp_path, capsys):
    from DicomRegSaveLib.inputs.sampledata import make_demo_case

    case = make_demo_case(tmp_path / "input")
    arguments = [
        "export",
        "--transform",
        str(case.field_path),
        "--fixed",
        str(case.fixed_dir),
        "--moving",
        str(case.moving_dir),
        "--output",
        str(tmp_path / "reg.dcm"),
    ]
    assert main([*arguments, "--registration-class", "spatial"]) == 1
    error = capsys.readouterr().err
    assert "not linear" in error and "Deformable Spatial Registration (66.3)" in error
    assert not (tmp_path / "reg.dcm").exists()
    assert main(arguments) == 0
    assert pydicom.dcmread(tmp_path / "reg.dcm").SOPClassUID == DeformableSpatialRegistrationStorage


def test_unknown_registration_class_is_refused(tmp_path):
    fixed, moving = write_series(tmp_path, False)
    write_itk_transform(tmp_path / "T.tfm", np.eye(4))
    deformation = deformation_from_file(tmp_path / "T.tfm", fixed.ijk_to_lps, fixed.dimensions)
    with pytest.raises(InvalidRegistrationError, match="auto, spatial, deformable"):
        export_registration(deformation, fixed, moving, tmp_path / "reg.dcm", ExportOptions(registration_class="rigid"))
    assert not (tmp_path / "reg.dcm").exists()
