"""The ``qa`` and ``resample`` commands: a registration's quality (AAPM TG-132) and the warped moving image.

``qa`` exits 0 when every verdict of every item checked passes, 1 when one fails or on an error
(the error in one paragraph on stderr and, with ``--json``, a report with ``ok: false``).
``resample`` exits 0 when the file was written, 1 on an error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from DicomRegSaveLib.cli.parser import add_json_argument, text_stream
from DicomRegSaveLib.cli.terminal import TerminalProgress
from DicomRegSaveLib.qa import INTERPOLATIONS

EXIT_OK, EXIT_ERROR = 0, 1


def command_qa(args: argparse.Namespace) -> int:
    from DicomRegSaveLib.cli.reports import write_report
    from DicomRegSaveLib.inputs.series import read_image_series
    from DicomRegSaveLib.qa.evaluate import evaluate_registration, identity, summary_text
    from DicomRegSaveLib.qa.html_report import check_report_folder, write_report_folder
    from DicomRegSaveLib.qa.landmarks import read_landmarks
    from DicomRegSaveLib.qa.pictures import item_pictures
    from DicomRegSaveLib.qa.volumes import read_series_volume
    from DicomRegSaveLib.reg.reader import read_dataset, read_registration

    if args.report is not None:
        check_report_folder(args.report)
    dataset = read_dataset(args.reg)
    registration = read_registration(dataset)
    with TerminalProgress() as progress:
        fixed_series = read_image_series(args.fixed, "fixed", progress=progress)
        moving_series = read_image_series(args.moving, "moving", progress=progress)
        landmarks = tuple(read_landmarks(path) for path in args.landmarks) if args.landmarks else None
        fixed, moving = read_series_volume(fixed_series, progress), read_series_volume(moving_series, progress)
        result = evaluate_registration(
            registration,
            fixed,
            moving,
            fixed_frame_of_reference_uid=fixed_series.frame_of_reference_uid,
            moving_frame_of_reference_uid=moving_series.frame_of_reference_uid,
            source_frame_of_reference_uid=args.source_frame,
            landmarks=landmarks,
            progress=progress,
        )
        identities = {
            "reg": identity(dataset),
            "fixed": identity(fixed_series.first_header),
            "moving": identity(moving_series.first_header),
        }
        report = result.report(args.reg, identities)
        if args.report is not None:
            pictures = {quality.number: item_pictures(quality, fixed, moving, progress) for quality in result.items}
            folder = write_report_folder(args.report, report, pictures)
    stream = text_stream(args)
    if args.report is not None:
        print(f"Wrote {folder / 'index.html'}", file=stream)
    print(summary_text(report), file=stream)
    if args.json:
        write_report(report, args.json)
    return EXIT_OK if report["ok"] else EXIT_ERROR


def command_resample(args: argparse.Namespace) -> int:
    from DicomRegSaveLib.inputs.series import read_image_series
    from DicomRegSaveLib.qa.evaluate import items_to_check
    from DicomRegSaveLib.qa.volume_files import write_volume_file
    from DicomRegSaveLib.qa.volumes import read_series_volume, resample
    from DicomRegSaveLib.reg.reader import read_registration

    registration = read_registration(args.reg)
    with TerminalProgress() as progress:
        fixed_series = read_image_series(args.fixed, "fixed", progress=progress)
        moving_series = read_image_series(args.moving, "moving", progress=progress)
        source_frame = args.source_frame
        if source_frame is None and len(items_to_check(registration, None)) > 1:
            source_frame = moving_series.frame_of_reference_uid
        item = registration.choose_item(source_frame)
        moving = read_series_volume(moving_series, progress)
        warped = resample(
            item, fixed_series.ijk_to_lps, fixed_series.dimensions, moving, args.interpolation, progress=progress
        )
        write_volume_file(warped, args.output, [args.reg, *fixed_series.paths, *moving_series.paths], progress)
    print(
        f"Wrote {args.output}: the moving image on the fixed grid {'x'.join(map(str, fixed_series.dimensions))} "
        f"through item {registration.items.index(item) + 1} of {args.reg} ({args.interpolation} interpolation)"
    )
    return EXIT_OK


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ``qa`` and ``resample`` subcommands to the parser's subcommands."""
    source_frame_help = (
        "the item whose source Frame of Reference UID is UID (the moving image's frame); default: every item "
        "that moves a series"
    )
    qa = commands.add_parser(
        "qa",
        help="check a REG's quality (AAPM TG-132): linear part, Jacobian, displacement, landmarks, image agreement",
        description="Check every item of a REG (66.1 or 66.3) that moves a series: rotations and translation of the "
        "linear part, the Jacobian determinant (folding) and displacement of a deformable item, landmark target "
        "registration error and the image agreement before and after, with TG-132 verdicts. Exit 0 when every "
        "verdict passes, 1 otherwise or on an error.",
    )
    qa.add_argument("reg", type=Path, metavar="REG.dcm")
    qa.add_argument(
        "--fixed", type=Path, nargs="+", required=True, metavar="PATH", help="fixed image series: file(s) or folder"
    )
    qa.add_argument(
        "--moving", type=Path, nargs="+", required=True, metavar="PATH", help="moving image series: file(s) or folder"
    )
    qa.add_argument("--source-frame", metavar="UID", help=source_frame_help)
    qa.add_argument(
        "--landmarks",
        type=Path,
        nargs=2,
        metavar=("FIXED.csv", "MOVING.csv"),
        help="paired landmarks: CSV with header x,y,z (LPS mm) and optional label, or Slicer .fcsv / .mrk.json",
    )
    qa.add_argument(
        "--report", type=Path, metavar="DIR", help="write DIR/index.html and its PNG pictures (new or empty folder)"
    )
    add_json_argument(qa)
    qa.set_defaults(run=command_qa)

    resample_parser = commands.add_parser(
        "resample",
        help="write the moving image resampled onto the fixed image grid through a REG",
        description="Resample the moving image onto the fixed image's voxel grid through one item of a REG (the "
        "warp the qa pictures show) and write it as a float32 image file. Voxels that map outside the moving image "
        "(or outside a deformable item's grid) get the moving image's smallest value.",
    )
    resample_parser.add_argument("reg", type=Path, metavar="REG.dcm")
    resample_parser.add_argument("--fixed", type=Path, nargs="+", required=True, metavar="PATH")
    resample_parser.add_argument("--moving", type=Path, nargs="+", required=True, metavar="PATH")
    resample_parser.add_argument(
        "--output", type=Path, required=True, metavar="OUT", help="OUT.nrrd, OUT.mha or OUT.nii.gz (new file)"
    )
    resample_parser.add_argument(
        "--source-frame",
        metavar="UID",
        help="the item whose source Frame of Reference UID is UID; default: the only moving item, or the one for "
        "the moving image's frame",
    )
    resample_parser.add_argument("--interpolation", choices=INTERPOLATIONS, default="linear", help="default: linear")
    resample_parser.set_defaults(run=command_resample)
