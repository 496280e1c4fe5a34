"""The REG writer on its own: modules, inheritance, overrides, references, encoding, safe output."""

import os
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from DicomRegSaveLib.errors import InvalidRegistrationError, OperationCancelled, OutputError
from DicomRegSaveLib.export.pipeline import ExportOptions, create_dataset, write_dataset
from DicomRegSaveLib.model import DisplacementGrid, ImageReference, Registration, RegistrationItem, RegistrationMatrix
from DicomRegSaveLib.reg import tags
from DicomRegSaveLib.reg.references import common_instance_reference
from DicomRegSaveLib.reg.sop import DeformableSpatialRegistration
from DicomRegSaveLib.reg.vector_grid_data import VectorGridBuffer

CT = "1.2.840.10008.5.1.4.1.1.2"


def fixed_header(**changes) -> Dataset:
    header = Dataset()
    header.SOPClassUID = CT
    header.SOPInstanceUID = generate_uid()
    header.SpecificCharacterSet = "ISO_IR 192"
    header.PatientName = "Doe^Jane"
    header.PatientID = "PAT-1"
    header.PatientBirthDate = "19700101"
    header.PatientSex = "F"
    header.PatientIdentityRemoved = "NO"
    header.StudyInstanceUID = generate_uid()
    header.StudyDate = "20260102"
    header.StudyTime = "101500"
    header.StudyID = "S1"
    header.AccessionNumber = "ACC1"
    header.ReferringPhysicianName = "Who^Doctor"
    header.StudyDescription = "Planning CT"
    header.SeriesInstanceUID = generate_uid()
    header.Modality = "CT"
    header.Manufacturer = "Scanner Corp"
    header.KVP = "120"
    header.BodyPartExamined = "PELVIS"
    header.FrameOfReferenceUID = generate_uid()
    header.PositionReferenceIndicator = "XY"
    for keyword, value in changes.items():
        setattr(header, keyword, value)
    return header


def registration_for(fixed: Dataset, *, moving_study=None, same_frame=False, n_images=3) -> Registration:
    moving_frame = fixed.FrameOfReferenceUID if same_frame else generate_uid()
    study = moving_study or generate_uid()
    series = generate_uid()
    references = [ImageReference(CT, generate_uid(), series, study, moving_frame) for _ in range(n_images)]
    vectors = np.random.default_rng(0).normal(size=(3, 4, 5, 3)).astype(np.float32)
    grid = DisplacementGrid([1.0, 2.0, 3.0], np.eye(3), [2.0, 2.0, 3.0], vectors)
    return Registration(fixed.FrameOfReferenceUID, [RegistrationItem(moving_frame, references, grid)])


def test_inherits_only_what_the_reg_modules_declare():
    fixed = fixed_header()
    dataset = create_dataset(registration_for(fixed), fixed, ExportOptions())
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "PatientIdentityRemoved",
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "StudyID",
        "AccessionNumber",
        "ReferringPhysicianName",
        "StudyDescription",
        "BodyPartExamined",
        "PositionReferenceIndicator",
        "SpecificCharacterSet",
    ):
        assert dataset[keyword].value == fixed[keyword].value, keyword
    assert "KVP" not in dataset
    assert dataset.Manufacturer == "DicomRegSave" and dataset.Modality == "REG"
    assert dataset.SeriesInstanceUID != fixed.SeriesInstanceUID
    assert dataset.FrameOfReferenceUID == fixed.FrameOfReferenceUID
    assert tags.inherited_keywords().count("PatientName") == 1


def test_fixed_image_of_another_frame_is_refused():
    fixed = fixed_header()
    registration = registration_for(fixed)
    other = fixed_header()
    with pytest.raises(InvalidRegistrationError, match="registered frame"):
        create_dataset(registration, other, ExportOptions())


def test_common_instance_reference_is_split_by_study():
    fixed = fixed_header()
    same_study = create_dataset(registration_for(fixed, moving_study=fixed.StudyInstanceUID), fixed, ExportOptions())
    assert "StudiesContainingOtherReferencedInstancesSequence" not in same_study
    assert len(same_study.ReferencedSeriesSequence[0].ReferencedInstanceSequence) == 3

    other_study = create_dataset(registration_for(fixed), fixed, ExportOptions())
    assert "ReferencedSeriesSequence" not in other_study
    study_item = other_study.StudiesContainingOtherReferencedInstancesSequence[0]
    referenced = [i.ReferencedSOPInstanceUID for i in study_item.ReferencedSeriesSequence[0].ReferencedInstanceSequence]
    item_references = [
        i.ReferencedSOPInstanceUID for i in other_study.DeformableRegistrationSequence[0].ReferencedImageSequence
    ]
    assert referenced == item_references


def test_common_instance_reference_lists_each_instance_once_across_items():
    references = [ImageReference(CT, f"1.2.3.{n}", "1.2.9", "1.2.8", "1.2.7") for n in range(4)]
    this_study, others = common_instance_reference(references + references[:2], "1.2.8")
    assert others == []
    listed = [i.ReferencedSOPInstanceUID for i in this_study[0].ReferencedInstanceSequence]
    assert len(listed) == 6  # the function lists what it is given; Registration.referenced_images dedups
    fixed = fixed_header()
    registration = registration_for(fixed)
    registration.items.append(
        RegistrationItem(registration.items[0].source_frame_of_reference_uid, registration.items[0].referenced_images)
    )
    assert len(registration.referenced_images) == 3


def test_grid_item_geometry_matrices_and_vectors_are_encoded_as_the_standard_says():
    fixed = fixed_header()
    registration = registration_for(fixed)
    post = np.eye(4)
    post[:3, 3] = [1 / 3, -2e-7, 123456.789012345]
    registration.items[0].post_deformation_matrix = RegistrationMatrix(post)
    dataset = create_dataset(registration, fixed, ExportOptions())
    item = dataset.DeformableRegistrationSequence[0]
    assert item.PreDeformationMatrixRegistrationSequence[0].FrameOfReferenceTransformationMatrixType == "RIGID"
    matrix = item.PostDeformationMatrixRegistrationSequence[0].FrameOfReferenceTransformationMatrix
    assert all(len(str(v)) <= 16 for v in matrix)
    assert np.allclose(np.array(matrix, float).reshape(4, 4), post, rtol=1e-12, atol=1e-9)
    grid = item.DeformableRegistrationGridSequence[0]
    assert list(grid.GridDimensions) == [5, 4, 3] and list(grid.GridResolution) == [2.0, 2.0, 3.0]
    assert item.RegistrationTypeCodeSequence[0].CodeValue == "125024"
    vectors = registration.items[0].grid.vectors_lps
    buffer = grid["VectorGridData"].value
    assert grid["VectorGridData"].VR == "OF" and buffer.read() == vectors.tobytes()


def test_vector_buffer_serves_reversed_views_and_seeks():
    vectors = np.arange(4 * 3 * 2 * 3, dtype=np.float32).reshape(4, 3, 2, 3)
    buffer = VectorGridBuffer(vectors[::-1])
    assert len(buffer) == vectors.nbytes
    assert buffer.read() == np.ascontiguousarray(vectors[::-1]).tobytes()
    buffer.seek(70)
    assert buffer.read(30) == np.ascontiguousarray(vectors[::-1]).tobytes()[70:100]
    assert buffer.seek(0, os.SEEK_END) == vectors.nbytes and buffer.read(10) == b""


def test_overrides_apply_last_and_are_checked():
    fixed = fixed_header()
    options = ExportOptions(
        overrides={
            "SeriesDescription": "Mine",
            "0008,1030": "Study text",
            "SOPInstanceUID": "1.2.826.0.1.3680043.10.1",
            "AccessionNumber": None,
        }
    )
    dataset = create_dataset(registration_for(fixed), fixed, options)
    assert dataset.SeriesDescription == "Mine" and dataset.StudyDescription == "Study text"
    assert dataset.SOPInstanceUID == dataset.file_meta.MediaStorageSOPInstanceUID == "1.2.826.0.1.3680043.10.1"
    assert "AccessionNumber" not in dataset


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"SOPInstanceUID": "1." + "2" * 70}, "72 characters long; the limit is 64"),
        ({"SeriesInstanceUID": "1.2.03"}, "no leading zeros"),
        ({"StudyInstanceUID": "1.2.abc"}, "digits and dots"),
        ({"ContentLabel": "my label"}, "capital letters"),
        ({"ContentLabel": "A" * 17}, "the limit is 16"),
        ({"FrameOfReferenceUID": "1.2.3"}, "cannot be overridden"),
        ({"PatientSex": "X"}, "must be M, F, O"),
        ({"StudyDate": "2026-01-01"}, "YYYYMMDD"),
        ({"NoSuchKeyword": "x"}, "Unknown attribute"),
    ],
)
def test_invalid_overrides_are_refused_with_the_reason(overrides, message):
    fixed = fixed_header()
    with pytest.raises(InvalidRegistrationError, match=message):
        create_dataset(registration_for(fixed), fixed, ExportOptions(overrides=overrides))


def test_enhanced_general_equipment_must_not_be_empty():
    fixed = fixed_header()
    with pytest.raises(InvalidRegistrationError, match="Device Serial Number must not be empty"):
        create_dataset(registration_for(fixed), fixed, ExportOptions(device_serial_number=" "))


def test_copying_extra_source_attributes_is_opt_in_and_warns():
    fixed = fixed_header()
    with pytest.warns(UserWarning, match="KVP"):
        dataset = create_dataset(registration_for(fixed), fixed, ExportOptions(copy_source_keywords=["KVP"]))
    assert dataset.KVP == "120"
    with pytest.raises(InvalidRegistrationError, match="never copied"):
        create_dataset(registration_for(fixed), fixed, ExportOptions(copy_source_keywords=["Manufacturer"]))


def test_non_ascii_text_declares_a_character_set():
    fixed = fixed_header(PatientName="Müller^Jürgen")
    del fixed.SpecificCharacterSet
    dataset = create_dataset(registration_for(fixed), fixed, ExportOptions())
    assert dataset.SpecificCharacterSet == "ISO_IR 192"


def test_modifier_runs_last():
    fixed = fixed_header()
    seen = []

    def modifier(dataset):
        seen.append(dataset.SeriesDescription)
        block = dataset.private_block(0x0099, "DICOMREGSAVE TEST", create=True)
        block.add_new(0x01, "LO", "site value")

    dataset = create_dataset(
        registration_for(fixed), fixed, ExportOptions(modifier=modifier, overrides={"SeriesDescription": "X"})
    )
    assert seen == ["X"] and dataset[0x00991001].value == "site value"


def test_write_is_atomic_and_never_replaces_without_force(tmp_path):
    fixed = fixed_header()
    dataset = create_dataset(registration_for(fixed), fixed, ExportOptions())
    path = write_dataset(dataset, tmp_path)
    assert path == tmp_path / f"{dataset.SOPInstanceUID}.dcm"
    first = path.read_bytes()
    read = pydicom.dcmread(path)
    assert read.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert read.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.66.3"

    with pytest.raises(OutputError) as refused:
        write_dataset(dataset, path)
    # the front ends say how to allow replacing: the command's --force, the panel's checkbox
    assert str(refused.value) == f"{path} exists already. Choose another name, or allow replacing the existing file."
    assert refused.value.path == path
    assert path.read_bytes() == first
    write_dataset(dataset, path, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_unwritable_outputs_are_reported_and_leave_nothing(tmp_path):
    fixed = fixed_header()
    dataset = create_dataset(registration_for(fixed), fixed, ExportOptions())
    with pytest.raises(OutputError, match="does not exist"):
        write_dataset(dataset, tmp_path / "missing" / "reg.dcm")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(OutputError, match="does not exist \\(or is not a folder\\)"):
        write_dataset(dataset, a_file / "reg.dcm")
    with pytest.raises(OutputError, match="Cannot write in the folder /proc"):
        write_dataset(dataset, "/proc/reg.dcm")

    def broken(_dataset):
        raise RuntimeError("modifier failed")

    with pytest.raises(RuntimeError):
        create_dataset(registration_for(fixed), fixed, ExportOptions(modifier=broken))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_failing_write_leaves_no_partial_file(tmp_path, monkeypatch):
    fixed = fixed_header()
    dataset = create_dataset(registration_for(fixed), fixed, ExportOptions())

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(VectorGridBuffer, "write_to", disk_full)
    with pytest.raises(OutputError, match="No space left"):
        write_dataset(dataset, tmp_path / "reg.dcm")
    assert list(tmp_path.iterdir()) == []


def test_unchecked_vectors_are_checked_while_written_and_nothing_is_left(tmp_path):
    fixed = fixed_header()
    registration = registration_for(fixed)
    grid = registration.items[0].grid
    vectors = np.array(grid.vectors_lps)
    vectors[2, 1, 3, 1] = np.inf
    unchecked = DisplacementGrid(grid.origin_lps, grid.direction_lps, grid.spacing_mm, vectors, check_vectors=False)
    assert not unchecked.vectors_checked
    registration.items[0].grid = unchecked
    dataset = create_dataset(registration, fixed, ExportOptions())
    with pytest.raises(InvalidRegistrationError, match=r"grid point \(i=3, j=1, k=2\)"):
        write_dataset(dataset, tmp_path / "reg.dcm")
    assert list(tmp_path.iterdir()) == []
    vectors[2, 1, 3, 1] = 0.0
    path = write_dataset(dataset, tmp_path / "reg.dcm")
    stored = pydicom.dcmread(path).DeformableRegistrationSequence[0].DeformableRegistrationGridSequence[0]
    assert stored.VectorGridData == vectors.tobytes()


def test_write_progress_rises_to_one_and_a_raising_callback_cancels(tmp_path):
    fixed = fixed_header()
    dataset = create_dataset(registration_for(fixed), fixed, ExportOptions())
    seen = []
    write_dataset(dataset, tmp_path / "reg.dcm", progress=lambda fraction, message: seen.append((fraction, message)))
    fractions = [fraction for fraction, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) == 3  # one per k plane
    assert all(message == "Writing Vector Grid Data" for _, message in seen)

    def cancel(fraction, message):
        if fraction > 0.5:
            raise OperationCancelled("stop")

    with pytest.raises(OperationCancelled):
        write_dataset(dataset, tmp_path / "other.dcm", progress=cancel)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reg.dcm"]


def test_streamed_file_holds_the_dataset_and_leaves_it_unchanged(tmp_path):
    fixed = fixed_header()
    registration = registration_for(fixed)
    registration.items.append(
        RegistrationItem(
            registration.items[0].source_frame_of_reference_uid, grid=registration.items[0].grid.right_handed()
        )
    )
    dataset = create_dataset(registration, fixed, ExportOptions())
    before = [
        i.DeformableRegistrationGridSequence[0]["VectorGridData"].value for i in dataset.DeformableRegistrationSequence
    ]
    path = write_dataset(dataset, tmp_path / "reg.dcm")
    after = [
        i.DeformableRegistrationGridSequence[0]["VectorGridData"].value for i in dataset.DeformableRegistrationSequence
    ]
    assert all(a is b for a, b in zip(before, after))
    assert not dataset["DeformableRegistrationSequence"].is_undefined_length
    read = pydicom.dcmread(path)
    assert read["DeformableRegistrationSequence"].is_undefined_length
    for item in read.DeformableRegistrationSequence:
        vectors = np.frombuffer(item.DeformableRegistrationGridSequence[0].VectorGridData, "<f4").reshape(3, 4, 5, 3)
        assert np.array_equal(vectors, registration.items[0].grid.vectors_lps)
    assert read.PatientName == fixed.PatientName and read.SOPInstanceUID == dataset.SOPInstanceUID
    reference = tmp_path / "plain.dcm"
    dataset.save_as(reference, enforce_file_format=True)
    plain = pydicom.dcmread(reference)
    assert [e.keyword for e in plain.iterall()] == [e.keyword for e in read.iterall()]


def test_sop_class_validates_its_arguments():
    fixed = fixed_header()
    registration = registration_for(fixed)
    arguments = dict(
        series_instance_uid=generate_uid(),
        series_number=1,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="M",
        manufacturer_model_name="N",
        device_serial_number="1",
        software_versions="1",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = DeformableSpatialRegistration(registration, fixed, **arguments)
    assert dataset.ContentLabel == "REGISTRATION" and dataset.ContentDescription == ""
    with pytest.raises(InvalidRegistrationError, match="Content Creator's Name"):
        DeformableSpatialRegistration(registration, fixed, content_creator_name="a^b^c^d^e^f", **arguments)
    del fixed.PatientID
    with pytest.raises(InvalidRegistrationError, match="has no PatientID"):
        DeformableSpatialRegistration(registration, fixed, **arguments)
