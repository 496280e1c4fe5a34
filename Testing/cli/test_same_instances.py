"""One folder, the same instances for ``export``, ``validate --images`` and ``send`` (issue 14 item 4,
issue 16 item 2): slices without preamble, an RTSTRUCT among the images, a folder given twice."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import RTStructureSetStorage

from commands import run
from dicom_input_helpers import write_rtstruct, write_without_preamble
from storage_scp import CT_IMAGE_STORAGE, REG_STORAGE


def _uids(paths) -> set[str]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths}


@pytest.fixture(scope="module")
def folders(case, tmp_path_factory) -> dict[str, Path]:
    """The demo's fixed folder with an RTSTRUCT added; its moving slices rewritten without preamble
    (no 128 bytes, no DICM, no file meta), with an RTSTRUCT and a README; the REG made from them."""
    root = tmp_path_factory.mktemp("same_instances")
    fixed = root / "fixed"
    shutil.copytree(case.fixed_dir, fixed)
    write_rtstruct(fixed / "RS_fixed.dcm", sorted(case.fixed_dir.iterdir()))
    moving = root / "moving"
    for number, path in enumerate(sorted(case.moving_dir.iterdir()), start=1):
        write_without_preamble(path, moving / f"IM{number:04d}")
    write_rtstruct(moving / "RS_moving.dcm", sorted(case.moving_dir.iterdir()))
    (moving / "README.txt").write_text("CBCT export\n")
    result = run(
        "export", "--transform", case.field_path, "--fixed", fixed, "--moving", moving, "--output", root / "reg.dcm"
    )
    assert result.returncode == 0, result.stderr
    return {"fixed": fixed, "moving": moving, "reg": root / "reg.dcm"}


def test_export_reads_slices_without_preamble_and_references_them_all(case, folders):
    assert all(b"DICM" not in path.read_bytes()[:132] for path in folders["moving"].glob("IM*"))
    reg = pydicom.dcmread(folders["reg"])
    referenced = {
        str(r.ReferencedSOPInstanceUID) for r in reg.DeformableRegistrationSequence[0].ReferencedImageSequence
    }
    assert referenced == _uids(case.moving_dir.iterdir())


def test_validate_takes_the_instances_export_took(folders):
    result = run("validate", folders["reg"], "--images", folders["fixed"], folders["moving"], folders["moving"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Duplicate" not in result.stdout and "Error" not in result.stdout
    assert result.stdout.splitlines() == [
        "Warning: [dicomregsave] 2 object(s) among the images are not images and were not checked against the "
        "registration (2 RTSTRUCT).",
        f"{folders['reg']}: 0 error(s), 1 warning(s)",
    ]


def test_the_demo_folders_with_an_rtstruct_validate(case, folders):
    result = run("validate", folders["reg"], "--images", folders["fixed"], case.moving_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{folders['reg']}: 0 error(s), 1 warning(s)" in result.stdout
    assert "(1 RTSTRUCT)" in result.stdout


def test_one_series_alone_gives_one_warning_with_the_count(case, folders):
    result = run("validate", folders["reg"], "--images", folders["fixed"], folders["fixed"])
    assert result.returncode == 0, result.stdout + result.stderr
    n_moving = len(list(case.moving_dir.iterdir()))
    lines = result.stdout.splitlines()
    (warning,) = [line for line in lines if "referenced by the registration" in line]
    assert warning.startswith(
        f"Warning: [dicomregsave] {n_moving} moving instance(s) referenced by the registration were not supplied"
    )
    assert not any(line.startswith("Error") for line in lines)
    assert lines[-1] == f"{folders['reg']}: 0 error(s), 2 warning(s)"


def test_export_with_a_folder_given_twice_is_the_same_export(case, folders, tmp_path):
    once = run(
        "export", "--transform", case.field_path, "--fixed", folders["fixed"], "--moving", folders["moving"],
        "--output", tmp_path / "once.dcm", "--json", tmp_path / "once.json",
    )  # fmt: skip
    twice = run(
        "export", "--transform", case.field_path, "--fixed", folders["fixed"], folders["fixed"],
        "--moving", folders["moving"], folders["moving"] / "IM0001", folders["moving"],
        "--output", tmp_path / "twice.dcm",
    )  # fmt: skip
    assert once.returncode == 0 and twice.returncode == 0, once.stderr + twice.stderr

    def references(path):
        reg = pydicom.dcmread(path)
        return [str(r.ReferencedSOPInstanceUID) for r in reg.DeformableRegistrationSequence[0].ReferencedImageSequence]

    assert references(tmp_path / "twice.dcm") == references(tmp_path / "once.dcm")
    assert len(references(tmp_path / "once.dcm")) == len(list(case.moving_dir.iterdir()))


def test_send_sends_what_export_and_validate_found_and_the_rtstruct(case, folders, scp_factory):
    scp = scp_factory(sop_classes=(CT_IMAGE_STORAGE, REG_STORAGE, RTStructureSetStorage))
    result = run("send", folders["moving"], folders["moving"], "--to", scp.peer)
    assert result.returncode == 0, result.stdout + result.stderr
    rtstruct = _uids([folders["moving"] / "RS_moving.dcm"])
    assert set(scp.received) == _uids(case.moving_dir.iterdir()) | rtstruct
    for path in case.moving_dir.iterdir():
        original = pydicom.dcmread(path)
        assert scp.received[str(original.SOPInstanceUID)].PixelData == original.PixelData
    assert f"{folders['moving'] / 'README.txt'}: skipped: not a DICOM file" in result.stdout
    total = len(scp.received)
    assert f"{total} of {total} file(s) stored by {scp.peer}" in result.stdout
