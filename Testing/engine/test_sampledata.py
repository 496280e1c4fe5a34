"""Phantom series writer and demo case: validator output, pixel values, encoding, and the known field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import slicer

from dicom_input_helpers import dciodvfy_errors, dciodvfy_lines, rotation
from DicomRegSaveLib import geometry
from DicomRegSaveLib.inputs.sampledata import (
    DemoCase,
    make_demo_case,
    phantom_hu,
    write_displacement_field_mha,
    write_image_series,
)
from DicomRegSaveLib.inputs.series import read_image_series

OBLIQUE_LEFT_HANDED = rotation((1.0, -0.5, 0.25), 35.0) @ np.diag([1.0, 1.0, -1.0])


def _write(folder: Path, **kwargs) -> list[Path]:
    options = dict(patient_name="Test^Patient", patient_id="P1", dimensions=(8, 6, 5), spacing_mm=(2.0, 2.5, 3.0))
    options.update(kwargs)
    return write_image_series(folder, **options)


@pytest.mark.parametrize(
    ("multiframe", "direction", "expected_iod"),
    [
        (False, np.eye(3), "CTImage"),
        (False, OBLIQUE_LEFT_HANDED, "CTImage"),
        (True, np.eye(3), "EnhancedCTImage"),
        (True, OBLIQUE_LEFT_HANDED, "EnhancedCTImage"),
    ],
    ids=["ct-axial", "ct-oblique", "enhanced-axial", "enhanced-oblique"],
)
def test_files_pass_dciodvfy(tmp_path: Path, multiframe: bool, direction: np.ndarray, expected_iod: str) -> None:
    paths = _write(tmp_path, multiframe=multiframe, direction_lps=direction, patient_name="Müller^Jürgen")
    for path in (paths[0], paths[-1]):
        lines = dciodvfy_lines(path)
        assert lines[0] == expected_iod, lines
        assert dciodvfy_errors(path) == []


@pytest.mark.parametrize(("charset", "encoding"), [("ISO_IR 100", "latin-1"), ("ISO_IR 192", "utf-8")])
def test_non_ascii_patient_name(tmp_path: Path, charset: str, encoding: str) -> None:
    name = "Müller^Jürgen"
    (path,) = _write(tmp_path, dimensions=(4, 4, 1), patient_name=name, specific_character_set=charset)
    dataset = pydicom.dcmread(path)
    assert dataset.SpecificCharacterSet == charset
    assert str(dataset.PatientName) == name
    assert name.encode(encoding) in path.read_bytes()
    assert dciodvfy_errors(path) == []


def test_non_ascii_name_defaults_to_utf8_and_ascii_name_has_no_charset(tmp_path: Path) -> None:
    (utf8,) = _write(tmp_path / "a", dimensions=(4, 4, 1), patient_name="Øster^Åse")
    (ascii_only,) = _write(tmp_path / "b", dimensions=(4, 4, 1))
    assert pydicom.dcmread(utf8).SpecificCharacterSet == "ISO_IR 192"
    assert "SpecificCharacterSet" not in pydicom.dcmread(ascii_only)


def test_pixels_are_the_phantom_at_voxel_centres(tmp_path: Path) -> None:
    direction = rotation((0.2, 1.0, 0.1), 20.0)
    origin = np.array([-10.0, -7.5, -6.0])
    spacing = np.array([2.0, 2.5, 3.0])
    single = _write(tmp_path / "sf", direction_lps=direction, origin_lps=origin)
    (multi,) = _write(tmp_path / "mf", direction_lps=direction, origin_lps=origin, multiframe=True)
    ijk_to_lps = geometry.index_to_patient_matrix(origin, direction, spacing)
    frames = pydicom.dcmread(multi).pixel_array
    assert frames.shape == (5, 6, 8) and frames.dtype == np.int16
    for k, path in enumerate(single):
        dataset = pydicom.dcmread(path)
        assert dataset.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        pixels = dataset.pixel_array
        jj, ii = np.meshgrid(np.arange(6), np.arange(8), indexing="ij")
        index = np.stack([ii, jj, np.full_like(ii, k), np.ones_like(ii)], axis=-1)
        points = (index @ ijk_to_lps.T)[..., :3]
        np.testing.assert_array_equal(pixels, np.rint(phantom_hu(points)).astype(np.int16))
        np.testing.assert_array_equal(frames[k], pixels)
    assert frames.max() - frames.min() > 5


def test_custom_pixel_function_and_same_series_uid_gives_same_files(tmp_path: Path) -> None:
    options = dict(
        study_instance_uid="1.2.3.1",
        series_instance_uid="1.2.3.2",
        frame_of_reference_uid="1.2.3.3",
        pixel_function=lambda points: points[:, 0] * 10,
    )
    first = _write(tmp_path / "a", **options)
    second = _write(tmp_path / "b", **options)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    pixels = pydicom.dcmread(first[0]).pixel_array
    np.testing.assert_array_equal(pixels[0], np.arange(8) * 20 + pixels[0, 0])
    assert pixels[0, 0] == -70


def test_writer_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Only CT"):
        _write(tmp_path, modality="MR")
    with pytest.raises(ValueError, match="spacing_mm must be 3 positive numbers"):
        _write(tmp_path, spacing_mm=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="not orthonormal"):
        _write(tmp_path, direction_lps=np.diag([1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="size must be one of"):
        make_demo_case(tmp_path, size="huge")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoCase:
    return make_demo_case(tmp_path_factory.mktemp("demo"))


def test_demo_case_has_two_studies_of_one_patient(demo: DemoCase) -> None:
    case = demo
    fixed = read_image_series(case.fixed_dir, "fixed")
    moving = read_image_series(case.moving_dir, "moving")
    assert fixed.dimensions == moving.dimensions == (48, 48, 24)
    np.testing.assert_allclose(fixed.spacing_mm, [4.0, 4.0, 4.0])
    np.testing.assert_allclose(fixed.ijk_to_lps, case.field_ijk_to_lps, atol=1e-9)
    assert (fixed.study_instance_uid, fixed.series_instance_uid, fixed.frame_of_reference_uid) == (
        case.fixed_study_instance_uid,
        case.fixed_series_instance_uid,
        case.fixed_frame_of_reference_uid,
    )
    assert (moving.study_instance_uid, moving.series_instance_uid, moving.frame_of_reference_uid) == (
        case.moving_study_instance_uid,
        case.moving_series_instance_uid,
        case.moving_frame_of_reference_uid,
    )
    assert fixed.study_instance_uid != moving.study_instance_uid
    assert fixed.frame_of_reference_uid != moving.frame_of_reference_uid
    for header in (fixed.first_header, moving.first_header):
        assert (str(header.PatientName), header.PatientID) == (case.patient_name, case.patient_id)
    assert fixed.paths == case.fixed_paths and moving.paths == case.moving_paths
    assert dciodvfy_errors(case.fixed_paths[0]) == [] and dciodvfy_errors(case.moving_paths[-1]) == []


def test_demo_case_is_deterministic(tmp_path: Path, demo: DemoCase) -> None:
    case = demo
    again = make_demo_case(tmp_path)
    assert again.fixed_series_instance_uid == case.fixed_series_instance_uid
    for old, new in zip(
        case.fixed_paths + case.moving_paths + [case.field_path],
        again.fixed_paths + again.moving_paths + [again.field_path],
    ):
        assert old.read_bytes() == new.read_bytes()
    other_seed = make_demo_case(tmp_path / "seed1", size="tiny", seed=1)
    assert other_seed.fixed_study_instance_uid != case.fixed_study_instance_uid


def test_demo_mapping_and_its_inverse(demo: DemoCase) -> None:
    case = demo
    points = np.random.default_rng(0).uniform(-90, 90, size=(2000, 3))
    mapped = case.mapping_lps(points)
    displacement = mapped - points
    assert 3.0 < np.max(np.linalg.norm(displacement, axis=1)) < 10.0
    np.testing.assert_allclose(case.inverse_mapping_lps(mapped), points, atol=1e-9)


def _sample(volume_kji: np.ndarray, ijk_to_lps: np.ndarray, points_lps: np.ndarray) -> np.ndarray:
    lps_to_ijk = np.linalg.inv(ijk_to_lps)
    index = points_lps @ lps_to_ijk[:3, :3].T + lps_to_ijk[:3, 3]
    stacked = np.repeat(volume_kji[..., None].astype(np.float64), 3, axis=-1)
    return geometry.trilinear_sample(stacked, index)[:, 0]


def test_moving_image_matches_fixed_through_the_mapping(demo: DemoCase) -> None:
    """Fixed(x) == Moving(x + D(x)): the field maps fixed to moving, as a DICOM REG must."""
    case = demo
    fixed = read_image_series(case.fixed_dir, "fixed")
    moving = read_image_series(case.moving_dir, "moving")
    fixed_kji = np.stack([pydicom.dcmread(p).pixel_array for p in fixed.paths])
    moving_kji = np.stack([pydicom.dcmread(p).pixel_array for p in moving.paths])
    rng = np.random.default_rng(1)
    index = np.c_[rng.integers(8, 40, 3000), rng.integers(8, 40, 3000), rng.integers(4, 20, 3000)]
    points = index @ fixed.ijk_to_lps[:3, :3].T + fixed.ijk_to_lps[:3, 3]
    fixed_values = fixed_kji[index[:, 2], index[:, 1], index[:, 0]].astype(np.float64)
    through_mapping = _sample(moving_kji, moving.ijk_to_lps, case.mapping_lps(points))
    through_identity = _sample(moving_kji, moving.ijk_to_lps, points)
    through_inverse = _sample(moving_kji, moving.ijk_to_lps, case.inverse_mapping_lps(points))
    error_mapping = np.mean(np.abs(through_mapping - fixed_values))
    assert error_mapping < 15.0
    assert np.mean(np.abs(through_identity - fixed_values)) > 4 * error_mapping
    assert np.mean(np.abs(through_inverse - fixed_values)) > 4 * error_mapping


def _read_grid_transform(path: Path) -> slicer.vtkMRMLGridTransformNode:
    scene = slicer.vtkMRMLScene()
    node = slicer.vtkMRMLGridTransformNode()
    scene.AddNode(node)
    storage = slicer.vtkMRMLTransformStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    return node


def _from_parent_lps(node: slicer.vtkMRMLGridTransformNode, points_lps: np.ndarray) -> np.ndarray:
    transform = node.GetTransformFromParent()
    points_ras = geometry.lps_to_ras_points(points_lps)
    mapped_ras = np.array([transform.TransformPoint(p) for p in points_ras])
    return geometry.ras_to_lps_points(mapped_ras)


def test_demo_field_read_by_slicer_is_the_from_parent_mapping(demo: DemoCase) -> None:
    case = demo
    node = _read_grid_transform(case.field_path)
    displacement_ras = slicer.util.arrayFromGridTransform(node)
    assert displacement_ras.shape == (24, 48, 48, 3)
    rng = np.random.default_rng(2)
    index = np.c_[rng.integers(0, 48, 1500), rng.integers(0, 48, 1500), rng.integers(0, 24, 1500)]
    nodes_lps = index @ case.field_ijk_to_lps[:3, :3].T + case.field_ijk_to_lps[:3, 3]
    np.testing.assert_allclose(_from_parent_lps(node, nodes_lps), case.mapping_lps(nodes_lps), atol=1e-4, rtol=0)


def test_oblique_field_file_geometry_is_read_by_slicer(tmp_path: Path) -> None:
    """The MetaImage direction order (TransformMatrix) and LPS vectors survive a read by slicer-core."""
    direction = rotation((0.4, -1.0, 0.7), 33.0)
    origin = np.array([-20.0, 15.0, -30.0])
    spacing = np.array([5.0, 6.0, 7.0])
    n_i, n_j, n_k = 9, 8, 7
    ijk_to_lps = geometry.index_to_patient_matrix(origin, direction, spacing)
    kk, jj, ii = np.meshgrid(np.arange(n_k), np.arange(n_j), np.arange(n_i), indexing="ij")
    grid_points = np.stack([ii, jj, kk], axis=-1) @ ijk_to_lps[:3, :3].T + ijk_to_lps[:3, 3]

    def displacement(points: np.ndarray) -> np.ndarray:
        return np.stack([np.sin(points[..., 1] / 20), 0.05 * points[..., 2], np.cos(points[..., 0] / 25)], axis=-1)

    path = write_displacement_field_mha(
        tmp_path / "oblique.mha", origin, direction, spacing, displacement(grid_points).astype(np.float32)
    )
    node = _read_grid_transform(path)
    nodes_lps = grid_points.reshape(-1, 3)
    expected = nodes_lps + displacement(nodes_lps).astype(np.float32)
    np.testing.assert_allclose(_from_parent_lps(node, nodes_lps), expected, atol=1e-4, rtol=0)
