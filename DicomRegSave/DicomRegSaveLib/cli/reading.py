"""Commands that read a REG: ``to-transform`` (its mapping as an ITK file), ``inspect`` (a tag dump)
and ``validate`` (own checks, dciodvfy, references against the images)."""

from __future__ import annotations

import argparse
from pathlib import Path

from DicomRegSaveLib.cli.parser import EXIT_ERROR, EXIT_OK, add_json_argument, regular_expression, text_stream
from DicomRegSaveLib.cli.terminal import TerminalProgress
from DicomRegSaveLib.transform_file_types import FIELD_WRITE_TYPES, TRANSFORM_WRITE_TYPES, listed

__all__ = ["command_inspect", "command_to_transform", "command_validate", "register"]


def register(commands: argparse._SubParsersAction) -> None:
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
        help=f"{listed(TRANSFORM_WRITE_TYPES)} (ITK transform) or {listed(FIELD_WRITE_TYPES)} (displacement field)",
    )
    to_transform.add_argument(
        "--source-frame",
        metavar="UID",
        help="the item whose source Frame of Reference UID is UID (the moving image's frame); "
        "needed when the REG holds several non-identity items",
    )
    to_transform.add_argument("--force", action="store_true", help="replace an existing output file")
    add_json_argument(to_transform)
    to_transform.set_defaults(run=command_to_transform)

    inspect = commands.add_parser("inspect", help="print a REG file as a tag dump (vector data summarised)")
    inspect.add_argument("reg", type=Path, metavar="REG.dcm")
    inspect.add_argument(
        "--filter", type=regular_expression, metavar="REGEX", help="only lines matching this regular expression"
    )
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
    add_json_argument(validate)
    validate.set_defaults(run=command_validate)


def command_to_transform(args: argparse.Namespace) -> int:
    from DicomRegSaveLib.cli.reports import to_transform_report, write_report
    from DicomRegSaveLib.inputs.transform_writer import write_transform_file
    from DicomRegSaveLib.reg.reader import read_registration

    registration = read_registration(args.reg)
    item = registration.choose_item(args.source_frame)
    with TerminalProgress() as progress:
        write_transform_file(item, args.output, progress, force=args.force, inputs=[args.reg])
    number = registration.items.index(item) + 1
    print(
        f"Wrote {args.output}: the fixed -> moving transform of {args.reg}, item {number} of "
        f"{len(registration.items)} ({item.describe()})",
        file=text_stream(args),
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
    from DicomRegSaveLib.validation.validate import validate_file

    stream = text_stream(args)
    with TerminalProgress() as progress:
        report = validate_file(args.reg, args.images or (), progress)
    print(report.text() or "No findings.", file=stream)
    print(f"{args.reg}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)", file=stream)
    if args.json:
        write_report(validate_report(args.reg, report), args.json)
    return EXIT_OK if report.ok else EXIT_ERROR
