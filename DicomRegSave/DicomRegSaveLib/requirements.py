"""Which of the declared Python requirements (a pip requirements file) the running Python does not meet.

Reads only package metadata (importlib.metadata), so it runs before pydicom or highdicom are imported
and works in any Slicer, including one too old for DicomRegSave.
"""

from __future__ import annotations

import importlib.metadata
import os
import re

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:>=\s*([0-9][0-9.]*))?\s*$")
_RELEASE = re.compile(r"^([0-9]+(?:\.[0-9]+)*)")


def read_requirements(path: str | os.PathLike) -> list[tuple[str, str | None]]:
    """(distribution name, minimum version or ``None``) for each requirement line of `path`.

    Comments, blank lines and pip options are skipped. Only ``name`` and ``name>=version`` are
    understood: anything else raises ValueError naming the line, so a mistake in the file is not
    mistaken for a missing package.
    """
    requirements = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            text = line.split("#", 1)[0].strip()
            if not text or text.startswith("-"):
                continue
            match = _REQUIREMENT.match(text)
            if match is None:
                raise ValueError(f"{path}, line {number}: {text!r} is not 'name' or 'name>=version'.")
            requirements.append((match.group(1), match.group(2)))
    return requirements


def unmet_requirements(path: str | os.PathLike) -> list[str]:
    """One phrase per requirement of `path` that is missing or too old, e.g. ``"pydicom 2.4.4 (needs >= 3.0.2)"``."""
    unmet = []
    for name, minimum in read_requirements(path):
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            unmet.append(
                f"{name} (not installed)" if minimum is None else f"{name} (not installed; needs >= {minimum})"
            )
            continue
        if minimum is not None and _release(installed) < _release(minimum):
            unmet.append(f"{name} {installed} (needs >= {minimum})")
    return unmet


def _release(version: str) -> tuple[int, ...]:
    match = _RELEASE.match(version)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()
