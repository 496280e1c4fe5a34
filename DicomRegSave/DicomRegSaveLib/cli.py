"""The ``dicomregsave`` command: export, to-transform, inspect, validate, demo.

Exit status: 0 success, 1 an error explained in one paragraph on stderr, 2 wrong usage.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import __version__
from .errors import DicomRegSaveError, OutputError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _grid_spacing(values: Sequence[float] | None) -> tuple[float, float, float] | None:
    if values is None:
        return None
    if len(values) not in (1, 3) or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("--grid-spacing takes 1 or 3 positive numbers (mm)")
    return tuple(values * 3) if len(values) == 1 else tuple(values)


def _export_options(args: argparse.Namespace):
    from .export import ExportOptions

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
    }
    for name, value in chosen.items():
        if value is not None:
            setattr(options, name, value)
    options.identity_item = args.identity_item
    return options


def run_export(
    transform: Path,
    fixed_paths: Sequence[Path],
    moving_paths: Sequence[Path],
    output: Path,
    options,
    *,
    grid_spacing_mm: tuple[float, float, float] | None = None,
    force: bool = False,
):
    """Read the inputs and export; the command's work, shared with ``demo``."""
    import highdicom as hd

    from .dicom_input import read_image_series
    from .export import export_registration, output_path_for
    from .transform_files import deformation_from_file

    if options.sop_instance_uid is None:
        options.sop_instance_uid = hd.UID()
    output_path_for(output, options.sop_instance_uid, force)
    fixed = read_image_series(fixed_paths, "fixed")
    moving = read_image_series(moving_paths, "moving")
    deformation = deformation_from_file(
        transform, fixed.ijk_to_lps, fixed.dimensions, grid_spacing_mm=grid_spacing_mm
    )
    return export_registration(deformation, fixed, moving, output, options, force), fixed, moving


def _describe_export(result, fixed, moving) -> str:
    item = result.registration.deformable_item
    grid = item.grid
    same_study = fixed.study_instance_uid == moving.study_instance_uid
    lines = [
        f"Wrote {result.path}",
        f"  grid {'x'.join(map(str, grid.dimensions))} at {'/'.join(f'{s:g}' for s in grid.spacing_mm)} mm"
        f" in the fixed frame {result.registration.frame_of_reference_uid}",
        f"  maps fixed -> moving frame {item.source_frame_of_reference_uid}"
        f" ({len(item.referenced_images)} moving instance(s) referenced)",
        f"  pre matrix: {item.pre_deformation_matrix.matrix_type if item.pre_deformation_matrix else 'identity'},"
        f" post matrix: {item.post_deformation_matrix.matrix_type if item.post_deformation_matrix else 'identity'}",
        f"  series in the fixed image's study {result.dataset.StudyInstanceUID}"
        + ("" if same_study else " (the moving series is in another study)"),
    ]
    lines += [f"  warning: {w}" for w in result.report.warnings]
    return "\n".join(lines)


def command_export(args: argparse.Namespace) -> int:
    result, fixed, moving = run_export(
        args.transform,
        args.fixed,
        args.moving,
        args.output,
        _export_options(args),
        grid_spacing_mm=_grid_spacing(args.grid_spacing),
        force=args.force,
    )
    print(_describe_export(result, fixed, moving))
    return EXIT_OK


def command_to_transform(args: argparse.Namespace) -> int:
    from .output import atomic_output
    from .reader import read_registration
    from .transform_files import write_transform_file

    registration = read_registration(args.reg)
    with atomic_output(args.output, args.force) as temporary:
        write_transform_file(registration, temporary)
    print(f"Wrote {args.output}: the fixed -> moving transform of {args.reg}")
    return EXIT_OK


def command_inspect(args: argparse.Namespace) -> int:
    import pydicom

    from .dump import dump
    from .errors import DicomInputError

    try:
        dataset = pydicom.dcmread(args.reg)
    except (OSError, pydicom.errors.InvalidDicomError) as error:
        raise DicomInputError(f"Cannot read {args.reg} as DICOM: {error}.") from error
    print(dump(dataset, args.filter, args.max_chars))
    return EXIT_OK


def command_validate(args: argparse.Namespace) -> int:
    from .conformance import validate_file

    report = validate_file(args.reg, args.images or ())
    print(report.text() or "No findings.")
    print(f"{args.reg}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    return EXIT_OK if report.ok else EXIT_ERROR


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
    from .conformance import validate_file
    from .export import ExportOptions
    from .reader import read_registration
    from .sampledata import make_demo_case

    started = time.perf_counter()
    folder = _demo_folder(args.output)
    case = make_demo_case(folder / "input")
    print(f"Phantom fixed series: {case.fixed_dir}")
    print(f"Phantom moving series (another study and frame of reference): {case.moving_dir}")
    print(f"Known deformation as an ITK displacement field: {case.field_path}")
    result, fixed, moving = run_export(
        case.field_path, [case.fixed_dir], [case.moving_dir], folder, ExportOptions(
            content_description="DicomRegSave demo: phantom deformation"
        )
    )
    print(_describe_export(result, fixed, moving))

    registration = read_registration(result.path)
    grid = registration.deformable_item.grid
    rng = np.random.default_rng(0)
    inside = rng.uniform(0.05, 0.95, size=(2000, 3)) * (np.array(grid.dimensions) - 1)
    points_lps = inside @ grid.index_to_lps[:3, :3].T + grid.index_to_lps[:3, 3]
    error_mm = np.linalg.norm(registration.map_points(points_lps) - case.mapping_lps(points_lps), axis=1)
    print(
        f"Read back: the file maps {len(points_lps)} fixed points to the moving frame within "
        f"{error_mm.max():.3g} mm (max) of the known deformation (grid interpolation)"
    )
    report = validate_file(result.path, [*fixed.paths, *moving.paths])
    print(report.text() or "Validation: no findings.")
    print(f"Validation: {len(report.errors)} error(s), {len(report.warnings)} warning(s); "
          f"done in {time.perf_counter() - started:.1f} s")
    return EXIT_OK if report.ok else EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dicomregsave",
        description="Save deformable registrations as DICOM Deformable Spatial Registration (REG) objects.",
    )
    parser.add_argument("--version", action="version", version=f"dicomregsave {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    export = commands.add_parser(
        "export", help="write a REG file from a transform file and the fixed/moving DICOM series",
        description="Write a REG that maps the fixed image's frame to the moving image's frame, as a "
        "transform file applied to the moving image in 3D Slicer (ITK resampling convention) does.",
    )
    export.add_argument("--transform", type=Path, required=True, metavar="FILE",
                        help="ITK transform (.h5 .hdf5 .tfm .txt) or displacement field (.nrrd .nhdr .mha .mhd .nii .nii.gz)")
    export.add_argument("--fixed", type=Path, nargs="+", required=True, metavar="PATH",
                        help="fixed (reference) image series: a DICOM file, a folder, or several files")
    export.add_argument("--moving", type=Path, nargs="+", required=True, metavar="PATH",
                        help="moving image series: a DICOM file, a folder, or several files")
    export.add_argument("--output", type=Path, required=True, metavar="PATH",
                        help="output file, or an existing folder (the file is named after its SOP Instance UID)")
    export.add_argument("--grid-spacing", type=float, nargs="+", metavar="MM",
                        help="resample the transform on the fixed image's extent at this spacing (1 or 3 values, mm)")
    export.add_argument("--series-description", metavar="T")
    export.add_argument("--series-number", type=int, metavar="N")
    export.add_argument("--content-label", metavar="L", help="code string: A-Z 0-9 _ and space, at most 16")
    export.add_argument("--content-description", metavar="T")
    export.add_argument("--content-creator", metavar="PN", help="Family^Given")
    export.add_argument("--manufacturer", metavar="T")
    export.add_argument("--model", metavar="T", help="Manufacturer's Model Name")
    export.add_argument("--device-serial-number", metavar="T")
    export.add_argument("--software-versions", metavar="T")
    export.add_argument("--identity-item", action="store_true",
                        help="add a leading identity item for the fixed frame (referencing the fixed images)")
    export.add_argument("--force", action="store_true", help="replace an existing output file")
    export.set_defaults(run=command_export)

    to_transform = commands.add_parser(
        "to-transform", help="write a REG's mapping as an ITK transform or displacement field file")
    to_transform.add_argument("reg", type=Path, metavar="REG.dcm")
    to_transform.add_argument("output", type=Path, metavar="OUTPUT",
                              help=".h5 .tfm .txt (ITK transform) or .nrrd .mha .nii.gz (displacement field)")
    to_transform.add_argument("--force", action="store_true", help="replace an existing output file")
    to_transform.set_defaults(run=command_to_transform)

    inspect = commands.add_parser("inspect", help="print a REG file as a tag dump (vector data summarised)")
    inspect.add_argument("reg", type=Path, metavar="REG.dcm")
    inspect.add_argument("--filter", metavar="REGEX", help="only lines matching this regular expression")
    inspect.add_argument("--max-chars", type=int, default=80, metavar="N", help="truncate values (default 80)")
    inspect.set_defaults(run=command_inspect)

    validate = commands.add_parser(
        "validate", help="check a REG file: own checks, dciodvfy, and references against images")
    validate.add_argument("reg", type=Path, metavar="REG.dcm")
    validate.add_argument("--images", type=Path, nargs="+", metavar="PATH",
                          help="the fixed and moving image files or folders, to check references across files")
    validate.set_defaults(run=command_validate)

    demo = commands.add_parser("demo", help="export, read back and validate a REG for built-in phantom data")
    demo.add_argument("--output", type=Path, metavar="DIR",
                      help="an empty or new folder (default: a new folder under ./dicomregsave-demo)")
    demo.set_defaults(run=command_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    except DicomRegSaveError as error:
        print(f"dicomregsave {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"dicomregsave {args.command}: interrupted; no output was left behind.", file=sys.stderr)
        return EXIT_ERROR
    except Exception as error:  # the last resort: a message, not only a traceback
        print(
            f"dicomregsave {args.command}: unexpected error {type(error).__name__}: {error}. "
            "This is a bug in dicomregsave; please report it with the command line you used.",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
