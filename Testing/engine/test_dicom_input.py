"""Image series discovery, geometry (ijk_to_lps in LPS mm), references and errors of dicom_input."""

from __future__ import annotations

import random
import shutil
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement

from dicom_input_helpers import rotation, write_non_image, write_without_preamble
from DicomRegSaveLib import geometry
from DicomRegSaveLib.errors import DicomInputError, MalformedDicomError
from DicomRegSaveLib.file_walker import walk
from DicomRegSaveLib.inputs.lookup import series_from_instance_uids
from DicomRegSaveLib.inputs.sampledata import write_image_series
from DicomRegSaveLib.inputs.series import ImageSeries, read_image_series, series_from_headers


def _write(folder: Path, **kwargs) -> list[Path]:
    options = dict(patient_name="Test^Patient", patient_id="P1", dimensions=(6, 5, 7), spacing_mm=(1.5, 2.0, 3.0))
    options.update(kwargs)
    return write_image_series(folder, **options)


def _database_lookup(folder: Path):
    """SOP Instance UID -> file path, "" when unknown: how Slicer's DICOM database answers
    (``slicer.dicomDatabase.fileForInstance``), over the instances the walker finds in `folder`."""
    files = {instance.sop_instance_uid: str(instance.path) for instance in walk(folder, "image path").instances}
    return lambda uid: files.get(uid, "")


def _expected_ijk_to_lps(origin, direction, spacing, n_k) -> np.ndarray:
    """What the reader must report: k along row x column, origin on the lowest slice along it."""
    direction = np.asarray(direction, dtype=np.float64)
    origin = np.asarray(origin, dtype=np.float64)
    if not geometry.is_right_handed(direction):
        origin = origin + (n_k - 1) * spacing[2] * direction[:, 2]
        direction = direction.copy()
        direction[:, 2] *= -1
    return geometry.index_to_patient_matrix(origin, direction, spacing)


GEOMETRIES = {
    "axial": np.eye(3),
    "oblique": rotation((1.0, 2.0, 0.5), 27.0),
    # Sagittal: rows run anterior -> posterior (+y), columns head -> foot (-z); k = row x col = -x.
    "sagittal": np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
    "coronal": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),
    "left-handed axial": np.diag([1.0, 1.0, -1.0]),
    "left-handed oblique": rotation((0.3, -1.0, 0.8), 50.0) @ np.diag([1.0, 1.0, -1.0]),
}


@pytest.mark.parametrize("multiframe", [False, True], ids=["single-frame", "enhanced"])
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_geometry_matches_what_was_written(tmp_path: Path, name: str, multiframe: bool) -> None:
    direction = GEOMETRIES[name]
    origin = np.array([-12.25, 30.5, -101.75])
    spacing = (1.5, 2.0, 3.0)
    paths = _write(tmp_path, direction_lps=direction, origin_lps=origin, spacing_mm=spacing, multiframe=multiframe)

    series = read_image_series(tmp_path, "fixed")

    expected = _expected_ijk_to_lps(origin, direction, spacing, 7)
    np.testing.assert_allclose(series.ijk_to_lps, expected, atol=1e-6)
    assert series.dimensions == (6, 5, 7)
    assert geometry.is_right_handed(series.direction_lps)
    np.testing.assert_allclose(series.spacing_mm, spacing, atol=1e-9)
    header = pydicom.dcmread(paths[0])
    assert series.study_instance_uid == header.StudyInstanceUID
    assert series.series_instance_uid == header.SeriesInstanceUID
    assert series.frame_of_reference_uid == header.FrameOfReferenceUID
    assert series.sop_class_uid == header.SOPClassUID
    assert series.modality == "CT"
    references = series.image_references()
    assert len(references) == len(paths)
    assert all(r.frame_numbers == () for r in references)
    assert {r.frame_of_reference_uid for r in references} == {header.FrameOfReferenceUID}
    assert {r.study_instance_uid for r in references} == {header.StudyInstanceUID}
    if not multiframe:
        uids_in_write_order = [pydicom.dcmread(p).SOPInstanceUID for p in paths]
        left_handed = not geometry.is_right_handed(direction)
        expected_order = uids_in_write_order[::-1] if left_handed else uids_in_write_order
        assert [r.sop_instance_uid for r in references] == expected_order
        assert series.paths == (paths[::-1] if left_handed else paths)


def test_pixel_spacing_order_row_then_column(tmp_path: Path) -> None:
    paths = _write(tmp_path, spacing_mm=(0.7, 1.9, 2.5), dimensions=(4, 3, 2))
    assert [float(v) for v in pydicom.dcmread(paths[0]).PixelSpacing] == [1.9, 0.7]
    series = read_image_series(paths, "moving")
    np.testing.assert_allclose(series.ijk_to_lps[:3, 0], [0.7, 0, 0])
    np.testing.assert_allclose(series.ijk_to_lps[:3, 1], [0, 1.9, 0])


def test_shuffled_file_list_gives_the_same_series(tmp_path: Path) -> None:
    paths = _write(tmp_path, direction_lps=GEOMETRIES["oblique"], dimensions=(4, 4, 9))
    shuffled = paths[:]
    random.Random(3).shuffle(shuffled)
    ordered = read_image_series(paths, "fixed")
    from_shuffled = read_image_series(shuffled, "fixed")
    np.testing.assert_array_equal(from_shuffled.ijk_to_lps, ordered.ijk_to_lps)
    assert [r.sop_instance_uid for r in from_shuffled.image_references()] == [
        r.sop_instance_uid for r in ordered.image_references()
    ]
    assert from_shuffled.paths == paths


def test_voxel_centres_match_pixel_positions(tmp_path: Path) -> None:
    """ijk_to_lps maps (i, j) of every slice to Image Position + i * row direction + j * column direction."""
    direction = GEOMETRIES["left-handed oblique"]
    _write(tmp_path, direction_lps=direction, dimensions=(5, 4, 6), spacing_mm=(1.1, 0.9, 2.2))
    series = read_image_series(tmp_path, "fixed")
    for k, header in enumerate(series.headers):
        iop = np.array(header.ImageOrientationPatient, dtype=float)
        ipp = np.array(header.ImagePositionPatient, dtype=float)
        column_spacing = float(header.PixelSpacing[1])
        row_spacing = float(header.PixelSpacing[0])
        for i, j in [(0, 0), (4, 0), (0, 3), (4, 3)]:
            expected = ipp + i * column_spacing * iop[:3] + j * row_spacing * iop[3:]
            np.testing.assert_allclose(series.ijk_to_lps @ [i, j, k, 1], [*expected, 1], atol=1e-6)


def test_single_slice_uses_slice_thickness(tmp_path: Path) -> None:
    _write(tmp_path, dimensions=(4, 4, 1), spacing_mm=(1.0, 1.0, 5.0), direction_lps=GEOMETRIES["coronal"])
    series = read_image_series(tmp_path, "fixed")
    assert series.dimensions == (4, 4, 1)
    np.testing.assert_allclose(series.ijk_to_lps[:3, 2], 5.0 * GEOMETRIES["coronal"][:, 2], atol=1e-9)


def test_single_slice_without_thickness_uses_1_mm(tmp_path: Path) -> None:
    paths = _write(tmp_path, dimensions=(4, 4, 1))
    header = pydicom.dcmread(paths[0], stop_before_pixels=True)
    del header.SliceThickness
    series = series_from_headers([header], "fixed")
    np.testing.assert_allclose(series.ijk_to_lps[:3, 2], [0, 0, 1.0])


def test_gantry_tilt_gives_a_sheared_k_axis(tmp_path: Path) -> None:
    paths = _write(tmp_path, dimensions=(4, 4, 5), spacing_mm=(1.0, 1.0, 2.0))
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    for k, header in enumerate(headers):
        position = [float(v) for v in header.ImagePositionPatient]
        header.ImagePositionPatient = [position[0], position[1] + 0.5 * k, position[2]]
    series = series_from_headers(headers, "fixed")
    np.testing.assert_allclose(series.ijk_to_lps[:3, 2], [0, 0.5, 2.0], atol=1e-9)


def test_enhanced_frame_subset(tmp_path: Path) -> None:
    origin = np.array([1.0, 2.0, 3.0])
    paths = _write(tmp_path, multiframe=True, origin_lps=origin, dimensions=(4, 3, 8), spacing_mm=(1.0, 1.0, 2.5))
    full = read_image_series(tmp_path, "moving")
    sop_instance_uid = full.image_references()[0].sop_instance_uid

    subset = full.subset([5, 3, 4])
    from_reader = read_image_series(paths, "moving", frame_numbers={sop_instance_uid: [3, 4, 5]})

    for series in (subset, from_reader):
        assert series.dimensions == (4, 3, 3)
        np.testing.assert_allclose(series.ijk_to_lps[:3, 3], origin + [0, 0, 2 * 2.5], atol=1e-9)
        np.testing.assert_allclose(series.ijk_to_lps[:3, 2], [0, 0, 2.5], atol=1e-9)
        (reference,) = series.image_references()
        assert reference.sop_instance_uid == sop_instance_uid
        assert reference.frame_numbers == (3, 4, 5)
        assert [f.frame_number for f in series.frames] == [3, 4, 5]
    assert full.subset(range(1, 9)).image_references()[0].frame_numbers == ()


def test_enhanced_left_handed_frames_are_sorted_along_the_normal(tmp_path: Path) -> None:
    _write(tmp_path, multiframe=True, direction_lps=GEOMETRIES["left-handed axial"], dimensions=(4, 3, 5))
    series = read_image_series(tmp_path, "fixed")
    assert [f.frame_number for f in series.frames] == [5, 4, 3, 2, 1]
    assert series.subset([1, 2]).image_references()[0].frame_numbers == (1, 2)


def test_frame_numbers_errors(tmp_path: Path) -> None:
    _write(tmp_path / "mf", multiframe=True, dimensions=(4, 3, 4))
    series = read_image_series(tmp_path / "mf", "moving")
    with pytest.raises(DicomInputError, match=r"distinct values from 1 to 4; got \[0, 5\]"):
        series.subset([0, 5])
    with pytest.raises(DicomInputError, match="not in the moving image series"):
        series.subset({"1.2.3": [1]})
    _write(tmp_path / "sf", dimensions=(4, 3, 4))
    with pytest.raises(DicomInputError, match="needs exactly one multi-frame instance.*has 0"):
        read_image_series(tmp_path / "sf", "fixed", frame_numbers=[1, 2])


def test_references_carry_uids_in_slice_order(tmp_path: Path) -> None:
    paths = _write(
        tmp_path, study_instance_uid="1.2.3.4", series_instance_uid="1.2.3.5", frame_of_reference_uid="1.2.3.6"
    )
    references = read_image_series(tmp_path, "moving").image_references()
    assert len(references) == 7
    assert [r.sop_instance_uid for r in references] == [pydicom.dcmread(p).SOPInstanceUID for p in paths]
    assert {
        (r.study_instance_uid, r.series_instance_uid, r.frame_of_reference_uid, r.sop_class_uid) for r in references
    } == {("1.2.3.4", "1.2.3.5", "1.2.3.6", "1.2.840.10008.5.1.4.1.1.2")}


def test_non_image_objects_and_non_dicom_files_are_ignored(tmp_path: Path) -> None:
    paths = _write(tmp_path / "ct")
    study = pydicom.dcmread(paths[0]).StudyInstanceUID
    write_non_image(tmp_path / "rt" / "rs.dcm", "RTSTRUCT", study)
    write_non_image(tmp_path / "reg.dcm", "REG", study)
    write_non_image(tmp_path / "sub" / "sr", "SR", study)
    (tmp_path / "notes.txt").write_text("scanner notes\n")
    (tmp_path / "DICOMDIR").write_bytes(b"not really a dicomdir")
    series = read_image_series(tmp_path, "fixed")
    assert series.dimensions == (6, 5, 7)
    assert len(series.image_references()) == 7


def test_real_dicomdir_is_ignored(tmp_path: Path) -> None:
    _write(tmp_path)
    directory = pydicom.Dataset()
    directory.FileSetID = "TEST"
    directory.DirectoryRecordSequence = pydicom.Sequence()
    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    directory.file_meta = meta
    directory.save_as(tmp_path / "DICOMDIR", enforce_file_format=True)
    assert read_image_series(tmp_path, "fixed").dimensions == (6, 5, 7)


def test_file_without_preamble_is_read(tmp_path: Path) -> None:
    paths = _write(tmp_path / "ct", dimensions=(4, 4, 3))
    # A bare Explicit VR Little Endian dataset: no preamble, no "DICM", no file meta group.
    bare = write_without_preamble(paths[0], tmp_path / "ct" / "IM0001")
    paths[0].unlink()
    assert b"DICM" not in bare.read_bytes()[:200]
    series = read_image_series(tmp_path / "ct", "fixed")
    assert series.dimensions == (4, 4, 3)
    assert bare in series.paths


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DicomInputError, match=f"The fixed image path {missing} does not exist"):
        read_image_series(missing, "fixed")


def test_no_dicom_files(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(DicomInputError, match="No DICOM files were found in .* for the moving image"):
        read_image_series(tmp_path, "moving")


def test_only_non_image_objects(tmp_path: Path) -> None:
    write_non_image(tmp_path / "rs.dcm", "RTSTRUCT", "1.2.3")
    write_non_image(tmp_path / "reg.dcm", "REG", "1.2.3")
    with pytest.raises(DicomInputError, match="no image series for the fixed image") as caught:
        read_image_series(tmp_path, "fixed")
    assert "RTSTRUCT series" in str(caught.value) and "REG series" in str(caught.value)


def test_two_image_series_are_listed(tmp_path: Path) -> None:
    _write(tmp_path / "a", series_instance_uid="1.2.826.0.1.1", series_description="Arterial")
    _write(tmp_path / "b", series_instance_uid="1.2.826.0.1.2", series_description="Venous", dimensions=(4, 4, 3))
    with pytest.raises(DicomInputError) as caught:
        read_image_series(tmp_path, "moving")
    message = str(caught.value)
    assert "holds 2 image series" in message
    assert "Series Instance UID 1.2.826.0.1.1, modality CT, 'Arterial', 7 instance(s)" in message
    assert "Series Instance UID 1.2.826.0.1.2, modality CT, 'Venous', 3 instance(s)" in message
    assert "Pass one series' folder or files as the moving image" in message


def test_unreadable_dicom_file_is_reported(tmp_path: Path) -> None:
    paths = _write(tmp_path, dimensions=(4, 4, 3))
    damaged = tmp_path / "damaged.dcm"
    damaged.write_bytes(paths[0].read_bytes()[:300])
    with pytest.raises(DicomInputError, match=r"1 DICOM file\(s\) given for the fixed image cannot be read") as caught:
        read_image_series(tmp_path, "fixed")
    assert str(damaged) in str(caught.value)


def test_missing_middle_slice_is_non_uniform(tmp_path: Path) -> None:
    paths = _write(tmp_path, dimensions=(4, 4, 8), spacing_mm=(1.0, 1.0, 3.0))
    paths[4].unlink()
    with pytest.raises(DicomInputError, match="not uniformly spaced: slice gaps range from 3 to 6 mm"):
        read_image_series(tmp_path, "fixed")


def test_small_position_jitter_is_tolerated(tmp_path: Path) -> None:
    paths = _write(tmp_path, dimensions=(4, 4, 6), spacing_mm=(1.0, 1.0, 3.0))
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    z = float(headers[2].ImagePositionPatient[2])
    headers[2].ImagePositionPatient[2] = z + 0.03
    np.testing.assert_allclose(series_from_headers(headers, "fixed").ijk_to_lps[2, 2], 3.0)
    headers[2].ImagePositionPatient[2] = z + 0.3
    with pytest.raises(DicomInputError, match="not uniformly spaced"):
        series_from_headers(headers, "fixed")


def test_duplicate_positions_name_the_cause(tmp_path: Path) -> None:
    paths = _write(tmp_path, dimensions=(4, 4, 4))
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    headers[1].ImagePositionPatient = headers[0].ImagePositionPatient
    with pytest.raises(DicomInputError, match="two slices lie at the same position.*more than one stack"):
        series_from_headers(headers, "fixed")


def test_mixed_orientations_pixel_spacing_sizes_and_frames_of_reference(tmp_path: Path) -> None:
    paths = _write(tmp_path, dimensions=(4, 4, 4))

    def headers():
        return [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]

    changed = headers()
    changed[3].ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    with pytest.raises(DicomInputError, match="different Image Orientation"):
        series_from_headers(changed, "fixed")
    changed = headers()
    changed[0].PixelSpacing = [1.0, 1.2]
    with pytest.raises(DicomInputError, match="different Pixel Spacing"):
        series_from_headers(changed, "fixed")
    changed = headers()
    changed[0].Rows = 8
    with pytest.raises(DicomInputError, match="different sizes"):
        series_from_headers(changed, "fixed")
    changed = headers()
    changed[2].FrameOfReferenceUID = "1.2.3.99"
    with pytest.raises(DicomInputError, match="differing Frame of Reference UID values"):
        series_from_headers(changed, "moving")
    changed = headers()
    del changed[1].FrameOfReferenceUID
    with pytest.raises(DicomInputError, match="Frame of Reference UID"):
        series_from_headers(changed, "moving")


def test_headers_of_two_series_are_rejected(tmp_path: Path) -> None:
    first = _write(tmp_path / "a", dimensions=(4, 4, 2))
    second = _write(tmp_path / "b", dimensions=(4, 4, 2))
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in first + second]
    with pytest.raises(DicomInputError, match="belong to 2 series"):
        series_from_headers(headers, "fixed")


def test_lookup_from_folder_and_instance_uids(tmp_path: Path) -> None:
    direction = GEOMETRIES["oblique"]
    _write(tmp_path / "ct", direction_lps=direction)
    _write(tmp_path / "other", dimensions=(4, 4, 2))
    reference = read_image_series(tmp_path / "ct", "fixed")
    uids = [r.sop_instance_uid for r in reference.image_references()]
    lookup = _database_lookup(tmp_path)
    assert len(walk(tmp_path, "image path").instances) == 9
    assert all(lookup(uid) for uid in uids) and lookup("1.2.9.9") == ""

    from_string = series_from_instance_uids(" ".join(reversed(uids)), lookup, "fixed")
    np.testing.assert_array_equal(from_string.ijk_to_lps, reference.ijk_to_lps)
    assert [r.sop_instance_uid for r in from_string.image_references()] == uids
    assert from_string.paths == reference.paths

    headers = {uid: pydicom.dcmread(lookup(uid), stop_before_pixels=True) for uid in uids}
    from_headers = series_from_instance_uids(uids, headers.get, "fixed")
    np.testing.assert_array_equal(from_headers.ijk_to_lps, reference.ijk_to_lps)
    assert from_headers.paths == reference.paths

    in_memory = {uid: pydicom.dcmread(lookup(uid), stop_before_pixels=True) for uid in uids}
    for header in in_memory.values():
        header.filename = None
    from_datasets = series_from_instance_uids(uids, in_memory.get, "fixed")
    np.testing.assert_array_equal(from_datasets.ijk_to_lps, reference.ijk_to_lps)
    assert from_datasets.paths == []


def test_instance_uids_not_found(tmp_path: Path) -> None:
    _write(tmp_path, dimensions=(4, 4, 2))
    lookup = _database_lookup(tmp_path)
    uids = [str(pydicom.dcmread(p).SOPInstanceUID) for p in sorted(tmp_path.glob("*.dcm"))]
    with pytest.raises(
        DicomInputError, match=r"2 of the 4 moving image instances were not found: 1\.2\.9\.1, 1\.2\.9\.2"
    ):
        series_from_instance_uids(uids + ["1.2.9.1", "1.2.9.2"], lookup, "moving")
    with pytest.raises(DicomInputError, match="1 of the 1 fixed image instances were not found"):
        series_from_instance_uids(["1.2.9.3"], lambda uid: "", "fixed")
    with pytest.raises(DicomInputError, match="has no DICOM instance UIDs; it was not loaded from DICOM"):
        series_from_instance_uids("  ", lookup, "fixed")


def test_instance_uid_of_a_non_image_is_rejected(tmp_path: Path) -> None:
    dataset = write_non_image(tmp_path / "rs.dcm", "RTSTRUCT", "1.2.3")
    lookup = _database_lookup(tmp_path)
    with pytest.raises(DicomInputError, match="is not an image with patient geometry"):
        series_from_instance_uids([dataset.SOPInstanceUID], lookup, "moving")


def test_series_is_a_plain_object(tmp_path: Path) -> None:
    _write(tmp_path, dimensions=(4, 4, 2))
    series = read_image_series(str(tmp_path), "fixed")
    assert isinstance(series, ImageSeries)
    assert series.first_header is series.headers[0]
    assert series.first_header.PatientName == "Test^Patient"
    assert "PixelData" not in series.first_header


def test_copied_instances_are_counted_once(tmp_path: Path) -> None:
    paths = _write(tmp_path / "ct", dimensions=(4, 4, 3))
    shutil.copy(paths[1], tmp_path / "copy.dcm")
    series = read_image_series(tmp_path, "fixed")
    assert series.dimensions == (4, 4, 3)
    assert len(series.image_references()) == 3


def _damage_vr(path: Path, tag: tuple[int, int], vr: bytes) -> None:
    """Give an element of `path` an unknown VR ("ZZ"), so that decoding it fails."""
    data = bytearray(path.read_bytes())
    offset = data.find(struct.pack("<HH", *tag) + vr)
    assert offset > 0
    data[offset + 4 : offset + 6] = b"ZZ"
    path.write_bytes(bytes(data))


def test_only_the_first_instance_is_decoded_whole(tmp_path: Path) -> None:
    """A series' other instances are read for identity and geometry only: damage elsewhere in them
    does not stop an export, while the first instance, whose patient and study the REG inherits,
    is decoded whole and its damage is named."""
    paths = _write(tmp_path / "series", dimensions=(4, 4, 5))
    first = read_image_series(tmp_path / "series", "fixed").paths[0]
    _damage_vr(next(p for p in paths if p != first), (0x0010, 0x0010), b"PN")
    series = read_image_series(tmp_path / "series", "fixed")
    assert series.paths[0] == first and len(series.headers) == 5
    assert str(series.first_header.PatientName) == "Test^Patient"
    assert all(not isinstance(element, RawDataElement) for element in series.first_header.elements())

    _damage_vr(first, (0x0010, 0x0010), b"PN")
    with pytest.raises(MalformedDicomError) as caught:
        read_image_series(tmp_path / "series", "fixed")
    assert str(first) in str(caught.value) and "(0010,0010) PatientName cannot be decoded" in str(caught.value)
