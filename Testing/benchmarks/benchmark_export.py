"""Speed and memory benchmark of DicomRegSave (issue 9): every target in one command.

Not a pytest test (pytest collects ``test_*.py`` only): a script that prints a report and a
markdown table for the README::

    python Testing/benchmarks/benchmark_export.py [--pairs 7] [--only TARGET ...] [--workdir DIR]

Targets (``--only`` takes any of them; default all, in this order):

``export-96``, ``export-576``
    ``dicomregsave export`` of a 96 MiB (256x256x128) / 576 MiB (512x512x192) raw float32 ``.mha``
    displacement field against plastimatch 1.10 ``xf-convert --output-dicom`` (pip extra ``bench``,
    installed on demand), in ``--pairs`` alternating pairs (the order flips every pair, so drift
    and page-cache effects fall on both). Each pair gives a time ratio; the median and range of the
    ratios are the result. Targets (issue 17): ratio <= 1.4 (96 MiB) and <= 0.5 (576 MiB);
    dicomregsave's peak RSS <= field + 300 MiB.
``rigid-tfm``
    ``dicomregsave export`` of a rigid ITK text transform (VersorRigid3D; plastimatch 1.10 refuses
    Euler3D) as a Spatial Registration, against plastimatch ``xf-convert`` of the same file, in
    alternating pairs with the start-up floor. Goal (issue 17): ratio <= 2.0. The REG must map
    points as ITK maps the file (SimpleITK, 1e-6 mm).
``bspline-h5``
    ``dicomregsave export --grid-spacing`` of an ITK B-spline ``.h5`` sampled on a 512x512x64 fixed
    CT grid (192 MiB of vectors), against SimpleITK's ``TransformToDisplacementField`` on the same
    grid (sampling only, no file written: the peer does less), alternating pairs with the floor.
    Goal (issue 17): ratio <= 0.25, peak RSS <= field + 300 MiB. The REG's vectors must equal
    ITK's ``TransformPoint`` at 2000 grid points (1e-4 mm). Then, ``--pairs`` times in a fresh
    process, the step of the export that reads the .h5 and samples it (wall, CPU of all threads):
    the export less the floor and this step is the DICOM side (series headers, data set, writing).
``read-576``
    ``dicomregsave to-transform`` of the 576 MiB REG to ``.mha`` and to ``.nrrd``, alternating with
    the export that writes that REG; ratio read / export per pair. Target: <= 1.0, peak RSS <=
    field + 300 MiB; the ``.mha`` vectors must equal the field's bytes.
``slicer-export-576``, ``slicer-import-576``
    The Slicer paths, headless with slicer-core, each run in a fresh process (modules and
    highdicom's tables loaded first, as in a running Slicer session): export from a
    512x512x192 float32 grid transform node in memory (the engine's node -> REG steps:
    ``mrml.deformation.deformation_from_transform_node`` + ``export.export_registration``), and import of the
    576 MiB REG into transform nodes (``slicer_import.import_registration``). Reported: time of the
    step, its CPU, the process's peak RSS during the step (VmHWM reset before it; it includes the
    node's grid that the export starts from), the whole process's peak, and the peak of numpy/Python
    allocations during the step (tracemalloc): a float64 copy of the field would show as >= 2 x
    field. Target: step peak RSS <= 2 x field + 300 MiB (the node's grid plus the file's float32 view).
``scaling``
    Export and read-back at 96 MiB, 576 MiB and 1.5 GiB (``--scaling-repeats`` each, median):
    seconds, CPU, peak RSS, MiB/s and RSS minus the field, to show that both grow linearly.
``of-limit``
    A 4.5 GiB field (a sparse file: its header is real, its data is holes), too large for Vector
    Grid Data (OF, 32-bit length): the export must fail with the OF limit message, write nothing,
    and do so before reading any vector (seconds and peak RSS show it).

Measuring: every command runs in a fresh process under GNU ``/usr/bin/time -f "%e %U %S %M"``
(wall s, user s, sys s, peak RSS KiB of the command: a small launcher, so the RSS is not this
script's); without GNU time, a small ``python -c`` launcher reads ``RUSAGE_CHILDREN``. Inputs are
read once before the first timed run (warm page cache for every command); outputs are deleted and
``os.sync()`` is called after every run, outside the timed region. dicomregsave fsyncs its REG;
plastimatch 1.10 does not, so its write-back is outside its time (the "+sync" column adds an
``os.sync()`` right after each run for both).

Start-up floor (with every pair comparison, ``--no-floor`` skips it): in each pair, two commands that read
no file, ``python -c "import numpy, pydicom"`` and the same plus highdicom and the standard's tables
(:data:`FLOOR_COMMANDS`, under the collector schedule the command sets); their ratio to the peer shows
what no change to the export's own work can go below.

Bytecode: before the first run the package is compiled to ``__pycache__`` (:func:`compile_package`), as
an installed package is; otherwise, with ``PYTHONDONTWRITEBYTECODE`` set, every run would compile the
package's modules from source again (about 0.1 s).

Honesty: the load averages (``/proc/loadavg``) and the share of CPU time used by anything during a
15-second idle window (``/proc/stat``) are printed before and after. The run's own commands keep
the 1-minute load near 1 for minutes, so the load after is read once it has fallen to
``QUIET_LOAD_AFTER`` (waiting at most ``SETTLE_LIMIT_S``). The machine counts as quiet when the
load is at most ``QUIET_LOAD`` before and ``QUIET_LOAD_AFTER`` after and the busy share is at most
``QUIET_BUSY`` both times; otherwise the report says in capitals that the numbers are not results.
The table names the commit it was measured on. Exit status: 0 whatever the targets say, 1 if a command
failed or an output is wrong.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

from DicomRegSaveLib.inputs import sampledata

MIB = 1 << 20
PLASTIMATCH_REQUIREMENT = "plastimatch==1.10.0"
#: Extra peak memory a command may use beyond one copy of the field (two for the Slicer paths).
MEMORY_ALLOWANCE_MIB = 300.0
#: Largest 1-minute load average at which the machine counts as quiet.
QUIET_LOAD = 0.3
#: Largest 1-minute load average after the run, read once the run's own load has decayed.
QUIET_LOAD_AFTER = 0.5
SETTLE_LIMIT_S = 300.0
#: Largest share of all cores' time that other work may use, in a window before and after the run.
QUIET_BUSY = 0.05
BUSY_WINDOW_S = 15.0
#: What every export pays before it reads a file: the interpreter with numpy and pydicom (any Python
#: DICOM tool), then highdicom and the standard's tables that its SOP-class constructor and ours read
#: (``tags.load_standard_tables``): what a REG export through highdicom pays. Both run under the
#: garbage collector's schedule that the command sets as a process of its own
#: (``cli.process.command_process``), which spares them most of the collector's work too.
_FLOOR_PROCESS = "from DicomRegSaveLib.cli.process import command_process\nwith command_process():\n    "
FLOOR_COMMANDS = {
    "python+numpy+pydicom": _FLOOR_PROCESS + "import numpy, pydicom",
    "+highdicom+tables": _FLOOR_PROCESS
    + "import numpy, pydicom, highdicom\n    from DicomRegSaveLib.reg import tags\n    tags.load_standard_tables()",
}
TARGETS = (
    "export-96",
    "export-576",
    "rigid-tfm",
    "bspline-h5",
    "read-576",
    "slicer-export-576",
    "slicer-import-576",
    "scaling",
    "of-limit",
)
SCALING_SIZES_MIB = (96.0, 576.0, 1536.0)
#: Goals of issue 17 (time ratios to the peer, medians of the pairs).
EXPORT_96_RATIO_GOAL = 1.4
EXPORT_576_RATIO_GOAL = 0.5
#: ... and until both outputs are on disk (an ``os.sync()`` after each run)
EXPORT_576_ON_DISK_RATIO_GOAL = 0.4
#: to-transform of the 576 MiB REG against the export that wrote it
READ_RATIO_GOAL = 0.6
RIGID_RATIO_GOAL = 2.0
BSPLINE_RATIO_GOAL = 0.25
#: Fixed CT of the B-spline target: 512 x 512 x 64 voxels of 0.9 x 0.9 x 2.5 mm, axial.
BSPLINE_FIXED_DIMENSIONS = (512, 512, 64)
BSPLINE_FIXED_SPACING_MM = (0.9, 0.9, 2.5)
BSPLINE_FIXED_ORIGIN_LPS = (-229.95, -229.95, -78.75)
#: B-spline mesh (control spacings per axis over the fixed image) and coefficient amplitude (mm).
BSPLINE_MESH = (12, 12, 6)
BSPLINE_AMPLITUDE_MM = 4.0
#: Size of a field that Vector Grid Data cannot hold (its 32-bit length allows 4 GiB - 2 bytes).
OVER_LIMIT_SIZE_MIB = 4608.0

#: Fixed image: 64 x 64 x 32 voxels of 4 mm, axial, centred on the LPS origin (256 x 256 x 128 mm).
FIXED_DIMENSIONS = (64, 64, 32)
FIXED_SPACING_MM = (4.0, 4.0, 4.0)
#: Displacement amplitude (mm, standard deviation of the coarse random control values).
DISPLACEMENT_SCALE_MM = 5.0
#: Coarse random control grid (i, j, k) that is interpolated to the field: smooth content.
CONTROL_POINTS = (6, 6, 5)
#: Size (MiB) of the untimed smoke-test field.
SMOKE_SIZE_MIB = 1.5
GNU_TIME = Path("/usr/bin/time")
#: Runs a command and writes "wall user sys maxrss_kib" like GNU time does; used when GNU time is
#: missing. A small launcher matters: a forked child starts with its parent's resident set, which
#: Linux keeps in ru_maxrss across exec, so measuring straight from this process would report at
#: least this process's size.
LAUNCHER = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "open(sys.argv[1], 'w').write(f'{time.perf_counter() - t} {u.ru_utime} {u.ru_stime} {u.ru_maxrss}')\n"
    "sys.exit(code)\n"
)


class CommandFailed(RuntimeError):
    pass


@dataclass
class Case:
    """Inputs shared by all commands: the two DICOM series."""

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

    @property
    def mib(self) -> float:
        return self.vector_bytes / MIB

    @property
    def label(self) -> str:
        return f"{self.mib:g} MiB ({'x'.join(map(str, self.dimensions))})"

    def vectors(self) -> np.ndarray:
        """The stored vectors as a read-only memory map (n_k, n_j, n_i, 3), little-endian float32."""
        n_i, n_j, n_k = self.dimensions
        offset = self.path.stat().st_size - self.vector_bytes
        return np.memmap(self.path, dtype="<f4", mode="r", offset=offset, shape=(n_k, n_j, n_i, 3))


@dataclass
class Run:
    """One command's wall time, CPU times (s) and peak resident set (MiB); +sync adds an os.sync()."""

    wall: float
    user: float
    sys: float
    peak_rss_mib: float
    wall_sync: float = 0.0

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def median_run(runs: list[Run]) -> Run:
    return Run(
        *(
            statistics.median(getattr(r, name) for r in runs)
            for name in ("wall", "user", "sys", "peak_rss_mib", "wall_sync")
        )
    )


def grid_dimensions(size_mib: float) -> tuple[int, int, int]:
    """(n_i, n_j, n_k) holding about `size_mib` MiB of float32 3-vectors (96 -> 256x256x128, 576 -> 512x512x192)."""
    n_points = size_mib * MIB / 12
    n_ij = 256 if size_mib <= 192 else 512
    if size_mib < 8:
        n_ij = 64
    return n_ij, n_ij, max(2, round(n_points / (n_ij * n_ij)))


def compile_package() -> None:
    """Compile DicomRegSaveLib's modules to ``__pycache__`` (pip does so on install): the runs then
    load bytecode whether or not ``PYTHONDONTWRITEBYTECODE`` lets Python write it itself."""
    import compileall

    import DicomRegSaveLib

    folder = Path(DicomRegSaveLib.__file__).parent
    if not compileall.compile_dir(folder, quiet=1):
        raise CommandFailed(f"compiling {folder} to bytecode failed")
    print(f"bytecode of {folder} compiled (as an installed package has it)")


def write_case(folder: Path) -> Case:
    """Fixed and moving phantom CT series (same patient, different studies and frames of reference)."""
    uids = {
        name: str(generate_uid(entropy_srcs=["DicomRegSave benchmark", name]))
        for name in ("fixed study", "fixed series", "fixed frame", "moving study", "moving series", "moving frame")
    }
    common = dict(
        patient_name="Benchmark^Phantom",
        patient_id="DRS-BENCH",
        dimensions=FIXED_DIMENSIONS,
        spacing_mm=FIXED_SPACING_MM,
    )
    fixed_dir, moving_dir = folder / "fixed", folder / "moving"
    for directory in (fixed_dir, moving_dir):
        shutil.rmtree(directory, ignore_errors=True)
    sampledata.write_image_series(
        fixed_dir,
        **common,
        study_instance_uid=uids["fixed study"],
        series_instance_uid=uids["fixed series"],
        frame_of_reference_uid=uids["fixed frame"],
        study_id="FIXED",
        series_number=2,
        series_description="Fixed CT",
        file_prefix="FIXED",
    )
    sampledata.write_image_series(
        moving_dir,
        **common,
        study_instance_uid=uids["moving study"],
        series_instance_uid=uids["moving series"],
        frame_of_reference_uid=uids["moving frame"],
        study_date="20240612",
        study_id="MOVING",
        series_number=3,
        series_description="Moving CT",
        file_prefix="MOVING",
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


def field_geometry(path: Path, size_mib: float) -> Field:
    """The field of `size_mib` over the fixed volume's voxel-edge box (256 x 256 x 128 mm), grid
    points at the centres of equal cells, so it covers every fixed voxel centre."""
    dimensions = grid_dimensions(size_mib)
    extent_mm = np.array(FIXED_DIMENSIONS) * np.array(FIXED_SPACING_MM)
    spacing = extent_mm / np.array(dimensions)
    return Field(path, dimensions, -extent_mm / 2.0 + spacing / 2.0, spacing)


def write_field(path: Path, size_mib: float, seed: int) -> Field:
    """A smooth random field (LPS mm) as a raw MetaImage; reused when `path` already holds it."""
    result = field_geometry(path, size_mib)
    if path.is_file() and path.stat().st_size > result.vector_bytes and _header_dimensions(path) == result.dimensions:
        return result
    n_i, n_j, n_k = result.dimensions
    rng = np.random.default_rng(seed)
    control = rng.normal(0.0, DISPLACEMENT_SCALE_MM, size=(*CONTROL_POINTS[::-1], 3))
    w_i, w_j, w_k = (_linear_weights(n, c) for n, c in zip(result.dimensions, CONTROL_POINTS))
    temporary = path.with_suffix(".partial.mha")
    vectors = np.lib.format.open_memmap(
        path.with_suffix(".partial.npy"), mode="w+", dtype="<f4", shape=(n_k, n_j, n_i, 3)
    )
    for k in range(n_k):
        plane = np.tensordot(w_k[k], control, axes=(0, 0)).transpose(2, 0, 1)  # (3, c_j, c_i)
        vectors[k] = (w_j @ plane @ w_i.T).transpose(1, 2, 0)
    sampledata.write_displacement_field_mha(temporary, result.origin_lps, np.eye(3), result.spacing_mm, vectors)
    del vectors
    path.with_suffix(".partial.npy").unlink()
    os.replace(temporary, path)
    return result


def write_sparse_field(path: Path, size_mib: float) -> Field:
    """A MetaImage whose header declares a field of `size_mib` and whose data is a hole (no disk used)."""
    result = field_geometry(path, size_mib)
    sampledata.write_displacement_field_mha(
        path, result.origin_lps, np.eye(3), result.spacing_mm, np.zeros((1, 1, 1, 3), np.float32)
    )
    header = path.read_bytes()[:-12].replace(
        b"DimSize = 1 1 1", f"DimSize = {' '.join(map(str, result.dimensions))}".encode()
    )
    path.write_bytes(header)
    os.truncate(path, len(header) + result.vector_bytes)
    return result


def write_rigid_tfm(path: Path) -> Path:
    """An ITK text file of a rigid VersorRigid3DTransform (rotation of about 6 degrees, 2-4 mm shift)."""
    path.write_text(
        "#Insight Transform File V1.0\n#Transform 0\nTransform: VersorRigid3DTransform_double_3_3\n"
        "Parameters: 0.02 -0.01 0.05 2 -3 4\nFixedParameters: 10 -5 0\n"
    )
    return path


def write_ct_case(folder: Path) -> Case:
    """Fixed and moving CT series of 512 x 512 x 64 voxels (the B-spline target's fixed grid)."""
    fixed_dir, moving_dir = folder / "fixed", folder / "moving"
    uids = {
        name: str(generate_uid(entropy_srcs=["DicomRegSave benchmark CT", name]))
        for name in ("fixed study", "fixed series", "fixed frame", "moving study", "moving series", "moving frame")
    }
    if not (fixed_dir.is_dir() and moving_dir.is_dir()):
        for side, directory in (("fixed", fixed_dir), ("moving", moving_dir)):
            sampledata.write_image_series(
                directory,
                patient_name="Benchmark^Phantom",
                patient_id="DRS-BENCH",
                dimensions=BSPLINE_FIXED_DIMENSIONS,
                spacing_mm=BSPLINE_FIXED_SPACING_MM,
                origin_lps=BSPLINE_FIXED_ORIGIN_LPS,
                study_instance_uid=uids[f"{side} study"],
                series_instance_uid=uids[f"{side} series"],
                frame_of_reference_uid=uids[f"{side} frame"],
                series_description=f"{side.title()} CT 512",
                file_prefix=side.upper(),
            )
    return Case(fixed_dir, moving_dir, uids["fixed frame"], uids["moving frame"])


def write_bspline_h5(path: Path) -> Path:
    """An ITK BSplineTransform over the B-spline target's fixed CT, random coefficients, as SimpleITK writes it."""
    import SimpleITK as sitk

    domain = sitk.Image(list(BSPLINE_FIXED_DIMENSIONS), sitk.sitkUInt8)
    domain.SetSpacing(BSPLINE_FIXED_SPACING_MM)
    domain.SetOrigin(BSPLINE_FIXED_ORIGIN_LPS)
    transform = sitk.BSplineTransformInitializer(domain, list(BSPLINE_MESH))
    rng = np.random.default_rng(17)
    transform.SetParameters(
        rng.uniform(-BSPLINE_AMPLITUDE_MM, BSPLINE_AMPLITUDE_MM, transform.GetNumberOfParameters()).tolist()
    )
    sitk.WriteTransform(transform, str(path))
    return path


def check_rigid_reg(path: Path, tfm: Path) -> list[str]:
    """Problems of the Spatial Registration written for the rigid `tfm` (ITK's mapping is the oracle)."""
    import SimpleITK as sitk

    from DicomRegSaveLib.reg.reader import read_registration

    dataset = pydicom.dcmread(path)
    if dataset.SOPClassUID != "1.2.840.10008.5.1.4.1.1.66.1":
        return [f"SOP Class UID {dataset.SOPClassUID}, expected Spatial Registration"]
    points = np.random.default_rng(5).uniform(-120.0, 120.0, (200, 3))
    transform = sitk.ReadTransform(str(tfm))
    expected = np.array([transform.TransformPoint(p.tolist()) for p in points])
    error = np.abs(read_registration(path).choose_item().map_points(points) - expected).max()
    return [] if error < 1e-6 else [f"mapped points differ from ITK's by up to {error:.3g} mm"]


def check_bspline_reg(path: Path, h5: Path) -> list[str]:
    """Problems of the REG sampled from the B-spline `h5` (ITK's TransformPoint at 2000 grid points)."""
    import SimpleITK as sitk

    from DicomRegSaveLib.reg.reader import read_registration

    grid = read_registration(path).choose_item().grid
    if grid.dimensions != BSPLINE_FIXED_DIMENSIONS:
        return [f"grid {grid.dimensions}, expected the fixed CT's {BSPLINE_FIXED_DIMENSIONS}"]
    rng = np.random.default_rng(6)
    index = np.stack([rng.integers(0, n, 2000) for n in grid.dimensions], axis=1)
    points = index @ grid.index_to_lps[:3, :3].T + grid.index_to_lps[:3, 3]
    transform = sitk.ReadTransform(str(h5))
    expected = np.array([transform.TransformPoint(p.tolist()) for p in points]) - points
    stored = grid.vectors_lps[index[:, 2], index[:, 1], index[:, 0]]
    error = np.abs(stored - expected).max()
    return [] if error < 1e-4 else [f"vectors differ from ITK's by up to {error:.3g} mm"]


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


def run_measured(command: list[str], log: Path, expect_failure: bool = False) -> Run:
    """Run `command` in a fresh process: wall, user and sys seconds and its peak resident set."""
    usage_file = log.with_suffix(".usage")
    if GNU_TIME.is_file():
        launcher = [str(GNU_TIME), "-o", str(usage_file), "-f", "%e %U %S %M"]
    else:
        launcher = [sys.executable, "-c", LAUNCHER, str(usage_file)]
    with open(log, "wb") as output:
        completed = subprocess.run([*launcher, *command], stdout=output, stderr=subprocess.STDOUT)
    if (completed.returncode != 0) != expect_failure:
        text = log.read_text(errors="replace")[-2000:]
        raise CommandFailed(f"{' '.join(command)} exited with {completed.returncode}:\n{text}")
    wall, user, system, peak_kib = usage_file.read_text().split()[-4:]
    started = time.perf_counter()
    os.sync()
    run = Run(float(wall), float(user), float(system), int(peak_kib) / 1024.0)
    run.wall_sync = run.wall + time.perf_counter() - started
    return run


def warm_read(path: Path) -> None:
    with open(path, "rb", buffering=0) as stream:
        while stream.read(64 * MIB):
            pass


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
    if not same_values(np.frombuffer(grid.VectorGridData, dtype="<u4"), field_.vectors().reshape(-1).view("<u4")):
        problems.append("Vector Grid Data differs from the field's vectors")
    return problems


def same_values(stored: np.ndarray, expected: np.ndarray) -> bool:
    """Bit for bit, in chunks (the arrays may be memory maps larger than memory allows to copy)."""
    if stored.shape != expected.shape:
        return False
    step = 16 * MIB
    return all(
        np.array_equal(stored[start : start + step], expected[start : start + step])
        for start in range(0, stored.size, step)
    )


def field_file_matches(path: Path, field_: Field) -> bool:
    """Whether the raw float32 data at the end of field file `path` is the field's, bit for bit."""
    offset = path.stat().st_size - field_.vector_bytes
    if offset <= 0:
        return False
    stored = np.memmap(path, dtype="<u4", mode="r", offset=offset, shape=(field_.vector_bytes // 4,))
    return same_values(stored, field_.vectors().reshape(-1).view("<u4"))


def load_averages() -> tuple[float, float, float]:
    return tuple(float(v) for v in Path("/proc/loadavg").read_text().split()[:3])


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot (/proc/stat; iowait counts as idle)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def settled_load_averages() -> tuple[float, float, float]:
    """The load averages once the 1-minute load has fallen to :data:`QUIET_LOAD_AFTER`, or after
    :data:`SETTLE_LIMIT_S` seconds: the run's own commands raise it for minutes, other work keeps it up."""
    deadline = time.monotonic() + SETTLE_LIMIT_S
    while load_averages()[0] > QUIET_LOAD_AFTER and time.monotonic() < deadline:
        time.sleep(5.0)
    return load_averages()


def busy_fraction(seconds: float = BUSY_WINDOW_S) -> float:
    """Share of the machine's CPU time (all cores) used by anything during `seconds` of this script
    sleeping. Unlike the load average, which the benchmark's own commands keep near 1 for minutes
    after they stop, this shows whether other work competes for the cores right now."""
    busy, total = _cpu_ticks()
    time.sleep(seconds)
    busy_after, total_after = _cpu_ticks()
    return (busy_after - busy) / max(1, total_after - total)


def commit_description() -> str:
    repository = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repository), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repository), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit (not a git checkout)"
    return commit + (" + uncommitted changes" if dirty else "")


# ----------------------------------------------------------------------------------------------
# The Slicer paths, each run by this script in a fresh process (``--slicer-step``)


def slicer_step(step: str, field_path: Path, fixed_dir: Path, moving_dir: Path, reg_path: Path) -> dict:
    """Run one Slicer path in this process; return its measurements (the process's peak RSS is
    measured from outside)."""
    import resource
    import tracemalloc

    import slicer

    from DicomRegSaveLib import geometry

    def cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    scene = slicer.vtkMRMLScene()
    if step == "export":
        import vtk
        from vtk.util import numpy_support

        from DicomRegSaveLib.export.pipeline import export_registration
        from DicomRegSaveLib.inputs.field_headers import raw_field_header
        from DicomRegSaveLib.inputs.series import read_image_series
        from DicomRegSaveLib.mrml.deformation import deformation_from_transform_node
        from DicomRegSaveLib.reg import tags
        from mrml_helpers import vtk_matrix

        header = raw_field_header(field_path)
        n_i, n_j, n_k = header.dimensions
        # read, not memory-mapped: the node's array is then the only copy in this process
        vectors_ras = np.fromfile(field_path, dtype="<f4", count=3 * n_i * n_j * n_k, offset=header.data_offset)
        geometry.lps_to_ras_vectors_in_place(vectors_ras.reshape(-1, 3))
        # The node as a registration module leaves it: a float32 grid transform, from-parent, in RAS.
        image = vtk.vtkImageData()
        image.SetDimensions(n_i, n_j, n_k)
        image.SetOrigin(*geometry.lps_to_ras_points(header.origin_lps))
        image.SetSpacing(*header.spacing_mm)
        image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(vectors_ras.reshape(-1, 3), deep=False))
        transform = slicer.vtkOrientedGridTransform()
        transform.SetDisplacementGridData(image)
        direction = np.eye(4)
        direction[:3, :3] = geometry.lps_to_ras_direction(header.direction_lps)
        transform.SetGridDirectionMatrix(vtk_matrix(direction))
        transform.SetInterpolationModeToLinear()
        node = scene.AddNewNodeByClass("vtkMRMLGridTransformNode")
        node.SetAndObserveTransformFromParent(transform)
        fixed, moving = read_image_series(fixed_dir, "fixed"), read_image_series(moving_dir, "moving")
        # A Slicer session imports these once; tracing the import of highdicom's tables (tens of MB
        # of Python objects) would take minutes, so they are loaded before the measured step.
        tags.load_standard_tables()
        reset_peak_rss()
        before_rss = peak_rss_mib("VmRSS")
        tracemalloc.start()
        started, cpu = time.perf_counter(), cpu_seconds()
        deformation = deformation_from_transform_node(node, fixed.ijk_to_lps, fixed.dimensions)
        export_registration(deformation, fixed, moving, reg_path, force=True)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        details = f"exact copy: {deformation.exact}, node vectors {vectors_ras.dtype} (RAS, converted plane by plane)"
    else:
        from vtk.util import numpy_support

        from DicomRegSaveLib.slicer.importing import import_registration

        reset_peak_rss()
        before_rss = peak_rss_mib("VmRSS")
        tracemalloc.start()
        started, cpu = time.perf_counter(), cpu_seconds()
        result = import_registration(reg_path, scene, None, apply_to_moving=False)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        grids = [
            n
            for n in (
                scene.GetNthNodeByClass(i, "vtkMRMLGridTransformNode")
                for i in range(scene.GetNumberOfNodesByClass("vtkMRMLGridTransformNode"))
            )
        ]
        scalars = grids[0].GetTransformFromParent().GetDisplacementGrid().GetPointData().GetScalars()
        details = (
            f"{len(result.items)} transform chain(s), grid node values {scalars.GetDataTypeAsString()} "
            f"({numpy_support.vtk_to_numpy(scalars).nbytes / MIB:.0f} MiB)"
        )
    _, traced_peak = tracemalloc.get_traced_memory()
    return {
        "seconds": seconds,
        "cpu": cpu,
        "traced_peak_mib": traced_peak / MIB,
        "step_peak_rss_mib": peak_rss_mib(),
        "rss_before_mib": before_rss,
        "details": details,
    }


def reset_peak_rss() -> None:
    """Start this process's peak resident set (VmHWM) afresh (Linux >= 4.0), so that the peak
    read afterwards is the measured step's, its data already in memory included."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mib(field: str = "VmHWM") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


# ----------------------------------------------------------------------------------------------
# Targets


@dataclass
class Row:
    """One line of the README table."""

    target: str
    ours: str
    reference: str
    ratio: str
    goal: str
    met: bool | None


class Bench:
    def __init__(self, workdir: Path, args: argparse.Namespace) -> None:
        self.workdir = workdir
        self.args = args
        self.case = write_case(workdir)
        self.dicomregsave = Path(sys.executable).parent / "dicomregsave"
        self.logs = workdir / "logs"
        self.logs.mkdir(exist_ok=True)
        self._plastimatch: Path | None = None
        self.rows: list[Row] = []
        self.failed = False
        self.counter = 0

    @property
    def plastimatch(self) -> Path:
        if self._plastimatch is None:
            self._plastimatch = plastimatch_executable()
            version = subprocess.run([self._plastimatch, "--version"], capture_output=True, text=True).stdout.strip()
            print(f"plastimatch: {version} ({self._plastimatch})", flush=True)
        return self._plastimatch

    def field(self, size_mib: float) -> Field:
        started = time.perf_counter()
        result = write_field(self.workdir / f"field-{size_mib:g}MiB.mha", size_mib, seed=int(size_mib))
        warm_read(result.path)
        print(f"field {result.path.name} ({result.label}) ready in {time.perf_counter() - started:.1f} s", flush=True)
        return result

    def measure(self, name: str, command: list[str], expect_failure: bool = False) -> Run:
        self.counter += 1
        run = run_measured(command, self.logs / f"{self.counter:03d}-{name}.log", expect_failure)
        print(
            f"  {name:<26}{run.wall:7.2f} s wall (+sync {run.wall_sync:5.2f}) {run.user:6.2f} user "
            f"{run.sys:6.2f} sys {run.peak_rss_mib:7.0f} MiB",
            flush=True,
        )
        return run

    def export_command(self, transform: Path, output: Path, case: Case | None = None, *options: str) -> list[str]:
        """``dicomregsave export`` of `transform` between the series of `case` (default: the 64x64x32 one)."""
        case = case or self.case
        return [
            str(self.dicomregsave),
            "export",
            "--transform",
            str(transform),
            "--fixed",
            str(case.fixed_dir),
            "--moving",
            str(case.moving_dir),
            *options,
            "--output",
            str(output),
            "--force",
        ]

    def plastimatch_command(self, transform: Path, output: Path) -> list[str]:
        case = self.case
        return [
            str(self.plastimatch),
            "xf-convert",
            "--input",
            str(transform),
            "--output-dicom",
            str(output),
            "--fixed-rcs",
            str(case.fixed_dir),
            "--moving-rcs",
            str(case.moving_dir),
        ]

    def read_command(self, reg: Path, output: Path) -> list[str]:
        return [str(self.dicomregsave), "to-transform", str(reg), str(output), "--force"]

    def check(self, what: str, problems: list[str]) -> None:
        print(f"  check {what}: " + ("OK" if not problems else "WRONG: " + "; ".join(problems)), flush=True)
        self.failed |= bool(problems)

    # -- targets ---------------------------------------------------------------------------------

    def smoke(self) -> None:
        """Untimed: both commands on a small field (warms the executables' files, proves the REG)."""
        field_ = write_field(self.workdir / f"field-{SMOKE_SIZE_MIB:g}MiB.mha", SMOKE_SIZE_MIB, seed=1)
        print("smoke test (untimed):")
        for name, command, output in (
            ("dicomregsave", self.export_command, self.workdir / "smoke.dcm"),
            ("plastimatch", self.plastimatch_command, self.workdir / "smoke-plastimatch"),
        ):
            self.measure(name, command(field_.path, output))
            self.check(f"{name} REG", check_reg(output, field_, self.case))
            remove(output)

    def export_pairs(self, size_mib: float, ratio_goal: float, on_disk_goal: float | None = None) -> None:
        field_ = self.field(size_mib)
        self.compare_pairs(
            f"export {field_.label}",
            lambda output: self.export_command(field_.path, output),
            lambda output: self.plastimatch_command(field_.path, output),
            "plastimatch xf-convert",
            lambda output: check_reg(output, field_, self.case),
            "REG vectors bit for bit = field",
            ratio_goal,
            field_.mib + MEMORY_ALLOWANCE_MIB,
            on_disk_goal,
        )

    def compare_pairs(
        self,
        label: str,
        ours_command,
        theirs_command,
        theirs_name: str,
        check,
        check_what: str,
        ratio_goal: float,
        rss_limit_mib: float,
        on_disk_goal: float | None = None,
    ) -> None:
        """Alternating pairs of ``dicomregsave export`` and a peer (commands made for an output path),
        the start-up floor commands in every pair; one table row for the pair and one per floor.
        With `on_disk_goal`, the ratio until both outputs are on disk has a goal too."""
        ours_out, theirs_out = self.workdir / "export.dcm", self.workdir / "peer-out"
        ours, theirs = [], []
        floors: dict[str, list[Run]] = {name: [] for name in FLOOR_COMMANDS} if self.args.floor else {}
        for pair in range(self.args.pairs):
            print(f" pair {pair + 1}/{self.args.pairs}")
            order = ("ours", "theirs") if pair % 2 == 0 else ("theirs", "ours")
            for who in (*order, *floors):
                if who in floors:
                    floors[who].append(self.measure(who, [sys.executable, "-c", FLOOR_COMMANDS[who]]))
                elif who == "ours":
                    ours.append(self.measure("dicomregsave export", ours_command(ours_out)))
                    if pair == self.args.pairs - 1:
                        self.check(check_what, check(ours_out))
                    remove(ours_out)
                else:
                    theirs.append(self.measure(theirs_name, theirs_command(theirs_out)))
                    remove(theirs_out)
        ratios = [a.wall / b.wall for a, b in zip(ours, theirs)]
        sync_ratios = [a.wall_sync / b.wall_sync for a, b in zip(ours, theirs)]
        ours_m, theirs_m = median_run(ours), median_run(theirs)
        print(
            f" ratio dicomregsave/{theirs_name.split()[0]} per pair: {_ratios(ratios)}; "
            f"until on disk (+sync): {_ratios(sync_ratios)}"
        )
        self.rows.append(
            Row(
                label,
                _cell(ours_m),
                f"{_cell(theirs_m)} ({theirs_name})",
                _ratios(ratios),
                f"time <= {ratio_goal:g}x"
                + (f" (<= {on_disk_goal:g}x until on disk)" if on_disk_goal is not None else "")
                + f", RSS <= {rss_limit_mib:.0f} MiB",
                statistics.median(ratios) <= ratio_goal
                and (on_disk_goal is None or statistics.median(sync_ratios) <= on_disk_goal)
                and ours_m.peak_rss_mib <= rss_limit_mib,
            )
        )
        for name, runs in floors.items():
            floor_ratios = [a.wall / b.wall for a, b in zip(runs, theirs)]
            print(f" ratio start-up floor {name} / {theirs_name.split()[0]} per pair: {_ratios(floor_ratios)}")
            self.rows.append(
                Row(
                    f"start-up floor: {name} (no file read)",
                    _cell(median_run(runs)),
                    f"{theirs_name}, {label}",
                    _ratios(floor_ratios),
                    "",
                    None,
                )
            )

    def rigid_pairs(self) -> None:
        """A rigid ITK text transform (VersorRigid3D, which plastimatch reads; it refuses Euler3D)
        exported as a Spatial Registration, against plastimatch ``xf-convert`` of the same file."""
        path = write_rigid_tfm(self.workdir / "rigid.tfm")
        self.compare_pairs(
            "export of a rigid .tfm (Spatial Registration)",
            lambda output: self.export_command(path, output),
            lambda output: self.plastimatch_command(path, output),
            "plastimatch xf-convert",
            lambda output: check_rigid_reg(output, path),
            "REG maps points as ITK maps the .tfm",
            RIGID_RATIO_GOAL,
            MEMORY_ALLOWANCE_MIB,
        )

    def bspline_pairs(self) -> None:
        """An ITK B-spline (.h5) sampled on the fixed CT grid (512 x 512 x 64) and exported, against
        SimpleITK's TransformToDisplacementField on the same grid (sampling only, nothing written)."""
        ct = write_ct_case(self.workdir / "ct-512")
        path = write_bspline_h5(self.workdir / "bspline.h5")
        field_mib = 12 * int(np.prod(BSPLINE_FIXED_DIMENSIONS)) / MIB
        spacing = [str(v) for v in BSPLINE_FIXED_SPACING_MM]
        sitk_program = (
            "import sys, SimpleITK as sitk\n"
            f"t = sitk.ReadTransform({str(path)!r})\n"
            f"f = sitk.TransformToDisplacementField(t, sitk.sitkVectorFloat32, {list(BSPLINE_FIXED_DIMENSIONS)!r}, "
            f"{list(BSPLINE_FIXED_ORIGIN_LPS)!r}, {list(BSPLINE_FIXED_SPACING_MM)!r})\n"
        )
        self.compare_pairs(
            f"B-spline .h5 sampled on the fixed CT grid ({'x'.join(map(str, BSPLINE_FIXED_DIMENSIONS))}, "
            f"{field_mib:.0f} MiB) and exported",
            lambda output: self.export_command(path, output, ct, "--grid-spacing", *spacing),
            lambda output: [sys.executable, "-c", sitk_program],
            "SimpleITK TransformToDisplacementField",
            lambda output: check_bspline_reg(output, path),
            "REG vectors = ITK's B-spline at 2000 grid points (1e-4 mm)",
            BSPLINE_RATIO_GOAL,
            field_mib + MEMORY_ALLOWANCE_MIB,
        )
        steps = [self.bspline_sampling_step(path) for _ in range(self.args.pairs)]
        wall, cpu = (statistics.median(step[key] for step in steps) for key in ("wall", "cpu"))
        print(f" of which reading the .h5 and sampling (in-process, medians): {wall:.2f} s wall, {cpu:.2f} s CPU")
        self.rows.append(
            Row(
                "of which: reading the .h5 and sampling the B-spline (in-process, after the start-up)",
                f"{wall:.2f} s ({cpu:.2f} s CPU on {steps[0]['threads']} threads)",
                "",
                "",
                "",
                None,
            )
        )

    def bspline_sampling_step(self, path: Path) -> dict:
        """The B-spline target's own work beyond the start-up and the DICOM files, in a fresh process:
        ``deformation_from_file`` (read the .h5, sample on the fixed CT grid). Wall seconds, CPU
        seconds of all threads, the number of threads."""
        program = (
            "import json, resource, time\n"
            "import numpy as np\n"
            "from DicomRegSaveLib import bspline, geometry\n"
            "from DicomRegSaveLib.inputs.transform_files import deformation_from_file\n"
            f"matrix = geometry.index_to_patient_matrix(np.array({list(BSPLINE_FIXED_ORIGIN_LPS)!r}), np.eye(3), "
            f"np.array({list(BSPLINE_FIXED_SPACING_MM)!r}))\n"
            "def cpu():\n"
            "    usage = resource.getrusage(resource.RUSAGE_SELF)\n"
            "    return usage.ru_utime + usage.ru_stime\n"
            "cpu_start, start = cpu(), time.perf_counter()\n"
            f"deformation_from_file({str(path)!r}, matrix, {list(BSPLINE_FIXED_DIMENSIONS)!r}, "
            f"grid_spacing_mm={list(BSPLINE_FIXED_SPACING_MM)!r})\n"
            "wall = time.perf_counter() - start\n"
            "print(json.dumps({'wall': wall, 'cpu': cpu() - cpu_start, 'threads': bspline.worker_count()}))\n"
        )
        completed = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
        if completed.returncode != 0:
            raise CommandFailed(f"the B-spline sampling step exited with {completed.returncode}:\n{completed.stderr}")
        return json.loads(completed.stdout.splitlines()[-1])

    def read_pairs(self, size_mib: float) -> None:
        field_ = self.field(size_mib)
        reg = self.workdir / "read-source.dcm"
        exports, reads = [], {".mha": [], ".nrrd": []}
        for pair in range(self.args.pairs):
            print(f" pair {pair + 1}/{self.args.pairs}")
            exports.append(self.measure("dicomregsave export", self.export_command(field_.path, reg)))
            for extension in (".mha", ".nrrd") if pair % 2 == 0 else (".nrrd", ".mha"):
                output = self.workdir / f"read-back{extension}"
                reads[extension].append(self.measure(f"to-transform -> {extension}", self.read_command(reg, output)))
                if pair == 0:
                    self.check(
                        f"{extension} vectors bit for bit = field",
                        [] if field_file_matches(output, field_) else ["they differ"],
                    )
                remove(output)
        remove(reg)
        limit = field_.mib + MEMORY_ALLOWANCE_MIB
        for extension, runs in reads.items():
            ratios = [r.wall / e.wall for r, e in zip(runs, exports)]
            median = median_run(runs)
            print(f" ratio to-transform {extension} / export per pair: {_ratios(ratios)}")
            self.rows.append(
                Row(
                    f"read {field_.label} REG -> {extension}",
                    _cell(median),
                    _cell(median_run(exports)) + " (export)",
                    _ratios(ratios),
                    f"time <= {READ_RATIO_GOAL:g}x export, RSS <= {limit:.0f} MiB",
                    statistics.median(ratios) <= READ_RATIO_GOAL and median.peak_rss_mib <= limit,
                )
            )

    def slicer_path(self, step: str, size_mib: float) -> None:
        field_ = self.field(size_mib)
        reg = self.workdir / f"slicer-{step}.dcm"
        if step == "import":
            self.measure("dicomregsave export (input)", self.export_command(field_.path, reg))
        runs, steps = [], []
        for repeat in range(self.args.scaling_repeats):
            result_file = self.workdir / "slicer-step.json"
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--slicer-step",
                step,
                "--workdir",
                str(self.workdir),
                "--field",
                str(field_.path),
                "--reg",
                str(reg),
                "--result",
                str(result_file),
            ]
            runs.append(self.measure(f"Slicer {step} (process)", command))
            steps.append(json.loads(result_file.read_text()))
            print(
                f"   step: {steps[-1]['seconds']:.2f} s, {steps[-1]['cpu']:.2f} s CPU, peak RSS "
                f"{steps[-1]['step_peak_rss_mib']:.0f} MiB (RSS before it {steps[-1]['rss_before_mib']:.0f} MiB), allocations peak {steps[-1]['traced_peak_mib']:.0f} MiB; "
                f"{steps[-1]['details']}",
                flush=True,
            )
            if step == "export" and repeat == 0:
                self.check("REG vectors bit for bit = field", check_reg(reg, field_, self.case))
        remove(reg)
        process = median_run(runs)
        seconds = statistics.median(s["seconds"] for s in steps)
        cpu = statistics.median(s["cpu"] for s in steps)
        traced = max(s["traced_peak_mib"] for s in steps)
        step_rss = max(s["step_peak_rss_mib"] for s in steps)
        rss_before = statistics.median(s["rss_before_mib"] for s in steps)
        limit = 2 * field_.mib + MEMORY_ALLOWANCE_MIB
        no_float64 = traced < 1.5 * field_.mib
        what = "grid transform node (float32, in memory) -> REG" if step == "export" else "REG -> transform nodes"
        self.rows.append(
            Row(
                f"Slicer {what}, {field_.label}",
                f"{seconds:.2f} s ({cpu:.2f} s CPU), peak RSS {step_rss:.0f} MiB (before the step {rss_before:.0f} MiB; "
                f"process incl. set-up {process.peak_rss_mib:.0f} MiB), allocations peak {traced:.0f} MiB",
                "",
                "",
                f"RSS <= {limit:.0f} MiB, no float64 copy (allocations < 1.5x field)",
                step_rss <= limit and no_float64,
            )
        )

    def scaling(self) -> None:
        rows = []
        for size in SCALING_SIZES_MIB:
            field_ = self.field(size)
            reg, back = self.workdir / "scaling.dcm", self.workdir / "scaling-back.mha"
            exports, reads = [], []
            for _ in range(self.args.scaling_repeats):
                exports.append(self.measure("dicomregsave export", self.export_command(field_.path, reg)))
                reads.append(self.measure("to-transform -> .mha", self.read_command(reg, back)))
                remove(back)
            remove(reg)
            rows.append((field_, median_run(exports), median_run(reads)))
            if size > 1000 and self.args.workdir is None:
                field_.path.unlink()
        print("\n scaling (medians):")
        print(f" {'field':<26}{'export s':>9}{'MiB/s':>8}{'RSS-field':>10}{'read s':>9}{'MiB/s':>8}{'RSS-field':>10}")
        for field_, export, read in rows:
            print(
                f" {field_.label:<26}{export.wall:9.2f}{field_.mib / export.wall:8.0f}"
                f"{export.peak_rss_mib - field_.mib:10.0f}{read.wall:9.2f}{field_.mib / read.wall:8.0f}"
                f"{read.peak_rss_mib - field_.mib:10.0f}"
            )
        for field_, export, read in rows:
            linear = all(r.peak_rss_mib <= field_.mib + MEMORY_ALLOWANCE_MIB for r in (export, read))
            self.rows.append(
                Row(
                    f"scaling {field_.label}: export / read",
                    f"{_cell(export)} / {_cell(read)}",
                    "",
                    f"{field_.mib / export.wall:.0f} / {field_.mib / read.wall:.0f} MiB/s",
                    f"RSS <= field + {MEMORY_ALLOWANCE_MIB:.0f} MiB",
                    linear,
                )
            )

    def of_limit(self) -> None:
        field_ = write_sparse_field(self.workdir / "field-over-4GiB.mha", OVER_LIMIT_SIZE_MIB)
        output = self.workdir / "over-limit.dcm"
        run = self.measure("export of a 4.5 GiB field", self.export_command(field_.path, output), expect_failure=True)
        log = sorted(self.logs.glob("*export of a 4.5 GiB field.log"))[-1].read_text(errors="replace")
        problems = [] if "Vector Grid Data (OF) can hold" in log else [f"no OF limit message: {log[-300:]}"]
        problems += [f"{output} was written"] if output.exists() else []
        self.check("OF limit reported, nothing written", problems)
        field_.path.unlink()
        self.rows.append(
            Row(
                f"export {field_.label} (over the OF limit)",
                f"refused in {run.wall:.2f} s, peak {run.peak_rss_mib:.0f} MiB",
                "",
                "",
                "error before any vector is read",
                not problems and run.peak_rss_mib < MEMORY_ALLOWANCE_MIB,
            )
        )


def _cell(run: Run) -> str:
    return f"{run.wall:.2f} s ({run.user:.2f} u + {run.sys:.2f} s), {run.peak_rss_mib:.0f} MiB"


def _ratios(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}, n={len(ratios)})"


def print_table(
    bench: Bench,
    commit: str,
    before: tuple[float, ...],
    after: tuple[float, ...],
    quiet: bool,
    busy: tuple[float, float],
) -> None:
    print(
        f"\n## Benchmark (commit {commit}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores, load {before[0]:.2f} before / {after[0]:.2f} after, CPU busy "
        f"{busy[0]:.1%} before / {busy[1]:.1%} after{'' if quiet else ', NOT QUIET: not results'})\n"
    )
    print("Times are medians: wall (user + sys CPU), peak RSS; ratios per alternating pair: median (range, pairs).\n")
    print("| target | dicomregsave | reference | ratio | goal | met |")
    print("|---|---|---|---|---|---|")
    for row in bench.rows:
        met = "-" if row.met is None else ("yes" if row.met else "NO")
        print(f"| {row.target} | {row.ours} | {row.reference} | {row.ratio} | {row.goal} | {met} |")


def benchmark(args: argparse.Namespace, workdir: Path) -> int:
    targets = args.only or list(TARGETS)
    commit = commit_description()
    before = load_averages()
    busy_before = busy_fraction()
    print(f"DicomRegSave benchmark, commit {commit}; targets: {', '.join(targets)}; {args.pairs} pairs")
    print(f"dicomregsave: {Path(sys.executable).parent / 'dicomregsave'}; work folder {workdir}")
    print(
        f"load averages before: {before[0]:.2f} {before[1]:.2f} {before[2]:.2f} ({os.cpu_count()} cores); "
        f"CPU busy {busy_before:.1%} of all cores over {BUSY_WINDOW_S:g} s"
    )
    if before[0] > QUIET_LOAD or busy_before > QUIET_BUSY:
        print(
            f"WARNING: THE MACHINE IS NOT QUIET (1-minute load {before[0]:.2f} > {QUIET_LOAD} or CPU busy "
            f"{busy_before:.1%} > {QUIET_BUSY:.0%}): the numbers below are a smoke test, not results."
        )
    started = time.perf_counter()
    compile_package()
    bench = Bench(workdir, args)
    if any(t.startswith("export") for t in targets):
        bench.smoke()
    for target in targets:
        print(f"\n== {target} ==", flush=True)
        if target == "export-96":
            bench.export_pairs(96.0, EXPORT_96_RATIO_GOAL)
        elif target == "export-576":
            bench.export_pairs(576.0, EXPORT_576_RATIO_GOAL, EXPORT_576_ON_DISK_RATIO_GOAL)
        elif target == "rigid-tfm":
            bench.rigid_pairs()
        elif target == "bspline-h5":
            bench.bspline_pairs()
        elif target == "read-576":
            bench.read_pairs(576.0)
        elif target == "slicer-export-576":
            bench.slicer_path("export", 576.0)
        elif target == "slicer-import-576":
            bench.slicer_path("import", 576.0)
        elif target == "scaling":
            bench.scaling()
        elif target == "of-limit":
            bench.of_limit()
    whole_run = time.perf_counter() - started
    busy_after = busy_fraction()
    after = settled_load_averages()
    quiet = before[0] <= QUIET_LOAD and after[0] <= QUIET_LOAD_AFTER and max(busy_before, busy_after) <= QUIET_BUSY
    print(
        f"\nload averages after (once the run's own load had decayed, at most {SETTLE_LIMIT_S:g} s): "
        f"{after[0]:.2f} {after[1]:.2f} {after[2]:.2f}; CPU busy {busy_after:.1%} over {BUSY_WINDOW_S:g} s; "
        f"whole run {whole_run:.0f} s"
    )
    if not quiet:
        print(
            f"WARNING: THE MACHINE WAS NOT QUIET (load above {QUIET_LOAD} before or {QUIET_LOAD_AFTER} after, or CPU "
            f"busy above {QUIET_BUSY:.0%}): these numbers are not results; re-run on a quiet machine."
        )
    print_table(bench, commit, before, after, quiet, (busy_before, busy_after))
    return 1 if bench.failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=7, help="alternating pairs per comparison (default 7)")
    parser.add_argument(
        "--only", nargs="+", choices=TARGETS, metavar="TARGET", help=f"run only these targets ({', '.join(TARGETS)})"
    )
    parser.add_argument(
        "--scaling-repeats", type=int, default=3, help="runs per size for scaling and the Slicer paths (default 3)"
    )
    parser.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="skip the start-up floor commands measured with the export pairs",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="keep inputs here and reuse them (default: a temporary folder, removed at the end)",
    )
    for hidden in ("--slicer-step", "--field", "--reg", "--result"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.slicer_step:
        fixed_dir, moving_dir = args.workdir / "fixed", args.workdir / "moving"
        result = slicer_step(args.slicer_step, Path(args.field), fixed_dir, moving_dir, Path(args.reg))
        Path(args.result).write_text(json.dumps(result))
        return 0
    if args.pairs < 1 or args.scaling_repeats < 1:
        parser.error("--pairs and --scaling-repeats must be at least 1")
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
