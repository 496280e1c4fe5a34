"""Command-line behaviours that protect users and that no other test pins down (issue 19): a detached
data file of a transform is an input like any other, and sending nothing is an error."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from commands import run

LOOPBACK = "127.0.0.1"


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("header_suffix", [".mhd", ".nhdr"])
def test_the_detached_data_file_of_the_transform_is_never_overwritten(case, tmp_path, header_suffix):
    header = tmp_path / f"field{header_suffix}"
    sitk.WriteImage(sitk.ReadImage(str(case.field_path)), str(header))
    data_files = [p for p in tmp_path.iterdir() if p != header]
    assert len(data_files) == 1 and data_files[0].suffix in (".raw", ".zraw", ".gz"), data_files
    data_file = data_files[0]
    before = digest(data_file)
    for extra in ([], ["--force"]):
        result = run(
            "export", "--transform", header, "--fixed", case.fixed_dir, "--moving", case.moving_dir,
            "--output", data_file, *extra,
        )  # fmt: skip
        assert result.returncode == 1, result.stdout + result.stderr
        assert str(data_file) in result.stderr and "Traceback" not in result.stderr
        assert digest(data_file) == before
    assert sorted(tmp_path.iterdir()) == sorted([header, data_file])


@pytest.fixture
def storage_scp():
    """A storage SCP on a free loopback port that records the SOP Instance UIDs it receives."""
    received = []

    def store(event):
        received.append(event.dataset.SOPInstanceUID)
        return 0x0000

    ae = AE(ae_title="GUARD_SCP")
    ae.supported_contexts = AllStoragePresentationContexts
    ae.add_supported_context(Verification)
    server = ae.start_server((LOOPBACK, 0), block=False, evt_handlers=[(evt.EVT_C_STORE, store)])
    try:
        yield f"GUARD_SCP@{LOOPBACK}:{server.server_address[1]}", received
    finally:
        server.shutdown()


def test_sending_a_folder_without_dicom_files_is_an_error(storage_scp, tmp_path):
    peer, received = storage_scp
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "README.txt").write_text("Registration of 2026-11-30, see the plan.\n")
    result = run("send", folder, "--to", peer)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "nothing was sent" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert received == []


def test_sending_the_demo_series_reaches_the_scp(storage_scp, case):
    """The same SCP fixture receives a real series: the refusal above is not the SCP's doing."""
    peer, received = storage_scp
    result = run("send", case.fixed_dir, "--to", peer)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(received) == len(list(case.fixed_dir.iterdir()))


def test_the_batch_ctrl_c_tests_pass_when_the_suite_starts_with_sigint_ignored():
    """nohup, a background job or a CI runner may start the suite with SIGINT ignored; the Ctrl-C tests
    must still deliver Ctrl-C to the batch they start."""
    batch_tests = Path(__file__).with_name("test_batch.py")
    ignore_then_run = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "os.execv(sys.executable, [sys.executable, '-m', 'pytest', *sys.argv[1:]])"
    )
    result = subprocess.run(
        [sys.executable, "-c", ignore_then_run, "-q", "-p", "no:cacheprovider", str(batch_tests), "-k", "ctrl_c"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=batch_tests.parents[2],
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "3 passed" in result.stdout
