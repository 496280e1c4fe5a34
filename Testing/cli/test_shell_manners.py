"""The command in a shell: a closed pipe ends it quietly, a malformed option value is a usage error
(exit 2) that names the option, and what the system refuses (a folder that cannot be written, a
full disk, a missing permission) is an error to act on (exit 1), never "This is a bug"."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest

from commands import COMMAND, run
from DicomRegSaveLib.cli.main import main
from DicomRegSaveLib.inputs import sampledata


@pytest.fixture(scope="module")
def reg(case, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("shell") / "reg.dcm"
    result = run(
        "export", "--transform", case.field_path, "--fixed", case.fixed_dir, "--moving", case.moving_dir,
        "--output", output,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return output


def test_a_closed_pipe_ends_the_command_quietly(reg):
    """The reader is gone before the command writes (as ``| head`` is after its lines)."""
    process = subprocess.Popen([COMMAND, "inspect", str(reg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141
    assert stderr == ""


def test_head_reads_the_first_lines_and_nothing_is_said(reg):
    shell = subprocess.run(
        f"'{COMMAND}' inspect '{reg}' | head -n 2", shell=True, capture_output=True, text=True, timeout=120
    )
    assert shell.stdout.splitlines()[0].startswith("(0002,") and len(shell.stdout.splitlines()) == 2
    assert shell.stderr == ""


@pytest.mark.parametrize(
    "arguments, option, message",
    [
        (["inspect", "{reg}", "--filter", "("], "--filter", "'(' is not a valid regular expression"),
        (["send", "{reg}", "--to", "127.0.0.1:11112"], "--to", "is not a DICOM peer; write it as AET@HOST:PORT"),
        (["send", "{reg}", "--to", "PACS@host:70000"], "--to", "The port 70000"),
        (["send", "{reg}", "--to", "PACS@host:104", "--calling-aet", "A\\B"], "--calling-aet", "is not an AE title"),
    ],
)
def test_malformed_option_values_are_usage_errors_naming_the_option(reg, arguments, option, message):
    result = run(*[a.format(reg=reg) for a in arguments])
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"dicomregsave {arguments[0]}: error: argument {option}: ") and message in last, last


def test_inspect_filters_with_a_valid_expression(reg, capsys):
    assert main(["inspect", str(reg), "--filter", "Content(Label|Date)"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("Content" in line for line in lines)


def test_a_folder_the_system_refuses_is_an_error_to_act_on(tmp_path, capsys):
    """sysfs refuses new folders even to root: a real refusal by the system, not a simulated one."""
    status = main(["demo", "--output", "/sys/dicomregsave-demo"])
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith("dicomregsave demo: error: Operation not permitted (/sys/dicomregsave-demo).")
    assert "permissions" in err and "bug" not in err


@pytest.mark.parametrize(
    "number, words",
    [
        (errno.ENOSPC, "The disk is full: free some space or choose another folder."),
        (errno.EROFS, "The file system is read-only: choose a folder you can write to."),
        (errno.EACCES, "Check the permissions of that file or folder, or choose another one."),
    ],
)
def test_a_refused_write_of_the_demo_inputs_is_an_error_to_act_on(tmp_path, capsys, monkeypatch, number, words):
    """The disk fills (or turns read-only, or denies) while the demo writes its phantom series."""

    def refused(folder, *args, **kwargs):
        raise OSError(number, errno.errorcode[number], str(Path(folder) / "fixed"))

    monkeypatch.setattr(sampledata, "make_demo_case", refused)
    status = main(["demo", "--output", str(tmp_path / "demo")])
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith(
        f"dicomregsave demo: error: {errno.errorcode[number]} ({tmp_path / 'demo' / 'input' / 'fixed'})."
    )
    assert words in err and "bug" not in err


def test_a_demo_that_fails_half_way_leaves_nothing_and_can_be_run_again(tmp_path, capsys, monkeypatch):
    """The disk fills after the demo has written part of its inputs: the folders it made are removed,
    and the same command runs once space is free (it refuses a folder that holds a demo's input/)."""
    make_demo_case = sampledata.make_demo_case

    def full_after_the_series(folder, *args, **kwargs):
        make_demo_case(folder, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(folder) / "field.mha"))

    monkeypatch.setattr(sampledata, "make_demo_case", full_after_the_series)
    output = tmp_path / "new" / "demo"
    assert main(["demo", "--output", str(output)]) == 1
    assert "The disk is full" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []

    existing = tmp_path / "existing"
    (existing / "notes").mkdir(parents=True)
    assert main(["demo", "--output", str(existing)]) == 1
    assert [p.name for p in existing.iterdir()] == ["notes"]

    monkeypatch.setattr(sampledata, "make_demo_case", make_demo_case)
    assert main(["demo", "--output", str(output)]) == 0, capsys.readouterr().err


#: Every command that writes, each told to write into sysfs, which refuses new files even to root.
REFUSED = "/sys/dicomregsave-refused"
WRITERS = {
    "export": lambda case, reg: [
        "export", "--transform", case.field_path, "--fixed", case.fixed_dir, "--moving", case.moving_dir,
        "--output", f"{REFUSED}.dcm",
    ],
    "to-transform": lambda case, reg: ["to-transform", reg, f"{REFUSED}.mha"],
    "qa": lambda case, reg: ["qa", reg, "--fixed", case.fixed_dir, "--moving", case.moving_dir, "--report", REFUSED],
    "resample": lambda case, reg: [
        "resample", reg, "--fixed", case.fixed_dir, "--moving", case.moving_dir, "--output", f"{REFUSED}.mha",
    ],
    "validate --json": lambda case, reg: ["validate", reg, "--json", f"{REFUSED}.json"],
    "demo": lambda case, reg: ["demo", "--output", REFUSED],
}  # fmt: skip


@pytest.mark.parametrize("command", WRITERS)
def test_every_command_that_writes_says_what_the_system_refused(case, reg, command):
    result = run(*WRITERS[command](case, reg))
    name = command.split()[0]
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith(f"dicomregsave {name}: error: "), result.stderr
    assert "/sys" in result.stderr, result.stderr  # the file, or the folder that refused it
    assert "bug" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not any(Path("/sys").glob("dicomregsave-refused*"))


def test_a_batch_into_a_folder_the_system_refuses_says_so(case, tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"transform,fixed,moving\n{case.field_path},{case.fixed_dir},{case.moving_dir}\n")
    result = run("batch", manifest, "--output", REFUSED)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("dicomregsave batch: error: ") and "/sys" in result.stderr, result.stderr
    assert "bug" not in result.stderr and "Traceback" not in result.stderr, result.stderr
