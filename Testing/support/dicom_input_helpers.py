"""Builders for the image input tests: non-image DICOM objects (a minimal RTSTRUCT among them), files
without preamble, rotations, dciodvfy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, RTStructureSetStorage, generate_uid

NON_IMAGE_SOP_CLASSES = {
    "RTSTRUCT": "1.2.840.10008.5.1.4.1.1.481.3",
    "REG": "1.2.840.10008.5.1.4.1.1.66.3",
    "SR": "1.2.840.10008.5.1.4.1.1.88.11",
}


def write_non_image(path: Path, modality: str, study_instance_uid: str, description: str = "") -> Dataset:
    """Write a minimal RTSTRUCT/REG/SR object (no pixel data, no image geometry) to `path`."""
    dataset = Dataset()
    dataset.SOPClassUID = NON_IMAGE_SOP_CLASSES[modality]
    dataset.SOPInstanceUID = generate_uid()
    dataset.StudyInstanceUID = study_instance_uid
    dataset.SeriesInstanceUID = generate_uid()
    dataset.Modality = modality
    dataset.SeriesDescription = description
    dataset.PatientName = "Test^Patient"
    dataset.PatientID = "P1"
    return _save(dataset, path)


def write_rtstruct(path: Path, images: list[Path]) -> Dataset:
    """Write a minimal RT Structure Set on the image series of `images`, as planning systems leave one
    in the image folder: the images' patient and study, every image in its Contour Image Sequence,
    one closed planar contour (a 10 mm square) on the first image."""
    headers = [pydicom.dcmread(image, stop_before_pixels=True) for image in images]
    first = headers[0]
    dataset = Dataset()
    dataset.SpecificCharacterSet = "ISO_IR 192"
    dataset.SOPClassUID = RTStructureSetStorage
    dataset.SOPInstanceUID = generate_uid()
    dataset.Modality = "RTSTRUCT"
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate"):
        setattr(dataset, keyword, first.get(keyword, ""))
    dataset.StudyTime = first.get("StudyTime", "")
    dataset.StudyID = first.get("StudyID", "")
    dataset.AccessionNumber = ""
    dataset.ReferringPhysicianName = ""
    dataset.SeriesInstanceUID = generate_uid()
    dataset.SeriesNumber = 99
    dataset.Manufacturer = "test"
    dataset.StructureSetLabel = "BODY"
    dataset.StructureSetDate = "20240101"
    dataset.StructureSetTime = "120000"
    contour_images = DicomSequence()
    for header in headers:
        item = Dataset()
        item.ReferencedSOPClassUID = header.SOPClassUID
        item.ReferencedSOPInstanceUID = header.SOPInstanceUID
        contour_images.append(item)
    series = Dataset()
    series.SeriesInstanceUID = first.SeriesInstanceUID
    series.ContourImageSequence = contour_images
    study = Dataset()
    study.ReferencedSOPClassUID = (
        "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired), as PS3.3 C.8.8.5 asks
    )
    study.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study.RTReferencedSeriesSequence = DicomSequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame.RTReferencedStudySequence = DicomSequence([study])
    dataset.ReferencedFrameOfReferenceSequence = DicomSequence([frame])
    roi = Dataset()
    roi.ROINumber = 1
    roi.ReferencedFrameOfReferenceUID = first.FrameOfReferenceUID
    roi.ROIName = "BODY"
    roi.ROIGenerationAlgorithm = "MANUAL"
    dataset.StructureSetROISequence = DicomSequence([roi])
    x, y, z = (float(v) for v in first.ImagePositionPatient)
    contour = Dataset()
    contour.ContourGeometricType = "CLOSED_PLANAR"
    contour.NumberOfContourPoints = 4
    contour.ContourData = [x, y, z, x + 10, y, z, x + 10, y + 10, z, x, y + 10, z]
    contour.ContourImageSequence = DicomSequence([contour_images[0]])
    roi_contour = Dataset()
    roi_contour.ReferencedROINumber = 1
    roi_contour.ROIDisplayColor = [255, 0, 0]
    roi_contour.ContourSequence = DicomSequence([contour])
    dataset.ROIContourSequence = DicomSequence([roi_contour])
    observation = Dataset()
    observation.ObservationNumber = 1
    observation.ReferencedROINumber = 1
    observation.RTROIInterpretedType = "EXTERNAL"
    observation.ROIInterpreter = ""
    dataset.RTROIObservationsSequence = DicomSequence([observation])
    return _save(dataset, path)


def _save(dataset: Dataset, path: Path) -> Dataset:
    """Write `dataset` as a Part 10 file (Explicit VR Little Endian) to `path`; return it."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    dataset.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)
    return dataset


def write_without_preamble(source: Path, target: Path, implicit_vr: bool = False) -> Path:
    """Write the data set of `source` to `target` bare: no 128-byte preamble, no ``DICM``, no file meta
    information, in Implicit or Explicit VR Little Endian (as some scanners and PACS exports do)."""
    dataset = pydicom.dcmread(source)
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, implicit_vr
    write_dataset(buffer, dataset)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(buffer.getvalue())
    return target


def rotation(axis: tuple[float, float, float], angle_degrees: float) -> np.ndarray:
    """3x3 rotation matrix (Rodrigues) about `axis` by `angle_degrees`."""
    unit = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    angle = np.radians(angle_degrees)
    cross = np.array([[0, -unit[2], unit[1]], [unit[2], 0, -unit[0]], [-unit[1], unit[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def dciodvfy_lines(path: Path) -> list[str]:
    """Output lines of ``dciodvfy -new path`` (found next to the Python executable)."""
    executable = Path(sys.executable).parent / "dciodvfy"
    result = subprocess.run([str(executable), "-new", str(path)], capture_output=True, text=True, check=False)
    return (result.stdout + result.stderr).splitlines()


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines dciodvfy reports for `path`."""
    return [line for line in dciodvfy_lines(path) if line.startswith("Error")]
