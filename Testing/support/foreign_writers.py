"""Minimal writers of the REG layouts other systems write, made here from the standard and their
documented output, not by the product, so that the reader is tested against what it meets."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, SpatialRegistrationStorage, generate_uid


def _matrix_item(frame_of_reference_uid: str, matrix_lps: np.ndarray, matrix_type: str | None) -> Dataset:
    matrix = Dataset()
    matrix.FrameOfReferenceTransformationMatrix = [f"{v:.16g}"[:16] for v in np.ravel(matrix_lps)]
    if matrix_type is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's note on a lower-case CS: writing one is the point
            matrix.FrameOfReferenceTransformationMatrixType = matrix_type
    registration = Dataset()
    registration.RegistrationTypeCodeSequence = DicomSequence([Dataset()])
    registration.MatrixSequence = DicomSequence([matrix])
    item = Dataset()
    item.FrameOfReferenceUID = frame_of_reference_uid
    item.MatrixRegistrationSequence = DicomSequence([registration])
    return item


def write_plastimatch_style_sro(path: Path, matrix_lps: np.ndarray, matrix_type: str | None = "RIGID") -> Path:
    """A 66.1 as plastimatch 1.10 writes it (and so SlicerRT's exporter): two Registration Sequence
    items, an identity for the fixed frame and the moving frame's matrix (moving -> fixed, LPS mm),
    each typed RIGID whatever the matrix is, an empty Registration Type Code Sequence item; Instance
    Number 0 as RayStation writes it. `matrix_type` types the moving frame's matrix (None: absent)."""
    dataset = Dataset()
    dataset.SpecificCharacterSet = "ISO_IR 100"
    dataset.SOPClassUID = SpatialRegistrationStorage
    dataset.SOPInstanceUID = generate_uid()
    dataset.StudyDate = dataset.SeriesDate = dataset.ContentDate = "20240301"
    dataset.StudyTime = dataset.SeriesTime = dataset.ContentTime = "101010"
    dataset.AccessionNumber = ""
    dataset.Modality = "REG"
    dataset.Manufacturer = "Plastimatch"
    dataset.ReferringPhysicianName = ""
    dataset.PatientName = "PLASTIMATCH^TEST"
    dataset.PatientID = "PM-1"
    dataset.PatientBirthDate = ""
    dataset.PatientSex = ""
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.StudyID = "10001"
    dataset.SeriesNumber = ""
    dataset.InstanceNumber = "0"
    dataset.FrameOfReferenceUID = generate_uid()
    dataset.PositionReferenceIndicator = ""
    dataset.ContentLabel = "REGISTRATION"
    dataset.ContentDescription = "Image Registration"
    dataset.ContentCreatorName = ""
    dataset.RegistrationSequence = DicomSequence(
        [
            _matrix_item(dataset.FrameOfReferenceUID, np.eye(4), "RIGID"),
            _matrix_item(generate_uid(), matrix_lps, matrix_type),
        ]
    )
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.274.1.1.200"
    dataset.file_meta = meta
    dataset.save_as(path, enforce_file_format=True)
    return path
