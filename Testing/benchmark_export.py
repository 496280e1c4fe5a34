"""Export benchmark: ``dicomregsave export`` against plastimatch 1.10 ``xf-convert`` and a plain file copy.

Not a pytest test (pytest collects ``test_*.py`` only): a script that prints a report::

    python Testing/benchmark_export.py [--sizes 96 576] [--repeats 3] [--workdir DIR]

For each size (MiB of float32 vector data, 12 bytes per grid point) it writes a smooth random ITK
displacement field as a raw uncompressed MetaImage (``.mha``, LPS, right-handed identity direction)
covering a small phantom fixed CT series, then times, alternating floor / dicomregsave / plastimatch
``--repeats`` times, each in a fresh process:

* floor: copying the field file in its own folder (``shutil.copyfile`` + ``fsync``), the I/O any
  converter needs at least;
* ``dicomregsave export --transform F --fixed DIR --moving DIR --output OUT --force``;
* ``plastimatch xf-convert --input F --output-dicom DIR --fixed-rcs DIR --moving-rcs DIR`` (the
  native executable of the PyPI wheel, so the Python launcher's start-up is not counted against it).

Wall time is ``time.perf_counter`` around the launch; peak memory is the command's peak resident
set as GNU ``/usr/bin/time -f %M`` reports it (``ru_maxrss`` of the child: its own peak, or that of a
waited-for descendant if larger), or, without GNU time, ``RUSAGE_CHILDREN`` read by a small
``python -c`` launcher. Every run reads the same field file, which is read once before the
first timed run (page cache warm for all three); outputs are deleted and ``os.sync()`` is called after
each run, outside the timed region, so no run pays for another's write-back. Each command is also run
once, untimed, on a small field first (a smoke test that warms the executables' own files).

Targets: dicomregsave time <= 0.5 x plastimatch; dicomregsave peak memory <= field size + 300 MiB.
The last dicomregsave output of each size is read back with pydicom and its Vector Grid Data compared
bit for bit with the field file (geometry and frames of reference too). Exit status: 0 whatever the
targets say, 1 if a command failed or a REG is wrong.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

from DicomRegSaveLib import sampledata

MIB = 1 << 20
PLASTIMATCH_REQUIREMENT = "plastimatch==1.10.0"
#: Extra peak memory dicomregsave may use beyond one copy of the field.
MEMORY_ALLOWANCE_MIB = 300.0
#: dicomregsave time must be at most this fraction of plastimatch's.
TIME_RATIO_TARGET = 0.5

#: Fixed image: 64 x 64 x 32 voxels of 4 mm, axial, centred on the LPS origin (256 x 256 x 128 mm).
FIXED_DIMENSIONS = (64, 64, 32)
FIXED_SPACING_MM = (4.0, 4.0, 4.0)
#: Displacement amplitude (mm, standard deviation of the coarse random control values).
DISPLACEMENT_SCALE_MM = 5.0
#: Coarse random control grid (i, j, k) that is interpolated to the field: smooth content.
CONTROL_POINTS = (6, 6, 5)
#: Size (MiB) of the untimed smoke-test field.
SMOKE_SIZE_MIB = 1.5

COPY_CODE = (
    "import os, shutil, sys\n"
    "shutil.copyfile(sys.argv[1], sys.argv[2])\n"
    "fd = os.open(sys.argv[2], os.O_RDONLY)\n"
    "os.fsync(fd)\n"
    "os.close(fd)\n"
)


@dataclass
class Case:
    """Inputs shared by all commands: the two DICOM series and one field file."""

    fixed_dir: Path
    moving_dir: Path
    fixed_frame_of_reference_uid: str
    moving_frame_of_reference_uid: str


@dataclass
class Field:
    path: Path
    dimensions: tuple[int, int, int]
    origin_lps: np.ndarray
    spacing_mm: np.ndarray

    @property
    def vector_bytes(self) -> int:
        n_i, n_j, n_k = self.dimensions
        return 12 * n_i * n_j * n_k

    def vectors(self) -> np.ndarray:
        """The stored vectors as a read-only memory map (n_k, n_j, n_i, 3), little-endian float32."""
        n_i, n_j, n_k = self.dimensions
        offset = self.path.stat().st_size - self.vector_bytes
        return np.memmap(self.path, dtype="<f4", mode="r", offset=offset, shape=(n_k, n_j, n_i, 3))


@dataclass
class Run:
    seconds: float
    peak_rss_mib: float
    #: `seconds` plus an os.sync() right after the command: the time until the output is on disk,
    #: comparable between commands whether or not they fsync themselves.
    durable_seconds: float = 0.0


@dataclass
class Results:
    runs: dict[str, list[Run]] = field(default_factory=lambda: {name: [] for name in COMMANDS})

    def median_seconds(self, name: str) -> float:
        return statistics.median(r.seconds for r in self.runs[name])

    def median_durable_seconds(self, name: str) -> float:
        return statistics.median(r.durable_seconds for r in self.runs[name])

    def median_rss(self, name: str) -> float:
        return statistics.median(r.peak_rss_mib for r in self.runs[name])


COMMANDS = ("floor", "dicomregsave", "plastimatch")


class CommandFailed(RuntimeError):
    pass


def grid_dimensions(size_mib: float) -> tuple[int, int, int]:
    """(n_i, n_j, n_k) holding about `size_mib` MiB of float32 3-vectors (96 -> 256x256x128, 576 -> 512x512x192)."""
    n_points = size_mib * MIB / 12
    n_ij = 256 if size_mib <= 192 else 512
    if size_mib < 8:
        n_ij = 64
    return n_ij, n_ij, max(2, round(n_points / (n_ij * n_ij)))


def write_case(folder: Path) -> Case:
    """Fixed and moving phantom CT series (same patient, different studies and frames of reference)."""
    uids = {name: str(generate_uid(entropy_srcs=["DicomRegSave benchmark", name])) for name in
            ("fixed study", "fixed series", "fixed frame", "moving study", "moving series", "moving frame")}
    common = dict(patient_name="Benchmark^Phantom", patient_id="DRS-BENCH", dimensions=FIXED_DIMENSIONS,
                  spacing_mm=FIXED_SPACING_MM)
    fixed_dir, moving_dir = folder / "fixed", folder / "moving"
    for directory in (fixed_dir, moving_dir):
        shutil.rmtree(directory, ignore_errors=True)
    sampledata.write_image_series(
        fixed_dir, **common, study_instance_uid=uids["fixed study"], series_instance_uid=uids["fixed series"],
        frame_of_reference_uid=uids["fixed frame"], study_id="FIXED", series_number=2,
        series_description="Fixed CT", file_prefix="FIXED",
    )
    sampledata.write_image_series(
        moving_dir, **common, study_instance_uid=uids["moving study"], series_instance_uid=uids["moving series"],
        frame_of_reference_uid=uids["moving frame"], study_date="20240612", study_id="MOVING", series_number=3,
        series_description="Moving CT", file_prefix="MOVING",
        origin_lps=-(np.array(FIXED_SPACING_MM) * (np.array(FIXED_DIMENSIONS) - 1)) / 2.0 + [2.0, -1.0, 4.0],
    )
    return Case(fixed_dir, moving_dir, uids["fixed frame"], uids["moving frame"])


def _linear_weights(n_fine: int, n_coarse: int) -> np.ndarray:
    """(n_fine, n_coarse) linear interpolation weights from coarse control points spanning the axis."""
    position = np.linspace(0.0, n_coarse - 1.0, n_fine)
    lower = np.minimum(np.floor(position).astype(int), n_coarse - 2)
    fraction = position - lower
    weights = np.zeros((n_fine, n_coarse))
    weights[np.arange(n_fine), lower] = 1.0 - fraction
    weights[np.arange(n_fine), lower + 1] = fraction
    return weights


def write_field(path: Path, size_mib: float, seed: int) -> Field:
    """A smooth random field (LPS mm) over the fixed image's extent, as a raw MetaImage.

    The field spans the fixed volume's voxel-edge box (256 x 256 x 128 mm) with grid points at the
    centres of equal cells, so it covers every fixed voxel centre. Reused when `path` already holds it.
    """
    dimensions = grid_dimensions(size_mib)
    extent_mm = np.array(FIXED_DIMENSIONS) * np.array(FIXED_SPACING_MM)
    spacing = extent_mm / np.array(dimensions)
    origin = -extent_mm / 2.0 + spacing / 2.0
    result = Field(path, dimensions, origin, spacing)
    if path.is_file() and path.stat().st_size > result.vector_bytes and _header_dimensions(path) == dimensions:
        return result
    n_i, n_j, n_k = dimensions
    rng = np.random.default_rng(seed)
    control = rng.normal(0.0, DISPLACEMENT_SCALE_MM, size=(*CONTROL_POINTS[::-1], 3))
    w_i, w_j, w_k = (_linear_weights(n, c) for n, c in zip(dimensions, CONTROL_POINTS))
    vectors = np.empty((n_k, n_j, n_i, 3), dtype=np.float32)
    for k in range(n_k):
        plane = np.tensordot(w_k[k], control, axes=(0, 0)).transpose(2, 0, 1)  # (3, c_j, c_i)
        vectors[k] = (w_j @ plane @ w_i.T).transpose(1, 2, 0)
    temporary = path.with_suffix(".partial.mha")
    sampledata.write_displacement_field_mha(temporary, origin, np.eye(3), spacing, vectors)
    os.replace(temporary, path)
    return result


def _header_dimensions(path: Path) -> tuple[int, ...] | None:
    with open(path, "rb") as stream:
        for line in stream.read(4096).decode("ascii", "replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "DimSize":
                return tuple(int(v) for v in value.split())
    return None


def plastimatch_executable() -> Path:
    """The native plastimatch executable of the PyPI wheel, installed into this venv if missing."""
    try:
        version = importlib.metadata.version("plastimatch")
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version != PLASTIMATCH_REQUIREMENT.split("==")[1]:
        print(f"Installing {PLASTIMATCH_REQUIREMENT} into {sys.prefix} ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", PLASTIMATCH_REQUIREMENT], check=True)
        importlib.invalidate_caches()
    spec = importlib.util.find_spec("plastimatch")
    executable = Path(next(iter(spec.submodule_search_locations))) / "bin" / "plastimatch"
    if not os.access(executable, os.X_OK):
        raise CommandFailed(f"The plastimatch wheel has no executable at {executable}.")
    return executable


#: Runs a command and writes the peak resident set (KiB) of its process tree to a file; used when
#: GNU time is missing. A small launcher matters: a forked child starts with its parent's resident
#: set, which Linux keeps in ru_maxrss across exec, so measuring straight from this (large) process
#: would report at least this process's size.
MAXRSS_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)
GNU_TIME = Path("/usr/bin/time")


def memory_method() -> str:
    if GNU_TIME.is_file():
        return f"{GNU_TIME} -f %M (peak resident set of the child, KiB)"
    return "a python -c launcher reading resource.getrusage(RUSAGE_CHILDREN).ru_maxrss"


def run_measured(command: list[str], log: Path) -> Run:
    """Run `command` in a fresh process; wall time and its peak resident set."""
    rss_file = log.with_suffix(".maxrss")
    if GNU_TIME.is_file():
        launcher = [str(GNU_TIME), "-o", str(rss_file), "-f", "%M"]
    else:
        launcher = [sys.executable, "-c", MAXRSS_LAUNCHER, str(rss_file)]
    with open(log, "wb") as output:
        started = time.perf_counter()
        completed = subprocess.run([*launcher, *command], stdout=output, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - started
    if completed.returncode != 0:
        text = log.read_text(errors="replace")[-2000:]
        raise CommandFailed(f"{' '.join(command)} exited with {completed.returncode}:\n{text}")
    peak_kib = int(rss_file.read_text().split()[-1])
    return Run(seconds, peak_kib / 1024.0)


def warm_read(path: Path) -> None:
    with open(path, "rb", buffering=0) as stream:
        while stream.read(64 * MIB):
            pass


class Bench:
    def __init__(self, workdir: Path, case: Case, plastimatch: Path) -> None:
        self.workdir = workdir
        self.case = case
        self.plastimatch = plastimatch
        self.dicomregsave = Path(sys.executable).parent / "dicomregsave"
        self.logs = workdir / "logs"
        self.logs.mkdir(exist_ok=True)

    def command(self, name: str, field_path: Path, output: Path) -> list[str]:
        case = self.case
        if name == "floor":
            return [sys.executable, "-c", COPY_CODE, str(field_path), str(output)]
        if name == "dicomregsave":
            return [str(self.dicomregsave), "export", "--transform", str(field_path), "--fixed", str(case.fixed_dir),
                    "--moving", str(case.moving_dir), "--output", str(output), "--force"]
        return [str(self.plastimatch), "xf-convert", "--input", str(field_path), "--output-dicom", str(output),
                "--fixed-rcs", str(case.fixed_dir), "--moving-rcs", str(case.moving_dir)]

    def output_for(self, name: str, field_path: Path, tag: str) -> Path:
        if name == "floor":
            return field_path.with_name(f"{field_path.stem}.copy-{tag}.mha")
        if name == "dicomregsave":
            return self.workdir / f"dicomregsave-{tag}.dcm"
        return self.workdir / f"plastimatch-{tag}"

    def run(self, name: str, field_path: Path, tag: str, keep: bool = False) -> tuple[Run, Path]:
        output = self.output_for(name, field_path, tag)
        result = run_measured(self.command(name, field_path, output), self.logs / f"{name}-{tag}.log")
        started = time.perf_counter()
        os.sync()
        result.durable_seconds = result.seconds + time.perf_counter() - started
        if not keep:
            remove(output)
        return result, output


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def check_reg(path: Path, field_: Field, case: Case) -> list[str]:
    """Problems of a REG written for `field_` (empty when its grid and frames are exactly the field's)."""
    if path.is_dir():
        files = sorted(path.glob("*.dcm"))
        if len(files) != 1:
            return [f"{path} holds {len(files)} .dcm files, expected one REG"]
        path = files[0]
    dataset = pydicom.dcmread(path)
    problems = []
    if dataset.SOPClassUID != "1.2.840.10008.5.1.4.1.1.66.3":
        problems.append(f"SOP Class UID {dataset.SOPClassUID}")
    if dataset.FrameOfReferenceUID != case.fixed_frame_of_reference_uid:
        problems.append("Frame of Reference UID is not the fixed image's")
    items = [item for item in dataset.DeformableRegistrationSequence if "DeformableRegistrationGridSequence" in item]
    if len(items) != 1:
        return problems + [f"{len(items)} items with a grid, expected one"]
    item = items[0]
    if item.SourceFrameOfReferenceUID != case.moving_frame_of_reference_uid:
        problems.append("Source Frame of Reference UID is not the moving image's")
    grid = item.DeformableRegistrationGridSequence[0]
    if tuple(grid.GridDimensions) != field_.dimensions:
        problems.append(f"Grid Dimensions {list(grid.GridDimensions)} != {list(field_.dimensions)}")
    if not np.allclose([float(v) for v in grid.GridResolution], field_.spacing_mm, rtol=1e-12, atol=0.0):
        problems.append(f"Grid Resolution {list(grid.GridResolution)} != {field_.spacing_mm.tolist()}")
    if not np.allclose([float(v) for v in grid.ImagePositionPatient], field_.origin_lps, rtol=0.0, atol=1e-6):
        problems.append(f"Image Position (Patient) {list(grid.ImagePositionPatient)} != {field_.origin_lps.tolist()}")
    if not np.allclose([float(v) for v in grid.ImageOrientationPatient], [1, 0, 0, 0, 1, 0], atol=1e-9):
        problems.append(f"Image Orientation (Patient) {list(grid.ImageOrientationPatient)} is not the field's")
    stored = np.frombuffer(grid.VectorGridData, dtype="<u4")
    expected = field_.vectors().reshape(-1).view("<u4")
    if stored.shape != expected.shape:
        problems.append(f"Vector Grid Data has {stored.nbytes} bytes, the field {expected.nbytes}")
    else:
        step = 16 * MIB
        mismatch = next((start for start in range(0, stored.size, step)
                         if not np.array_equal(stored[start:start + step], expected[start:start + step])), None)
        if mismatch is not None:
            problems.append(f"Vector Grid Data differs from the field's vectors (first in values {mismatch}..)")
    return problems


def print_table(size_mib: float, field_: Field, results: Results, repeats: int) -> None:
    floor, ours, theirs = (results.median_seconds(n) for n in COMMANDS)
    floor_rss, our_rss, their_rss = (results.median_rss(n) for n in COMMANDS)
    field_mib = field_.vector_bytes / MIB
    print(f"\n== {size_mib:g} MiB: field {'x'.join(map(str, field_.dimensions))} float32 3-vectors = "
          f"{field_mib:.1f} MiB ({field_.path.stat().st_size} bytes file); median of {repeats} run(s) ==")
    print(f"{'command':<14}{'time s':>9}{'min':>8}{'max':>8}{'+ sync s':>10}{'peak RSS MiB':>14}")
    for name in COMMANDS:
        runs = results.runs[name]
        times = [r.seconds for r in runs]
        print(f"{name:<14}{results.median_seconds(name):>9.2f}{min(times):>8.2f}{max(times):>8.2f}"
              f"{results.median_durable_seconds(name):>10.2f}{results.median_rss(name):>14.0f}")
    durable_ratio = results.median_durable_seconds("dicomregsave") / results.median_durable_seconds("plastimatch")
    print(f"dicomregsave / plastimatch: time {ours / theirs:.2f}x, peak memory {our_rss / their_rss:.2f}x, "
          f"time until on disk (+ sync) {durable_ratio:.2f}x")
    print(f"dicomregsave / floor:       time {ours / floor:.2f}x (floor peak memory {floor_rss:.0f} MiB)")
    time_limit = TIME_RATIO_TARGET * theirs
    memory_limit = field_mib + MEMORY_ALLOWANCE_MIB
    print(f"target time <= {TIME_RATIO_TARGET} x plastimatch: {'PASS' if ours <= time_limit else 'MISS'} "
          f"({ours:.2f} s vs limit {time_limit:.2f} s)")
    print(f"target peak memory <= field + {MEMORY_ALLOWANCE_MIB:.0f} MiB: "
          f"{'PASS' if our_rss <= memory_limit else 'MISS'} ({our_rss:.0f} MiB vs limit {memory_limit:.0f} MiB)")


def benchmark(args: argparse.Namespace, workdir: Path) -> int:
    plastimatch = plastimatch_executable()
    print(f"plastimatch: {subprocess.run([plastimatch, '--version'], capture_output=True, text=True).stdout.strip()}"
          f" ({plastimatch})")
    print(f"dicomregsave: {Path(sys.executable).parent / 'dicomregsave'}; work folder {workdir}")
    print(f"peak memory: {memory_method()}; time: perf_counter around the launch")
    print("durability: dicomregsave and the floor fsync their output; plastimatch 1.10 calls no fsync (strace), "
          "so its write-back is outside 'time s'; '+ sync s' adds an os.sync() right after each run, "
          "the time until every command's output is on disk")
    case = write_case(workdir)
    bench = Bench(workdir, case, plastimatch)
    failed = False

    smoke = write_field(workdir / f"field-{SMOKE_SIZE_MIB:g}MiB.mha", SMOKE_SIZE_MIB, seed=1)
    for name in COMMANDS:
        _, output = bench.run(name, smoke.path, "smoke", keep=name != "floor")
        if name != "floor":
            problems = check_reg(output, smoke, case)
            print(f"smoke test {name}: {'REG OK' if not problems else '; '.join(problems)}")
            failed |= name == "dicomregsave" and bool(problems)
            remove(output)

    for size in args.sizes:
        started = time.perf_counter()
        field_ = write_field(workdir / f"field-{size:g}MiB.mha", size, seed=int(size))
        print(f"\nfield {field_.path.name} ready in {time.perf_counter() - started:.1f} s", flush=True)
        warm_read(field_.path)
        results = Results()
        last = None
        for repeat in range(args.repeats):
            for name in COMMANDS:
                keep = name == "dicomregsave" and repeat == args.repeats - 1
                run, output = bench.run(name, field_.path, f"{size:g}-{repeat}", keep=keep)
                results.runs[name].append(run)
                print(f"  run {repeat + 1} {name:<13}{run.seconds:8.2f} s (+ sync {run.durable_seconds:5.2f} s)"
                      f" {run.peak_rss_mib:8.0f} MiB", flush=True)
                if keep:
                    last = output
        print_table(size, field_, results, args.repeats)
        problems = check_reg(last, field_, case)
        print("REG check (dicomregsave): " + ("Vector Grid Data bit-identical to the field; grid geometry and "
              "frames of reference match" if not problems else "WRONG: " + "; ".join(problems)))
        failed |= bool(problems)
        remove(last)
        if args.workdir is None:
            field_.path.unlink()
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[96.0, 576.0], metavar="MIB",
                        help="field sizes in MiB of vector data (default 96 576)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per command and size (default 3)")
    parser.add_argument("--workdir", type=Path, metavar="DIR",
                        help="keep inputs here and reuse them (default: a temporary folder, removed at the end)")
    args = parser.parse_args()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        workdir, cleanup = args.workdir.resolve(), None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="dicomregsave-bench-")
        workdir = Path(cleanup.name)
    try:
        return benchmark(args, workdir)
    except (CommandFailed, subprocess.CalledProcessError) as error:
        print(f"benchmark_export: a command failed: {error}", file=sys.stderr)
        return 1
    finally:
        if cleanup is not None:
            cleanup.cleanup()


if __name__ == "__main__":
    sys.exit(main())
