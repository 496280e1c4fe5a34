"""``dicomregsave demo``: export, read back and validate a REG for built-in phantom data."""

from __future__ import annotations

import argparse
import datetime
import shutil
import time
from pathlib import Path

from DicomRegSaveLib.cli.export_send import describe_export, print_warnings
from DicomRegSaveLib.cli.parser import EXIT_ERROR, EXIT_OK
from DicomRegSaveLib.errors import OutputError
from DicomRegSaveLib.interrupts import held
from DicomRegSaveLib.output import record_completed

__all__ = ["command_demo", "register"]


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="export, read back and validate a REG for built-in phantom data")
    demo.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="the folder for the demo's inputs (DIR/input) and its REG: a new folder, or one where no demo ran "
        "yet (default: a new folder under ./dicomregsave-demo)",
    )
    demo.set_defaults(run=command_demo)


def _demo_folder(output: Path | None) -> tuple[Path, Path | None]:
    """The demo's folder: new under ./dicomregsave-demo, or `output` unless a demo already ran there; and
    the outermost folder made for it (``None`` if it existed)."""
    if output is None:
        folder = Path("dicomregsave-demo") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    else:
        folder = output
        if (folder / "input").exists():
            raise OutputError(
                f"The demo folder {folder} already holds a demo (its input/ folder exists). "
                "Choose another folder, or remove that one."
            )
    made = next((path for path in reversed((folder, *folder.parents)) if not path.exists()), None)
    folder.mkdir(parents=True, exist_ok=True)
    return folder, made


def command_demo(args: argparse.Namespace) -> int:
    import numpy as np

    from DicomRegSaveLib.export.options import ExportOptions
    from DicomRegSaveLib.export.request import ExportRequest, run_export_request
    from DicomRegSaveLib.inputs.sampledata import make_demo_case
    from DicomRegSaveLib.reg.reader import read_registration
    from DicomRegSaveLib.validation.validate import validate_file

    started = time.perf_counter()
    folder, made = _demo_folder(args.output)
    try:
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
    except BaseException:
        with held():  # a demo that failed or was interrupted before its REG was complete leaves nothing
            shutil.rmtree(made or folder / "input", ignore_errors=True)
        raise
    with held():  # the inputs stay with the REG, also when the read-back is interrupted
        record_completed(folder / "input")
    result, fixed, moving = outcome.result, outcome.fixed, outcome.moving
    print(describe_export(outcome))
    print_warnings(args.command, result.report.warnings)

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
