"""``dicomregsave export`` (a REG from a transform file and the two series; optionally sent) and
``dicomregsave send`` (DICOM files to a PACS). The export's flags are the rows of
:data:`export.option_table.EXPORT_OPTIONS`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from DicomRegSaveLib.cli.parser import (
    EXIT_ERROR,
    EXIT_OK,
    add_json_argument,
    add_network_arguments,
    add_option,
    network_defaults,
    peer,
    text_stream,
)
from DicomRegSaveLib.cli.terminal import TerminalProgress
from DicomRegSaveLib.export.option_table import EXPORT_OPTIONS

if TYPE_CHECKING:
    from DicomRegSaveLib.cli.network import FileOutcome, Peer, SendReport
    from DicomRegSaveLib.export.options import ExportOptions
    from DicomRegSaveLib.export.request import ExportOutcome, ExportRequest

__all__ = ["command_export", "command_send", "describe_export", "export_request", "print_warnings", "register"]


def register(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export",
        help="write a REG file from a transform file and the fixed/moving DICOM series",
        description="Write a REG (Spatial Registration for a linear transform, else Deformable Spatial Registration) "
        "that maps the fixed image's frame to the moving image's frame, as a transform file applied to the moving "
        "image in 3D Slicer (ITK resampling convention) does.",
    )
    defaults = network_defaults()
    for option in EXPORT_OPTIONS:
        if option.flag is not None:
            add_option(export, option, defaults.get(option.name))
    export.set_defaults(run=command_export)

    send = commands.add_parser(
        "send",
        help="send DICOM files to a PACS or planning system (C-ECHO, then C-STORE)",
        description="Send DICOM files (folders searched recursively) to a DICOM peer: C-ECHO, then one C-STORE "
        "per file, proposing exactly the SOP classes present. Exit 0 only when every file was stored.",
    )
    send.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="DICOM files or folders")
    send.add_argument(
        "--to", required=True, type=peer, metavar="AET@HOST:PORT", help="the peer's AE title, host and port"
    )
    add_network_arguments(send)
    add_json_argument(send)
    send.set_defaults(run=command_send)


def _grid_spacing(values: Sequence[float] | None) -> tuple[float, float, float] | None:
    if values is None:
        return None
    if len(values) not in (1, 3) or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("--grid-spacing takes 1 or 3 positive numbers (mm)")
    return tuple(values * 3) if len(values) == 1 else tuple(values)


def export_options(args: argparse.Namespace) -> ExportOptions:
    """The ExportOptions of the export's arguments: every option of the table that sets a field, and
    the ``--tag`` values keyed by their keywords (:func:`export.options.options_with_tags`)."""
    from DicomRegSaveLib.export.options import ExportOptions, option_value, options_with_tags

    options = ExportOptions()
    for option in EXPORT_OPTIONS:
        if option.target != "options" or option.flag is None:
            continue
        value = getattr(args, option.name)
        if isinstance(value, str) and not option.choices:
            value = option_value(option.field, value)
        if value is not None:
            setattr(options, option.field, value)
    return options_with_tags(options, dict(args.tag or ()))


def export_request(args: argparse.Namespace) -> ExportRequest:
    """The export the arguments ask for."""
    from DicomRegSaveLib.export.request import ExportRequest

    fields = {option.field: getattr(args, option.name) for option in EXPORT_OPTIONS if option.target == "request"}
    fields["grid_spacing_mm"] = _grid_spacing(fields["grid_spacing_mm"])
    return ExportRequest(**fields, options=export_options(args), force=args.force)


def describe_export(outcome: ExportOutcome) -> str:
    """What was written, in a few lines: both series, the class, grid or matrix, frames, references (the
    warnings go to stderr, :func:`print_warnings`)."""
    from DicomRegSaveLib.export.input_checks import describe_series

    result, fixed = outcome.result, outcome.fixed
    moving = outcome.moving
    item = result.registration.choose_item(moving.frame_of_reference_uid)
    same_study = fixed.study_instance_uid == moving.study_instance_uid
    lines = [
        f"Wrote {result.path}",
        f"  fixed:  {describe_series(fixed)}",
        f"  moving: {describe_series(moving)}",
    ]
    if item.grid is not None:
        grid = item.grid
        lines += [
            f"  Deformable Spatial Registration: grid {'x'.join(map(str, grid.dimensions))} at "
            f"{'/'.join(f'{s:g}' for s in grid.spacing_mm)} mm in the fixed frame {result.registration.frame_of_reference_uid}",
            f"  maps fixed -> moving frame {item.source_frame_of_reference_uid}"
            f" ({len(item.referenced_images)} moving instance(s) referenced)",
            f"  pre matrix: {item.pre_deformation_matrix.matrix_type if item.pre_deformation_matrix else 'identity'},"
            f" post matrix: {item.post_deformation_matrix.matrix_type if item.post_deformation_matrix else 'identity'}",
        ]
    else:
        matrix = item.matrix_registration
        lines += [
            f"  Spatial Registration: {matrix.matrix_type if matrix else 'identity'} matrix from the moving frame "
            f"{item.source_frame_of_reference_uid} to the fixed frame {result.registration.frame_of_reference_uid}",
            f"  ({len(item.referenced_images)} moving instance(s) referenced)",
        ]
    lines.append(
        f"  series number {result.dataset.SeriesNumber} in the fixed image's study {result.dataset.StudyInstanceUID}"
        + ("" if same_study else " (the moving series is in another study)")
    )
    return "\n".join(lines)


def print_warnings(command: str, warnings: Sequence[str]) -> None:
    """Each warning once, as one line on stderr: ``dicomregsave COMMAND: warning: ...``."""
    for warning in dict.fromkeys(warnings):
        print(f"dicomregsave {command}: warning: {' '.join(warning.split())}", file=sys.stderr)


def _send(paths: Sequence[Path], to: Peer, args: argparse.Namespace, stream: TextIO) -> SendReport:
    """Send files and print one line per file; the report."""
    from DicomRegSaveLib.cli.network import send_files

    print(f"Sending to {to} as {args.calling_aet}", file=stream)

    with TerminalProgress() as progress:

        def line(outcome: FileOutcome) -> None:
            progress.close()  # the files' lines follow the search, on the same terminal
            print(f"  {outcome.path}: {outcome.message}", file=stream, flush=True)

        report = send_files(
            paths, to, calling_ae_title=args.calling_aet, timeout_s=args.timeout, on_file=line, progress=progress
        )
    stored = sum(outcome.status is not None and outcome.ok for outcome in report.files)
    wanted = sum(not outcome.skipped for outcome in report.files)
    print(f"{stored} of {wanted} file(s) stored by {to}" + (f"; {report.error}" if report.error else ""), file=stream)
    return report


def command_export(args: argparse.Namespace) -> int:
    from DicomRegSaveLib.cli.reports import export_report, write_report
    from DicomRegSaveLib.export.request import run_export_request

    stream = text_stream(args)
    with TerminalProgress() as progress:
        outcome = run_export_request(export_request(args), progress)
    print(describe_export(outcome), file=stream)
    print_warnings(args.command, outcome.result.report.warnings)
    sent = _send([outcome.result.path], args.send, args, stream) if args.send else None
    if args.json:
        write_report(export_report(outcome, sent), args.json)
    return EXIT_OK if sent is None or sent.ok else EXIT_ERROR


def command_send(args: argparse.Namespace) -> int:
    from DicomRegSaveLib.cli.reports import send_command_report, write_report

    report = _send(args.paths, args.to, args, text_stream(args))
    if args.json:
        write_report(send_command_report(report), args.json)
    return EXIT_OK if report.ok else EXIT_ERROR
