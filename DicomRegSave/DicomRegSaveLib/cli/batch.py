"""Batch runs: many exports from a CSV manifest, in parallel worker processes.

Each manifest row becomes one export command (:class:`RowCommand`, given by the caller: the
``batch`` command gives ``dicomregsave export``) in a process of its own, so a row that fails (or
crashes) never affects the others. On Linux that process is forked from the batch process, which
has loaded what the command uses once (``RowCommand.preload``); elsewhere it is a new Python
interpreter. The manifest's columns are the export's options (:mod:`export.option_table`).

Each REG the batch writes is recorded with the row's inputs and options (:mod:`cli.batch_state`). On a
rerun a row whose REG exists, validates and was made from the same inputs and options is skipped, which
makes an interrupted batch resumable; a row whose inputs or options changed is exported again over its
REG; an existing file the batch did not record writing is left alone and the row fails, unless
``force`` redoes every row. On Ctrl-C the running exports are interrupted (each removes
its temporary file; a file is either complete or absent) and no further row is started. A row without a
Series Number gets a slot of its own (``--series-number-slot K/N``), so that rows running at once never
choose the same automatic number.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from DicomRegSaveLib import interrupts
from DicomRegSaveLib.cli.batch_state import BatchState, Fingerprint, changes, row_fingerprint
from DicomRegSaveLib.errors import DicomRegSaveError, ManifestError
from DicomRegSaveLib.export.option_table import (
    BY_NAME,
    EXPORT_OPTIONS,
    MANIFEST_COLUMNS,
    REQUIRED_COLUMNS,
    ExportOption,
)
from DicomRegSaveLib.output import record_completed

__all__ = ["STATUSES", "BatchResult", "BatchRow", "RowCommand", "RowOutcome", "read_manifest", "run_batch"]

#: Export options a manifest may not set: the batch decides where reports go, which files it replaces and
#: each row's Series Number slot.
REFUSED_COLUMNS = tuple(o.name for o in EXPORT_OPTIONS if o.flag is not None and not o.in_manifest)
#: Column values that switch a flag option on / off.
TRUE_WORDS = frozenset({"1", "true", "yes", "y", "x", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "n", "off"})
#: Row statuses, in the order summaries list them.
STATUSES = ("written", "redone", "skipped", "failed", "interrupted")
#: Seconds between checks of the running workers.
_POLL_S = 0.05


@dataclass(frozen=True)
class RowCommand:
    """What a batch runs for each row, given the row's arguments (export options as on the command line).

    Parameters
    ----------
    run:
        Runs the command in a child forked from the batch process: arguments -> exit status. Its
        standard output must be the row's JSON report (``--json -`` is added to the arguments).
    program:
        The same command as a new process, for where the batch does not fork: the row's arguments
        are appended.
    preload:
        Imports what `run` uses (and loads its tables) in the batch process, before the first fork,
        so that no row pays for it again; called before every fork, so it must be cheap the second time.
    """

    run: Callable[[list[str]], int]
    program: Sequence[str]
    preload: Callable[[], None]


@dataclass
class BatchRow:
    """One manifest row as the export it asks for."""

    number: int
    output: Path
    arguments: list[str]


@dataclass
class RowOutcome:
    """What happened to one row: ``status`` is one of :data:`STATUSES`; ``reason`` says why a row was
    redone (``options changed (series_description)``)."""

    row: int
    output: Path
    status: str
    error: str | None = None
    report: dict[str, Any] | None = None
    seconds: float = 0.0
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "output": str(self.output),
            "status": self.status,
            "reason": self.reason,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "export": self.report,
        }


@dataclass
class BatchResult:
    """Every row's outcome, in manifest order; ``interrupted`` after Ctrl-C."""

    outcomes: list[RowOutcome] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        """True when every row was written, redone or skipped and the batch ran to its end."""
        return not self.interrupted and all(o.status in ("written", "redone", "skipped") for o in self.outcomes)

    @property
    def counts(self) -> dict[str, int]:
        """Status -> number of rows (:data:`STATUSES`)."""
        return {status: sum(o.status == status for o in self.outcomes) for status in STATUSES}


def read_manifest(path: str | os.PathLike, output_dir: str | os.PathLike) -> list[BatchRow]:
    """The rows of a CSV manifest (with a header) as export arguments.

    Columns: ``transform``, ``fixed``, ``moving`` (required; paths relative to the manifest's
    folder), ``output`` (optional; relative to `output_dir`, which need not exist yet; default
    ``row-N.dcm``) and any export option named by its long form with ``-`` written ``_``
    (:data:`option_table.MANIFEST_COLUMNS`).
    Row K of N without a ``series_number`` gets ``--series-number-slot K/N``.

    Raises
    ------
    ManifestError
        If the file cannot be read, a required column is missing, a column is unknown or refused,
        a row has more cells than the header, a required cell is empty, a switch holds something
        other than yes/no, a row's output is a folder, or two rows write the same output.
    """
    manifest = Path(path)
    output_dir = Path(output_dir)
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as stream:
            reader = csv.DictReader(stream)
            header = [name.strip() for name in (reader.fieldnames or [])]
            records = [(reader.line_num, record) for record in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ManifestError(f"Cannot read the manifest {manifest}: {error}.") from error
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ManifestError(
            f"The manifest {manifest} lacks the column(s) {', '.join(missing)}; its first line must name "
            f"the columns, at least {','.join(REQUIRED_COLUMNS)}."
        )
    unknown = [c for c in header if c not in MANIFEST_COLUMNS]
    if unknown:
        raise ManifestError(
            f"The manifest {manifest} has column(s) that are not export options: {', '.join(unknown)}. "
            "Columns are transform, fixed, moving, output and the long export options with - written _ "
            f"(e.g. series_description); {', '.join(REFUSED_COLUMNS)} are decided by the batch."
        )
    rows: list[BatchRow] = []
    outputs: dict[Path, int] = {}
    for number, (line, record) in enumerate(records, start=1):
        cells = {key.strip(): (value or "").strip() for key, value in record.items() if key is not None}
        where = f"Row {number} (line {line}) of {manifest}"
        extra = [cell.strip() for cell in record.get(None) or [] if cell.strip()]
        if extra:
            raise ManifestError(
                f"{where} has {len(extra)} filled cell(s) more than the header names columns ({', '.join(extra)}); "
                'a value holding a comma must be written in double quotes ("Two, edited").'
            )
        arguments: list[str] = []
        for column in REQUIRED_COLUMNS:
            if not cells.get(column):
                raise ManifestError(f"{where} has no {column}.")
            arguments += [f"--{column}", str(manifest.parent / cells[column])]
        for column in header:
            if column in (*REQUIRED_COLUMNS, "output"):
                continue
            arguments += _option_arguments(MANIFEST_COLUMNS[column], cells.get(column, ""), where)
        output = output_dir / (cells.get("output") or f"row-{number}.dcm")
        if output.is_dir():
            # export --output takes a folder, but the batch skips, redoes and records each row by its file
            raise ManifestError(
                f"{where} writes {output}, which is a folder; give the REG's file name (relative to --output)."
            )
        if output.resolve() in outputs:
            raise ManifestError(
                f"{where} writes {output}, as row {outputs[output.resolve()]} does; give each row its own output."
            )
        outputs[output.resolve()] = number
        rows.append(BatchRow(number, output, arguments))
    if not rows:
        raise ManifestError(f"The manifest {manifest} has a header but no rows.")
    # Rows run at once and each sees only the finished files of the others: a slot of its own keeps their
    # automatic Series Numbers apart (export.pipeline.free_series_number).
    slot = BY_NAME["series_number_slot"].flag
    for row in rows:
        if BY_NAME["series_number"].flag not in row.arguments:
            row.arguments += [slot, f"{row.number}/{len(rows)}"]
    return rows


def _option_arguments(option: ExportOption, cell: str, where: str) -> list[str]:
    if option.kind == "switch":
        word = cell.lower()
        if word not in TRUE_WORDS | FALSE_WORDS:
            raise ManifestError(f"{where}: the column {option.column} takes yes or no, not {cell!r}.")
        return [option.flag] if word in TRUE_WORDS else []
    if not cell:
        return []
    if option.kind == "values":
        return [option.flag, *cell.split()]
    if option.kind == "repeat":
        return [part for value in cell.split(";") if value.strip() for part in (option.flag, value.strip())]
    return [option.flag, cell]


def run_batch(
    rows: Sequence[BatchRow],
    command: RowCommand,
    *,
    jobs: int = 1,
    on_outcome: Callable[[RowOutcome], None] | None = None,
    force: bool = False,
) -> BatchResult:
    """Run `command` for each row, at most `jobs` at a time, each in its own worker process.

    Workers are forked from this process where that is safe (see :func:`_start_export`), else
    they are new interpreters. Each REG written is recorded in the state file of its folder
    (:class:`batch_state.BatchState`). A row whose output exists is skipped when the record matches
    its inputs and options and the file validates, and redone (the file replaced) when they
    changed or its ``send`` did not store it; it fails without touching the file when the file does not validate or the batch did not
    record writing it. With `force` every row is redone. A KeyboardInterrupt (Ctrl-C) interrupts the
    running exports, starts no further row and returns with ``interrupted`` set.

    Raises
    ------
    OutputError
        If a state file exists but cannot be read (before any row runs).
    """
    state = BatchState(row.output for row in rows)
    result = BatchResult()
    waiting = list(rows)
    running: list[_Worker] = []

    def finish(outcome: RowOutcome) -> None:
        result.outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)

    def finish_worker(worker: _Worker, interrupted: bool = False) -> None:
        """Called with Ctrl-C held back, or after it (further ones are ignored then)."""
        outcome = worker.outcome(interrupted)
        # also a REG put in place just before an interrupt or a failed --send: the row's file, complete
        if _file_identity(worker.row.output) not in (None, worker.output_before):
            record_completed(worker.row.output)  # put in place by the row's process: for the command's messages
            outcome = _recorded(outcome, state, worker.fingerprint)
        finish(outcome)

    try:
        while waiting or running:
            while waiting and len(running) < max(1, jobs):
                # the row stays waiting while it is checked (which takes a while for a large series), so
                # that an interrupt meanwhile reports it as not started
                row = waiting[0]
                fingerprint = row_fingerprint(row.arguments)
                reason = None
                if row.output.exists():
                    existing = "forced (--force)" if force else _existing(row, state, fingerprint)
                    if isinstance(existing, RowOutcome):
                        with interrupts.held():
                            waiting.pop(0)
                            finish(existing)
                        continue
                    reason = existing
                # a worker that has started is registered (and so gets the interrupt) before the batch reacts
                with interrupts.held():
                    waiting.pop(0)
                    running.append(_Worker(row, command, fingerprint, reason))
            for worker in [w for w in running if w.process.poll() is not None]:
                # a row taken off the running ones is finished (its outcome and record) before an interrupt
                with interrupts.held():
                    running.remove(worker)
                    finish_worker(worker)
            time.sleep(_POLL_S)
    except KeyboardInterrupt:
        result.interrupted = True
        for worker in running:
            worker.process.send_signal(signal.SIGINT)
        for worker in running:
            worker.process.wait()
            finish_worker(worker, interrupted=True)
        for row in waiting:
            finish(RowOutcome(row.number, row.output, "interrupted", "not started: the batch was interrupted"))
    result.outcomes.sort(key=lambda o: o.row)
    return result


def _existing(row: BatchRow, state: BatchState, fingerprint: Fingerprint) -> RowOutcome | str:
    """What to do with a row whose output exists: its outcome without running it (skipped, or failed
    with the file left alone), or why to export it again over the file."""
    from DicomRegSaveLib.validation.validate import validate_file

    def left_alone(why: str) -> RowOutcome:
        return RowOutcome(
            row.number,
            row.output,
            "failed",
            f"{row.output} exists but {why}; it was left as it is. Use --force to export this row over it, "
            "or remove it.",
        )

    recorded = state.recorded(row.output)
    if recorded is None:
        return left_alone(f"was not written by this batch (no record of it in {state.path(row.output)})")
    problem = state.identity_problem(row.output, recorded)
    if problem is not None:
        return left_alone(f"is not the REG this batch wrote ({problem})")
    changed = changes(recorded, fingerprint)
    if changed is not None:
        return changed
    if recorded.get("sent") is False:
        return "not sent (sending it failed or was interrupted)"
    report = validate_file(row.output)
    if report.ok:
        return RowOutcome(row.number, row.output, "skipped")
    return left_alone(f"does not validate ({len(report.errors)} error(s), first: {report.errors[0]})")


def _recorded(outcome: RowOutcome, state: BatchState, fingerprint: Fingerprint) -> RowOutcome:
    """`outcome` after recording its REG in the state file (for a row with ``send``, whether the peer stored
    it); failed if that cannot be done, since a rerun would then refuse the REG as not written by the batch."""
    sent = bool(((outcome.report or {}).get("sent") or {}).get("ok")) if "send" in fingerprint["options"] else None
    try:
        state.record(outcome.output, fingerprint, sent)
    except DicomRegSaveError as error:
        outcome.status = "failed"
        outcome.error = (
            f"{outcome.output} was written, but recording it in {state.path(outcome.output)} failed: {error} "
            "A rerun will take it for a REG this batch did not write (use --force then)."
        )
    return outcome


def _file_identity(path: Path) -> tuple[int, ...] | None:
    """What changes when a file is written or replaced (device, inode, size, modification time); ``None``
    if there is no file."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


class _Worker:
    """One row's command, its stdout and stderr in temporary files, in a session of its own so that
    only the batch forwards Ctrl-C to it (exactly once, while it is running)."""

    def __init__(self, row: BatchRow, command: RowCommand, fingerprint: Fingerprint, reason: str | None) -> None:
        self.row = row
        self.fingerprint = fingerprint
        self.reason = reason
        self.output_before = _file_identity(row.output)
        self.started = time.perf_counter()
        self.stdout = tempfile.TemporaryFile()
        self.stderr = tempfile.TemporaryFile()
        replace = ["--force"] if reason is not None else []
        self.process = _start_export(
            command, [*row.arguments, "--output", str(row.output), *replace, "--json", "-"], self.stdout, self.stderr
        )

    def outcome(self, interrupted: bool = False) -> RowOutcome:
        seconds = time.perf_counter() - self.started
        self.stdout.seek(0)
        self.stderr.seek(0)
        out = self.stdout.read().decode("utf-8", "replace")
        err = self.stderr.read().decode("utf-8", "replace").strip()
        self.stdout.close()
        self.stderr.close()
        try:
            report = json.loads(out)
        except json.JSONDecodeError:
            report = None
        code = self.process.returncode
        status = "written" if self.reason is None else "redone"
        if code == 0 and report is not None and report.get("ok"):
            return RowOutcome(self.row.number, self.row.output, status, None, report, seconds, self.reason)
        if interrupted and _file_identity(self.row.output) not in (None, self.output_before):
            # outputs are whole or absent: the interrupt reached the export after its file was in place
            return RowOutcome(self.row.number, self.row.output, status, None, None, seconds, self.reason)
        if report is not None and report.get("errors"):
            error = " ".join(e["message"] for e in report["errors"])
        elif code < 0:
            error = f"the export was ended by signal {-code} ({signal.strsignal(-code)})"
        elif err:
            error = err.splitlines()[-1]
        else:
            error = f"the export exited with status {code}"
        status = "interrupted" if interrupted else "failed"
        export = report if report is not None and report.get("path") else None
        return RowOutcome(self.row.number, self.row.output, status, error, export, seconds, self.reason)


def _start_export(
    command: RowCommand, arguments: list[str], stdout: BinaryIO, stderr: BinaryIO
) -> subprocess.Popen | _ForkedCommand:
    """`command` with `arguments` in a new process writing to `stdout` and `stderr`, in a session of its own.

    On Linux, forked from this process when no other Python thread runs: a forked child gets a
    copy of every lock another thread may hold, but not the thread that would release it (numpy's
    OpenBLAS stops its own threads before a fork and restarts them on demand). The first fork loads
    what the command uses (``command.preload``), so that no row pays for it again. Elsewhere a new
    interpreter runs ``command.program``: Windows has no fork, and on macOS system libraries may run
    threads of their own (Python's multiprocessing does not fork there either).
    """
    if sys.platform == "linux" and hasattr(os, "fork") and threading.active_count() == 1:
        command.preload()
        return _ForkedCommand(command.run, arguments, stdout, stderr)
    return subprocess.Popen(
        [*command.program, *arguments],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )


class _ForkedCommand:
    """``run(arguments)`` in a child forked from this process, seen through the part of
    :class:`subprocess.Popen` the batch uses: ``poll``, ``wait``, ``send_signal``, ``returncode``
    (negative: the signal that ended the child)."""

    def __init__(
        self, run: Callable[[list[str]], int], arguments: list[str], stdout: BinaryIO, stderr: BinaryIO
    ) -> None:
        self.returncode: int | None = None
        sys.stdout.flush()
        sys.stderr.flush()
        # A Ctrl-C typed before the child has left the batch's session would reach it as well as the
        # one the batch forwards: SIGINT is blocked across the fork, and the child drops it.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self.pid = os.fork()
            if self.pid == 0:
                _run_forked(run, arguments, stdout, stderr, mask)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode

    def send_signal(self, number: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, number)


def _run_forked(
    run: Callable[[list[str]], int], arguments: list[str], stdout: BinaryIO, stderr: BinaryIO, mask: set
) -> NoReturn:
    """The child's side of :class:`_ForkedCommand`: what the command as a new process would do,
    ending with ``os._exit`` so that nothing of the batch (atexit, its buffers) runs twice."""
    code = 1
    try:
        for stream, fd in ((stdout, 1), (stderr, 2)):
            os.dup2(stream.fileno(), fd)
        with open(os.devnull, "rb") as nothing:
            os.dup2(nothing.fileno(), 0)
        # the batch's own sys.stdout may be no file descriptor at all (captured by a caller)
        sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # discards a SIGINT pending since the fork
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # a Ctrl-C forwarded from now on is held until the command is ready for it
        with interrupts.installed(ends_process=True):
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            code = run(arguments)
    except SystemExit as leaving:
        code = _exit_status(leaving.code)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
        finally:
            os._exit(code)


def _exit_status(code: object) -> int:
    """The status Python gives ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
