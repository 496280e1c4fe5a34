"""Export's tag and selection options and the JSON reports, each read back from the files written."""

import json
import shutil

import numpy as np
import pydicom
import pytest

from commands import run
from DicomRegSaveLib import IMPLEMENTATION_VERSION_NAME, __version__
from DicomRegSaveLib.inputs.sampledata import write_displacement_field_mha
from DicomRegSaveLib.reg.reader import read_registration


def export(case, output, *options, fixed=None, moving=None):
    return run(
        "export",
        "--transform",
        case.field_path,
        "--fixed",
        fixed or case.fixed_dir,
        "--moving",
        moving or case.moving_dir,
        "--output",
        output,
        *options,
    )


def test_tags_type_comment_uid_root_and_json_report_are_in_the_file(case, tmp_path):
    result = export(
        case,
        tmp_path / "reg.dcm",
        "--tag",
        "InstitutionName=Clinic A",
        "--tag",
        "0008,1010=LINAC 2",
        "--tag",
        "SeriesDescription=From tag",
        "--tag",
        "OperatorsName=One^Op\\Two^Op",
        "--registration-type",
        "Visual Alignment",
        "--comment",
        "checked by QA",
        "--uid-root",
        "1.2.826.0.1.3680043.10.99",
        "--json",
        tmp_path / "report.json",
    )
    assert result.returncode == 0, result.stderr
    dataset = pydicom.dcmread(tmp_path / "reg.dcm")
    assert dataset.InstitutionName == "Clinic A" and dataset.StationName == "LINAC 2"
    assert dataset.SeriesDescription == "From tag"
    assert [str(v) for v in dataset.OperatorsName] == ["One^Op", "Two^Op"]
    item = dataset.DeformableRegistrationSequence[0]
    code = item.RegistrationTypeCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == ("125025", "DCM", "Visual Alignment")
    assert item.FrameOfReferenceTransformationComment == "checked by QA"
    for uid in (dataset.SeriesInstanceUID, dataset.SOPInstanceUID):
        assert uid.startswith("1.2.826.0.1.3680043.10.99.") and len(uid) <= 64
    assert dataset.file_meta.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME
    assert IMPLEMENTATION_VERSION_NAME.startswith("DicomRegSave") and len(IMPLEMENTATION_VERSION_NAME) <= 16
    assert IMPLEMENTATION_VERSION_NAME.removeprefix("DicomRegSave").replace(".", "") == __version__.replace(".", "")

    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["report"], report["version"], report["ok"], report["errors"]) == ("export", 1, True, [])
    assert report["path"] == str(tmp_path / "reg.dcm")
    assert report["sop_instance_uid"] == dataset.SOPInstanceUID
    assert report["sop_class_uid"] == dataset.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.3"
    assert report["series_instance_uid"] == dataset.SeriesInstanceUID
    assert report["study_instance_uid"] == dataset.StudyInstanceUID == case.fixed_study_instance_uid
    assert report["frame_of_reference_uid"] == dataset.FrameOfReferenceUID == case.fixed_frame_of_reference_uid
    assert report["fixed"]["series_instance_uid"] == case.fixed_series_instance_uid
    assert report["moving"]["series_instance_uid"] == case.moving_series_instance_uid
    assert (
        report["moving"]["frame_of_reference_uid"]
        == item.SourceFrameOfReferenceUID
        == case.moving_frame_of_reference_uid
    )
    assert report["moving"]["instances"] == len(item.ReferencedImageSequence) == len(case.moving_paths)
    grid = item.DeformableRegistrationGridSequence[0]
    assert report["grid"]["dimensions"] == list(grid.GridDimensions)
    assert report["grid"]["spacing_mm"] == [float(v) for v in grid.GridResolution]
    assert report["grid"]["origin_lps_mm"] == pytest.approx([float(v) for v in grid.ImagePositionPatient])
    assert report["sent"] is None


@pytest.mark.parametrize(
    "tag, message",
    [
        ("PatientName=Someone^Else", "PatientName 'Someone^Else'"),
        ("PatientID=OTHER", "PatientID 'OTHER'"),
        ("StudyInstanceUID=1.2.3", "StudyInstanceUID '1.2.3'"),
    ],
)
def test_contradicting_identity_is_refused_with_nothing_written(case, tmp_path, tag, message):
    result = export(case, tmp_path / "reg.dcm", "--tag", tag, "--json", "-")
    assert result.returncode == 1
    assert message in result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False and message in report["errors"][0]["message"]
    assert report["errors"][0]["source"] == "dicomregsave"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "tag, message",
    [
        ("KVP=120", "belongs to no module of the registration object"),
        ("Modality=CT", "cannot be overridden"),
        ("ContentLabel=lower case", "Content Label (0070,0080)"),
        ("SeriesNumber=-3", "Series Number (0020,0011)"),
        ("InstitutionName=" + "x" * 65, "the limit for LO is 64"),
        ("NoSuchKeyword=1", "Unknown attribute 'NoSuchKeyword'"),
        ("0008,1010", "is not KEYWORD=VALUE"),
    ],
)
def test_malformed_tags_are_usage_errors_naming_the_option(case, tmp_path, tag, message):
    result = export(case, tmp_path / "reg.dcm", "--tag", tag)
    assert result.returncode == 2
    assert "dicomregsave export: error: argument --tag: " in result.stderr and message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_identity_tags_equal_to_the_fixed_image_are_accepted(case, tmp_path):
    result = export(
        case,
        tmp_path / "reg.dcm",
        "--tag",
        f"PatientID={case.patient_id}",
        "--tag",
        f"StudyInstanceUID={case.fixed_study_instance_uid}",
    )
    assert result.returncode == 0, result.stderr
    assert pydicom.dcmread(tmp_path / "reg.dcm").PatientID == case.patient_id


@pytest.mark.parametrize(
    "options, message",
    [
        (["--uid-root", "1.2.abc"], "argument --uid-root: The UID root '1.2.abc' is not valid"),
        (["--uid-root", "1." + "2" * 50], "at most 44"),
        (["--registration-type", "guesswork"], "125022 (Fiducial Alignment)"),
        (["--fixed-series", "1.2.abc"], "argument --fixed-series: '1.2.abc' is not a UID"),
        (["--series-number", "twelve"], "argument --series-number: 'twelve' is not a valid Series Number"),
        (["--send", "127.0.0.1:11112"], "argument --send: '127.0.0.1:11112' is not a DICOM peer"),
        (["--calling-aet", "A" * 17], "argument --calling-aet: "),
        (["--timeout", "0"], "argument --timeout: '0' is not a positive number of seconds"),
        (["--grid-spacing", "0"], "1 or 3 positive numbers"),
    ],
)
def test_malformed_option_values_are_usage_errors_naming_the_option(case, tmp_path, options, message):
    result = export(case, tmp_path / "reg.dcm", *options)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "This is a bug" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_series_uid_not_in_the_folder_is_an_error_of_the_inputs(case, tmp_path):
    result = export(case, tmp_path / "reg.dcm", "--fixed-series", "1.2.3.4", "--json", "-")
    assert result.returncode == 1 and "no image series with Series Instance UID 1.2.3.4" in result.stderr
    assert json.loads(result.stdout)["ok"] is False
    assert list(tmp_path.iterdir()) == []


def test_series_are_picked_from_one_folder_holding_both(case, tmp_path):
    both = tmp_path / "both"
    shutil.copytree(case.fixed_dir, both / "a")
    shutil.copytree(case.moving_dir, both / "b")
    ambiguous = export(case, tmp_path / "reg.dcm", fixed=both, moving=both)
    assert ambiguous.returncode == 1 and "2 image series" in ambiguous.stderr
    assert "Series Instance UID" in ambiguous.stderr
    result = export(
        case,
        tmp_path / "reg.dcm",
        "--fixed-series",
        case.fixed_series_instance_uid,
        "--moving-series",
        case.moving_series_instance_uid,
        fixed=both,
        moving=both,
    )
    assert result.returncode == 0, result.stderr
    dataset = pydicom.dcmread(tmp_path / "reg.dcm", stop_before_pixels=True)
    assert dataset.FrameOfReferenceUID == case.fixed_frame_of_reference_uid
    referenced = {r.ReferencedSOPInstanceUID for r in dataset.DeformableRegistrationSequence[0].ReferencedImageSequence}
    assert referenced == {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in case.moving_paths}


def test_axis_aligned_reindexes_a_flipped_grid_exactly(case, tmp_path):
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(6, 7, 8, 3)).astype(np.float32)
    flipped = np.diag([-1.0, -1.0, 1.0])
    field = write_displacement_field_mha(
        tmp_path / "flipped.mha", [40.0, 30.0, -20.0], flipped, [3.0, 2.5, 4.0], vectors
    )
    plain = run(
        "export",
        "--transform",
        field,
        "--fixed",
        case.fixed_dir,
        "--moving",
        case.moving_dir,
        "--output",
        tmp_path / "plain.dcm",
    )
    aligned = run(
        "export",
        "--transform",
        field,
        "--fixed",
        case.fixed_dir,
        "--moving",
        case.moving_dir,
        "--output",
        tmp_path / "aligned.dcm",
        "--axis-aligned",
    )
    assert plain.returncode == 0 and aligned.returncode == 0, plain.stderr + aligned.stderr

    def grid_of(name):
        dataset = pydicom.dcmread(tmp_path / name, stop_before_pixels=True)
        return dataset.DeformableRegistrationSequence[0].DeformableRegistrationGridSequence[0]

    assert [float(v) for v in grid_of("plain.dcm").ImageOrientationPatient] == [-1, 0, 0, 0, -1, 0]
    assert [float(v) for v in grid_of("aligned.dcm").ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    before = read_registration(tmp_path / "plain.dcm").choose_item().grid
    after = read_registration(tmp_path / "aligned.dcm").choose_item().grid
    index = np.stack(np.meshgrid(*[np.arange(n) for n in before.dimensions], indexing="ij"), -1).reshape(-1, 3)
    points = index @ before.index_to_lps[:3, :3].T + before.index_to_lps[:3, 3]
    assert np.array_equal(np.sort(before.vectors_lps.reshape(-1)), np.sort(after.vectors_lps.reshape(-1)))
    assert np.max(np.abs(after.displacement_at(points) - before.displacement_at(points))) < 1e-5


def test_validate_and_to_transform_reports(case, tmp_path):
    assert export(case, tmp_path / "reg.dcm").returncode == 0
    valid = run("validate", tmp_path / "reg.dcm", "--images", case.fixed_dir, case.moving_dir, "--json", "-")
    assert valid.returncode == 0, valid.stderr
    report = json.loads(valid.stdout)
    assert (report["report"], report["version"], report["ok"], report["errors"]) == ("validate", 1, True, [])
    assert "error(s)" in valid.stderr  # the text went to stderr, the JSON alone to stdout
    assert {w["source"] for w in report["warnings"]} <= {"dicomregsave", "dciodvfy", "dcentvfy"}

    broken = pydicom.dcmread(tmp_path / "reg.dcm")
    with pytest.warns(UserWarning, match="Invalid value"):
        broken.ContentLabel = "lower case"
        broken.DeformableRegistrationSequence[0].SourceFrameOfReferenceUID = "1.2.abc"
    broken.save_as(tmp_path / "broken.dcm")
    invalid = run("validate", tmp_path / "broken.dcm", "--json", tmp_path / "validate.json")
    assert invalid.returncode == 1
    report = json.loads((tmp_path / "validate.json").read_text())
    assert report["ok"] is False and report["path"] == str(tmp_path / "broken.dcm")
    sources = {e["source"] for e in report["errors"]}
    assert {"dicomregsave", "dciodvfy"} <= sources
    assert any("Content Label" in e["message"] for e in report["errors"] if e["source"] == "dicomregsave")
    assert all(not e["message"].startswith("[") for e in report["errors"])

    converted = run("to-transform", tmp_path / "reg.dcm", tmp_path / "field.nrrd", "--json", "-")
    assert converted.returncode == 0, converted.stderr
    report = json.loads(converted.stdout)
    registration = read_registration(tmp_path / "reg.dcm")
    assert report["report"] == "to-transform" and report["ok"] is True
    assert report["output"] == str(tmp_path / "field.nrrd") and (tmp_path / "field.nrrd").is_file()
    assert report["frame_of_reference_uid"] == case.fixed_frame_of_reference_uid
    assert report["source_frame_of_reference_uids"] == [case.moving_frame_of_reference_uid]
    assert report["grid"]["dimensions"] == list(registration.choose_item().grid.dimensions)


def test_json_report_of_a_spatial_registration_names_its_class_and_has_no_grid(case, tmp_path):
    (tmp_path / "shift.tfm").write_text(
        "#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
        "Parameters: 1 0 0 0 1 0 0 0 1 5 -2 1\nFixedParameters: 0 0 0\n"
    )
    result = run(
        "export",
        "--transform",
        tmp_path / "shift.tfm",
        "--fixed",
        case.fixed_dir,
        "--moving",
        case.moving_dir,
        "--output",
        tmp_path / "reg.dcm",
        "--registration-class",
        "spatial",
        "--json",
        "-",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    dataset = pydicom.dcmread(tmp_path / "reg.dcm")
    assert report["sop_class_uid"] == dataset.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.1"
    assert report["grid"] is None and report["ok"] is True
    assert report["moving"]["frame_of_reference_uid"] == case.moving_frame_of_reference_uid
    converted = run("to-transform", tmp_path / "reg.dcm", tmp_path / "back.tfm", "--json", "-")
    assert converted.returncode == 0, converted.stderr
    assert json.loads(converted.stdout)["grid"] is None
