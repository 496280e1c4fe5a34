"""Speed and memory of the qa Jacobian and statistics beside the export of the same field (issue 18).

Not a pytest test: a script that prints numbers::

    python Testing/benchmarks/benchmark_qa.py [--size-mib 576] [--pairs 7] [--workdir DIR]

The field (smooth random, float32 LPS, as ``benchmark_export.py`` writes it: 512x512x192 for 576 MiB)
is exported to a REG once, untimed. Then, in ``--pairs`` alternating pairs (the order flips every
pair), each in a fresh process under GNU time (wall, CPU, peak RSS):

* ``export``: ``dicomregsave export`` of the field (the REG deleted after each run);
* ``jacobian``: a process that reads that REG (Vector Grid Data as a view of the file's bytes) and
  runs :func:`DicomRegSaveLib.qa.jacobian.field_statistics` (determinant, folding, displacement
  statistics); the step's own time is measured inside the process and printed beside the process's.

Targets (issue 18): Jacobian + statistics time <= 1 x the export time (median of the per-pair
ratios, with their range); peak RSS <= field + one field-sized float32 array: the jacobian process's
peak minus that of a process that only reads the REG (interpreter, libraries and the field, which
Vector Grid Data holds once) must stay below the field's size. ``uptime`` is printed before and after: numbers from a loaded machine are not results.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from benchmark_export import MIB, remove, run_measured, warm_read, write_case, write_field  # noqa: E402

COMMAND = str(Path(sys.executable).with_name("dicomregsave"))
JACOBIAN_STEP = (
    "import sys, time\n"
    "from DicomRegSaveLib.reg.reader import read_registration\n"
    "from DicomRegSaveLib.qa.jacobian import field_statistics\n"
    "item = read_registration(sys.argv[1]).choose_item()\n"
    "started = time.perf_counter()\n"
    "jacobian, displacement = field_statistics(item)\n"
    "open(sys.argv[2], 'w').write(f'{time.perf_counter() - started} {jacobian.points} {jacobian.folded_count}')\n"
)


#: The same process without the step: what reading the REG costs (interpreter, libraries, the field).
READ_ONLY = (
    "import sys\n"
    "from DicomRegSaveLib.reg.reader import read_registration\n"
    "read_registration(sys.argv[1]).choose_item().grid.check_vectors()\n"
)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3g} (range {min(values):.3g}-{max(values):.3g})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=float, default=576.0, help="field size in MiB of float32 vectors")
    parser.add_argument("--pairs", type=int, default=7, help="alternating pairs (at least 7 for a result)")
    parser.add_argument("--workdir", type=Path, help="keep inputs here (default: a temporary folder)")
    args = parser.parse_args()
    print(f"uptime before: {uptime()}")
    with tempfile.TemporaryDirectory(prefix="dicomregsave-qa-bench-") as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        case = write_case(workdir / "case")
        field_ = write_field(workdir / f"field-{args.size_mib:g}.mha", args.size_mib, seed=18)
        export = [COMMAND, "export", "--transform", str(field_.path), "--fixed", str(case.fixed_dir)]
        export += ["--moving", str(case.moving_dir), "--output"]
        reg = workdir / "reg.dcm"
        remove(reg)
        subprocess.run([*export, str(reg)], check=True, capture_output=True)
        warm_read(field_.path)
        warm_read(reg)
        print(f"field {field_.label}; {args.pairs} alternating pairs")
        exports, jacobians, steps, ratios = [], [], [], []
        for pair in range(args.pairs):
            order = ("export", "jacobian") if pair % 2 == 0 else ("jacobian", "export")
            runs = {}
            for name in order:
                if name == "export":
                    runs[name] = run_measured([*export, str(workdir / "timed.dcm")], workdir / "export.log")
                    remove(workdir / "timed.dcm")
                else:
                    step_file = workdir / "step.txt"
                    command = [sys.executable, "-c", JACOBIAN_STEP, str(reg), str(step_file)]
                    runs[name] = run_measured(command, workdir / "jacobian.log")
                    step_s, points, folded = step_file.read_text().split()
                    steps.append(float(step_s))
            exports.append(runs["export"])
            jacobians.append(runs["jacobian"])
            ratios.append(steps[-1] / runs["export"].wall)
            print(
                f"  pair {pair + 1}: export {runs['export'].wall:.2f} s, jacobian process {runs['jacobian'].wall:.2f} s "
                f"(step {steps[-1]:.2f} s, {points} points, {folded} folded), peak RSS export "
                f"{runs['export'].peak_rss_mib:.0f} MiB / jacobian {runs['jacobian'].peak_rss_mib:.0f} MiB"
            )
        field_mib = field_.vector_bytes / MIB
        peaks = [run.peak_rss_mib for run in jacobians]
        read_only = run_measured([sys.executable, "-c", READ_ONLY, str(reg)], workdir / "read.log").peak_rss_mib
        print(f"export wall s: {spread([run.wall for run in exports])}")
        print(
            f"jacobian+statistics step s: {spread(steps)}; whole process wall s: {spread([r.wall for r in jacobians])}"
        )
        print(f"ratio step / export: {spread(ratios)} (target <= 1)")
        print(
            f"jacobian process peak RSS MiB: {spread(peaks)}; a process that only reads the REG: {read_only:.0f} MiB; "
            f"the step's extra: {spread([p - read_only for p in peaks])} (target <= one field-sized float32 array, "
            f"{field_mib:.0f} MiB)"
        )
    print(f"uptime after: {uptime()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
