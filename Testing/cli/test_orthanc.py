"""A real PACS: Debian's Orthanc on loopback ports receives the demo's series and REG from ``dicomregsave send``.

Never skipped: without the ``Orthanc`` binary the test installs it (``apt-get install orthanc``, see debian_tools) when it
runs as root, and otherwise fails saying how to install it. Orthanc runs with a generated configuration
and its own storage folder, is reached only on 127.0.0.1, and is stopped by its PID.
"""

import io
import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pydicom
import pytest

from commands import COMMAND
from debian_tools import debian_program
from DicomRegSaveLib.inputs.sampledata import make_demo_case

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


class Orthanc:
    """An Orthanc process with a generated configuration in `folder`."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        self.dicom_port, self.http_port = free_port(), free_port()
        configuration = {
            "Name": "DicomRegSaveTest",
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "index"),
            "DicomAet": "ORTHANC",
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True,
            "Plugins": [],
            "DicomModalities": {},
        }
        (folder / "orthanc.json").write_text(json.dumps(configuration, indent=2))
        self.log = open(folder / "orthanc.log", "w")
        self.process = subprocess.Popen(
            [debian_program("Orthanc", "orthanc"), str(folder / "orthanc.json")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=folder,
        )
        self.log_path = folder / "orthanc.log"
        deadline = time.monotonic() + 60
        while True:
            try:
                self.get("/system")
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"Orthanc did not start; its log:\n{self.log_path.read_text()[-3000:]}")
                time.sleep(0.2)

    def request(self, path: str, body: bytes | None = None) -> bytes:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{self.http_port}{path}", data=body, timeout=30) as response:
            return response.read()

    def get(self, path: str):
        return json.loads(self.request(path))

    def post(self, path: str, document: dict):
        return json.loads(self.request(path, json.dumps(document).encode()))

    def stop(self) -> None:
        os.kill(self.process.pid, 15)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, 9)
            self.process.wait()
        self.log.close()


@pytest.fixture
def orthanc(tmp_path):
    server = Orthanc(tmp_path / "orthanc")
    yield server
    server.stop()


def test_orthanc_stores_the_reg_in_the_fixed_study_and_returns_it_unchanged(orthanc, tmp_path):
    case = make_demo_case(tmp_path / "case")
    reg = tmp_path / "reg.dcm"
    exported = subprocess.run(
        [
            COMMAND,
            "export",
            "--transform",
            str(case.field_path),
            "--fixed",
            str(case.fixed_dir),
            "--moving",
            str(case.moving_dir),
            "--output",
            str(reg),
        ],
        capture_output=True,
        text=True,
    )
    assert exported.returncode == 0, exported.stderr
    sent = subprocess.run(
        [
            COMMAND,
            "send",
            str(case.fixed_dir),
            str(case.moving_dir),
            str(reg),
            "--to",
            f"ORTHANC@{LOOPBACK}:{orthanc.dicom_port}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    total = len(case.fixed_paths) + len(case.moving_paths) + 1
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert f"{total} of {total} file(s) stored by ORTHANC@{LOOPBACK}:{orthanc.dicom_port}" in sent.stdout

    written = pydicom.dcmread(reg)
    (instance_id,) = orthanc.post(
        "/tools/find", {"Level": "Instance", "Query": {"SOPInstanceUID": written.SOPInstanceUID}}
    )
    series = orthanc.get(f"/instances/{instance_id}/series")
    study = orthanc.get(f"/instances/{instance_id}/study")
    assert series["MainDicomTags"]["Modality"] == "REG"
    assert study["MainDicomTags"]["StudyInstanceUID"] == case.fixed_study_instance_uid
    fixed_series = orthanc.post(
        "/tools/find", {"Level": "Series", "Query": {"SeriesInstanceUID": case.fixed_series_instance_uid}}
    )
    assert len(fixed_series) == 1 and fixed_series[0] in study["Series"]
    assert len(orthanc.get("/instances")) == total

    retrieved = pydicom.dcmread(io.BytesIO(orthanc.request(f"/instances/{instance_id}/file")))
    assert retrieved == written
    assert retrieved.file_meta.TransferSyntaxUID == written.file_meta.TransferSyntaxUID
    assert retrieved.DeformableRegistrationSequence[0].DeformableRegistrationGridSequence[0].VectorGridData == (
        written.DeformableRegistrationSequence[0].DeformableRegistrationGridSequence[0].VectorGridData
    )
