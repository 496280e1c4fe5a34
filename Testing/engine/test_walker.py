"""The one file walker (file_walker.py) and its uses: export's series reading and validate's image
checks find the same instances in a folder; preambles, repeats, links and non-image objects."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pydicom
import pydicom.fileset
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicom_input_helpers import write_non_image, write_rtstruct, write_without_preamble
from DicomRegSaveLib.errors import DicomInputError
from DicomRegSaveLib.export.request import ExportRequest, run_export_request
from DicomRegSaveLib.file_walker import DICOMDIR_REASON, NOT_DICOM_REASON, files_under, walk
from DicomRegSaveLib.inputs.series import read_image_series
from DicomRegSaveLib.validation.validate import validate_file


def _uids(paths) -> set[str]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths}


@pytest.fixture(scope="module")
def mixed_folder(case, tmp_path_factory) -> Path:
    """The moving series as a PACS export might leave it: half the slices without preamble (one
    implicit, one explicit VR), an RTSTRUCT on the series, a README and a DICOMDIR."""
    folder = tmp_path_factory.mktemp("mixed") / "moving"
    folder.mkdir()
    for number, path in enumerate(sorted(case.moving_dir.iterdir())):
        if number % 2:
            write_without_preamble(path, folder / f"IM{number:04d}", implicit_vr=number % 4 == 1)
        else:
            shutil.copy(path, folder / path.name)
    write_rtstruct(folder / "RS.dcm", sorted(case.moving_dir.iterdir()))
    (folder / "README.txt").write_text("exported from the PACS\n")
    (folder / "media").mkdir()
    pydicom.fileset.FileSet().write(folder / "media")
    return folder


def test_every_kind_of_file_is_placed_once(case, mixed_folder):
    walked = walk(mixed_folder, "image path")
    moving = _uids(case.moving_dir.iterdir())
    assert {i.sop_instance_uid for i in walked.images()} == moving and len(walked.images()) == len(moving)
    assert [i.kind for i in walked.non_images()] == ["RTSTRUCT"] and walked.non_image_counts() == "1 RTSTRUCT"
    assert sorted((p.path.name, p.reason) for p in walked.skipped) == [
        ("DICOMDIR", DICOMDIR_REASON),
        ("README.txt", NOT_DICOM_REASON),
    ]
    assert walked.problems == []
    syntaxes = {i.path.name[:2]: set() for i in walked.images()}
    for instance in walked.images():
        syntaxes[instance.path.name[:2]].add(instance.transfer_syntax_uid)
    assert syntaxes == {"IM": {ImplicitVRLittleEndian, ExplicitVRLittleEndian}, "MO": {ExplicitVRLittleEndian}}


def test_export_and_validate_take_the_same_instances(case, mixed_folder, tmp_path):
    walked = walk(mixed_folder, "image path")
    series = read_image_series(mixed_folder, "moving")
    assert sorted(series.paths) == sorted(i.path for i in walked.images())
    outcome = run_export_request(ExportRequest(case.field_path, [case.fixed_dir], [mixed_folder], tmp_path / "reg.dcm"))
    reg = pydicom.dcmread(outcome.result.path)
    referenced = {
        str(r.ReferencedSOPInstanceUID) for r in reg.DeformableRegistrationSequence[0].ReferencedImageSequence
    }
    assert referenced == {i.sop_instance_uid for i in walked.images()}
    report = validate_file(outcome.result.path, [case.fixed_dir, mixed_folder])
    assert report.errors == [], report.text()
    assert report.warnings == [
        "[dicomregsave] 1 object(s) among the images are not images and were not checked against the "
        "registration (1 RTSTRUCT)."
    ]


def test_a_file_reached_twice_counts_once(case, tmp_path):
    folder = tmp_path / "ct"
    shutil.copytree(case.fixed_dir, folder)
    first = sorted(folder.iterdir())[0]
    (tmp_path / "link.dcm").symlink_to(first)
    os.link(first, tmp_path / "hard.dcm")
    (tmp_path / "folder-link").symlink_to(folder, target_is_directory=True)
    given = [folder, folder, first, tmp_path / "link.dcm", tmp_path / "hard.dcm", tmp_path / "folder-link"]
    walked = walk(given, "image path")
    assert [i.path for i in walked.instances] == sorted(folder.iterdir())
    assert files_under(given) == sorted(folder.iterdir())
    assert read_image_series(given, "fixed").paths == read_image_series(folder, "fixed").paths


def test_which_files_are_problems(tmp_path):
    (tmp_path / "notes.txt").write_text("not DICOM")
    (tmp_path / "slice.dcm").write_text("not DICOM either")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "log").write_text("scanner log")
    walked = walk([tmp_path, tmp_path / "sub" / "log"], "image path")
    assert sorted(str(p) for p in walked.problems) == [
        f"{tmp_path / 'slice.dcm'}: {NOT_DICOM_REASON}",
        f"{tmp_path / 'sub' / 'log'}: {NOT_DICOM_REASON}",
    ]
    assert [p.path for p in walked.skipped] == [tmp_path / "notes.txt"]
    with pytest.raises(DicomInputError, match=f"The image path {tmp_path / 'nowhere'} does not exist"):
        walk([tmp_path, tmp_path / "nowhere"], "image path")


def test_validate_counts_unsupplied_instances_once(case, tmp_path):
    outcome = run_export_request(
        ExportRequest(case.field_path, [case.fixed_dir], [case.moving_dir], tmp_path / "r.dcm")
    )
    n_moving = len(list(case.moving_dir.iterdir()))
    report = validate_file(outcome.result.path, [case.fixed_dir])
    assert report.errors == [], report.text()
    (warning,) = report.warnings
    assert warning.startswith(
        f"[dicomregsave] {n_moving} moving instance(s) referenced by the registration were not supplied"
    )
    assert "Give the moving series' files or folders to --images as well" in warning


def test_the_registration_among_its_images_is_not_an_image(case, tmp_path):
    folder = tmp_path / "all"
    shutil.copytree(case.fixed_dir, folder / "fixed")
    shutil.copytree(case.moving_dir, folder / "moving")
    reg = run_export_request(ExportRequest(case.field_path, [folder / "fixed"], [folder / "moving"], folder / "r.dcm"))
    write_non_image(folder / "old.dcm", "REG", reg.fixed.study_instance_uid)
    report = validate_file(reg.result.path, [folder])
    assert report.errors == [], report.text()
    assert report.warnings == [
        "[dicomregsave] 1 object(s) among the images are not images and were not checked against the "
        "registration (1 REG)."
    ]


def test_the_walk_reports_the_files_found_then_the_part_read(case, tmp_path):
    folder = tmp_path / "images"
    shutil.copytree(case.fixed_dir, folder)
    (folder / "notes.txt").write_text("not DICOM")
    reports = []
    walked = walk(folder, "image path", progress=lambda fraction, message: reports.append((fraction, message)))
    count = len(case.fixed_paths) + 1
    assert len(walked.instances) == len(case.fixed_paths)
    assert reports[:count] == [(0.0, f"Scanning {folder}: {n} files") for n in range(1, count + 1)]
    assert reports[count:] == [(n / count, f"Reading {folder}: {count} files") for n in range(1, count + 1)]
