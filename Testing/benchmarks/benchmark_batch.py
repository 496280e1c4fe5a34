"""What ``dicomregsave batch`` costs per row beyond the export itself: a script that prints numbers.

Not a pytest test. A manifest of ``--rows`` rows of the small demo case (48 x 48 x 24 voxels) is
run with ``--jobs 1`` and ``--jobs 2``, ``--repeats`` times each, every run in a fresh output
folder under GNU ``/usr/bin/time -f "%e %U %S %M"``: wall s, user s and sys s of the batch and
every row it ran (the time of waited-for descendants counts), and the largest peak RSS among
those processes. Medians are printed, with the load averages before and after::

    python Testing/benchmarks/benchmark_batch.py [--rows 8] [--repeats 3] [--workdir DIR] [--peer DICOMREGSAVE]

With ``--peer`` (another ``dicomregsave`` executable, e.g. an older version's), each repeat is an
alternating pair of the same batch by this version and by the peer (the order flips every pair),
and the per-pair ratio of wall times (this / peer) is printed: median and range.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from DicomRegSaveLib.inputs.sampledata import make_demo_case

COMMAND = str(Path(sys.executable).with_name("dicomregsave"))
COLUMNS = ("wall_s", "user_s", "sys_s", "peak_rss_kib")


def write_manifest(folder: Path, rows: int) -> Path:
    case = make_demo_case(folder / "case")
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["transform", "fixed", "moving", "output"])
        for number in range(rows):
            writer.writerow(
                [
                    case.field_path.relative_to(folder),
                    case.fixed_dir.relative_to(folder),
                    case.moving_dir.relative_to(folder),
                    f"reg-{number}.dcm",
                ]
            )
    return manifest


def measured_batch(manifest: Path, output: Path, jobs: int, command: str = COMMAND) -> list[float]:
    output.mkdir()
    completed = subprocess.run(
        [
            "/usr/bin/time",
            "-f",
            "%e %U %S %M",
            command,
            "batch",
            str(manifest),
            "--output",
            str(output),
            "--jobs",
            str(jobs),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"the batch failed:\n{completed.stdout}{completed.stderr}")
    shutil.rmtree(output)
    return [float(value) for value in completed.stderr.split()[-4:]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--peer", help="another dicomregsave executable to alternate with")
    args = parser.parse_args()
    commands = {"this": COMMAND, **({"peer": args.peer} if args.peer else {})}
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        manifest = write_manifest(Path(folder), args.rows)
        for name, command in commands.items():
            measured_batch(manifest, Path(folder) / f"warm-up-{name}", 1, command)
        print(f"load averages before: {Path('/proc/loadavg').read_text().split()[:3]}")
        print(f"{args.rows} rows of the small demo case, median of {args.repeats} runs")
        print(f"{'':>5}{'jobs':>5} " + " ".join(f"{c:>12}" for c in COLUMNS))
        for jobs in (1, 2):
            runs: dict[str, list[list[float]]] = {name: [] for name in commands}
            for repeat in range(args.repeats):
                order = list(commands) if repeat % 2 == 0 else list(reversed(commands))
                for name in order:
                    output = Path(folder) / f"out-{name}-{jobs}-{repeat}"
                    runs[name].append(measured_batch(manifest, output, jobs, commands[name]))
            for name, measured in runs.items():
                medians = [statistics.median(column) for column in zip(*measured)]
                print(
                    f"{name:>5}{jobs:>5} "
                    + " ".join(f"{value:>12.2f}" for value in medians[:3])
                    + f" {medians[3]:>12.0f}"
                )
            if args.peer:
                ratios = [a[0] / b[0] for a, b in zip(runs["this"], runs["peer"])]
                print(
                    f"{'':>10} wall ratio this/peer per pair: median {statistics.median(ratios):.2f} "
                    f"(range {min(ratios):.2f}-{max(ratios):.2f}, n={len(ratios)})"
                )
        print(f"load averages after: {Path('/proc/loadavg').read_text().split()[:3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
