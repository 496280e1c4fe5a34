"""A plastimatch-style 66.1 (an affine matrix typed RIGID, Instance Number 0) through the command line:
``to-transform`` writes its matrix as stored with a note naming the mismatch, ``inspect`` shows it,
``validate`` reports the type as an error and Instance Number 0 as nothing (issue 16 item 6)."""

from __future__ import annotations

import numpy as np

from commands import run
from foreign_writers import write_plastimatch_style_sro

#: moving -> fixed (LPS mm), as the file stores it: scaled and sheared, typed RIGID by the writer.
AFFINE_LPS = np.array([[1.02, 0.03, 0.0, -8.0], [0.0, 0.98, 0.01, 4.5], [0.02, 0.0, 1.04, 11.0], [0.0, 0.0, 0.0, 1.0]])


def _itk_affine_lps(path) -> np.ndarray:
    """The 4x4 matrix (LPS) of an ITK AffineTransform_double_3_3 text file: x -> A (x - c) + c + t."""
    fields = dict(line.split(": ", 1) for line in path.read_text().splitlines() if ": " in line)
    assert fields["Transform"] == "AffineTransform_double_3_3"
    parameters = np.array(fields["Parameters"].split(), dtype=float)
    center = np.array(fields["FixedParameters"].split(), dtype=float)
    matrix = np.eye(4)
    matrix[:3, :3] = parameters[:9].reshape(3, 3)
    matrix[:3, 3] = parameters[9:] + center - matrix[:3, :3] @ center
    return matrix


def test_to_transform_maps_like_the_stored_matrix_with_a_note(tmp_path):
    reg = write_plastimatch_style_sro(tmp_path / "plastimatch.dcm", AFFINE_LPS)
    result = run("to-transform", reg, tmp_path / "fixed_to_moving.tfm")
    assert result.returncode == 0, result.stderr
    (note,) = [line for line in result.stderr.splitlines() if "note:" in line]
    assert "The matrix is declared RIGID but is AFFINE" in note and "applied as stored" in note
    assert "Traceback" not in result.stderr
    # The file maps fixed -> moving: the inverse of the stored moving -> fixed matrix.
    np.testing.assert_allclose(_itk_affine_lps(tmp_path / "fixed_to_moving.tfm"), np.linalg.inv(AFFINE_LPS), atol=1e-9)


def test_inspect_shows_and_validate_reports_the_declared_type(tmp_path):
    reg = write_plastimatch_style_sro(tmp_path / "plastimatch.dcm", AFFINE_LPS, instance_number="0")
    shown = run("inspect", reg)
    assert shown.returncode == 0 and "FrameOfReferenceTransformationMatrixType  [RIGID]" in shown.stdout
    checked = run("validate", reg)
    assert checked.returncode == 1
    assert (
        "RegistrationSequence (0070,0308) item 2 > MatrixRegistrationSequence (0070,0309) item 1 > MatrixSequence "
        "(0070,030A) item 1: Frame of Reference Transformation Matrix (3006,00C6): The matrix is declared RIGID but "
        "is AFFINE" in checked.stdout
    )
    assert "InstanceNumber" not in checked.stdout and "Instance Number" not in checked.stdout
