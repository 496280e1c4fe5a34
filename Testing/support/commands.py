"""The ``dicomregsave`` command of the environment running the tests, run as a user runs it."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

#: The console script installed beside this interpreter (pip's entry point, as a user's shell finds it).
COMMAND = str(Path(sys.executable).with_name("dicomregsave"))


def run(*args: object, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``dicomregsave ARGS...`` in a subprocess and capture its text output."""
    return subprocess.run([COMMAND, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def export_demo(case, output: Path, *options: object) -> subprocess.CompletedProcess:
    """``dicomregsave export`` of the demo case's field, fixed and moving series to `output`, with `options`."""
    return run(
        "export", "--transform", case.field_path, "--fixed", case.fixed_dir, "--moving", case.moving_dir,
        "--output", output, *options,
    )  # fmt: skip


def write_manifest(path: Path, rows: list[dict]) -> Path:
    """A ``batch`` manifest at `path`: the rows' keys, in order of appearance, are its columns."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path
