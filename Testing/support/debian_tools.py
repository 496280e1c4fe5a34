"""Debian programs the tests drive as real peers (Orthanc as a PACS, chromium as the browser).

Never skipped: a missing program is installed with ``apt-get`` when the suite runs as root (as CI
does), and otherwise the test fails saying how to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

#: Where Debian puts the programs, beyond the PATH of the user running the suite.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/usr/local/sbin"])


def debian_program(program: str, package: str) -> str:
    """The path of `program`, installing Debian's `package` first when it is missing and we are root."""
    hint = f"install Debian's {package} first: `sudo apt-get install {package}` (or run the suite as root)"
    found = shutil.which(program, path=_SEARCH_PATH)
    if found:
        return found
    if os.geteuid() != 0:
        pytest.fail(f"The {program} program is missing; {hint}.")
    environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        completed = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=900)
        if completed.returncode != 0:
            pytest.fail(f"`{' '.join(command)}` failed ({completed.stderr.strip()[-500:]}); {hint}.")
    found = shutil.which(program, path=_SEARCH_PATH)
    if not found:
        pytest.fail(f"apt-get installed {package} but no {program} program was found; {hint}.")
    return found
