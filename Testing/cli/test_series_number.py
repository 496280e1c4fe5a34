"""The REG's Series Number: the lowest number from 1000 up that no series of the fixed image's study uses
among the files the export sees (--fixed, --moving, the output folder), unless --series-number (or the
manifest's series_number column) sets it; a batch gives each row its own slot of candidates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from commands import export_demo, run, write_manifest


def series_number(path: Path) -> int:
    return int(pydicom.dcmread(path, stop_before_pixels=True).SeriesNumber)


def object_in_study(template: Path, folder: Path, number: int, study: str | None = None) -> Path:
    """A non-image object (an RTSTRUCT-like header) with Series Number `number` in `study` (else the template's)."""
    dataset = pydicom.dcmread(template)
    for keyword in ("PixelData", "ImagePositionPatient", "ImageOrientationPatient", "Rows", "Columns"):
        delattr(dataset, keyword)
    dataset.Modality = "RTSTRUCT"
    dataset.SeriesNumber = number
    dataset.SeriesInstanceUID = generate_uid()
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    if study is not None:
        dataset.StudyInstanceUID = study
    path = folder / f"object-{number}.dcm"
    dataset.save_as(path)
    return path


def test_two_exports_into_one_folder_get_the_lowest_free_numbers_and_the_summary_names_them(case, tmp_path):
    first = export_demo(case, tmp_path)
    assert first.returncode == 0, first.stderr
    second = export_demo(case, tmp_path)
    assert second.returncode == 0, second.stderr
    numbers = sorted(series_number(path) for path in tmp_path.glob("*.dcm"))
    assert numbers == [1000, 1001]
    assert "  series number 1001 in the fixed image's study" in second.stdout


def test_series_numbers_of_the_fixed_study_in_the_inputs_are_skipped_and_other_studies_do_not_count(case, tmp_path):
    fixed = shutil.copytree(case.fixed_dir, tmp_path / "fixed")
    moving = shutil.copytree(case.moving_dir, tmp_path / "moving")
    template = sorted(fixed.glob("*.dcm"))[0]
    study = str(pydicom.dcmread(template, stop_before_pixels=True).StudyInstanceUID)
    object_in_study(template, fixed, 1000)
    object_in_study(template, moving, 1001, study=study)
    object_in_study(sorted(moving.glob("*.dcm"))[0], moving, 1002)
    out = tmp_path / "out"
    out.mkdir()
    result = run(
        "export", "--transform", case.field_path, "--fixed", fixed, "--moving", moving, "--output", out / "reg.dcm"
    )
    assert result.returncode == 0, result.stderr
    assert series_number(out / "reg.dcm") == 1002, "1000 and 1001 are the fixed study's; 1002 is the moving study's"


def test_an_explicit_series_number_wins_even_when_taken_and_a_replaced_file_frees_its_own(case, tmp_path):
    assert export_demo(case, tmp_path / "a.dcm").returncode == 0
    explicit = export_demo(case, tmp_path / "b.dcm", "--series-number", "1000")
    assert explicit.returncode == 0, explicit.stderr
    assert (series_number(tmp_path / "a.dcm"), series_number(tmp_path / "b.dcm")) == (1000, 1000)
    tagged = export_demo(case, tmp_path / "c.dcm", "--tag", "SeriesNumber=7")
    assert tagged.returncode == 0 and series_number(tmp_path / "c.dcm") == 7
    replaced = export_demo(case, tmp_path / "c.dcm", "--force")
    assert replaced.returncode == 0, replaced.stderr
    assert series_number(tmp_path / "c.dcm") == 1001, "the file being replaced does not count"


@pytest.mark.parametrize("slot", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_a_malformed_slot_is_a_usage_error(case, tmp_path, slot):
    result = export_demo(case, tmp_path, "--series-number-slot", slot)
    assert result.returncode == 2
    assert "--series-number-slot" in result.stderr and "is not K/N with 1 <= K <= N" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_slot_takes_its_own_candidates(case, tmp_path):
    (tmp_path / "out").mkdir()
    assert export_demo(case, tmp_path / "out", "--series-number-slot", "2/3").returncode == 0
    assert (
        export_demo(case, tmp_path / "out", "--series-number-slot", "2/3", "--json", tmp_path / "r.json").returncode
        == 0
    )
    assert sorted(series_number(p) for p in (tmp_path / "out").glob("*.dcm")) == [1001, 1004]
    assert json.loads((tmp_path / "r.json").read_text())["series_number"] == 1004


def test_batch_rows_into_one_study_get_different_numbers_while_running_at_once(case, tmp_path):
    row = {"transform": case.field_path, "fixed": case.fixed_dir, "moving": case.moving_dir}
    manifest = write_manifest(
        tmp_path / "manifest.csv",
        [dict(row, series_number=""), dict(row, series_number=""), dict(row, series_number="55")],
    )
    out = tmp_path / "out"
    out.mkdir()
    result = run("batch", manifest, "--output", out, "--jobs", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    numbers = [series_number(out / f"row-{n}.dcm") for n in (1, 2, 3)]
    assert numbers == [1000, 1001, 55]
    rerun = write_manifest(tmp_path / "more.csv", [row, row])
    more = tmp_path / "more"
    more.mkdir()
    for name in ("row-1.dcm", "row-2.dcm"):
        shutil.copy(out / name, more / f"earlier-{name}")
    result = run("batch", rerun, "--output", more, "--jobs", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [series_number(more / f"row-{n}.dcm") for n in (1, 2)] == [1002, 1003]


def test_a_manifest_may_not_choose_the_slot(case, tmp_path):
    row = {
        "transform": case.field_path,
        "fixed": case.fixed_dir,
        "moving": case.moving_dir,
        "series_number_slot": "1/1",
    }
    result = run("batch", write_manifest(tmp_path / "manifest.csv", [row]), "--output", tmp_path)
    assert result.returncode == 1, result.stderr
    assert "series_number_slot, json, force are decided by the batch." in result.stderr
    assert list(tmp_path.glob("*.dcm")) == []


def test_a_reg_beside_the_images_replaced_with_force_frees_its_number(case, tmp_path):
    moving = shutil.copytree(case.moving_dir, tmp_path / "moving")
    reg = moving / "reg.dcm"
    arguments = ("export", "--transform", case.field_path, "--fixed", case.fixed_dir, "--moving", moving)
    assert run(*arguments, "--output", reg).returncode == 0
    assert series_number(reg) == 1000
    for _ in range(2):
        again = run(*arguments, "--output", reg, "--force")
        assert again.returncode == 0, again.stderr
        assert series_number(reg) == 1000, "the file being replaced does not count, also where --moving finds it"
