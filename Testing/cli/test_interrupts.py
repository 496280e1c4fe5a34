"""Ctrl-C at any moment of a command (issue 16, item 3): exit 130 with "interrupted", nothing partial
left, never a traceback, a crash or an ImportError reported as a bug.

Each command is started several times at once, as a terminal user's shell starts it (SIGINT at its
default disposition), and each run gets SIGINT at its own moment after its start (and after
Python's own start-up): in the first second the command is still importing numpy, pydicom,
highdicom, VTK and Slicer's classes.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from commands import COMMAND, export_demo
from DicomRegSaveLib import interrupts
from DicomRegSaveLib.cli import batch, reports
from DicomRegSaveLib.cli.batch_command import EXPORT_ROW
from DicomRegSaveLib.cli.batch_state import STATE_FILE_NAME
from DicomRegSaveLib.cli.main import main
from DicomRegSaveLib.export import request as export_request
from DicomRegSaveLib.inputs.sampledata import make_demo_case
from DicomRegSaveLib.reg import reader
from DicomRegSaveLib.validation import validate as validate_module
from DicomRegSaveLib.validation.validate import validate_file

#: Seconds after the start at which the runs of one command get SIGINT.
MOMENTS_S = (0.1, 0.3, 0.6, 1.0, 2.0)


#: CPU seconds a command has used when Python's own start-up is surely over (about 0.025 s: the
#: interpreter, site, and the few lines before the command's :func:`main` runs, where a Ctrl-C is
#: Python's and not yet the command's). Under load that takes longer than the first moment.
STARTED_CPU_S = 0.06


def cpu_seconds(pid: int) -> float:
    """The CPU time a running process has used (user and system), 0 once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _default_sigint() -> None:
    """In the child before exec: SIGINT as a terminal's shell leaves it, whatever the suite was started with."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [COMMAND, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


@dataclass
class Run:
    moment_s: float
    folder: Path
    returncode: int
    stdout: str
    stderr: str


def interrupted_at_moments(
    tmp_path: Path, arguments: Callable[[Path], list], moments_s: tuple[float, ...] = MOMENTS_S
) -> list[Run]:
    """Start the command of `arguments(folder)` once per moment, each writing into an empty folder of
    its own, and send each run SIGINT at its moment."""
    folders = [tmp_path / f"at-{moment_s}s" for moment_s in moments_s]
    for folder in folders:
        folder.mkdir(parents=True)
    processes = [(time.monotonic(), start(*arguments(folder))) for folder in folders]
    for moment_s, (started, process) in zip(moments_s, processes, strict=True):
        while process.poll() is None and cpu_seconds(process.pid) < STARTED_CPU_S:
            time.sleep(0.002)
        time.sleep(max(0.0, started + moment_s - time.monotonic()))
        process.send_signal(signal.SIGINT)
    runs = []
    for moment_s, folder, (_, process) in zip(moments_s, folders, processes, strict=True):
        stdout, stderr = process.communicate(timeout=120)
        runs.append(Run(moment_s, folder, process.returncode, stdout, stderr))
    return runs


def assert_ended_cleanly(runs: list[Run], complete: Callable[[Path], bool], records: tuple[str, ...] = ()) -> None:
    """Every run ended with 130 (or 0 when it had finished before the signal came) and no traceback;
    an interrupted run left only outputs it names as complete (besides the command's own `records`),
    a finished one a complete output; most runs were really interrupted."""
    for run in runs:
        where = f"SIGINT at {run.moment_s} s: exit {run.returncode}\n{run.stderr}"
        assert run.returncode in (0, 130), where
        assert "Traceback" not in run.stderr and "bug" not in run.stderr, where
        left = sorted(path for path in run.folder.iterdir() if path.name not in records)
        assert all(complete(path) for path in left), where
        if run.returncode == 130:
            assert "interrupted; " in run.stderr, where
            assert all(path.name in run.stdout + run.stderr for path in left), where
        else:
            assert left, where
    assert sum(run.returncode == 130 for run in runs) > len(runs) // 2, [(r.moment_s, r.returncode) for r in runs]


def demo_arguments(case, output: Path) -> list:
    return ["--transform", case.field_path, "--fixed", case.fixed_dir, "--moving", case.moving_dir, "--output", output]


def test_ctrl_c_at_any_moment_of_export(case, tmp_path):
    runs = interrupted_at_moments(tmp_path, lambda folder: ["export", *demo_arguments(case, folder / "reg.dcm")])
    assert_ended_cleanly(runs, lambda path: path.name == "reg.dcm" and validate_file(path).ok)
    assert all(r.stderr.startswith("dicomregsave export: interrupted; ") for r in runs if r.returncode), runs


@pytest.fixture(scope="module")
def reg(case, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reg") / "reg.dcm"
    result = export_demo(case, path)
    assert result.returncode == 0, result.stderr
    return path


def test_ctrl_c_at_any_moment_of_to_transform(reg, tmp_path):
    reference = tmp_path / "reference.nrrd"
    finished = start("to-transform", reg, reference)
    assert finished.wait(timeout=120) == 0
    runs = interrupted_at_moments(tmp_path / "runs", lambda folder: ["to-transform", reg, folder / "field.nrrd"])
    assert_ended_cleanly(runs, lambda path: path.read_bytes() == reference.read_bytes())


def test_ctrl_c_at_any_moment_of_qa(case, reg, tmp_path):
    def complete_report(path: Path) -> bool:
        names = sorted(p.name for p in path.iterdir())
        return "index.html" in names and (path / "index.html").read_text().endswith("</html>\n") and len(names) > 1

    runs = interrupted_at_moments(
        tmp_path,
        lambda folder: ["qa", reg, "--fixed", case.fixed_dir, "--moving", case.moving_dir, "--report", folder / "qa"],
    )
    assert_ended_cleanly(runs, complete_report)


def test_ctrl_c_at_any_moment_of_batch(case, tmp_path):
    manifest = tmp_path / "manifest.csv"
    inputs = f"{case.field_path},{case.fixed_dir},{case.moving_dir}"
    manifest.write_text("transform,fixed,moving,output\n" + "".join(f"{inputs},row-{n}.dcm\n" for n in range(4)))
    runs = interrupted_at_moments(
        tmp_path / "runs", lambda folder: ["batch", manifest, "--output", folder, "--jobs", "2"]
    )
    assert_ended_cleanly(
        runs, lambda path: path.name.startswith("row-") and validate_file(path).ok, records=(STATE_FILE_NAME,)
    )
    for run in runs:
        written = sorted(path.name for path in run.folder.glob("row-*.dcm"))
        state = run.folder / STATE_FILE_NAME
        assert sorted(json.loads(state.read_text())["outputs"]) == written if written else not state.exists()
        rows = [line for line in run.stdout.splitlines() if line.startswith("row ")]
        assert all(": wrote " in line or ": interrupted: " in line for line in rows), run.stdout
        assert "Traceback" not in run.stdout and "bug" not in run.stdout, run.stdout


def test_ctrl_c_at_any_moment_of_demo(tmp_path):
    def complete(path: Path) -> bool:
        regs = [p for p in path.parent.iterdir() if p.suffix == ".dcm"]
        return len(regs) == 1 and validate_file(regs[0]).ok

    runs = interrupted_at_moments(tmp_path, lambda folder: ["demo", "--output", folder], (0.3, 1.0, 2.0))
    assert_ended_cleanly(runs, complete)


@pytest.fixture(scope="module")
def large_case(tmp_path_factory):
    """The demo's large phantom: a 128 x 128 x 64 field, whose REG takes a while to write."""
    return make_demo_case(tmp_path_factory.mktemp("large") / "case", size="large")


def writing_into(process: subprocess.Popen, folder: Path) -> bool:
    """True once `process` has an output file in `folder` open and has written into it: the unnamed
    file of ``O_TMPFILE`` (seen through /proc) or a named temporary file."""
    descriptors = Path(f"/proc/{process.pid}/fd")
    try:
        for descriptor in descriptors.iterdir():
            if os.readlink(descriptor).startswith(f"{folder}/") and descriptor.stat().st_size > 0:
                return True
    except OSError:
        return False
    return any(path.stat().st_size > 0 for path in folder.iterdir())


def test_ctrl_c_while_a_large_field_is_written(large_case, tmp_path):
    process = start("export", *demo_arguments(large_case, tmp_path / "large.dcm"))
    while process.poll() is None and not writing_into(process, tmp_path):
        time.sleep(0.002)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr == "dicomregsave export: interrupted; nothing was written.\n"
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_while_a_peer_does_not_answer(case):
    """pynetdicom's network thread would keep the process alive until the time-out (here 600 s)."""
    with socket.socket() as silent_peer:
        silent_peer.bind(("127.0.0.1", 0))
        silent_peer.listen()
        port = silent_peer.getsockname()[1]
        process = start("send", case.fixed_dir, "--to", f"PACS@127.0.0.1:{port}", "--timeout", "600")
        connection, _ = silent_peer.accept()
        with connection:
            connection.recv(1)  # the association request has begun
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.endswith("dicomregsave send: interrupted; nothing was written.\n"), stderr
    assert "Traceback" not in stderr


@pytest.fixture
def python_sigint_handler():
    """Python's own SIGINT handler for the test, whatever the suite was started with."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_during_an_import_is_raised_once_the_module_is_complete(python_sigint_handler, tmp_path, monkeypatch):
    """A module interrupted half way cannot be imported again (extension modules load once per
    process): the interrupt waits for the import's end and comes in the importing code."""
    (tmp_path / "interrupted_module.py").write_text(
        "import signal\nsignal.raise_signal(signal.SIGINT)\nparts = [n for n in range(100000)]\nCOMPLETE = True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reached = []
    with pytest.raises(KeyboardInterrupt), interrupts.installed():
        interrupts.allow()
        import interrupted_module

        reached.append(interrupted_module.COMPLETE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reached.append("waiting")
    assert reached[0] is True and reached[-1] == "waiting"
    assert sys.modules["interrupted_module"].COMPLETE
    monkeypatch.delitem(sys.modules, "interrupted_module")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_before_the_command_is_ready_is_acted_on_when_it_is(python_sigint_handler):
    steps = []
    with pytest.raises(KeyboardInterrupt), interrupts.installed():
        signal.raise_signal(signal.SIGINT)
        steps.append("parsed")
        interrupts.allow()
        steps.append("ran")
    assert steps == ["parsed"]


def test_the_clean_up_after_a_ctrl_c_is_not_cut_short_by_another(python_sigint_handler):
    steps = []
    with pytest.raises(KeyboardInterrupt), interrupts.installed():
        interrupts.allow()
        try:
            signal.raise_signal(signal.SIGINT)
            steps.append("not reached")
        finally:
            signal.raise_signal(signal.SIGINT)
            steps.append("cleaned up")
    assert steps == ["cleaned up"]


def batch_rows(case, folder: Path, count: int) -> list[batch.BatchRow]:
    inputs = ["--transform", str(case.field_path), "--fixed", str(case.fixed_dir), "--moving", str(case.moving_dir)]
    return [batch.BatchRow(n, folder / f"row-{n}.dcm", list(inputs)) for n in range(1, count + 1)]


def test_a_ctrl_c_while_the_batch_checks_an_existing_reg_reports_that_row_interrupted(
    case, tmp_path, python_sigint_handler, monkeypatch
):
    """Checking a row's existing REG (its inputs' files, validating it) takes a while on a large series;
    a Ctrl-C meanwhile leaves that row in the outcomes, as not started."""
    rows = batch_rows(case, tmp_path, 2)
    assert [o.status for o in batch.run_batch(rows, EXPORT_ROW).outcomes] == ["written", "written"]

    def interrupted_while_validating(path, *args, **kwargs):
        signal.raise_signal(signal.SIGINT)
        return validate_file(path, *args, **kwargs)

    monkeypatch.setattr(validate_module, "validate_file", interrupted_while_validating)
    with interrupts.installed():
        interrupts.allow()
        again = batch.run_batch(rows, EXPORT_ROW)

    assert again.interrupted
    assert [(o.row, o.status, o.error) for o in again.outcomes] == [
        (n, "interrupted", "not started: the batch was interrupted") for n in (1, 2)
    ]


def test_a_ctrl_c_while_the_batch_collects_a_finished_row_keeps_its_outcome_and_record(
    case, tmp_path, python_sigint_handler, monkeypatch
):
    """A row whose export has ended is taken off the running ones and its outcome read: a Ctrl-C in
    between must not lose the row, nor leave its REG unrecorded (a rerun would refuse it)."""
    outcome = batch._Worker.outcome
    signalled = []

    def interrupted_while_read(worker, *args, **kwargs):
        if not signalled:
            signalled.append(worker.row.number)
            signal.raise_signal(signal.SIGINT)
        return outcome(worker, *args, **kwargs)

    monkeypatch.setattr(batch._Worker, "outcome", interrupted_while_read)
    with interrupts.installed():
        interrupts.allow()
        result = batch.run_batch(batch_rows(case, tmp_path, 2), EXPORT_ROW)

    assert signalled == [1] and result.interrupted
    assert [(o.row, o.status) for o in result.outcomes] == [(1, "written"), (2, "interrupted")]
    assert sorted(json.loads((tmp_path / STATE_FILE_NAME).read_text())["outputs"]) == ["row-1.dcm"]


def test_an_interrupted_batch_counts_the_rows_it_redid_as_done(
    case, tmp_path, python_sigint_handler, monkeypatch, capsys
):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("transform,fixed,moving\n" + f"{case.field_path},{case.fixed_dir},{case.moving_dir}\n" * 2)
    out = tmp_path / "regs"
    assert main(["batch", str(manifest), "--output", str(out)]) == 0
    fingerprint = batch.row_fingerprint

    def interrupted_at_row_2(arguments):
        if arguments[-1] == "2/2":  # the row's Series Number slot
            signal.raise_signal(signal.SIGINT)
        return fingerprint(arguments)

    monkeypatch.setattr(batch, "row_fingerprint", interrupted_at_row_2)
    capsys.readouterr()

    assert main(["batch", str(manifest), "--output", str(out), "--force"]) == 130

    printed = capsys.readouterr()
    assert printed.out.splitlines()[1:] == [
        f"row 1: redone: forced (--force); wrote {out / 'row-1.dcm'}",
        "row 2: interrupted: not started: the batch was interrupted",
        "0 written, 1 redone, 0 skipped, 0 failed, 1 interrupted (2 row(s))",
    ]
    assert printed.err == (
        "dicomregsave batch: interrupted; row(s) 1 done, their files complete; no partial file was left. "
        "Run the same command again to do the remaining rows.\n"
    )


def test_a_demo_interrupted_after_its_export_names_everything_it_leaves(
    tmp_path, python_sigint_handler, monkeypatch, capsys
):
    """Once the REG is complete the demo keeps it and its inputs (the phantom series and field): the
    message names both. Interrupted before, it removes the folders it made, also the missing parents."""
    read_registration = reader.read_registration

    def interrupted_while_reading_back(path, *args, **kwargs):
        signal.raise_signal(signal.SIGINT)
        return read_registration(path, *args, **kwargs)

    monkeypatch.setattr(reader, "read_registration", interrupted_while_reading_back)
    folder = tmp_path / "demo"
    assert main(["demo", "--output", str(folder)]) == 130
    [reg] = folder.glob("*.dcm")
    assert sorted(p.name for p in folder.iterdir()) == sorted([reg.name, "input"])
    assert capsys.readouterr().err == (
        f"dicomregsave demo: interrupted; {reg}, {folder / 'input'} complete, nothing else was written.\n"
    )

    export = export_request.run_export_request

    def interrupted_while_exporting(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)
        return export(*args, **kwargs)

    monkeypatch.setattr(export_request, "run_export_request", interrupted_while_exporting)
    assert main(["demo", "--output", str(tmp_path / "new" / "parents" / "demo")]) == 130
    assert capsys.readouterr().err == "dicomregsave demo: interrupted; nothing was written.\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_a_batch_interrupted_while_its_report_is_written_names_the_regs_it_left(
    case, tmp_path, python_sigint_handler, monkeypatch, capsys
):
    """After the last row the batch writes its JSON report: a Ctrl-C then ends the command as any other,
    and its message names the REGs the rows wrote (each file once), not only the batch's state file."""
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("transform,fixed,moving\n" + f"{case.field_path},{case.fixed_dir},{case.moving_dir}\n" * 2)
    out = tmp_path / "regs"
    write_report = reports.write_report

    def interrupted_while_writing(report, destination):
        if report["report"] == "batch" and "rows" in report:
            signal.raise_signal(signal.SIGINT)
        write_report(report, destination)

    monkeypatch.setattr(reports, "write_report", interrupted_while_writing)
    status = main(["batch", str(manifest), "--output", str(out), "--json", str(tmp_path / "batch.json")])

    assert status == 130
    state = out / STATE_FILE_NAME
    assert capsys.readouterr().err == (
        f"dicomregsave batch: interrupted; {out / 'row-1.dcm'}, {state}, {out / 'row-2.dcm'} complete, nothing "
        f"else was written but the JSON report {tmp_path / 'batch.json'}.\n"
    )
    assert sorted(p.name for p in out.iterdir()) == [STATE_FILE_NAME, "row-1.dcm", "row-2.dcm"]
