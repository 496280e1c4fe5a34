"""output.py: file modes follow the umask, killed writers leave nothing, inputs are never replaced."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from DicomRegSaveLib.errors import OutputError
from DicomRegSaveLib.output import (
    atomic_output,
    atomic_stream,
    check_output_path,
    create_folder,
    record_completed,
    recording_completed,
    remove_stale_temporaries,
)


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.parametrize("kind", ["stream", "named"])
def test_written_files_get_the_umask_mode(tmp_path, umask_022, kind):
    target = tmp_path / "out.dcm"
    if kind == "stream":
        with atomic_stream(target) as stream:
            stream.write(b"data")
    else:
        with atomic_output(target) as temporary:
            temporary.write_bytes(b"data")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert target.read_bytes() == b"data" and os.listdir(tmp_path) == ["out.dcm"]
    os.umask(0o077)
    with atomic_stream(target, force=True) as stream:
        stream.write(b"again")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_bytes() == b"again"


def _killed_writer(folder, kind: str) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from DicomRegSaveLib.output import atomic_output, atomic_stream
        target = Path({str(folder / "reg.dcm")!r})
        if {kind!r} == "stream":
            with atomic_stream(target) as stream:
                stream.write(b"x" * 100000); stream.flush(); print("writing", flush=True); time.sleep(60)
        else:
            with atomic_output(target) as temporary:
                temporary.write_bytes(b"x" * 100000); print("writing", flush=True); time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def test_a_killed_stream_writer_leaves_nothing(tmp_path):
    _killed_writer(tmp_path, "stream")
    assert os.listdir(tmp_path) == []


def test_a_killed_named_writer_leaves_a_temporary_that_the_next_output_removes(tmp_path):
    _killed_writer(tmp_path, "named")
    (leftover,) = os.listdir(tmp_path)
    assert leftover.startswith(".reg.dcm.dicomregsave-") and ".partial" in leftover
    foreign = tmp_path / ".reg.dcm.abcdefgh.partial.dcm"
    foreign.write_bytes(b"not ours")
    running = tmp_path / f".x.dcm.dicomregsave-{os.uname().nodename}-{os.getpid()}-0123abcd.partial.dcm"
    running.write_bytes(b"a running writer")
    with atomic_stream(tmp_path / "other.dcm") as stream:
        stream.write(b"data")
    assert sorted(os.listdir(tmp_path)) == sorted([foreign.name, running.name, "other.dcm"])
    assert remove_stale_temporaries(tmp_path) == []


def test_an_input_is_never_replaced_even_with_force(tmp_path):
    source = tmp_path / "input.dcm"
    source.write_bytes(b"precious")
    link = tmp_path / "link.dcm"
    link.symlink_to(source)
    hard = tmp_path / "hard.dcm"
    os.link(source, hard)
    for target in (source, link, hard, tmp_path / "." / "input.dcm"):
        with pytest.raises(OutputError, match="is the input file"):
            with atomic_stream(target, force=True, inputs=[source]) as stream:
                stream.write(b"overwritten")
    assert source.read_bytes() == b"precious"


def test_inputs_are_told_apart_by_inode_when_they_exist_and_by_resolved_path_when_not(tmp_path):
    existing = tmp_path / "input.dcm"
    existing.write_bytes(b"precious")
    (tmp_path / "sub").mkdir()
    missing_output = tmp_path / "sub" / ".." / "missing.dcm"
    with pytest.raises(OutputError, match="is the input file"):
        check_output_path(missing_output, force=True, inputs=[existing, tmp_path / "missing.dcm"])
    assert check_output_path(missing_output, force=True, inputs=[existing, tmp_path / "other.dcm"]) == missing_output
    assert check_output_path(tmp_path / "new.dcm", inputs=[existing]) == tmp_path / "new.dcm"


def test_a_file_appearing_while_writing_is_kept(tmp_path):
    target = tmp_path / "reg.dcm"
    with pytest.raises(OutputError, match="appeared while writing"):
        with atomic_stream(target) as stream:
            stream.write(b"mine")
            target.write_bytes(b"theirs")
    assert target.read_bytes() == b"theirs" and os.listdir(tmp_path) == ["reg.dcm"]


def test_a_failed_write_names_the_users_file_not_the_temporary_one(tmp_path):
    target = tmp_path / "field.mha"
    with pytest.raises(OutputError) as failed, atomic_output(target) as temporary:
        raise OSError(28, "No space left on device", str(temporary))
    assert str(failed.value) == f"Writing {target} failed: No space left on device. Nothing was written."
    assert list(tmp_path.iterdir()) == []


def test_create_folder_makes_the_missing_parents_with_the_umask_mode_or_says_what_is_in_the_way(tmp_path, umask_022):
    folder = create_folder(tmp_path / "a" / "b" / "c")
    assert folder.is_dir() and create_folder(folder) == folder
    assert [stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "a", folder)] == [0o755, 0o755]
    (tmp_path / "file").write_text("kept")
    with pytest.raises(OutputError) as is_file:
        create_folder(tmp_path / "file")
    assert str(is_file.value) == f"Cannot use {tmp_path / 'file'} as a folder: it is a file. Choose another folder."
    with pytest.raises(OutputError) as under_file:
        create_folder(tmp_path / "file" / "sub")
    assert str(under_file.value) == (
        f"Cannot create the folder {tmp_path / 'file' / 'sub'}: a part of that path is a file, not a folder. "
        "Choose another folder."
    )
    assert (tmp_path / "file").read_text() == "kept"


def test_completed_outputs_are_kept_only_while_a_command_records_them(tmp_path):
    """Slicer and other programs that call the engine write many files; nothing is kept for them. A
    command's record sees what it and the commands inside it put in place, in order."""
    record_completed(tmp_path / "before")
    with recording_completed() as outer:
        record_completed(tmp_path / "a")
        with recording_completed() as inner:
            with atomic_output(tmp_path / "b.bin") as temporary:
                temporary.write_bytes(b"b")
        record_completed(tmp_path / "c")
    record_completed(tmp_path / "after")
    assert inner == [tmp_path / "b.bin"]
    assert outer == [tmp_path / "a", tmp_path / "b.bin", tmp_path / "c"]
