"""``dicomregsave batch``: good and bad rows in parallel, the JSON report, resuming, and Ctrl-C."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest

from DicomRegSaveLib.conformance import validate_file
from DicomRegSaveLib.sampledata import make_demo_case

COMMAND = str(Path(sys.executable).with_name("dicomregsave"))


def run(*args):
    return subprocess.run([COMMAND, *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return make_demo_case(tmp_path_factory.mktemp("batch") / "case")


def write_manifest(path: Path, rows: list[dict]) -> Path:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def rows_for(case, manifest_dir: Path) -> list[dict]:
    """Paths relative to the manifest's folder, as a cohort manifest would have them."""
    def relative(path):
        return str(Path(path).relative_to(manifest_dir))

    good = {"transform": relative(case.field_path), "fixed": relative(case.fixed_dir), "moving": relative(case.moving_dir)}
    return [
        dict(good, output="first.dcm", series_description="Row one", series_number="11", tag="InstitutionName=Clinic A"),
        dict(good, output="", series_description="Row two", series_number="12", identity_item="yes",
             grid_spacing="8 8 8"),
        dict(good, output="bad-transform.dcm", transform="missing.mha"),
        dict(good, output="bad-tag.dcm", tag="PatientID=SOMEONE ELSE"),
    ]


def test_batch_runs_good_rows_reports_bad_ones_and_resumes(case, tmp_path):
    manifest = write_manifest(case.folder.parent / "manifest.csv", rows_for(case, case.folder.parent))
    out = tmp_path / "out"
    out.mkdir()
    result = run("batch", manifest, "--output", out, "--jobs", "2", "--json", tmp_path / "batch.json")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert f"row 1: wrote {out / 'first.dcm'}" in lines and f"row 2: wrote {out / 'row-2.dcm'}" in lines
    assert any(line.startswith("row 3: failed: ") and "missing.mha" in line for line in lines)
    assert any(line.startswith("row 4: failed: ") and "PatientID 'SOMEONE ELSE'" in line for line in lines)
    assert "2 written, 0 skipped, 2 failed, 0 interrupted (4 row(s))" in lines
    assert sorted(p.name for p in out.iterdir()) == ["first.dcm", "row-2.dcm"]

    first = pydicom.dcmread(out / "first.dcm")
    second = pydicom.dcmread(out / "row-2.dcm")
    assert (first.SeriesDescription, first.SeriesNumber, first.InstitutionName) == ("Row one", 11, "Clinic A")
    assert (second.SeriesDescription, second.SeriesNumber) == ("Row two", 12)
    assert len(first.DeformableRegistrationSequence) == 1 and len(second.DeformableRegistrationSequence) == 2
    grid = second.DeformableRegistrationSequence[1].DeformableRegistrationGridSequence[0]
    assert [float(v) for v in grid.GridResolution] == [8.0, 8.0, 8.0]
    assert validate_file(out / "first.dcm").ok and validate_file(out / "row-2.dcm").ok

    report = json.loads((tmp_path / "batch.json").read_text())
    assert (report["report"], report["version"], report["ok"]) == ("batch", 1, False)
    assert report["counts"] == {"written": 2, "skipped": 0, "failed": 2, "interrupted": 0}
    by_row = {row["row"]: row for row in report["rows"]}
    assert by_row[1]["export"]["sop_instance_uid"] == first.SOPInstanceUID
    assert by_row[2]["export"]["grid"]["spacing_mm"] == [8.0, 8.0, 8.0]
    assert by_row[3]["status"] == "failed" and "missing.mha" in by_row[3]["error"]
    assert [e["message"].split(":")[0] for e in report["errors"]] == ["Row 3", "Row 4"]

    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = run("batch", manifest, "--output", out, "--jobs", "2")
    assert again.returncode == 1
    assert f"row 1: skipped: {out / 'first.dcm'} exists and validates" in again.stdout
    assert "0 written, 2 skipped, 2 failed, 0 interrupted" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_an_existing_output_that_does_not_validate_is_kept_and_reported(case, tmp_path):
    manifest = write_manifest(case.folder.parent / "one.csv", rows_for(case, case.folder.parent)[:1])
    (tmp_path / "first.dcm").write_bytes(b"not a registration")
    result = run("batch", manifest, "--output", tmp_path)
    assert result.returncode == 1
    assert "exists but does not validate" in result.stdout
    assert (tmp_path / "first.dcm").read_bytes() == b"not a registration"


@pytest.mark.parametrize("rows, message", [
    ([{"transform": "t.mha", "fixed": "f"}], "lacks the column(s) moving"),
    ([{"transform": "t.mha", "fixed": "f", "moving": "m", "colour": "red"}], "not export options: colour"),
    ([{"transform": "t.mha", "fixed": "f", "moving": "m", "force": "yes"}], "not export options: force"),
    ([{"transform": "t.mha", "fixed": "f", "moving": "m", "identity_item": "maybe"}], "takes yes or no"),
    ([{"transform": "t.mha", "fixed": "f", "moving": "m", "output": "a.dcm"}] * 2, "as row 1 does"),
    ([{"transform": "", "fixed": "f", "moving": "m"}], "has no transform"),
])
def test_a_bad_manifest_is_refused_before_anything_runs(tmp_path, rows, message):
    manifest = write_manifest(tmp_path / "manifest.csv", rows)
    out = tmp_path / "out"
    out.mkdir()
    result = run("batch", manifest, "--output", out)
    assert result.returncode == 1 and message in result.stderr
    assert list(out.iterdir()) == []


def test_ctrl_c_stops_cleanly_and_a_rerun_finishes(case, tmp_path):
    base = rows_for(case, case.folder.parent)[0]
    manifest = write_manifest(
        case.folder.parent / "many.csv",
        [dict(base, output=f"reg-{n}.dcm", tag="", grid_spacing="3 3 3") for n in range(8)],
    )
    out = tmp_path / "out"
    out.mkdir()
    process = subprocess.Popen([COMMAND, "batch", str(manifest), "--output", str(out), "--jobs", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(out.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "interrupted; finished files are complete" in stderr
    assert "interrupted" in stdout.splitlines()[-1]
    leftovers = [p.name for p in out.iterdir() if not p.name.endswith(".dcm") or p.name.startswith(".")]
    assert leftovers == []
    finished = sorted(out.iterdir())
    assert len(finished) < 8
    assert all(validate_file(p).ok for p in finished)

    rerun = run("batch", manifest, "--output", out, "--jobs", "2")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{8 - len(finished)} written, {len(finished)} skipped, 0 failed" in rerun.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(f"reg-{n}.dcm" for n in range(8))
