"""Progress on a terminal (issue 16, item 8): a folder search shows a line on stderr that is redrawn
in place and cleared at the end; nothing when stderr is not a terminal.

The command runs with stderr on a pseudo-terminal, and with the delay before progress is shown set
to 0 (``DICOMREGSAVE_PROGRESS_DELAY_S``), so that a few hundred files show what tens of thousands
show after two seconds.
"""

import os
import pty
import shutil
import subprocess

import pytest

from commands import COMMAND, export_demo, run
from DicomRegSaveLib.cli.terminal import DELAY_VARIABLE

#: Files that are not DICOM beside the images, as in a folder holding everything a scanner exported.
OTHER_FILES = 300


@pytest.fixture(scope="module")
def crowded_folder(case, tmp_path_factory):
    """Both series among a few hundred small files that are not DICOM."""
    folder = tmp_path_factory.mktemp("crowded") / "export"
    shutil.copytree(case.fixed_dir, folder / "fixed")
    shutil.copytree(case.moving_dir, folder / "moving")
    for number in range(OTHER_FILES):
        (folder / f"log-{number}.txt").write_text(f"scanner log {number}\n")
    return folder


@pytest.fixture(scope="module")
def reg(case, tmp_path_factory):
    path = tmp_path_factory.mktemp("reg") / "reg.dcm"
    assert export_demo(case, path).returncode == 0
    return path


def run_on_terminal(*args, delay_s: str = "0") -> tuple[int, str, str]:
    """Run the command with stderr on a pseudo-terminal; exit status, stdout, and what the terminal showed."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [COMMAND, *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
        env={**os.environ, DELAY_VARIABLE: delay_s},
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the command has closed its end
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    stdout = process.stdout.read().decode()
    return process.wait(timeout=120), stdout, shown.decode()


def test_a_folder_search_shows_progress_on_a_terminal_and_clears_it(crowded_folder, reg):
    status, stdout, shown = run_on_terminal("validate", reg, "--images", crowded_folder)
    assert status == 0, shown
    assert f"\rScanning {crowded_folder}: " in shown
    assert f"\rReading {crowded_folder}: " in shown
    last_line = shown.rpartition("\r")[0].rpartition("\r")[2]
    assert last_line.strip() == "", "the progress line is cleared at the end"
    assert stdout.endswith(f"{reg}: 0 error(s), 0 warning(s)\n")


def test_a_short_command_shows_nothing_before_the_delay(crowded_folder, reg):
    status, _, shown = run_on_terminal("validate", reg, "--images", crowded_folder, delay_s="600")
    assert status == 0, shown
    assert shown == ""


def test_nothing_is_shown_when_stderr_is_not_a_terminal(crowded_folder, reg, monkeypatch):
    monkeypatch.setenv(DELAY_VARIABLE, "0")
    result = run("validate", reg, "--images", crowded_folder)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.endswith(f"{reg}: 0 error(s), 0 warning(s)\n")


def test_a_malformed_delay_is_a_usage_error_that_names_the_variable(reg, monkeypatch):
    monkeypatch.setenv(DELAY_VARIABLE, "2s")
    result = run("validate", reg)
    assert result.returncode == 2, result.stderr
    assert result.stderr.endswith(
        f"dicomregsave: error: the environment variable {DELAY_VARIABLE} is '2s'; it takes the seconds "
        "before progress is shown on a terminal, e.g. 2\n"
    )
    assert "bug" not in result.stderr and result.stdout == ""
