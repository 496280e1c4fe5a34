"""The ``dicomregsave`` command: export, send, batch, to-transform, inspect, validate, conformance, demo.

The command line parses arguments and prints; the work is done by the engine's modules
(:mod:`export_request`, :mod:`network`, :mod:`batch`, :mod:`reports`, ...).
Exit status: 0 success, 1 an error explained in one paragraph on stderr, 2 wrong usage.
With ``--json -`` the JSON report goes to stdout and the text lines to stderr.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from DicomRegSaveLib import __version__
from DicomRegSaveLib.cli.qa_commands import add_qa_commands
from DicomRegSaveLib.errors import DicomRegSaveError, OutputError
from DicomRegSaveLib.export.option_table import REGISTRATION_CLASSES, UNDEFINED_VECTOR_CHOICES
from DicomRegSaveLib.progress import TerminalProgress

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _grid_spacing(values: Sequence[float] | None) -> tuple[float, float, float] | None:
    if values is None:
        return None
    if len(values) not in (1, 3) or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("--grid-spacing takes 1 or 3 positive numbers (mm)")
    return tuple(values * 3) if len(values) == 1 else tuple(values)


def _export_options(args: argparse.Namespace):
    from DicomRegSaveLib.export.pipeline import ExportOptions
    from DicomRegSaveLib.export.request import registration_type_code

    options = ExportOptions()
    chosen = {
        "series_description": args.series_description,
        "series_number": args.series_number,
        "content_label": args.content_label,
        "content_description": args.content_description,
        "content_creator_name": args.content_creator,
        "manufacturer": args.manufacturer,
        "manufacturer_model_name": args.model,
        "device_serial_number": args.device_serial_number,
        "software_versions": [args.software_versions] if args.software_versions else None,
        "comment": args.comment,
        "uid_root": args.uid_root,
        "registration_type": registration_type_code(args.registration_type) if args.registration_type else None,
    }
    for name, value in chosen.items():
        if value is not None:
            setattr(options, name, value)
    options.identity_item = args.identity_item
    options.registration_class = args.registration_class
    options.undefined_vectors = args.nan_vectors
    # --tag values: a backslash separates values, as in DICOM; each is checked when the REG is built
    options.overrides = {keyword: value.split("\\") if "\\" in value else value for keyword, value in args.tag or ()}
    return options


def _export_request(args: argparse.Namespace):
    from DicomRegSaveLib.export.request import ExportRequest

    return ExportRequest(
        args.transform,
        args.fixed,
        args.moving,
        args.output,
        _export_options(args),
        grid_spacing_mm=_grid_spacing(args.grid_spacing),
        axis_aligned=args.axis_aligned,
        fixed_series_uid=args.fixed_series,
        moving_series_uid=args.moving_series,
        tags=dict(args.tag or ()),
        force=args.force,
    )


def _text_stream(args: argparse.Namespace):
    """Where the text lines go: stderr when the JSON report takes stdout."""
    return sys.stderr if getattr(args, "json", None) == "-" else sys.stdout


def _describe_export(outcome) -> str:
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
        f"  series in the fixed image's study {result.dataset.StudyInstanceUID}"
        + ("" if same_study else " (the moving series is in another study)")
    )
    lines += [f"  warning: {w}" for w in result.report.warnings]
    return "\n".join(lines)


def _send(paths, peer_text: str, args: argparse.Namespace, stream):
    """Send files and print one line per file; the report."""
    from DicomRegSaveLib.cli.network import Peer, send_files

    peer = Peer.parse(peer_text)
    print(f"Sending to {peer} as {args.calling_aet}", file=stream)
    report = send_files(
        paths,
        peer,
        calling_ae_title=args.calling_aet,
        timeout_s=args.timeout,
        on_file=lambda outcome: print(f"  {outcome.path}: {outcome.message}", file=stream, flush=True),
    )
    stored = sum(outcome.status is not None and outcome.ok for outcome in report.files)
    wanted = sum(not outcome.skipped for outcome in report.files)
    print(f"{stored} of {wanted} file(s) stored by {peer}" + (f"; {report.error}" if report.error else ""), file=stream)
    return report


def command_export(args: argparse.Namespace) -> int:
    from DicomRegSaveLib.cli.reports import export_report, write_report
    from DicomRegSaveLib.export.request import run_export_request

    stream = _text_stream(args)
    with TerminalProgress() as progress:
        outcome = run_export_request(_export_request(args), progress)
    print(_describe_export(outcome), file=stream)
    sent = _send([outcome.result.path], args.send, args, stream) if args.send else None
    if args.json:
        write_report(export_report(outcome, sent), args.json)
    return EXIT_OK if sent is None or sent.ok else EXIT_ERROR


def command_send(args: argparse.Namespace) -> int:
    from DicomRegSaveLib.cli.reports import send_command_report, write_report

    report = _send(args.paths, args.to, args, _text_stream(args))
    if args.json:
        write_report(send_command_report(report), args.json)
    return EXIT_OK if report.ok else EXIT_ERROR


def command_to_transform(args: argparse.Namespace) -> int:
    from DicomRegSaveLib.cli.reports import to_transform_report, write_report
    from DicomRegSaveLib.inputs.transform_writer import write_transform_file
    from DicomRegSaveLib.output import atomic_output
    from DicomRegSaveLib.reg.reader import read_registration

    registration = read_registration(args.reg)
    item = registration.choose_item(args.source_frame)
    with atomic_output(args.output, args.force, inputs=[args.reg]) as temporary, TerminalProgress() as progress:
        write_transform_file(item, temporary, progress)
    number = registration.items.index(item) + 1
    print(
        f"Wrote {args.output}: the fixed -> moving transform of {args.reg}, item {number} of "
        f"{len(registration.items)} ({item.describe()})",
        file=_text_stream(args),
    )
    if args.json:
        write_report(to_transform_report(args.reg, args.output, registration, item), args.json)
    return EXIT_OK


def command_inspect(args: argparse.Namespace) -> int:
    from DicomRegSaveLib.dicom_file import open_dicom_file
    from DicomRegSaveLib.reg.dump import dump

    dataset, problems = open_dicom_file(args.reg)
    print(dump(dataset, args.filter, args.max_chars))
    for problem in problems:
        print(f"<cannot read further: {problem}>")
    return EXIT_OK


def command_validate(args: argparse.Namespace) -> int:
    from DicomRegSaveLib.cli.reports import validate_report, write_report
    from DicomRegSaveLib.validation.conformance import validate_file

    stream = _text_stream(args)
    report = validate_file(args.reg, args.images or ())
    print(report.text() or "No findings.", file=stream)
    print(f"{args.reg}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)", file=stream)
    if args.json:
        write_report(validate_report(args.reg, report), args.json)
    return EXIT_OK if report.ok else EXIT_ERROR


def _manifest_options(export_parser: argparse.ArgumentParser) -> dict:
    """Manifest column -> how it maps to an export option, read from the export command's parser."""
    from DicomRegSaveLib.cli.batch import OptionSpec

    options = {}
    for action in export_parser._actions:
        flag = next((o for o in action.option_strings if o.startswith("--")), None)
        if flag is None or action.dest == "help":
            continue
        if action.nargs == 0:
            kind = "switch"
        elif isinstance(action, argparse._AppendAction):
            kind = "repeat"
        elif action.nargs in ("+", "*"):
            kind = "values"
        else:
            kind = "value"
        options[flag[2:].replace("-", "_")] = OptionSpec(flag, kind)
    return options


def command_batch(args: argparse.Namespace) -> int:
    from DicomRegSaveLib.cli.batch import read_manifest, run_batch
    from DicomRegSaveLib.cli.reports import batch_report, write_report

    stream = _text_stream(args)
    rows = read_manifest(args.manifest, args.output, _manifest_options(args.export_parser))
    print(f"{len(rows)} row(s) from {args.manifest}, {args.jobs} at a time", file=stream)

    def line(outcome) -> None:
        text = {"written": f"wrote {outcome.output}", "skipped": f"skipped: {outcome.output} exists and validates"}
        detail = text.get(outcome.status, f"{outcome.status}: {outcome.error}")
        print(f"row {outcome.row}: {detail}", file=stream, flush=True)

    result = run_batch(rows, jobs=args.jobs, on_outcome=line)
    print(", ".join(f"{n} {s}" for s, n in result.counts.items()) + f" ({len(rows)} row(s))", file=stream)
    if args.json:
        write_report(batch_report(args.manifest, args.output, result), args.json)
    if result.interrupted:
        print(
            "dicomregsave batch: interrupted; finished files are complete, no partial file was left. "
            "Run the same command again to do the remaining rows.",
            file=sys.stderr,
        )
    return EXIT_OK if result.ok else EXIT_ERROR


def command_conformance(args: argparse.Namespace) -> int:
    from DicomRegSaveLib.cli.conformance_statement import conformance_statement

    print(conformance_statement(), end="")
    return EXIT_OK


def _demo_folder(output: Path | None) -> Path:
    """The demo's folder: new under ./dicomregsave-demo, or `output` unless a demo already ran there."""
    if output is None:
        folder = Path("dicomregsave-demo") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    else:
        folder = output
        if (folder / "input").exists():
            raise OutputError(
                f"The demo folder {folder} already holds a demo (its input/ folder exists). "
                "Choose another folder, or remove that one."
            )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def command_demo(args: argparse.Namespace) -> int:
    from DicomRegSaveLib.export.pipeline import ExportOptions
    from DicomRegSaveLib.export.request import ExportRequest, run_export_request
    from DicomRegSaveLib.inputs.sampledata import make_demo_case
    from DicomRegSaveLib.reg.reader import read_registration
    from DicomRegSaveLib.validation.conformance import validate_file

    started = time.perf_counter()
    folder = _demo_folder(args.output)
    case = make_demo_case(folder / "input")
    print(f"Phantom fixed series: {case.fixed_dir}")
    print(f"Phantom moving series (another study and frame of reference): {case.moving_dir}")
    print(f"Known deformation as an ITK displacement field: {case.field_path}")
    outcome = run_export_request(
        ExportRequest(
            case.field_path,
            [case.fixed_dir],
            [case.moving_dir],
            folder,
            ExportOptions(content_description="DicomRegSave demo: phantom deformation"),
        )
    )
    result, fixed, moving = outcome.result, outcome.fixed, outcome.moving
    print(_describe_export(outcome))

    item = read_registration(result.path).choose_item()
    grid = item.grid
    rng = np.random.default_rng(0)
    inside = rng.uniform(0.05, 0.95, size=(2000, 3)) * (np.array(grid.dimensions) - 1)
    points_lps = inside @ grid.index_to_lps[:3, :3].T + grid.index_to_lps[:3, 3]
    error_mm = np.linalg.norm(item.map_points(points_lps) - case.mapping_lps(points_lps), axis=1)
    print(
        f"Read back: the file maps {len(points_lps)} fixed points to the moving frame within "
        f"{error_mm.max():.3g} mm (max) of the known deformation (grid interpolation)"
    )
    report = validate_file(result.path, [*fixed.paths, *moving.paths])
    print(report.text() or "Validation: no findings.")
    print(
        f"Validation: {len(report.errors)} error(s), {len(report.warnings)} warning(s); "
        f"done in {time.perf_counter() - started:.1f} s"
    )
    return EXIT_OK if report.ok else EXIT_ERROR


def _tag_assignment(text: str) -> tuple[str, str]:
    keyword, separator, value = text.partition("=")
    if not separator or not keyword.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEYWORD=VALUE (e.g. InstitutionName=Clinic)")
    return keyword.strip(), value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def _add_network_arguments(parser: argparse.ArgumentParser) -> None:
    from DicomRegSaveLib.cli.network import DEFAULT_CALLING_AE_TITLE, DEFAULT_TIMEOUT_S

    parser.add_argument(
        "--calling-aet",
        default=DEFAULT_CALLING_AE_TITLE,
        metavar="AET",
        help=f"our AE title (default {DEFAULT_CALLING_AE_TITLE})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds to wait for the peer at each step (default {DEFAULT_TIMEOUT_S:g})",
    )


def _add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", metavar="PATH", help="also write a JSON report to PATH (- for stdout; the text then goes to stderr)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dicomregsave",
        description="Save registrations as DICOM Spatial Registration or Deformable Spatial Registration (REG) objects.",
    )
    parser.add_argument("--version", action="version", version=f"dicomregsave {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    export = commands.add_parser(
        "export",
        help="write a REG file from a transform file and the fixed/moving DICOM series",
        description="Write a REG (Spatial Registration for a linear transform, else Deformable Spatial Registration) that maps the fixed image's frame to the moving image's frame, as a "
        "transform file applied to the moving image in 3D Slicer (ITK resampling convention) does.",
    )
    export.add_argument(
        "--transform",
        type=Path,
        required=True,
        metavar="FILE",
        help="ITK transform (.h5 .hdf5 .tfm .txt) or displacement field (.nrrd .nhdr .mha .mhd .nii .nii.gz)",
    )
    export.add_argument(
        "--fixed",
        type=Path,
        nargs="+",
        required=True,
        metavar="PATH",
        help="fixed (reference) image series: a DICOM file, a folder, or several files",
    )
    export.add_argument(
        "--moving",
        type=Path,
        nargs="+",
        required=True,
        metavar="PATH",
        help="moving image series: a DICOM file, a folder, or several files",
    )
    export.add_argument(
        "--output",
        type=Path,
        required=True,
        metavar="PATH",
        help="output file, or an existing folder (the file is named after its SOP Instance UID)",
    )
    export.add_argument(
        "--grid-spacing",
        type=float,
        nargs="+",
        metavar="MM",
        help="resample the transform on the fixed image's extent at this spacing (1 or 3 values, mm)",
    )
    export.add_argument("--series-description", metavar="T")
    export.add_argument("--series-number", type=int, metavar="N")
    export.add_argument("--content-label", metavar="L", help="code string: A-Z 0-9 _ and space, at most 16")
    export.add_argument("--content-description", metavar="T")
    export.add_argument("--content-creator", metavar="PN", help="Family^Given")
    export.add_argument("--manufacturer", metavar="T")
    export.add_argument("--model", metavar="T", help="Manufacturer's Model Name")
    export.add_argument("--device-serial-number", metavar="T")
    export.add_argument("--software-versions", metavar="T")
    export.add_argument(
        "--identity-item",
        action="store_true",
        help="add a leading identity item for the fixed frame (referencing the fixed images)",
    )
    export.add_argument(
        "--registration-class",
        choices=REGISTRATION_CLASSES,
        default="auto",
        help="SOP class: spatial (66.1, matrices only), deformable (66.3), or auto (default): "
        "spatial when the whole transform is linear",
    )
    export.add_argument(
        "--tag",
        action="append",
        type=_tag_assignment,
        metavar="KEYWORD=VALUE",
        help="set an attribute of the REG (repeatable; several values separated by \\); "
        "patient name/ID and study UID must match the fixed image",
    )
    export.add_argument(
        "--axis-aligned",
        action="store_true",
        help="write the grid along the patient axes (exact for an axis-aligned grid, else resampled)",
    )
    export.add_argument(
        "--uid-root",
        metavar="PREFIX",
        help="make the new Series and SOP Instance UIDs under this UID root (at most 44 characters)",
    )
    export.add_argument(
        "--fixed-series", metavar="UID", help="the fixed series' Series Instance UID, when --fixed holds several series"
    )
    export.add_argument(
        "--moving-series",
        metavar="UID",
        help="the moving series' Series Instance UID, when --moving holds several series",
    )
    export.add_argument(
        "--registration-type",
        metavar="CODE",
        help="Registration Type Code (CID 7100): a code value such as 125025 or a meaning such as "
        "'Visual Alignment' (default: 125024 Image Content-based Alignment)",
    )
    export.add_argument(
        "--comment", metavar="T", help="Frame of Reference Transformation Comment of the registration item"
    )
    export.add_argument(
        "--nan-vectors",
        choices=UNDEFINED_VECTOR_CHOICES,
        default="refuse",
        help="NaN displacement vectors: refuse the export (default), or write them as DICOM's "
        "'undefined here' marker (reported with their count)",
    )
    export.add_argument("--send", metavar="AET@HOST:PORT", help="send the REG to this DICOM peer after writing it")
    _add_network_arguments(export)
    _add_json_argument(export)
    export.add_argument("--force", action="store_true", help="replace an existing output file")
    export.set_defaults(run=command_export)

    send = commands.add_parser(
        "send",
        help="send DICOM files to a PACS or planning system (C-ECHO, then C-STORE)",
        description="Send DICOM files (folders searched recursively) to a DICOM peer: C-ECHO, then one C-STORE "
        "per file, proposing exactly the SOP classes present. Exit 0 only when every file was stored.",
    )
    send.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="DICOM files or folders")
    send.add_argument("--to", required=True, metavar="AET@HOST:PORT", help="the peer's AE title, host and port")
    _add_network_arguments(send)
    _add_json_argument(send)
    send.set_defaults(run=command_send)

    batch = commands.add_parser(
        "batch",
        help="export many registrations listed in a CSV manifest, in parallel",
        description="Run one export per manifest row (columns transform,fixed,moving[,output] and any export "
        "option with - written _), in parallel worker processes. Rows whose output exists and validates are "
        "skipped, so an interrupted batch is resumed by running it again.",
    )
    batch.add_argument("manifest", type=Path, metavar="MANIFEST.csv")
    batch.add_argument("--output", type=Path, required=True, metavar="DIR", help="existing folder for the REG files")
    batch.add_argument("--jobs", type=_positive_int, default=1, metavar="N", help="rows exported at a time (default 1)")
    _add_json_argument(batch)
    batch.set_defaults(run=command_batch, export_parser=export)

    to_transform = commands.add_parser(
        "to-transform",
        help="write a REG's mapping as an ITK transform or displacement field file",
        description="Write the fixed -> moving mapping of one item of a REG (66.1 or 66.3) as Slicer and ITK apply "
        "transforms to the moving image. A Spatial Registration (66.1) gives an ITK affine transform; displacement "
        "field formats need an item with a grid.",
    )
    to_transform.add_argument("reg", type=Path, metavar="REG.dcm")
    to_transform.add_argument(
        "output",
        type=Path,
        metavar="OUTPUT",
        help=".h5 .tfm .txt (ITK transform) or .nrrd .mha .nii.gz (displacement field)",
    )
    to_transform.add_argument(
        "--source-frame",
        metavar="UID",
        help="the item whose source Frame of Reference UID is UID (the moving image's frame); "
        "needed when the REG holds several non-identity items",
    )
    to_transform.add_argument("--force", action="store_true", help="replace an existing output file")
    _add_json_argument(to_transform)
    to_transform.set_defaults(run=command_to_transform)

    inspect = commands.add_parser("inspect", help="print a REG file as a tag dump (vector data summarised)")
    inspect.add_argument("reg", type=Path, metavar="REG.dcm")
    inspect.add_argument("--filter", metavar="REGEX", help="only lines matching this regular expression")
    inspect.add_argument("--max-chars", type=int, default=80, metavar="N", help="truncate values (default 80)")
    inspect.set_defaults(run=command_inspect)

    validate = commands.add_parser(
        "validate", help="check a REG file: own checks, dciodvfy, and references against images"
    )
    validate.add_argument("reg", type=Path, metavar="REG.dcm")
    validate.add_argument(
        "--images",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="the fixed and moving image files or folders, to check references across files",
    )
    _add_json_argument(validate)
    validate.set_defaults(run=command_validate)

    conformance = commands.add_parser("conformance", help="print the DICOM conformance statement (Markdown)")
    conformance.set_defaults(run=command_conformance)

    demo = commands.add_parser("demo", help="export, read back and validate a REG for built-in phantom data")
    demo.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="an empty or new folder (default: a new folder under ./dicomregsave-demo)",
    )
    demo.set_defaults(run=command_demo)
    add_qa_commands(commands)
    return parser


def _failure_report(args: argparse.Namespace, message: str) -> None:
    """With --json, the report of a command that failed, so that scripts always get one."""
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
    return [f for p in given for f in (sorted(p.rglob("*")) if p.is_dir() else [p]) if not f.is_dir()]


def _check_report_path(args: argparse.Namespace) -> None:
    """--json never replaces an input (it replaces an older report, so it is written with force)."""
    from DicomRegSaveLib.output import check_output_path

    destination = getattr(args, "json", None)
    if destination and destination != "-":
        check_output_path(destination, force=True, inputs=_input_files(args))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    notes = _Notes()
    logging.getLogger().addHandler(notes)
    try:
        _check_report_path(args)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            status = args.run(args)
        # after success, what the libraries warned about is shown; after an error the message says it
        for note in dict.fromkeys([*notes.notes, *(str(w.message) for w in caught)]):
            print(f"dicomregsave {args.command}: note: {_paragraph(note)}", file=sys.stderr)
        return status
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    except DicomRegSaveError as error:
        print(_paragraph(f"dicomregsave {args.command}: error: {error}"), file=sys.stderr)
        _failure_report(args, str(error))
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"dicomregsave {args.command}: interrupted; no output was left behind.", file=sys.stderr)
        _failure_report(args, "Interrupted; no output was left behind.")
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


if __name__ == "__main__":
    sys.exit(main())
