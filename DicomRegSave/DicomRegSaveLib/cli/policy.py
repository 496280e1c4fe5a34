"""How every ``dicomregsave`` command ends: exit statuses, error paragraphs, notes, failure reports.

Exit status: 0 success, 1 an error explained in one paragraph on stderr (also what the system
refuses: a read-only folder, a full disk, a missing permission), 2 wrong usage (a malformed option
value is named with its option), 130 interrupted (Ctrl-C; nothing partial is left, see
:mod:`interrupts`), 141 when the reader of the output has gone (``| head``), quietly.
With ``--json PATH`` a failed command still writes a report, so that scripts always get one.
What the libraries warned about is shown as notes after a success; after an error the message says it.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from DicomRegSaveLib import interrupts
from DicomRegSaveLib.cli.parser import EXIT_CLOSED_PIPE, EXIT_ERROR, EXIT_INTERRUPTED
from DicomRegSaveLib.errors import DicomRegSaveError, OutputExistsError
from DicomRegSaveLib.output import recording_completed

__all__ = ["run_command"]


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse `argv` with `parser` and run the chosen command (``args.run``) under the error policy;
    return the exit status."""
    with interrupts.installed(), recording_completed() as completed:
        args = parser.parse_args(argv)
        try:
            return _run(parser, args)
        except KeyboardInterrupt:  # also one that came while an error was being reported
            left = _left_after_interrupt(completed, getattr(args, "json", None))
            print(f"dicomregsave {args.command}: interrupted; {left}", file=sys.stderr)
            _failure_report(args, f"Interrupted; {left}")
            return EXIT_INTERRUPTED


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    notes = _Notes()
    logging.getLogger().addHandler(notes)
    try:
        interrupts.allow()
        _check_report_path(args)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            status = args.run(args)
            sys.stdout.flush()  # a closed pipe is found here, not by Python at exit
        for note in dict.fromkeys([*notes.notes, *(str(w.message) for w in caught)]):
            print(f"dicomregsave {args.command}: note: {_paragraph(note)}", file=sys.stderr)
        return status
    except BrokenPipeError:
        # what is still buffered for the gone reader is dropped, so that Python's exit is quiet too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_CLOSED_PIPE
    except argparse.ArgumentTypeError as error:
        _failure_report(args, str(error))
        parser.error(str(error))
    except DicomRegSaveError as error:
        message = _in_command_terms(args, error)
        print(_paragraph(f"dicomregsave {args.command}: error: {message}"), file=sys.stderr)
        _failure_report(args, message)
        return EXIT_ERROR
    except OSError as error:
        message = _system_refusal(error)
        print(_paragraph(f"dicomregsave {args.command}: error: {message}"), file=sys.stderr)
        _failure_report(args, message)
        return EXIT_ERROR
    except Exception as error:  # the last resort: a message, not only a traceback
        message = (
            f"unexpected error {type(error).__name__}: {error}. "
            "This is a bug in dicomregsave; please report it with the command line you used."
        )
        print(_paragraph(f"dicomregsave {args.command}: {message}"), file=sys.stderr)
        _failure_report(args, message)
        return EXIT_ERROR
    finally:
        logging.getLogger().removeHandler(notes)


def _left_after_interrupt(completed: Sequence[Path], report: str | None) -> str:
    """What an interrupted command has left: nothing partial, the outputs it had completed before,
    and the JSON report of the interruption (``--json PATH``). A file put in place more than once (a
    batch's state file) is named once."""
    left = (
        f"{', '.join(map(str, dict.fromkeys(completed)))} complete, nothing else was written"
        if completed
        else "nothing was written"
    )
    if report is not None and report != "-":
        left += f" but the JSON report {report}"
    return f"{left}."


#: What to do when the system refuses, by errno.
_REMEDIES = {
    errno.EACCES: "Check the permissions of that file or folder, or choose another one.",
    errno.EPERM: "Check the permissions of that file or folder, or choose another one.",
    errno.EROFS: "The file system is read-only: choose a folder you can write to.",
    errno.ENOSPC: "The disk is full: free some space or choose another folder.",
    errno.EDQUOT: "Your disk quota is used up: free some space or choose another folder.",
    errno.ENOENT: "Check the path.",
    errno.ENOTDIR: "Check the path: a part of it is a file, not a folder.",
    errno.EISDIR: "Give a file, not a folder.",
}


def _system_refusal(error: OSError) -> str:
    """What the system refused, where, and what to do, for an OSError that reached the command."""
    where = f" ({error.filename})" if error.filename else ""
    what = error.strerror or str(error)
    return f"{what}{where}. " + _REMEDIES.get(error.errno, "Check the path, its permissions and the free space.")


def _in_command_terms(args: argparse.Namespace, error: DicomRegSaveError) -> str:
    """The engine's message, with the command's own way to allow what it refused."""
    if isinstance(error, OutputExistsError):
        remedy = ", or add --force to replace it." if hasattr(args, "force") else "."
        return f"{error.path} exists already. Choose another name{remedy}"
    return str(error)


def _failure_report(args: argparse.Namespace, message: str) -> None:
    """With --json, the report of a command that failed."""
    if getattr(args, "json", None):
        from DicomRegSaveLib.cli.reports import failure_report, write_report

        try:
            _check_report_path(args)
            write_report(failure_report(args.command, message), args.json)
        except DicomRegSaveError as error:
            print(f"dicomregsave {args.command}: the JSON report was not written either: {error}", file=sys.stderr)


def _paragraph(text: str) -> str:
    """One paragraph: no ANSI escape codes, no blank lines."""
    from DicomRegSaveLib.native_log import strip_escapes

    return "\n".join(line for line in strip_escapes(text).splitlines() if line.strip())


class _Notes(logging.Handler):
    """Collects warnings logged by the engine and its libraries, instead of Python printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.notes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.notes.append(record.getMessage())


def _input_files(args: argparse.Namespace) -> list[Path]:
    """Every file the command reads (folders expanded), which no output may replace."""
    given: list[Path] = []
    for name in ("transform", "reg", "manifest", "fixed", "moving", "images", "paths"):
        value = getattr(args, name, None)
        given.extend(Path(v) for v in (value if isinstance(value, list) else [value] if value else []))
    from DicomRegSaveLib.file_walker import files_under

    return files_under(given)


def _check_report_path(args: argparse.Namespace) -> None:
    """--json never replaces an input (it replaces an older report, so it is written with force). A
    command that sets the default ``create_report_folder`` (``batch``) has the report's folder created."""
    from DicomRegSaveLib.output import check_output_path, create_folder

    destination = getattr(args, "json", None)
    if destination and destination != "-":
        if getattr(args, "create_report_folder", False):
            create_folder(Path(destination).parent)
        check_output_path(destination, force=True, inputs=_input_files(args))
