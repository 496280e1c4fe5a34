"""``dicomregsave batch``: one export per manifest row, in parallel worker processes (:mod:`cli.batch`).

The batch runs :data:`EXPORT_ROW`: the ``export`` command under the command line's error policy,
forked from this process (or ``python -m DicomRegSaveLib.cli export`` where it cannot fork).
"""

from __future__ import annotations

import argparse
import sys
from functools import cache
from pathlib import Path

from DicomRegSaveLib.cli import export_send
from DicomRegSaveLib.cli.batch import RowCommand, RowOutcome, read_manifest, run_batch
from DicomRegSaveLib.cli.batch_state import STATE_FILE_NAME
from DicomRegSaveLib.cli.parser import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    add_json_argument,
    build_parser,
    positive_int,
    text_stream,
)
from DicomRegSaveLib.cli.policy import run_command
from DicomRegSaveLib.output import create_folder

__all__ = ["EXPORT_ROW", "command_batch", "register"]


def register(commands: argparse._SubParsersAction) -> None:
    batch = commands.add_parser(
        "batch",
        help="export many registrations listed in a CSV manifest, in parallel",
        description="Run one export per manifest row (columns transform,fixed,moving[,output] and any export "
        "option with - written _), in parallel worker processes. Each REG written is recorded with the row's "
        f"inputs and options in {STATE_FILE_NAME} in its folder. Running the batch again skips rows whose REG "
        "is up to date, so an interrupted batch is resumed, and redoes rows whose inputs or options changed.",
    )
    batch.add_argument("manifest", type=Path, metavar="MANIFEST.csv")
    batch.add_argument(
        "--output", type=Path, required=True, metavar="DIR", help="folder for the REG files (created if missing)"
    )
    batch.add_argument("--jobs", type=positive_int, default=1, metavar="N", help="rows exported at a time (default 1)")
    batch.add_argument(
        "--force",
        action="store_true",
        help="export every row again, replacing existing REGs (also those this batch did not write)",
    )
    add_json_argument(batch)
    batch.set_defaults(run=command_batch, create_report_folder=True)


@cache
def _export_parser() -> argparse.ArgumentParser:
    """The command line with the export command alone: what a row runs."""
    return build_parser([export_send])


def _export_row(arguments: list[str]) -> int:
    return run_command(_export_parser(), ["export", *arguments])


@cache
def _preload() -> None:
    """Import what an export imports and load the standard's tables, once in this process."""
    from DicomRegSaveLib.cli import reports  # noqa: F401
    from DicomRegSaveLib.export import request  # noqa: F401
    from DicomRegSaveLib.inputs import series, transform_files  # noqa: F401
    from DicomRegSaveLib.reg import tags

    _export_parser()
    tags.load_standard_tables()


#: What each row runs: ``dicomregsave export`` with the row's options.
EXPORT_ROW = RowCommand(_export_row, (sys.executable, "-m", __package__, "export"), _preload)


def command_batch(args: argparse.Namespace) -> int:
    from DicomRegSaveLib.cli.reports import batch_report, write_report

    stream = text_stream(args)
    rows = read_manifest(args.manifest, args.output)
    create_folder(args.output)
    print(f"{len(rows)} row(s) from {args.manifest}, {args.jobs} at a time", file=stream)

    def line(outcome: RowOutcome) -> None:
        text = {
            "written": f"wrote {outcome.output}",
            "redone": f"redone: {outcome.reason}; wrote {outcome.output}",
            "skipped": f"skipped: {outcome.output} is up to date",
        }
        detail = text.get(outcome.status, f"{outcome.status}: {outcome.error}")
        print(f"row {outcome.row}: {detail}", file=stream, flush=True)
        for warning in (outcome.report or {}).get("warnings", []):
            print(f"row {outcome.row}: warning: {warning['message']}", file=stream, flush=True)

    result = run_batch(rows, EXPORT_ROW, jobs=args.jobs, on_outcome=line, force=args.force)
    print(", ".join(f"{n} {s}" for s, n in result.counts.items()) + f" ({len(rows)} row(s))", file=stream)
    if args.json:
        write_report(batch_report(args.manifest, args.output, result), args.json)
    if result.interrupted:
        done = [str(o.row) for o in result.outcomes if o.status in ("written", "redone", "skipped")]
        print(
            "dicomregsave batch: interrupted; "
            + (f"row(s) {', '.join(done)} done, their files complete; " if done else "no row was done; ")
            + "no partial file was left. Run the same command again to do the remaining rows.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_ERROR
