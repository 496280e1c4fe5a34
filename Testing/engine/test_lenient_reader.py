"""Lenient reader, strict validator (issue 16 item 6): a matrix whose declared type its content does not
satisfy, a lower-case or missing type are read as stored with a warning; validate keeps the error.

The 66.1 files come from a minimal writer of plastimatch's layout (support/foreign_writers.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest

import reg_builders as rb
from DicomRegSaveLib.reg.reader import read_registration
from DicomRegSaveLib.validation.iod_rules import check_dataset
from foreign_writers import write_plastimatch_style_sro

#: An affine matrix (moving -> fixed, LPS mm): scale and shear besides a translation.
AFFINE_LPS = np.array([[1.05, 0.02, 0.0, 12.5], [0.0, 0.97, 0.03, -7.25], [0.01, 0.0, 1.02, 3.0], [0.0, 0.0, 0.0, 1.0]])


def _rotation_z(degrees: float) -> np.ndarray:
    angle = np.radians(degrees)
    matrix = np.eye(4)
    matrix[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    matrix[:3, 3] = [4.0, -2.0, 1.5]
    return matrix


def _read_with_warnings(path: Path, caplog) -> tuple[np.ndarray, list[str]]:
    """(the moving item's matrix as read, the reader's warnings)."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="DicomRegSaveLib.reg.reader"):
        item = read_registration(path).choose_item()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    return item.matrix_registration.matrix_lps, messages


def test_affine_matrix_typed_rigid_is_read_as_stored_with_a_warning(tmp_path, caplog):
    path = write_plastimatch_style_sro(tmp_path / "plastimatch.dcm", AFFINE_LPS)
    matrix_lps, messages = _read_with_warnings(path, caplog)
    np.testing.assert_allclose(matrix_lps, AFFINE_LPS, atol=1e-12)
    (message,) = messages
    assert "Matrix Sequence (0070,030A) item 1: The matrix is declared RIGID but is AFFINE" in message
    assert "applied as stored (it is AFFINE)" in message and "validate" in message
    item = read_registration(path).choose_item()
    fixed_points_lps = np.array([[0.0, 0.0, 0.0], [10.0, -20.0, 30.0], [-55.5, 12.0, 7.0]])
    expected = (np.linalg.inv(AFFINE_LPS) @ np.c_[fixed_points_lps, np.ones(3)].T).T[:, :3]
    np.testing.assert_allclose(item.map_points(fixed_points_lps), expected, atol=1e-9)


def test_validate_keeps_the_type_error_and_accepts_instance_number_0(tmp_path):
    report = check_dataset(
        pydicom.dcmread(write_plastimatch_style_sro(tmp_path / "reg.dcm", AFFINE_LPS, instance_number="0"))
    )
    assert any("declared RIGID but is AFFINE" in e for e in report.errors), report.text()
    assert not any("Instance Number" in f or "InstanceNumber" in f for f in report.errors + report.warnings)


def test_rigid_matrix_stored_with_three_decimals(tmp_path, caplog):
    rounded = np.round(_rotation_z(17.0), 3)
    deviation = np.max(np.abs(rounded[:3, :3].T @ rounded[:3, :3] - np.eye(3)))
    assert 1e-4 < deviation < 1e-3
    path = write_plastimatch_style_sro(tmp_path / "rounded.dcm", rounded)
    matrix_lps, messages = _read_with_warnings(path, caplog)
    np.testing.assert_array_equal(matrix_lps, rounded)
    (message,) = messages
    assert (
        f"declared RIGID but is RIGID_SCALE: its 3x3 part deviates from a rotation by up to {deviation:.2g}" in message
    )


@pytest.mark.parametrize(
    ("matrix_type", "warning", "error"),
    [
        ("rigid", "is in lower case (written 'rigid'; the standard's term is RIGID)", "is 'rigid'; use one of"),
        (None, "Frame of Reference Transformation Matrix Type (0070,030C) is missing (Type 1)", "is missing (Type 1)"),
        ("SHEAR", "is 'SHEAR', none of RIGID, RIGID_SCALE, AFFINE", "is 'SHEAR'; use one of"),
    ],
)
def test_lower_case_missing_or_unknown_type(tmp_path, caplog, matrix_type, warning, error):
    rigid = np.round(_rotation_z(20.0), 6)  # as plastimatch prints it (%f)
    path = write_plastimatch_style_sro(tmp_path / "reg.dcm", rigid, matrix_type)
    matrix_lps, messages = _read_with_warnings(path, caplog)
    np.testing.assert_allclose(matrix_lps, rigid, atol=1e-12)
    (message,) = messages
    assert warning in message and "(it is RIGID)" in message
    assert any(error in e for e in check_dataset(pydicom.dcmread(path)).errors)


def test_pre_matrix_of_a_deformable_registration_is_read_as_stored(caplog):
    case = rb.make_case()
    scaled = ["2", "0", "0", "0", "0", "2", "0", "0", "0", "0", "2", "0", "0", "0", "0", "1"]
    case.item.PreDeformationMatrixRegistrationSequence[0].FrameOfReferenceTransformationMatrix = scaled
    with caplog.at_level(logging.WARNING, logger="DicomRegSaveLib.reg.reader"):
        item = read_registration(case.dataset).choose_item()
    np.testing.assert_array_equal(item.pre_deformation_matrix.matrix_lps, np.diag([2.0, 2.0, 2.0, 1.0]))
    assert item.pre_deformation_matrix.matrix_type == "RIGID_SCALE"
    (record,) = caplog.records
    assert "Pre Deformation Matrix Registration Sequence (0064,000F)" in record.getMessage()
    assert "declared RIGID but is RIGID_SCALE: its 3x3 part deviates from a rotation by up to 3" in record.getMessage()
    assert any("declared RIGID but is RIGID_SCALE" in e for e in check_dataset(case.dataset).errors)
