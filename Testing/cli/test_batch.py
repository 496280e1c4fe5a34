"""``dicomregsave batch``: good and bad rows in parallel, the JSON report, resuming, and Ctrl-C.

Rows run in children forked from the batch process on Linux; the ``workers`` parameter also runs the
command-line tests with the subprocess workers used where there is no ``os.fork`` (Windows), by a
launcher that removes ``os.fork`` before running the command.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pydicom
import pytest

from commands import COMMAND, write_manifest
from DicomRegSaveLib import interrupts
from DicomRegSaveLib.cli import batch
from DicomRegSaveLib.cli.batch_command import EXPORT_ROW
from DicomRegSaveLib.cli.batch_state import STATE_FILE_NAME
from DicomRegSaveLib.export import request as export_request
from DicomRegSaveLib.validation.validate import validate_file

#: How each kind of worker is reached from the command line.
LAUNCHERS = {
    "forked": [COMMAND],
    "subprocess": [
        sys.executable,
        "-c",
        "import os, sys; del os.fork; from DicomRegSaveLib.cli.main import main; sys.exit(main())",
    ],
}


def run(*args, workers="forked"):
    return subprocess.run([*LAUNCHERS[workers], *map(str, args)], capture_output=True, text=True, timeout=600)


def rows_for(case, manifest_dir: Path) -> list[dict]:
    """Paths relative to the manifest's folder, as a cohort manifest would have them."""

    def relative(path):
        return str(Path(path).relative_to(manifest_dir))

    good = {
        "transform": relative(case.field_path),
        "fixed": relative(case.fixed_dir),
        "moving": relative(case.moving_dir),
    }
    return [
        dict(
            good, output="first.dcm", series_description="Row one", series_number="11", tag="InstitutionName=Clinic A"
        ),
        dict(
            good, output="", series_description="Row two", series_number="12", identity_item="yes", grid_spacing="8 8 8"
        ),
        dict(good, output="bad-transform.dcm", transform="missing.mha"),
        dict(good, output="bad-tag.dcm", tag="PatientID=SOMEONE ELSE"),
    ]


def vector_grid_data(path: Path) -> bytes:
    dataset = pydicom.dcmread(path)
    return b"".join(
        grid.VectorGridData
        for registration in dataset.DeformableRegistrationSequence
        for grid in registration.get("DeformableRegistrationGridSequence", [])
    )


@pytest.mark.parametrize("workers", LAUNCHERS)
def test_batch_runs_good_rows_reports_bad_ones_and_resumes(case, tmp_path, workers):
    manifest = write_manifest(case.folder.parent / "manifest.csv", rows_for(case, case.folder.parent))
    out = tmp_path / "out"
    out.mkdir()
    result = run("batch", manifest, "--output", out, "--jobs", "2", "--json", tmp_path / "batch.json", workers=workers)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert f"row 1: wrote {out / 'first.dcm'}" in lines and f"row 2: wrote {out / 'row-2.dcm'}" in lines
    assert any(line.startswith("row 3: failed: ") and "missing.mha" in line for line in lines)
    assert any(line.startswith("row 4: failed: ") and "PatientID 'SOMEONE ELSE'" in line for line in lines)
    assert "2 written, 0 redone, 0 skipped, 2 failed, 0 interrupted (4 row(s))" in lines
    assert sorted(p.name for p in out.iterdir()) == [STATE_FILE_NAME, "first.dcm", "row-2.dcm"]

    first = pydicom.dcmread(out / "first.dcm")
    second = pydicom.dcmread(out / "row-2.dcm")
    assert (first.SeriesDescription, first.SeriesNumber, first.InstitutionName) == ("Row one", 11, "Clinic A")
    assert (second.SeriesDescription, second.SeriesNumber) == ("Row two", 12)
    assert len(first.DeformableRegistrationSequence) == 1 and len(second.DeformableRegistrationSequence) == 2
    grid = second.DeformableRegistrationSequence[1].DeformableRegistrationGridSequence[0]
    assert [float(v) for v in grid.GridResolution] == [8.0, 8.0, 8.0]
    assert validate_file(out / "first.dcm").ok and validate_file(out / "row-2.dcm").ok
    single = run(
        "export",
        "--transform",
        case.field_path,
        "--fixed",
        case.fixed_dir,
        "--moving",
        case.moving_dir,
        "--tag",
        "InstitutionName=Clinic A",
        "--output",
        tmp_path / "single.dcm",
    )
    assert single.returncode == 0, single.stderr
    assert vector_grid_data(out / "first.dcm") == vector_grid_data(tmp_path / "single.dcm")
    assert len(vector_grid_data(out / "first.dcm")) == 48 * 48 * 24 * 3 * 4

    report = json.loads((tmp_path / "batch.json").read_text())
    assert (report["report"], report["version"], report["ok"]) == ("batch", 1, False)
    assert report["counts"] == {"written": 2, "redone": 0, "skipped": 0, "failed": 2, "interrupted": 0}
    by_row = {row["row"]: row for row in report["rows"]}
    assert by_row[1]["export"]["sop_instance_uid"] == first.SOPInstanceUID
    assert by_row[2]["export"]["grid"]["spacing_mm"] == [8.0, 8.0, 8.0]
    assert by_row[3]["status"] == "failed" and "missing.mha" in by_row[3]["error"]
    assert [e["message"].split(":")[0] for e in report["errors"]] == ["Row 3", "Row 4"]

    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = run("batch", manifest, "--output", out, "--jobs", "2", workers=workers)
    assert again.returncode == 1
    assert f"row 1: skipped: {out / 'first.dcm'} is up to date" in again.stdout
    assert "0 written, 0 redone, 2 skipped, 2 failed, 0 interrupted" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_an_output_of_the_batch_that_no_longer_validates_is_kept_and_reported(case, tmp_path):
    manifest = write_manifest(case.folder.parent / "one.csv", rows_for(case, case.folder.parent)[:1])
    assert run("batch", manifest, "--output", tmp_path).returncode == 0
    reg = tmp_path / "first.dcm"
    dataset = pydicom.dcmread(reg)
    dataset.Modality = "CT"  # edited since; still the REG the batch wrote (same SOP Instance UID)
    dataset.save_as(reg)
    edited = reg.read_bytes()
    result = run("batch", manifest, "--output", tmp_path)
    assert result.returncode == 1
    [line] = [line for line in result.stdout.splitlines() if line.startswith("row 1:")]
    assert line.startswith(f"row 1: failed: {reg} exists but does not validate (") and "Modality" in line
    assert line.endswith("it was left as it is. Use --force to export this row over it, or remove it.")
    assert reg.read_bytes() == edited


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"transform": "t.mha", "fixed": "f"}], "lacks the column(s) moving"),
        ([{"transform": "t.mha", "fixed": "f", "moving": "m", "colour": "red"}], "not export options: colour"),
        ([{"transform": "t.mha", "fixed": "f", "moving": "m", "force": "yes"}], "not export options: force"),
        ([{"transform": "t.mha", "fixed": "f", "moving": "m", "identity_item": "maybe"}], "takes yes or no"),
        ([{"transform": "t.mha", "fixed": "f", "moving": "m", "output": "a.dcm"}] * 2, "as row 1 does"),
        ([{"transform": "", "fixed": "f", "moving": "m"}], "has no transform"),
    ],
)
def test_a_bad_manifest_is_refused_before_anything_runs(tmp_path, rows, message):
    manifest = write_manifest(tmp_path / "manifest.csv", rows)
    out = tmp_path / "out"
    result = run("batch", manifest, "--output", out)
    assert result.returncode == 1 and message in result.stderr
    assert not out.exists()


def test_a_row_with_more_cells_than_the_header_is_refused(tmp_path):
    """An unquoted comma in a value would otherwise drop the rest of the value silently; empty cells
    after the last column (as spreadsheets may write) lose nothing."""
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("transform,fixed,moving,series_description\nt.mha,f,m,One,,\nt.mha,f,m,Two, edited\n")
    out = tmp_path / "out"
    result = run("batch", manifest, "--output", out)
    assert result.returncode == 1
    assert (
        f"Row 2 (line 3) of {manifest} has 1 filled cell(s) more than the header names columns (edited); a value holding "
        'a comma must be written in double quotes ("Two, edited").'
    ) in result.stderr
    assert not out.exists()


def test_a_row_whose_output_is_a_folder_is_refused_before_anything_runs(case, tmp_path):
    """``export --output`` takes a folder (the REG named by its UID), but a batch must know each row's file
    to skip, redo or record it: a row naming an existing folder is refused with the manifest."""
    inputs = {"transform": str(case.field_path), "fixed": str(case.fixed_dir), "moving": str(case.moving_dir)}
    manifest = write_manifest(tmp_path / "manifest.csv", [dict(inputs, output="p01.dcm"), dict(inputs, output="p02")])
    out = tmp_path / "out"
    (out / "p02").mkdir(parents=True)
    for force in ((), ("--force",)):
        result = run("batch", manifest, "--output", out, *force)
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stderr == (
            f"dicomregsave batch: error: Row 2 (line 3) of {manifest} writes {out / 'p02'}, which is a folder; "
            "give the REG's file name (relative to --output).\n"
        )
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["p02"]


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C as a terminal user's batch gets it. A suite started with SIGINT
    ignored (nohup, a background job, some CI runners) would otherwise pass that on, and Python keeps
    an inherited SIG_IGN instead of raising KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("workers", LAUNCHERS)
def test_ctrl_c_stops_cleanly_and_a_rerun_finishes(case, tmp_path, workers):
    base = rows_for(case, case.folder.parent)[0]
    manifest = write_manifest(
        case.folder.parent / "many.csv",
        [dict(base, output=f"reg-{n}.dcm", tag="", grid_spacing="3 3 3") for n in range(8)],
    )
    out = tmp_path / "out"
    out.mkdir()
    process = subprocess.Popen(
        [*LAUNCHERS[workers], "batch", str(manifest), "--output", str(out), "--jobs", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 120
    while not any(out.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "dicomregsave batch: interrupted; row(s) " in stderr and "done, their files complete" in stderr
    assert "interrupted" in stdout.splitlines()[-1]
    leftovers = [
        p.name for p in out.iterdir() if p.name != STATE_FILE_NAME and (not p.name.endswith(".dcm") or p.name[0] == ".")
    ]
    assert leftovers == []
    finished = sorted(out.glob("*.dcm"))
    assert len(finished) < 8
    assert all(validate_file(p).ok for p in finished)

    rerun = run("batch", manifest, "--output", out, "--jobs", "2", workers=workers)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{8 - len(finished)} written, 0 redone, {len(finished)} skipped, 0 failed" in rerun.stdout
    assert sorted(p.name for p in out.glob("*.dcm")) == sorted(f"reg-{n}.dcm" for n in range(8))


class Escaped(BaseException):
    """An exception that the command's last-resort handler (which catches Exception) lets through."""


def test_a_crashing_row_is_reported_and_the_others_are_written(case, tmp_path, monkeypatch, capfd):
    """Forked rows inherit this process's functions, so a patched export can crash in one row only: killed by
    a signal (as the kernel's out-of-memory killer would), raising an unexpected error, or raising past
    the command's own handlers."""
    export = export_request.run_export_request

    def misbehaving(request, progress):
        if request.output.name == "killed.dcm":
            os.kill(os.getpid(), signal.SIGKILL)
        if request.output.name == "raises.dcm":
            raise RuntimeError("simulated fault")
        if request.output.name == "escapes.dcm":
            raise Escaped("simulated escape")
        return export(request, progress)

    monkeypatch.setattr(export_request, "run_export_request", misbehaving)
    inputs = ["--transform", str(case.field_path), "--fixed", str(case.fixed_dir), "--moving", str(case.moving_dir)]
    names = ["good-1.dcm", "killed.dcm", "raises.dcm", "escapes.dcm", "good-2.dcm"]
    rows = [batch.BatchRow(n, tmp_path / name, inputs) for n, name in enumerate(names, start=1)]
    started = record_workers(monkeypatch)

    result = batch.run_batch(rows, EXPORT_ROW, jobs=2)

    assert started == ["_ForkedCommand"] * 5
    by_name = {o.output.name: o for o in result.outcomes}
    assert [by_name[n].status for n in names] == ["written", "failed", "failed", "failed", "written"]
    assert by_name["killed.dcm"].error == f"the export was ended by signal {int(signal.SIGKILL)} (Killed)"
    assert "unexpected error RuntimeError: simulated fault" in by_name["raises.dcm"].error
    assert by_name["escapes.dcm"].error == "test_batch.Escaped: simulated escape"
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE_NAME, "good-1.dcm", "good-2.dcm"]
    assert all(validate_file(tmp_path / name).ok for name in ("good-1.dcm", "good-2.dcm"))
    assert vector_grid_data(tmp_path / "good-1.dcm") == vector_grid_data(tmp_path / "good-2.dcm")
    assert by_name["good-1.dcm"].report["path"] == str(tmp_path / "good-1.dcm")
    assert capfd.readouterr() == ("", "")  # the rows' output went to their own files only


@pytest.fixture
def python_sigint_handler():
    """Python's own SIGINT handler for the test, whatever the suite was started with (see _default_sigint)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_while_a_worker_starts_is_acted_on_once_it_is_registered(python_sigint_handler):
    registered = []
    with pytest.raises(KeyboardInterrupt), interrupts.installed():
        interrupts.allow()
        with interrupts.held():
            signal.raise_signal(signal.SIGINT)
            registered.append("worker")
    assert registered == ["worker"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def record_workers(monkeypatch) -> list[str]:
    """The kind of each worker the batch starts (its class name), in order."""
    started = []
    start = batch._start_export

    def recording(*args):
        process = start(*args)
        started.append(type(process).__name__)
        return process

    monkeypatch.setattr(batch, "_start_export", recording)
    return started


@pytest.mark.parametrize("condition", ["no fork", "another thread"])
def test_rows_run_in_new_interpreters_without_fork_or_with_threads(case, tmp_path, monkeypatch, condition):
    """Forking a process with another thread would copy the locks that thread holds without the thread."""
    stop = threading.Event()
    if condition == "no fork":
        monkeypatch.delattr(os, "fork")
    else:
        threading.Thread(target=stop.wait, daemon=True).start()
    inputs = ["--transform", str(case.field_path), "--fixed", str(case.fixed_dir), "--moving", str(case.moving_dir)]
    started = record_workers(monkeypatch)
    try:
        result = batch.run_batch([batch.BatchRow(1, tmp_path / "reg.dcm", inputs)], EXPORT_ROW)
    finally:
        stop.set()
    assert started == ["Popen"]
    assert [o.status for o in result.outcomes] == ["written"] and validate_file(tmp_path / "reg.dcm").ok


def test_the_batch_process_loads_what_an_export_needs_and_forks_with_one_thread(case, tmp_path):
    """In a fresh interpreter: after the batch's loading step an export imports nothing more from numpy,
    pydicom, highdicom (on 0.27 its standard tables are modules) or the engine; and a fork leaves the
    process with one thread: numpy's import starts OpenBLAS worker threads, which OpenBLAS's fork
    handler stops before the fork (they come back when a large matrix product needs them)."""
    script = textwrap.dedent(f"""
        import contextlib, io, json, os, sys, threading
        from DicomRegSaveLib.cli.batch_command import EXPORT_ROW
        EXPORT_ROW.preload()
        loaded = set(sys.modules)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            status = EXPORT_ROW.run(["--transform", {str(case.field_path)!r}, "--fixed", {str(case.fixed_dir)!r},
                                     "--moving", {str(case.moving_dir)!r}, "--output", {str(tmp_path / "reg.dcm")!r}])
        tasks_before = len(os.listdir("/proc/self/task"))
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        tasks_after = len(os.listdir("/proc/self/task"))
        os.waitpid(pid, 0)
        print(json.dumps({{"status": status, "imported": sorted(set(sys.modules) - loaded),
                          "python_threads": threading.active_count(), "tasks": [tasks_before, tasks_after]}}))
    """)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr
    found = json.loads(completed.stdout)
    assert found["status"] == 0 and validate_file(tmp_path / "reg.dcm").ok
    heavy = ("numpy", "pydicom", "highdicom", "DicomRegSaveLib")
    assert [name for name in found["imported"] if name.split(".")[0] in heavy] == []
    assert found["python_threads"] == 1
    assert found["tasks"][1] == 1, found["tasks"]
