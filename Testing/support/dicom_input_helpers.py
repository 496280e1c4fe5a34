"""Builders for the dicom_input / sampledata tests: non-image DICOM objects, rotations, dciodvfy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

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
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    dataset.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)
    return dataset


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
