"""``dicomregsave send`` and ``export --send`` against pynetdicom storage SCPs on 127.0.0.1 (loopback only)."""

import json
import shutil
import socket
from pathlib import Path

import pydicom
import pydicom.fileset
import pytest

from commands import export_demo, run
from DicomRegSaveLib.inputs.sampledata import make_demo_case
from storage_scp import CT_IMAGE_STORAGE, LOOPBACK, REG_STORAGE, VERIFICATION


@pytest.fixture(scope="module")
def case_and_reg(tmp_path_factory):
    folder = tmp_path_factory.mktemp("send")
    case = make_demo_case(folder / "case")
    result = export_demo(case, folder / "reg.dcm")
    assert result.returncode == 0, result.stderr
    return case, folder / "reg.dcm"


def same_as_file(received: pydicom.Dataset, path: Path) -> bool:
    original = pydicom.dcmread(path)
    return received == original and received.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID


def test_send_stores_every_file_with_exactly_the_sop_classes_present(scp_factory, case_and_reg):
    case, reg = case_and_reg
    scp = scp_factory()
    result = run("send", case.fixed_dir, reg, "--to", scp.peer, "--calling-aet", "QA_SCRIPT", "--json", "-")
    assert result.returncode == 0, result.stderr
    files = [*case.fixed_paths, reg]
    assert sorted(set(scp.requested)) == sorted([VERIFICATION, CT_IMAGE_STORAGE, REG_STORAGE])
    assert len(scp.received) == len(files)
    for path in files:
        uid = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
        assert same_as_file(scp.received[uid], path), path
        assert f"{path}: stored (status 0x0000: Success" in result.stderr
    assert f"{len(files)} of {len(files)} file(s) stored by {scp.peer}" in result.stderr
    report = json.loads(result.stdout)
    assert (report["report"], report["version"], report["ok"]) == ("send", 1, True)
    assert report["echo"] == "Success" and report["calling_ae_title"] == "QA_SCRIPT"
    assert [f["status"] for f in report["files"]] == [0] * len(files)


def test_export_send_stores_the_new_reg(scp_factory, case_and_reg, tmp_path):
    case, _ = case_and_reg
    scp = scp_factory()
    result = export_demo(
        case,
        tmp_path / "sent.dcm",
        "--send",
        scp.peer,
        "--json",
        tmp_path / "report.json",
    )
    assert result.returncode == 0, result.stderr
    dataset = pydicom.dcmread(tmp_path / "sent.dcm")
    assert scp.requested == [VERIFICATION, REG_STORAGE, REG_STORAGE]
    assert same_as_file(scp.received[dataset.SOPInstanceUID], tmp_path / "sent.dcm")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is True and report["sent"]["ok"] is True
    assert (
        report["sent"]["peer"] == scp.peer and report["sent"]["files"][0]["sop_instance_uid"] == dataset.SOPInstanceUID
    )


def test_rejected_association_is_explained(scp_factory, case_and_reg):
    _, reg = case_and_reg
    scp = scp_factory(calling_aets=["ONLY_THIS_ONE"])
    result = run("send", reg, "--to", scp.peer, "--json", "-")
    assert result.returncode == 1
    assert f"{scp.peer} rejected the association (Rejected Permanent, source: Service User" in result.stderr
    assert "Calling AE title not recognised" in result.stderr
    assert f"{reg}: not sent: no association" in result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False and "rejected the association" in report["errors"][0]["message"]
    assert scp.received == {}


def test_a_failure_status_is_explained_per_file(scp_factory, case_and_reg):
    _, reg = case_and_reg
    scp = scp_factory(status=0xA700)
    result = run("send", reg, "--to", scp.peer)
    assert result.returncode == 1
    assert f"{reg}: refused (status 0xA700: Failure, Refused: Out of Resources)" in result.stdout
    assert "0 of 1 file(s) stored" in result.stdout


def test_a_peer_without_the_reg_class_is_named(scp_factory, case_and_reg):
    case, reg = case_and_reg
    scp = scp_factory(sop_classes=(CT_IMAGE_STORAGE,))
    result = run("send", case.fixed_paths[0], reg, "--to", scp.peer)
    assert result.returncode == 1
    assert f"{case.fixed_paths[0]}: stored" in result.stdout
    assert f"{reg}: not sent: {scp.peer} does not accept Deformable Spatial Registration Storage" in result.stdout
    assert len(scp.received) == 1


def test_unreachable_peer_and_bad_peer_text(case_and_reg, tmp_path):
    _, reg = case_and_reg
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        free_port = probe.getsockname()[1]
    result = run("send", reg, "--to", f"NOBODY@{LOOPBACK}:{free_port}", "--timeout", "5")
    assert result.returncode == 1
    assert f"Cannot connect to NOBODY@{LOOPBACK}:{free_port}" in result.stdout
    bad = run("send", reg, "--to", f"{LOOPBACK}:{free_port}")
    assert bad.returncode == 2 and "argument --to: " in bad.stderr and "write it as AET@HOST:PORT" in bad.stderr
    (tmp_path / "notes.txt").write_text("not DICOM")
    named = run("send", tmp_path / "notes.txt", "--to", f"NOBODY@{LOOPBACK}:{free_port}")
    assert named.returncode == 1 and "notes.txt: not sent: not a DICOM file" in named.stdout


def test_files_in_a_folder_that_are_no_instances_are_skipped(scp_factory, case_and_reg, tmp_path):
    _, reg = case_and_reg
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "README.txt").write_text("notes")
    shutil.copy(reg, folder / "reg.dcm")
    dicomdir = pydicom.fileset.FileSet()
    (folder / "media").mkdir()
    dicomdir.write(folder / "media")
    scp = scp_factory()
    result = run("send", folder, "--to", scp.peer)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{folder / 'README.txt'}: skipped: not a DICOM file" in result.stdout
    assert "skipped: a DICOMDIR is an index of files" in result.stdout
    assert "1 of 1 file(s) stored" in result.stdout
    assert list(scp.received) == [pydicom.dcmread(reg, stop_before_pixels=True).SOPInstanceUID]
