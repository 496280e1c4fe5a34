"""End-to-end export on real DICOM series: dciodvfy finds no errors, and the file reads back exactly.

Each case writes fixed and moving series with sampledata, reads them with dicom_input, exports a
grid (and matrices) through export.export_registration, and then checks the file three ways:
dciodvfy (no "Error" lines), the writer's own conformance checks, and a read-back through reader.py
with bit-identical float32 vectors and geometry within 1e-6 mm.
"""

from dataclasses import dataclass, field

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from DicomRegSaveLib.export.pipeline import ExportOptions, export_registration
from DicomRegSaveLib.inputs.sampledata import write_image_series
from DicomRegSaveLib.inputs.series import read_image_series
from DicomRegSaveLib.model import Deformation, DisplacementGrid, RegistrationMatrix
from DicomRegSaveLib.reg.reader import read_registration
from DicomRegSaveLib.validation.dicom3tools import run_dcentvfy, run_dciodvfy
from DicomRegSaveLib.validation.iod_rules import check_dataset

AXIAL = np.eye(3)
SAGITTAL = np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0.0]])  # columns: i posterior, j inferior, k right
LEFT_HANDED = np.diag([1.0, 1.0, -1.0])


def oblique() -> np.ndarray:
    a, b = np.radians(20), np.radians(-12)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def rigid(degrees: float, translation) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = oblique() if degrees else np.eye(3)
    matrix[:3, 3] = translation
    return matrix


@dataclass
class Case:
    name: str
    grid_direction: np.ndarray = field(default_factory=lambda: AXIAL)
    grid_spacing: tuple = (6.0, 6.0, 6.0)
    same_study: bool = False
    same_frame: bool = False
    multiframe_subset: bool = False
    multiframe: bool = False
    identity_item: bool = False
    pre: np.ndarray | None = None
    post: np.ndarray | None = None
    patient_name: str = "Phantom^Pelvis"
    nan_points: bool = False


CASES = [
    Case("axial"),
    Case("oblique", grid_direction=oblique()),
    Case("sagittal", grid_direction=SAGITTAL),
    Case("left_handed", grid_direction=LEFT_HANDED),
    Case("anisotropic", grid_spacing=(3.0, 5.5, 9.25)),
    Case("cross_study"),
    Case("same_study", same_study=True),
    Case("same_frame", same_study=True, same_frame=True),
    Case("multiframe_subset", multiframe=True, multiframe_subset=True),
    Case("multiframe_all", multiframe=True),
    Case("identity_item", identity_item=True),
    Case("pre_post", pre=rigid(1, [2.0, -3.0, 1.5]), post=rigid(0, [10.0, 0.0, -4.0])),
    Case("non_ascii_name", patient_name="Müller^Jürgen"),
    Case("undefined_points", nan_points=True),
]


def make_grid(case: Case, centre_lps: np.ndarray) -> DisplacementGrid:
    dims_kji = (6, 7, 8)
    rng = np.random.default_rng(len(case.name))
    vectors = rng.normal(0, 3, size=(*dims_kji, 3)).astype(np.float32)
    if case.nan_points:
        vectors[2, 3, 4] = np.nan
        vectors[0, 0, 0] = np.nan
    extent = (np.array(dims_kji[::-1]) - 1) * case.grid_spacing
    origin = centre_lps - case.grid_direction @ (extent / 2)
    return DisplacementGrid(origin, case.grid_direction, case.grid_spacing, vectors)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    results = {}
    for case in CASES:
        folder = tmp_path_factory.mktemp(case.name)
        fixed_study, fixed_frame = generate_uid(), generate_uid()
        common = dict(patient_name=case.patient_name, patient_id="PHANTOM-1")
        write_image_series(
            folder / "fixed",
            study_instance_uid=fixed_study,
            frame_of_reference_uid=fixed_frame,
            dimensions=(24, 20, 10),
            spacing_mm=(4.0, 4.0, 5.0),
            origin_lps=(-48.0, -40.0, -25.0),
            direction_lps=AXIAL,
            **common,
        )
        write_image_series(
            folder / "moving",
            study_instance_uid=fixed_study if case.same_study else generate_uid(),
            frame_of_reference_uid=fixed_frame if case.same_frame else generate_uid(),
            dimensions=(20, 18, 8),
            spacing_mm=(4.5, 4.5, 6.0),
            origin_lps=(-45.0, -40.0, -24.0),
            direction_lps=AXIAL,
            multiframe=case.multiframe,
            **common,
        )
        fixed = read_image_series(folder / "fixed", "fixed")
        moving = read_image_series(folder / "moving", "moving")
        if case.multiframe_subset:
            moving = moving.subset([2, 3, 4, 5])
        grid = make_grid(
            case, fixed.ijk_to_lps[:3, :3] @ (np.array(fixed.dimensions) - 1) / 2 + fixed.ijk_to_lps[:3, 3]
        )
        deformation = Deformation(
            grid,
            RegistrationMatrix(case.pre) if case.pre is not None else None,
            RegistrationMatrix(case.post) if case.post is not None else None,
        )
        # NaN vectors are written (as "undefined here") only when asked for
        options = ExportOptions(
            identity_item=case.identity_item, undefined_vectors="undefined" if case.nan_points else "refuse"
        )
        result = export_registration(deformation, fixed, moving, folder / "reg.dcm", options)
        results[case.name] = (case, result, fixed, moving, grid)
    return results


def test_undefined_points_are_reported_with_count_and_place(exported):
    _, result, _, _, _ = exported["undefined_points"]
    assert any(
        "2 of 336 grid points are undefined (NaN vectors), the first at grid point (i=0, j=0, k=0)" in w
        and "as asked" in w
        for w in result.report.warnings
    ), result.report.warnings


@pytest.mark.parametrize("name", [case.name for case in CASES])
def test_dciodvfy_reports_no_errors(exported, name):
    _, result, _, _, _ = exported[name]
    report = run_dciodvfy(result.path)
    assert report.errors == [], report.text()
    assert not any("not run" in warning for warning in report.warnings), report.text()


@pytest.mark.parametrize("name", [case.name for case in CASES])
def test_own_checks_and_cross_file_references_pass(exported, name):
    _, result, fixed, moving, _ = exported[name]
    assert check_dataset(pydicom.dcmread(result.path)).errors == []
    report = run_dcentvfy(result.path, [*fixed.paths, *moving.paths])
    assert report.errors == [], report.text()


@pytest.mark.parametrize("name", [case.name for case in CASES])
def test_round_trip_is_bit_exact(exported, name):
    case, result, fixed, moving, grid = exported[name]
    registration = read_registration(result.path)
    assert registration.frame_of_reference_uid == fixed.frame_of_reference_uid
    item = registration.choose_item()
    assert item.source_frame_of_reference_uid == moving.frame_of_reference_uid
    expected = grid.right_handed()
    assert item.grid.vectors_lps.dtype == np.float32
    assert np.array_equal(item.grid.vectors_lps, expected.vectors_lps, equal_nan=True)
    assert np.allclose(item.grid.origin_lps, expected.origin_lps, atol=1e-6)
    assert np.allclose(item.grid.direction_lps, expected.direction_lps, atol=1e-6)
    assert np.allclose(item.grid.spacing_mm, expected.spacing_mm, atol=1e-6)
    for matrix, written in ((case.pre, item.pre_deformation_matrix), (case.post, item.post_deformation_matrix)):
        assert np.allclose(
            written.matrix_lps if written is not None else np.eye(4),
            matrix if matrix is not None else np.eye(4),
            atol=1e-6,
        )
    assert [r.sop_instance_uid for r in item.referenced_images] == [
        r.sop_instance_uid for r in moving.image_references()
    ]


def test_the_special_cases_are_encoded_as_intended(exported):
    _, result, fixed, _, _ = exported["identity_item"]
    first = result.dataset.DeformableRegistrationSequence[0]
    assert first.SourceFrameOfReferenceUID == fixed.frame_of_reference_uid
    assert first.RegistrationTypeCodeSequence[0].CodeValue == "125021"
    assert "DeformableRegistrationGridSequence" not in first
    assert len(first.ReferencedImageSequence) == len(fixed.image_references())

    _, result, _, moving, _ = exported["multiframe_subset"]
    references = result.dataset.DeformableRegistrationSequence[0].ReferencedImageSequence
    assert len(references) == 1 and list(references[0].ReferencedFrameNumber) == [2, 3, 4, 5]

    _, result, fixed, _, _ = exported["same_frame"]
    item = result.dataset.DeformableRegistrationSequence[0]
    assert item.SourceFrameOfReferenceUID == result.dataset.FrameOfReferenceUID == fixed.frame_of_reference_uid
    assert len(item.ReferencedImageSequence) > 0

    _, result, _, _, _ = exported["non_ascii_name"]
    read = pydicom.dcmread(result.path)
    assert str(read.PatientName) == "Müller^Jürgen" and read.SpecificCharacterSet

    _, result, _, _, _ = exported["same_study"]
    assert "ReferencedSeriesSequence" in result.dataset
    assert "StudiesContainingOtherReferencedInstancesSequence" not in result.dataset
    _, result, _, _, _ = exported["cross_study"]
    assert "StudiesContainingOtherReferencedInstancesSequence" in result.dataset
