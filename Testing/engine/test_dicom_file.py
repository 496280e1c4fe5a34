"""The reading boundary (dicom_file.py): damaged files fail with the file, the attribute and the cause,
the dump shows what it can, and no length field makes the reader reserve memory the file lacks."""

from __future__ import annotations

import struct
import tracemalloc

import pytest

import reg_builders as rb
from DicomRegSaveLib.dicom_file import open_dicom_file, read_dicom_file
from DicomRegSaveLib.errors import DicomInputError, MalformedDicomError
from DicomRegSaveLib.inputs.series import read_image_series
from DicomRegSaveLib.reg.dump import dump
from DicomRegSaveLib.reg.reader import read_registration
from DicomRegSaveLib.validation.validate import validate_file


def _explicit_element(data: bytes, tag: tuple[int, int], vr: bytes) -> int:
    """Offset of an explicit VR little endian element header."""
    offset = data.find(struct.pack("<HH", *tag) + vr)
    assert offset > 0
    return offset


@pytest.fixture
def reg_bytes(tmp_path):
    return rb.write(rb.make_case().dataset, tmp_path / "seed.dcm").read_bytes()


def test_unknown_vr_names_file_tag_and_keyword(tmp_path, reg_bytes):
    data = bytearray(reg_bytes)
    offset = _explicit_element(data, (0x0008, 0x0070), b"LO")
    data[offset + 4 : offset + 6] = b"ZZ"
    path = tmp_path / "bad_vr.dcm"
    path.write_bytes(data)
    with pytest.raises(MalformedDicomError) as info:
        read_registration(path)
    message = str(info.value)
    assert str(path) in message and "(0008,0070) Manufacturer" in message and "'ZZ'" in message
    report = validate_file(path)
    assert not report.ok and "(0008,0070) Manufacturer" in report.errors[0]
    text = dump(open_dicom_file(path)[0])
    assert "(0008,0070) ZZ  <cannot decode: NotImplementedError" in text.replace("Manufacturer ", "")
    assert "(0008,0060) CS Modality  [REG]" in text and "VectorGridData" in text


def test_huge_length_reserves_no_memory(tmp_path, reg_bytes):
    data = bytearray(reg_bytes)
    offset = _explicit_element(data, (0x0064, 0x0009), b"OF")
    data[offset + 8 : offset + 12] = struct.pack("<I", 0xFFFFFFF0)
    path = tmp_path / "huge.dcm"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(MalformedDicomError) as info:
            read_registration(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * len(data) + (8 << 20)
    assert "VectorGridData" in str(info.value) and "4294967280 bytes declared" in str(info.value)


def test_truncated_file_is_named_as_such(tmp_path, reg_bytes):
    path = tmp_path / "cut.dcm"
    path.write_bytes(reg_bytes[: len(reg_bytes) - 100])
    with pytest.raises(MalformedDicomError, match="the file ends inside it"):
        read_dicom_file(path)
    dataset, _ = open_dicom_file(path)
    assert "<cannot decode: EOFError" in dump(dataset)


def test_vector_grid_data_of_odd_length_is_marked_in_the_dump(tmp_path):
    case = rb.make_case()
    case.item.DeformableRegistrationGridSequence[0].VectorGridData = b"\0\0\0\0"
    path = rb.write(case.dataset, tmp_path / "odd.dcm")
    text = dump(read_dicom_file(path))
    assert "<4 bytes: not a whole number of 3 x float32 vectors" in text
    case.item.DeformableRegistrationGridSequence[0].VectorGridData = b""
    path = rb.write(case.dataset, tmp_path / "empty.dcm")
    assert "VectorGridData  <no vectors>" in dump(read_dicom_file(path))


def test_sequence_with_another_vr_and_several_uids_are_refused(tmp_path):
    case = rb.make_case()
    case.dataset.StudyInstanceUID = [case.dataset.StudyInstanceUID, "1.2.3"]
    path = rb.write(case.dataset, tmp_path / "two_uids.dcm")
    with pytest.raises(MalformedDicomError, match=r"\(0020,000D\) StudyInstanceUID .* holds 2 UIDs"):
        read_registration(path)


def test_damaged_image_input_is_reported_with_the_element(tmp_path):
    images = rb.make_ct_series(3)
    paths = [rb.write(image, tmp_path / f"ct{n}.dcm") for n, image in enumerate(images)]
    data = bytearray(paths[1].read_bytes())
    offset = _explicit_element(data, (0x0020, 0x0032), b"DS")
    data[offset + 4 : offset + 6] = b"\x01\x02"
    paths[1].write_bytes(data)
    with pytest.raises(DicomInputError) as info:
        read_image_series(tmp_path, "fixed")
    assert str(paths[1]) in str(info.value) and "(0020,0032) ImagePositionPatient" in str(info.value)
