"""REG files written by others, built here by an independent minimal writer (reg_builders, pydicom only).

* A vendor-style Spatial Registration (66.1) whose first item is the identity item of the fixed
  frame: the moving item is used, its matrix (source -> registered) is inverted, and the file reads
  back in SimpleITK and in slicer-core as the fixed -> moving mapping.
* A Deformable Spatial Registration (66.3) with an identity item and two deformable items for two
  moving frames, and a 66.1 with two moving items: every item is read, ``to-transform`` refuses to
  guess and lists them, and with ``--source-frame`` writes exactly the chosen item.
"""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

import mrml_helpers
import reg_builders as rb
from DicomRegSaveLib.cli.main import main
from DicomRegSaveLib.errors import RegistrationChoiceError
from DicomRegSaveLib.reg.reader import read_registration
from DicomRegSaveLib.slicer.importing import import_registration
from DicomRegSaveLib.validation.dicom3tools import run_dciodvfy
from DicomRegSaveLib.validation.iod_rules import check_dataset
from mrml_helpers import from_world_lps, homogeneous, new_scene

MAPPING_TOLERANCE_MM = 1e-4


def rotation(axis, degrees: float) -> np.ndarray:
    return mrml_helpers.rotation(axis, np.radians(degrees))


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def random_points(n=2000, seed=0, low=-60.0, high=60.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, size=(n, 3))


#: Moving (source) frame -> fixed (registered) frame, as a planning system writes it.
VENDOR_MATRIX = homogeneous(rotation((0.2, -1, 0.4), 12), (5.5, -18.0, 40.25))


def vendor_spatial_registration(tmp_path):
    """Fixed and moving CT series and a 66.1 with the identity item first, all written to disk."""
    patient = rb.Patient()
    fixed = rb.make_ct_series(3, patient=patient, series_number=1)
    moving = rb.make_ct_series(2, patient=patient, series_number=2, origin_lps=(-8.0, -9.0, 0.0), study_id="S2")
    dataset = rb.build_spatial_reg(
        fixed,
        [
            rb.SpatialItemSpec(fixed[0].FrameOfReferenceUID, fixed, registration_type=rb.FRAME_OF_REFERENCE_IDENTITY),
            rb.SpatialItemSpec(moving[0].FrameOfReferenceUID, moving, matrices=[VENDOR_MATRIX]),
        ],
    )
    path = rb.write(dataset, tmp_path / "vendor_rigid.dcm")
    images = [rb.write(image, tmp_path / f"image{number}.dcm") for number, image in enumerate(fixed + moving)]
    return path, fixed, moving, images


def test_vendor_spatial_registration_is_valid_and_reads_with_the_moving_item(tmp_path):
    path, fixed, moving, _ = vendor_spatial_registration(tmp_path)
    # The independent writer is right by the validator's measure ...
    report = run_dciodvfy(path)
    assert report.errors == [], report.text()
    assert check_dataset(pydicom.dcmread(path)).errors == []
    # ... and nothing in it is dropped: both items are read, the identity item recognised as one.
    registration = read_registration(path)
    assert registration.frame_of_reference_uid == fixed[0].FrameOfReferenceUID
    identity, moving_item = registration.items
    assert identity.is_identity and identity.source_frame_of_reference_uid == fixed[0].FrameOfReferenceUID
    assert identity.registration_type.value == "125021"
    assert not moving_item.is_identity
    assert registration.choose_item() is moving_item
    assert registration.choose_item(moving[0].FrameOfReferenceUID) is moving_item
    assert [r.sop_instance_uid for r in moving_item.referenced_images] == [m.SOPInstanceUID for m in moving]
    assert moving_item.matrix_registration.matrix_type == "RIGID"

    points = random_points()
    mapped = moving_item.map_points(points)
    # The stored matrix maps moving -> fixed, so it takes the item's moving points back to the fixed ones.
    assert np.abs(apply(VENDOR_MATRIX, mapped) - points).max() < MAPPING_TOLERANCE_MM
    assert np.abs(mapped - apply(np.linalg.inv(VENDOR_MATRIX), points)).max() < MAPPING_TOLERANCE_MM


@pytest.mark.parametrize("suffix", [".tfm", ".h5"])
def test_vendor_spatial_registration_to_transform_reads_back_in_simpleitk(tmp_path, suffix):
    path, *_ = vendor_spatial_registration(tmp_path)
    output = tmp_path / f"rigid{suffix}"
    assert main(["to-transform", str(path), str(output)]) == 0
    transform = sitk.ReadTransform(str(output))
    points = random_points(seed=1)
    mapped = np.array([transform.TransformPoint(p.tolist()) for p in points])
    assert np.abs(mapped - apply(np.linalg.inv(VENDOR_MATRIX), points)).max() < MAPPING_TOLERANCE_MM


def test_vendor_spatial_registration_imported_in_slicer_maps_the_moving_volume_like_the_file(tmp_path):
    path, *_ = vendor_spatial_registration(tmp_path)
    scene = new_scene()
    result = import_registration(path, scene)
    assert len(result.items) == 1
    points = random_points(seed=2)
    mapped = from_world_lps(result.items[0].leaf, points)
    assert np.abs(mapped - apply(np.linalg.inv(VENDOR_MATRIX), points)).max() < MAPPING_TOLERANCE_MM


def test_matrix_sequence_items_are_applied_in_order(tmp_path):
    patient = rb.Patient()
    fixed = rb.make_ct_series(2, patient=patient)
    moving = rb.make_ct_series(2, patient=patient, series_number=2)
    first = homogeneous(np.diag([1.1, 0.9, 1.0]), (1.0, 2.0, 3.0))
    second = homogeneous(rotation((0, 0, 1), 30), (-4.0, 0.0, 6.0))
    dataset = rb.build_spatial_reg(
        fixed,
        [
            rb.SpatialItemSpec(
                moving[0].FrameOfReferenceUID, moving, matrices=[first, second], matrix_types=["RIGID_SCALE", "RIGID"]
            ),
        ],
    )
    assert run_dciodvfy(rb.write(dataset, tmp_path / "two.dcm")).errors == []
    item = read_registration(dataset).choose_item()
    points = random_points(seed=3)
    assert np.abs(apply(second @ first, item.map_points(points)) - points).max() < MAPPING_TOLERANCE_MM


# Several moving items ----------------------------------------------------------------------------------------


def two_moving_deformable(tmp_path):
    """A 66.3: identity item, then one deformable item per moving series (two frames, one with a post matrix)."""
    patient = rb.Patient()
    fixed = rb.make_ct_series(2, patient=patient)
    moving_a = rb.make_ct_series(2, patient=patient, series_number=2)
    moving_b = rb.make_ct_series(3, patient=patient, series_number=3, study_instance_uid=fixed[0].StudyInstanceUID)
    grid_a = rb.GridSpec((-5.0, -5.0, -5.0), rb.smooth_vectors((5, 5, 5), seed=10), (2.0, 2.0, 2.0))
    grid_b = rb.GridSpec((-8.0, -2.0, 1.0), rb.smooth_vectors((4, 6, 3), seed=11), (3.0, 1.0, 2.0))
    post_b = homogeneous(rotation((0, 0, 1), 30), (1.0, 2.0, 3.0))
    dataset = rb.build_reg(
        fixed,
        [
            rb.ItemSpec(fixed[0].FrameOfReferenceUID, fixed, registration_type=rb.FRAME_OF_REFERENCE_IDENTITY),
            rb.ItemSpec(moving_a[0].FrameOfReferenceUID, moving_a, grid=grid_a),
            rb.ItemSpec(moving_b[0].FrameOfReferenceUID, moving_b, grid=grid_b, post_matrix=post_b, post_type="RIGID"),
        ],
    )
    return rb.write(dataset, tmp_path / "two_moving.dcm"), moving_a, moving_b, grid_a, grid_b


def grid_points(grid: rb.GridSpec, n=2000, seed=0) -> np.ndarray:
    """Random points inside a grid spec's box (axis-aligned grids only)."""
    n_k, n_j, n_i, _ = grid.vectors_lps.shape
    index = np.random.default_rng(seed).uniform(0.0, 1.0, size=(n, 3)) * (np.array([n_i, n_j, n_k]) - 1)
    return np.asarray(grid.origin_lps) + index * np.asarray(grid.spacing_mm)


def test_every_item_of_a_multi_item_deformable_registration_is_read(tmp_path):
    path, moving_a, moving_b, _, _ = two_moving_deformable(tmp_path)
    assert run_dciodvfy(path).errors == []
    registration = read_registration(path)
    identity, item_a, item_b = registration.items
    assert identity.is_identity and item_a.grid is not None and item_b.grid is not None
    assert item_b.post_deformation_matrix.matrix_type == "RIGID"
    with pytest.raises(RegistrationChoiceError) as error:
        registration.choose_item()
    for moving in (moving_a, moving_b):
        assert moving[0].FrameOfReferenceUID in str(error.value)
        assert moving[0].SeriesInstanceUID in str(error.value)
    assert registration.choose_item(moving_a[0].FrameOfReferenceUID) is item_a
    assert registration.choose_item(moving_b[0].FrameOfReferenceUID) is item_b


def test_to_transform_refuses_to_guess_between_moving_items_and_lists_them(tmp_path, capsys):
    path, moving_a, moving_b, _, _ = two_moving_deformable(tmp_path)
    output = tmp_path / "which.h5"
    assert main(["to-transform", str(path), str(output)]) == 1
    error = capsys.readouterr().err
    assert "2 items that move different images" in error
    for number, moving in ((2, moving_a), (3, moving_b)):
        line = next(line for line in error.splitlines() if line.strip().startswith(f"item {number}:"))
        assert moving[0].FrameOfReferenceUID in line and moving[0].SeriesInstanceUID in line
    assert "item 1:" in error and "identity" in error
    assert not output.exists()
    assert main(["to-transform", str(path), str(output), "--source-frame", "1.2.3.4.5"]) == 1
    assert "no item has the source Frame of Reference UID 1.2.3.4.5" in capsys.readouterr().err
    assert not output.exists()


@pytest.mark.parametrize("moving_index", [0, 1])
def test_to_transform_with_a_source_frame_writes_that_item(tmp_path, moving_index, capsys):
    path, moving_a, moving_b, grid_a, grid_b = two_moving_deformable(tmp_path)
    moving, grid = ((moving_a, grid_a), (moving_b, grid_b))[moving_index]
    item = read_registration(path).choose_item(moving[0].FrameOfReferenceUID)
    output = tmp_path / "chosen.h5"
    report_path = tmp_path / "report.json"
    assert (
        main(
            [
                "to-transform",
                str(path),
                str(output),
                "--source-frame",
                moving[0].FrameOfReferenceUID,
                "--json",
                str(report_path),
            ]
        )
        == 0
    )
    assert f"item {moving_index + 2} of 3" in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    assert report["item"] == moving_index + 2
    assert report["source_frame_of_reference_uid"] == moving[0].FrameOfReferenceUID
    assert report["grid"]["dimensions"] == list(item.grid.dimensions)
    transform = sitk.ReadTransform(str(output))
    points = grid_points(grid, seed=moving_index)
    mapped = np.array([transform.TransformPoint(p.tolist()) for p in points])
    assert np.abs(mapped - item.map_points(points)).max() < MAPPING_TOLERANCE_MM


def test_spatial_registration_with_two_moving_items_needs_a_choice(tmp_path, capsys):
    patient = rb.Patient()
    fixed = rb.make_ct_series(2, patient=patient)
    moving_a = rb.make_ct_series(2, patient=patient, series_number=2)
    moving_b = rb.make_ct_series(2, patient=patient, series_number=3)
    matrix_b = homogeneous(rotation((1, 0, 0), -8), (0.0, 3.0, -2.0))
    dataset = rb.build_spatial_reg(
        fixed,
        [
            rb.SpatialItemSpec(fixed[0].FrameOfReferenceUID, fixed, registration_type=rb.FRAME_OF_REFERENCE_IDENTITY),
            rb.SpatialItemSpec(moving_a[0].FrameOfReferenceUID, moving_a, matrices=[VENDOR_MATRIX]),
            rb.SpatialItemSpec(moving_b[0].FrameOfReferenceUID, moving_b, matrices=[matrix_b]),
        ],
    )
    path = rb.write(dataset, tmp_path / "two_rigid.dcm")
    assert run_dciodvfy(path).errors == []
    assert len(read_registration(path).items) == 3
    output = tmp_path / "out.tfm"
    assert main(["to-transform", str(path), str(output)]) == 1
    error = capsys.readouterr().err
    assert moving_a[0].FrameOfReferenceUID in error and moving_b[0].FrameOfReferenceUID in error
    assert not output.exists()
    assert main(["to-transform", str(path), str(output), "--source-frame", moving_b[0].FrameOfReferenceUID]) == 0
    transform = sitk.ReadTransform(str(output))
    points = random_points(seed=5)
    mapped = np.array([transform.TransformPoint(p.tolist()) for p in points])
    assert np.abs(mapped - apply(np.linalg.inv(matrix_b), points)).max() < MAPPING_TOLERANCE_MM
