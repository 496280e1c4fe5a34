"""Progress on a terminal (issue 16, item 8): a folder search and every long step shows a line on
stderr that is redrawn in place and cleared before anything else is printed (the summary, an error,
the interruption); nothing when stderr is not a terminal.

The command runs with stderr on a pseudo-terminal, and with the delay before progress is shown set
to 0 (``DICOMREGSAVE_PROGRESS_DELAY_S``), so that a few hundred files and the demo phantom show what
tens of thousands of files and a large field show after two seconds. A new step is drawn at once,
so that each step's label is on the terminal however short the step was.
"""

import os
import pty
import shutil
import signal
import subprocess
import termios
import threading

import pytest

from commands import COMMAND, export_demo, run
from DicomRegSaveLib.cli.terminal import DELAY_VARIABLE

#: The pseudo-terminal's width: every line whole, however long the test's temporary paths.
COLUMNS = 1000
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


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C as a terminal user's command gets it, whatever the suite was started with."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_on_terminal(*args, delay_s: str = "0", interrupt_on: str | None = None) -> tuple[int, str, str]:
    """Run the command with stderr on a pseudo-terminal; exit status, stdout, and what the terminal showed.
    With `interrupt_on`, the command gets SIGINT (Ctrl-C) once the terminal shows that text."""
    controller, terminal = pty.openpty()
    termios.tcsetwinsize(terminal, (24, COLUMNS))
    process = subprocess.Popen(
        [COMMAND, *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
        env={**os.environ, DELAY_VARIABLE: delay_s},
        preexec_fn=_default_sigint,
    )
    os.close(terminal)
    watchdog = threading.Timer(120, process.kill)  # a test that waits for what never comes fails, not hangs
    watchdog.start()
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the command has closed its end
            break
        if not chunk:
            break
        shown += chunk
        if interrupt_on is not None and interrupt_on.encode() in shown:
            process.send_signal(signal.SIGINT)
            interrupt_on = None
    os.close(controller)
    watchdog.cancel()
    stdout = process.stdout.read().decode()
    return process.wait(timeout=120), stdout, shown.decode()


def last_line(shown: str) -> str:
    """What the terminal's last line shows at the end (the text after the last carriage return but one)."""
    return shown.rpartition("\r")[0].rpartition("\r")[2]


def line_before(shown: str, text: str) -> str:
    """What the terminal's line showed just before `text` was printed, which must follow a carriage return."""
    before, found, _ = shown.partition(text)
    assert found, shown
    assert before.endswith("\r"), f"{text!r} does not start at the line's beginning: {shown!r}"
    return before[:-1].rpartition("\r")[2]


def test_a_folder_search_shows_progress_on_a_terminal_and_clears_it(crowded_folder, reg):
    status, stdout, shown = run_on_terminal("validate", reg, "--images", crowded_folder)
    assert status == 0, shown
    assert f"\rScanning {crowded_folder}: " in shown
    assert f"\rReading {crowded_folder}: " in shown
    assert last_line(shown).strip() == "", "the progress line is cleared at the end"
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


def test_qa_shows_the_decoding_and_the_jacobian_and_clears_the_line_before_its_summary(case, reg):
    status, stdout, shown = run_on_terminal("qa", reg, "--fixed", case.fixed_dir, "--moving", case.moving_dir)
    assert status == 0, shown
    for step in ("Decoding the fixed series", "Decoding the moving series", "Jacobian determinant and displacement"):
        assert f"\r{step}" in shown, step
    assert shown.index("Decoding the moving series") < shown.index("Jacobian determinant")
    assert last_line(shown).strip() == ""
    assert stdout.startswith(f"{reg}: 1 item(s) checked\n") and stdout.endswith("All checks pass.\n")


def test_validate_says_while_dciodvfy_runs(reg):
    status, stdout, shown = run_on_terminal("validate", reg)
    assert status == 0, shown
    assert "\rChecking with dciodvfy..." in shown
    assert last_line(shown).strip() == ""
    assert stdout == f"No findings.\n{reg}: 0 error(s), 0 warning(s)\n"


def test_to_transform_says_what_it_writes(reg, tmp_path):
    output = tmp_path / "field.nii.gz"
    status, stdout, shown = run_on_terminal("to-transform", reg, output)
    assert status == 0, shown
    assert f"\rWriting {output}..." in shown
    assert "\rWriting the displacement field: " in shown
    assert last_line(shown).strip() == ""
    assert stdout.startswith(f"Wrote {output}: the fixed -> moving transform of {reg}, item 1 of 1")
    assert output.stat().st_size > 0


def test_an_error_is_printed_on_a_clean_line(case, reg, tmp_path):
    no_images = tmp_path / "no-images"
    no_images.mkdir()
    (no_images / "notes.txt").write_text("not DICOM\n")
    status, stdout, shown = run_on_terminal("qa", reg, "--fixed", case.fixed_dir, "--moving", no_images)
    assert status == 1, shown
    assert f"\rReading {case.fixed_dir}: " in shown, "a progress line was drawn before the error"
    assert line_before(shown, "dicomregsave qa: error: No DICOM files were found in").strip() == ""
    assert stdout == ""


def test_ctrl_c_prints_interrupted_on_a_clean_line_and_a_step_of_unknown_length_counts_seconds(case, tmp_path):
    # a transform "file" that is a named pipe nobody writes to: reading it waits until Ctrl-C
    transform = tmp_path / "transform.tfm"
    os.mkfifo(transform)
    output = tmp_path / "reg.dcm"
    status, stdout, shown = run_on_terminal(
        "export", "--transform", transform, "--fixed", case.fixed_dir, "--moving", case.moving_dir,
        "--output", output, interrupt_on=f"Reading {transform}... 1 s",
    )  # fmt: skip
    assert status == 130, shown
    assert line_before(shown, "dicomregsave export: interrupted; nothing was written.").strip() == ""
    assert not output.exists() and sorted(tmp_path.iterdir()) == [transform]


def test_nothing_is_shown_through_a_pipe_by_qa(case, reg, monkeypatch):
    monkeypatch.setenv(DELAY_VARIABLE, "0")
    result = run("qa", reg, "--fixed", case.fixed_dir, "--moving", case.moving_dir)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.endswith("All checks pass.\n")
