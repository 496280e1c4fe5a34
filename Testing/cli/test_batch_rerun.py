"""``dicomregsave batch`` run again: a row whose inputs or options changed is redone and the others are
skipped; ``--force`` redoes every row; a REG the batch did not write is left alone; the output and report
folders are created; each row's warnings are printed.

Three rows on the demo phantom; the third has its own copy of the transform and of the fixed series, so
that changing them concerns that row only.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pydicom
import pytest

from commands import export_demo, run, write_manifest
from DicomRegSaveLib.cli import batch, batch_state
from DicomRegSaveLib.cli.batch_command import EXPORT_ROW
from DicomRegSaveLib.cli.batch_state import STATE_FILE_NAME
from DicomRegSaveLib.errors import OutputError
from DicomRegSaveLib.export import request as export_request
from DicomRegSaveLib.validation.validate import validate_file
from storage_scp import StorageSCP

NAMES = ("p1.dcm", "p2.dcm", "p3.dcm")
COMMAND_LINE_PAGE = Path(__file__).parents[2] / "docs" / "command-line.md"
LEFT_ALONE = "it was left as it is. Use --force to export this row over it, or remove it."


def three_rows(case, folder: Path) -> list[dict]:
    inputs = {"transform": str(case.field_path), "fixed": str(case.fixed_dir), "moving": str(case.moving_dir)}
    own = {
        "transform": shutil.copy(case.field_path, folder / "field-3.mha"),
        "fixed": shutil.copytree(case.fixed_dir, folder / "fixed-3"),
    }
    return [
        dict(inputs, output="p1.dcm", series_description="One", grid_spacing=""),
        dict(inputs, output="p2.dcm", series_description="Two", grid_spacing="8 8 8"),
        dict(
            inputs, output="p3.dcm", series_description="Three", grid_spacing="", **{k: str(v) for k, v in own.items()}
        ),
    ]


def first_run(case, tmp_path: Path) -> tuple[Path, list[dict], Path]:
    """The manifest, its rows and the output folder after a first batch that wrote every row."""
    rows = three_rows(case, tmp_path)
    manifest = write_manifest(tmp_path / "cohort.csv", rows)
    out = tmp_path / "regs"
    result = run("batch", manifest, "--output", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 written, 0 redone, 0 skipped, 0 failed, 0 interrupted (3 row(s))" in result.stdout
    return manifest, rows, out


def snapshot(out: Path) -> dict[str, tuple[int, str]]:
    """Each REG's modification time (ns) and SOP Instance UID."""
    return {name: ((out / name).stat().st_mtime_ns, pydicom.dcmread(out / name).SOPInstanceUID) for name in NAMES}


def row_lines(result) -> list[str]:
    """The text lines of the rows and the count, without the rows' warnings (see the warnings test)."""
    return [line for line in result.stdout.splitlines()[1:] if ": warning: " not in line]


@pytest.mark.parametrize(
    "column, value",
    [("series_description", "Two, edited"), ("grid_spacing", "6 6 6")],
)
def test_editing_one_row_redoes_that_row_only(case, tmp_path, column, value):
    manifest, rows, out = first_run(case, tmp_path)
    before = snapshot(out)
    rows[1][column] = value
    write_manifest(manifest, rows)

    again = run("batch", manifest, "--output", out)

    assert again.returncode == 0, again.stdout + again.stderr
    assert row_lines(again) == [
        f"row 1: skipped: {out / 'p1.dcm'} is up to date",
        f"row 2: redone: options changed ({column}); wrote {out / 'p2.dcm'}",
        f"row 3: skipped: {out / 'p3.dcm'} is up to date",
        "0 written, 1 redone, 2 skipped, 0 failed, 0 interrupted (3 row(s))",
    ]
    after = snapshot(out)
    assert (after["p1.dcm"], after["p3.dcm"]) == (before["p1.dcm"], before["p3.dcm"])
    assert after["p2.dcm"][0] != before["p2.dcm"][0] and after["p2.dcm"][1] != before["p2.dcm"][1]
    redone = pydicom.dcmread(out / "p2.dcm")
    grid = redone.DeformableRegistrationSequence[-1].DeformableRegistrationGridSequence[0]
    if column == "series_description":
        assert (redone.SeriesDescription, [float(v) for v in grid.GridResolution]) == ("Two, edited", [8.0, 8.0, 8.0])
    else:
        assert (redone.SeriesDescription, [float(v) for v in grid.GridResolution]) == ("Two", [6.0, 6.0, 6.0])
    assert validate_file(out / "p2.dcm").ok
    assert sorted(p.name for p in out.iterdir()) == [STATE_FILE_NAME, *NAMES]

    third = run("batch", manifest, "--output", out)
    assert third.returncode == 0
    assert row_lines(third)[-1] == "0 written, 0 redone, 3 skipped, 0 failed, 0 interrupted (3 row(s))"
    assert snapshot(out) == after


def test_a_row_added_to_the_manifest_is_written_and_the_others_stay_up_to_date(case, tmp_path):
    """Each row's Series Number slot (row K of N) changes with the number of rows; it is the batch's own
    argument, not the row's, so it is not recorded and a new row redoes no other."""
    manifest, rows, out = first_run(case, tmp_path)
    before = snapshot(out)
    write_manifest(manifest, [*rows, dict(rows[0], output="p4.dcm", series_description="Four")])

    again = run("batch", manifest, "--output", out)

    assert again.returncode == 0, again.stdout + again.stderr
    assert row_lines(again) == [
        f"row 1: skipped: {out / 'p1.dcm'} is up to date",
        f"row 2: skipped: {out / 'p2.dcm'} is up to date",
        f"row 3: skipped: {out / 'p3.dcm'} is up to date",
        f"row 4: wrote {out / 'p4.dcm'}",
        "1 written, 0 redone, 3 skipped, 0 failed, 0 interrupted (4 row(s))",
    ]
    assert snapshot(out) == before
    recorded = json.loads((out / STATE_FILE_NAME).read_text())["outputs"]
    assert {name: entry["inputs"]["moving"]["paths"] for name, entry in recorded.items()} == {
        name: [str(case.moving_dir.resolve())] for name in (*NAMES, "p4.dcm")
    }


def test_a_touched_or_replaced_transform_or_a_changed_series_folder_redoes_its_row(case, tmp_path):
    manifest, _, out = first_run(case, tmp_path)
    field = tmp_path / "field-3.mha"

    def rerun_redoes_row_3(because: str) -> None:
        before = snapshot(out)
        again = run("batch", manifest, "--output", out)
        assert again.returncode == 0, again.stdout + again.stderr
        assert row_lines(again) == [
            f"row 1: skipped: {out / 'p1.dcm'} is up to date",
            f"row 2: skipped: {out / 'p2.dcm'} is up to date",
            f"row 3: redone: {because}; wrote {out / 'p3.dcm'}",
            "0 written, 1 redone, 2 skipped, 0 failed, 0 interrupted (3 row(s))",
        ]
        after = snapshot(out)
        assert (after["p1.dcm"], after["p2.dcm"]) == (before["p1.dcm"], before["p2.dcm"])
        assert after["p3.dcm"][1] != before["p3.dcm"][1]

    status = field.stat()
    os.utime(field, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))  # touched
    rerun_redoes_row_3("inputs changed (transform)")

    replacement = shutil.copy(case.field_path, tmp_path / "replacement.mha")
    os.utime(replacement, ns=(status.st_atime_ns, status.st_mtime_ns + 2_000_000_000))
    os.replace(replacement, field)
    rerun_redoes_row_3("inputs changed (transform)")

    (tmp_path / "fixed-3" / "notes.txt").write_text("a file added to the series folder")
    rerun_redoes_row_3("inputs changed (fixed)")


def test_force_redoes_every_row(case, tmp_path):
    manifest, _, out = first_run(case, tmp_path)
    before = snapshot(out)

    forced = run("batch", manifest, "--output", out, "--force")

    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert row_lines(forced) == [
        *(f"row {n}: redone: forced (--force); wrote {out / name}" for n, name in enumerate(NAMES, start=1)),
        "0 written, 3 redone, 0 skipped, 0 failed, 0 interrupted (3 row(s))",
    ]
    after = snapshot(out)
    assert all(after[name][0] != before[name][0] and after[name][1] != before[name][1] for name in NAMES)
    assert all(validate_file(out / name).ok for name in NAMES)
    again = run("batch", manifest, "--output", out)
    assert row_lines(again)[-1] == "0 written, 0 redone, 3 skipped, 0 failed, 0 interrupted (3 row(s))"


def test_missing_output_and_report_folders_are_created_and_each_rows_warnings_are_printed(case, tmp_path):
    rows = three_rows(case, tmp_path)
    rows[2]["grid_spacing"] = "0.7"  # finer than the fixed image's 4 mm: the export warns
    manifest = write_manifest(tmp_path / "cohort.csv", rows)
    out = tmp_path / "new" / "nested" / "regs"
    report_path = tmp_path / "reports" / "today" / "batch.json"

    result = run("batch", manifest, "--output", out, "--json", report_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in out.iterdir()) == [STATE_FILE_NAME, *NAMES]
    report = json.loads(report_path.read_text())
    assert report["ok"] is True
    assert report["counts"] == {"written": 3, "redone": 0, "skipped": 0, "failed": 0, "interrupted": 0}
    assert [(row["status"], row["reason"]) for row in report["rows"]] == [("written", None)] * 3
    warnings = [(row["row"], w["message"]) for row in report["rows"] for w in row["export"]["warnings"]]
    assert any(row == 3 and "grid spacing" in message for row, message in warnings), warnings
    assert report["warnings"] == [{"source": "dicomregsave", "message": f"Row {n}: {m}"} for n, m in warnings]
    lines = result.stdout.splitlines()
    assert [line for line in lines if ": warning: " in line] == [f"row {n}: warning: {m}" for n, m in warnings]
    first_warning_of_row_3 = lines.index(f"row 3: warning: {next(m for n, m in warnings if n == 3)}")
    assert lines[first_warning_of_row_3 - 1] == f"row 3: wrote {out / 'p3.dcm'}"

    again = run("batch", manifest, "--output", out, "--json", report_path)
    assert again.returncode == 0
    report = json.loads(report_path.read_text())
    assert [(row["status"], row["reason"], row["export"]) for row in report["rows"]] == [("skipped", None, None)] * 3


def test_a_reg_the_batch_did_not_write_is_refused_and_left_byte_identical(case, tmp_path):
    rows = three_rows(case, tmp_path)
    manifest = write_manifest(tmp_path / "cohort.csv", rows)
    out = tmp_path / "regs"
    out.mkdir()
    assert export_demo(case, out / "p1.dcm").returncode == 0  # made by hand, or by an older version
    by_hand = (out / "p1.dcm").read_bytes()

    result = run("batch", manifest, "--output", out)

    assert result.returncode == 1
    assert row_lines(result) == [
        f"row 1: failed: {out / 'p1.dcm'} exists but was not written by this batch "
        f"(no record of it in {out / STATE_FILE_NAME}); {LEFT_ALONE}",
        f"row 2: wrote {out / 'p2.dcm'}",
        f"row 3: wrote {out / 'p3.dcm'}",
        "2 written, 0 redone, 0 skipped, 1 failed, 0 interrupted (3 row(s))",
    ]
    assert (out / "p1.dcm").read_bytes() == by_hand

    # a REG the batch wrote, replaced since by another one, is not overwritten even when its row changes
    written_uid = pydicom.dcmread(out / "p2.dcm").SOPInstanceUID
    shutil.copy(out / "p1.dcm", out / "p2.dcm")
    rows[1]["series_description"] = "Two, edited"
    write_manifest(manifest, rows)
    again = run("batch", manifest, "--output", out)
    assert again.returncode == 1
    by_hand_uid = pydicom.dcmread(out / "p1.dcm").SOPInstanceUID
    assert (
        f"row 2: failed: {out / 'p2.dcm'} exists but is not the REG this batch wrote (its SOP Instance UID is "
        f"{by_hand_uid}, the batch wrote {written_uid}); {LEFT_ALONE}"
    ) in again.stdout.splitlines()
    assert (out / "p1.dcm").read_bytes() == by_hand and (out / "p2.dcm").read_bytes() == by_hand

    forced = run("batch", manifest, "--output", out, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert row_lines(forced)[-1] == "0 written, 3 redone, 0 skipped, 0 failed, 0 interrupted (3 row(s))"
    assert [pydicom.dcmread(out / name).SeriesDescription for name in NAMES] == ["One", "Two, edited", "Three"]


def test_a_reg_written_but_not_sent_is_exported_and_sent_on_the_rerun(case, tmp_path):
    """The REG of a row whose send failed is the batch's file (recorded, so no --force is needed), but the
    row is not done: the rerun exports it again and sends it, instead of skipping it as up to date."""
    scp = StorageSCP(status=0xA700)  # out of resources: the peer refuses to store
    try:
        inputs = {"transform": str(case.field_path), "fixed": str(case.fixed_dir), "moving": str(case.moving_dir)}
        manifest = write_manifest(tmp_path / "cohort.csv", [dict(inputs, output="p1.dcm", send=scp.peer)])
        out = tmp_path / "regs"
        first = run("batch", manifest, "--output", out)
        assert first.returncode == 1, first.stdout + first.stderr
        assert row_lines(first)[0].startswith("row 1: failed: ")
        assert validate_file(out / "p1.dcm").ok and scp.received == {}
        assert json.loads((out / STATE_FILE_NAME).read_text())["outputs"]["p1.dcm"]["sent"] is False

        scp.status = 0x0000
        again = run("batch", manifest, "--output", out)

        assert again.returncode == 0, again.stdout + again.stderr
        assert row_lines(again) == [
            f"row 1: redone: not sent (sending it failed or was interrupted); wrote {out / 'p1.dcm'}",
            "0 written, 1 redone, 0 skipped, 0 failed, 0 interrupted (1 row(s))",
        ]
        assert list(scp.received) == [pydicom.dcmread(out / "p1.dcm").SOPInstanceUID]
        assert json.loads((out / STATE_FILE_NAME).read_text())["outputs"]["p1.dcm"]["sent"] is True
        third = run("batch", manifest, "--output", out)
        assert row_lines(third) == [
            f"row 1: skipped: {out / 'p1.dcm'} is up to date",
            "0 written, 0 redone, 1 skipped, 0 failed, 0 interrupted (1 row(s))",
        ]
        assert len(scp.received) == 1
    finally:
        scp.stop()


def test_a_state_file_that_cannot_be_read_stops_the_batch_before_any_row(case, tmp_path):
    manifest = write_manifest(tmp_path / "cohort.csv", three_rows(case, tmp_path))
    out = tmp_path / "regs"
    out.mkdir()
    (out / STATE_FILE_NAME).write_text("{damaged")

    result = run("batch", manifest, "--output", out)

    assert result.returncode == 1
    assert result.stderr.startswith(
        f"dicomregsave batch: error: The batch state file {out / STATE_FILE_NAME} cannot be read (Expecting"
    )
    assert "remove it to start afresh" in result.stderr
    assert [p.name for p in out.iterdir()] == [STATE_FILE_NAME]
    assert (out / STATE_FILE_NAME).read_text() == "{damaged"


def test_the_documented_example_works_pasted_into_an_empty_folder(tmp_path):
    """The shell lines under "To try it on the demo's phantom" in docs/command-line.md, as a user pastes them."""
    page = COMMAND_LINE_PAGE.read_text(encoding="utf-8")
    example = page.split("To try it on the demo's phantom", 1)[1].split("```", 2)[1]
    environment = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")

    def paste(lines: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-e"], input=lines, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300
        )

    pasted = paste(example)
    assert pasted.returncode == 0, pasted.stdout + pasted.stderr
    assert "row 1: wrote regs/cohort/p01.dcm" in pasted.stdout.splitlines()
    assert validate_file(tmp_path / "regs" / "cohort" / "p01.dcm").ok
    assert json.loads((tmp_path / "reports" / "batch.json").read_text())["counts"]["written"] == 1
    batch_line = example.strip().splitlines()[-1]
    assert batch_line.startswith("dicomregsave batch ")
    again = paste(batch_line)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "row 1: skipped: regs/cohort/p01.dcm is up to date" in again.stdout.splitlines()


def demo_row(case, output: Path) -> batch.BatchRow:
    inputs = ["--transform", str(case.field_path), "--fixed", str(case.fixed_dir), "--moving", str(case.moving_dir)]
    return batch.BatchRow(1, output, [*inputs, "--series-description", "Demo"])


def test_a_reg_put_in_place_before_its_export_was_killed_is_recorded_and_skipped_later(case, tmp_path, monkeypatch):
    """The file is complete once it has its name; a row killed after that (or interrupted, or failing to
    --send) has still written it. Forked rows inherit this process's patched export."""
    export = export_request.run_export_request

    def killed_after_writing(request, progress):
        export(request, progress)
        os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(export_request, "run_export_request", killed_after_writing)
    row = demo_row(case, tmp_path / "reg.dcm")
    first = batch.run_batch([row], EXPORT_ROW)
    assert [(o.status, o.report) for o in first.outcomes] == [("failed", None)]
    assert validate_file(tmp_path / "reg.dcm").ok
    monkeypatch.setattr(export_request, "run_export_request", export)
    again = batch.run_batch([row], EXPORT_ROW)
    assert [o.status for o in again.outcomes] == ["skipped"]


def test_a_reg_that_cannot_be_recorded_fails_its_row(case, tmp_path, monkeypatch):
    def disk_full(self, output, fingerprint, sent=None):
        raise OutputError(f"Writing {self.path(output)} failed: No space left on device. Nothing was written.")

    monkeypatch.setattr(batch_state.BatchState, "record", disk_full)
    reg = tmp_path / "reg.dcm"
    result = batch.run_batch([demo_row(case, reg)], EXPORT_ROW)
    assert not result.ok
    [outcome] = result.outcomes
    assert outcome.status == "failed"
    assert outcome.error == (
        f"{reg} was written, but recording it in {tmp_path / STATE_FILE_NAME} failed: Writing "
        f"{tmp_path / STATE_FILE_NAME} failed: No space left on device. Nothing was written. A rerun will take "
        "it for a REG this batch did not write (use --force then)."
    )
    assert validate_file(reg).ok and not (tmp_path / STATE_FILE_NAME).exists()


def test_two_batches_recording_in_one_folder_at_once_keep_both_records(case, tmp_path, monkeypatch):
    """A batch records a REG by reading the folder's state file, adding the REG and writing the file back:
    another batch recording in between waits for it, instead of having its record overwritten."""
    ours, theirs = tmp_path / "ours.dcm", tmp_path / "theirs.dcm"
    assert export_demo(case, ours).returncode == 0 and export_demo(case, theirs).returncode == 0
    fingerprint = {"inputs": {}, "options": {}}
    our_batch, their_batch = batch_state.BatchState([ours]), batch_state.BatchState([theirs])
    read_state = batch_state._read_state
    other = []

    def another_batch_records_meanwhile(path):
        entries = read_state(path)
        if not other:
            other.append(threading.Thread(target=their_batch.record, args=(theirs, fingerprint)))
            other[0].start()
            other[0].join(timeout=2)  # where the folder is not locked, it has recorded by now
        return entries

    monkeypatch.setattr(batch_state, "_read_state", another_batch_records_meanwhile)
    our_batch.record(ours, fingerprint)
    other[0].join()

    recorded = json.loads((tmp_path / STATE_FILE_NAME).read_text())["outputs"]
    assert {name: entry["sop_instance_uid"] for name, entry in recorded.items()} == {
        path.name: pydicom.dcmread(path).SOPInstanceUID for path in (ours, theirs)
    }
