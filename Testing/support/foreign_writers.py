"""Minimal writers of the REG layouts other systems write, made here tag by tag with pydicom from
their public code (and, for plastimatch, from its output), not by the product, so that the reader is
tested against what it meets. docs/vendor-layouts.md names the source of every choice made here.

Each writer takes the images it refers to (CT series from :mod:`reg_builders`) and the transform
in the producer's own terms; the tests check that the reader maps points as the producer meant.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    DeformableSpatialRegistrationStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SpatialRegistrationStorage,
    generate_uid,
)

import reg_builders as rb

#: plastimatch's identity matrix string (dcmtk_sro.cxx writes this literal for every identity).
_PLASTIMATCH_IDENTITY = "1.0 0.0 0.0 0.0 0.0 1.0 0.0 0.0 0.0 0.0 1.0 0.0 0.0 0.0 0.0 1.0".split()
#: What plastimatch 1.10.0's file meta says (DCMTK 3.6.8).
_DCMTK_IMPLEMENTATION = ("1.2.276.0.7230010.3.0.3.6.8", "OFFIS_DCMTK_368")
#: The UID root pydicomRT's README example sets with ``set_uid_prefix``.
PYDICOMRT_UID_PREFIX = "1.2.826.0.1.3680043.2.1125."


def ct_pair() -> tuple[list[Dataset], list[Dataset]]:
    """A fixed and a moving CT series of one patient, in two studies and two frames of reference."""
    patient = rb.Patient()
    fixed = rb.make_ct_series(3, patient=patient, series_number=1)
    moving = rb.make_ct_series(2, patient=patient, series_number=2, origin_lps=(-8.0, -9.0, 0.0), study_id="S2")
    return fixed, moving


def _save(dataset: Dataset, path: Path, transfer_syntax: str, implementation: tuple[str, str]) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID, meta.ImplementationVersionName = implementation
    dataset.file_meta = meta
    dataset.save_as(path, enforce_file_format=True)
    return path


# --- plastimatch 1.10 (src/plastimatch/base/dcmtk_sro.cxx, Dcmtk_sro::save) ---------------------------


def _plastimatch_matrix(values: Sequence[str], matrix_type: str | None) -> Dataset:
    matrix = Dataset()
    matrix.FrameOfReferenceTransformationMatrix = list(values)
    if matrix_type is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's note on a lower-case CS: writing one is the point
            matrix.FrameOfReferenceTransformationMatrixType = matrix_type
    return matrix


def _plastimatch_item(frame_of_reference_uid: str, values: Sequence[str], matrix_type: str | None) -> Dataset:
    """A Registration Sequence item: Matrix Registration with the 125025 'Visual Alignment' code."""
    registration = Dataset()
    registration.RegistrationTypeCodeSequence = DicomSequence([rb.code_item("125025", "DCM", "Visual Alignment")])
    registration.MatrixSequence = DicomSequence([_plastimatch_matrix(values, matrix_type)])
    item = Dataset()
    item.FrameOfReferenceUID = frame_of_reference_uid
    item.MatrixRegistrationSequence = DicomSequence([registration])
    return item


def _plastimatch_series_item(image: Dataset) -> Dataset:
    """A Referenced Series Sequence item listing the first instance of the image's series only."""
    instance = Dataset()
    instance.ReferencedSOPClassUID = image.SOPClassUID
    instance.ReferencedSOPInstanceUID = image.SOPInstanceUID
    series = Dataset()
    series.ReferencedInstanceSequence = DicomSequence([instance])
    series.SeriesInstanceUID = image.SeriesInstanceUID
    return series


def _plastimatch_header(registered: Dataset, source: Dataset, sop_class_uid: str) -> Dataset:
    """What plastimatch 1.10 writes around the registration: the registered ('fixed') image's patient,
    study and frame, the source ('moving') image's study date as study, content and creation date, no
    Instance Number, Content Label or Position Reference Indicator, empty Series Number, and both
    series in the Referenced Series Sequence (source first) with one instance each."""
    dataset = Dataset()
    dataset.SpecificCharacterSet = "ISO_IR 100"
    dataset.InstanceCreationDate = dataset.StudyDate = dataset.ContentDate = source.StudyDate
    dataset.InstanceCreationTime = dataset.StudyTime = dataset.ContentTime = source.StudyTime
    dataset.SOPClassUID = sop_class_uid
    dataset.SOPInstanceUID = generate_uid()
    dataset.SeriesDate = dataset.SeriesTime = ""
    dataset.AccessionNumber = ""
    dataset.Modality = "REG"
    dataset.Manufacturer = dataset.ManufacturerModelName = "Plastimatch"
    dataset.ReferringPhysicianName = dataset.StationName = dataset.OperatorsName = ""
    dataset.StudyDescription = dataset.SeriesDescription = ""
    dataset.ReferencedSeriesSequence = DicomSequence(
        [_plastimatch_series_item(source), _plastimatch_series_item(registered)]
    )
    dataset.PatientName = registered.PatientName
    dataset.PatientID = registered.PatientID
    dataset.PatientBirthDate = ""
    dataset.PatientSex = registered.PatientSex
    dataset.DeviceSerialNumber = ""
    dataset.SoftwareVersions = "1.10.0"
    dataset.PatientPosition = registered.PatientPosition
    dataset.StudyInstanceUID = registered.StudyInstanceUID
    dataset.SeriesInstanceUID = generate_uid()
    dataset.StudyID = registered.StudyID
    dataset.SeriesNumber = None
    dataset.FrameOfReferenceUID = registered.FrameOfReferenceUID
    return dataset


def write_plastimatch_style_sro(
    path: Path,
    matrix_lps: np.ndarray,
    matrix_type: str | None = "RIGID",
    *,
    instance_number: str | None = None,
    fixed: Sequence[Dataset] | None = None,
    moving: Sequence[Dataset] | None = None,
) -> Path:
    """A 66.1 as ``plastimatch xf-convert --output-dicom`` 1.10 writes it (and so SlicerRT's
    exporter, with the roles of :func:`write_slicerrt_sro`).

    Two Registration Sequence items: the identity for the fixed frame, then the moving frame's
    `matrix_lps` (moving -> fixed, LPS mm: plastimatch inverts the ITK fixed -> moving transform),
    both typed RIGID whatever the matrix is and printed with six decimals (``%f``); no Referenced
    Image Sequence. `matrix_type` types the moving frame's matrix (None: absent);
    `instance_number` adds an Instance Number (plastimatch writes none; "0" as reported for
    RayStation). Without `fixed`/`moving`, two small CT series are made up.
    """
    if fixed is None or moving is None:
        fixed, moving = ct_pair()
    dataset = _plastimatch_header(fixed[0], moving[0], SpatialRegistrationStorage)
    if instance_number is not None:
        dataset.InstanceNumber = instance_number
    dataset.RegistrationSequence = DicomSequence(
        [
            _plastimatch_item(fixed[0].FrameOfReferenceUID, _PLASTIMATCH_IDENTITY, "RIGID"),
            _plastimatch_item(
                moving[0].FrameOfReferenceUID,
                [f"{v:f}" for v in np.ravel(matrix_lps[:3])] + _PLASTIMATCH_IDENTITY[12:],
                matrix_type,
            ),
        ]
    )
    return _save(dataset, path, ExplicitVRLittleEndian, _DCMTK_IMPLEMENTATION)


def write_plastimatch_dro(path: Path, fixed: Sequence[Dataset], moving: Sequence[Dataset], grid: rb.GridSpec) -> Path:
    """A 66.3 as plastimatch 1.10 writes a vector field: one item (the moving frame, no identity
    item, no Referenced Image Sequence), identity Pre/Post matrices typed RIGID, the grid's
    position and orientation printed with six decimals, and a Registration Type Code Sequence
    holding one empty item. `grid` holds fixed -> moving displacements (registered -> source)."""
    dataset = _plastimatch_header(fixed[0], moving[0], DeformableSpatialRegistrationStorage)
    vectors = np.ascontiguousarray(grid.vectors_lps, dtype="<f4")
    n_k, n_j, n_i, _ = vectors.shape
    grid_item = Dataset()
    grid_item.ImagePositionPatient = [f"{v:f}" for v in grid.origin_lps]
    grid_item.ImageOrientationPatient = [f"{v:f}" for v in grid.iop]
    grid_item.GridDimensions = [n_i, n_j, n_k]
    grid_item.GridResolution = [float(v) for v in grid.spacing_mm]
    grid_item.VectorGridData = vectors.tobytes()
    item = Dataset()
    item.SourceFrameOfReferenceUID = moving[0].FrameOfReferenceUID
    item.DeformableRegistrationGridSequence = DicomSequence([grid_item])
    item.PreDeformationMatrixRegistrationSequence = DicomSequence([_plastimatch_matrix(_PLASTIMATCH_IDENTITY, "RIGID")])
    item.PostDeformationMatrixRegistrationSequence = DicomSequence(
        [_plastimatch_matrix(_PLASTIMATCH_IDENTITY, "RIGID")]
    )
    item.RegistrationTypeCodeSequence = DicomSequence([Dataset()])
    dataset.DeformableRegistrationSequence = DicomSequence([item])
    return _save(dataset, path, ExplicitVRLittleEndian, _DCMTK_IMPLEMENTATION)


# --- SlicerRT (PlastimatchPy/Logic/vtkPlmpyDicomSroExport.cxx -> plastimatch Dicom_sro_save) -------------


def write_slicerrt_sro(path: Path, to_parent_lps: np.ndarray) -> tuple[Path, list[Dataset], list[Dataset]]:
    """A 66.1 as SlicerRT's DICOM export of a linear transform node writes it.

    SlicerRT hands plastimatch the node's *to parent* transform (moving -> fixed for the moving
    volume's registration transform) as if it were an ITK fixed -> moving transform, so plastimatch
    inverts it; and ``Dicom_sro_save::run`` passes the moving image where ``Dcmtk_sro::save``
    expects the fixed one. Both volumes are first re-exported as new DICOM series. The file is
    therefore plastimatch's layout with the roles swapped: its registered frame is the moving
    copy's, the identity item is the moving copy's frame, and the second item (the fixed copy's
    frame) holds inv(`to_parent_lps`), mapping fixed -> moving.

    Returns
    -------
    (path, fixed copy, moving copy)
    """
    fixed_copy, moving_copy = ct_pair()
    write_plastimatch_style_sro(path, np.linalg.inv(to_parent_lps), fixed=moving_copy, moving=fixed_copy)
    return path, fixed_copy, moving_copy


# --- pydicomRT (src/pydicomrt/reg/builder.py, README) ----------------------------------------------------


def _pydicomrt_header(fixed: Dataset, sop_class_uid: str, description: str) -> Dataset:
    """BaseRegistrationBuilder: patient, study and frame of the first fixed image, Series Number 50,
    Content Label SPATIAL REGISTRATION; no Content Date/Time, Instance Number or Common Instance
    Reference module; Implicit VR Little Endian."""
    dataset = Dataset()
    dataset.SpecificCharacterSet = "ISO_IR 192"
    dataset.InstanceCreationDate, dataset.InstanceCreationTime = "20250101", "120000"
    dataset.Modality = "REG"
    dataset.Manufacturer = dataset.ManufacturerModelName = dataset.InstitutionName = ""
    dataset.SOPClassUID = sop_class_uid
    dataset.SOPInstanceUID = generate_uid(prefix=PYDICOMRT_UID_PREFIX)
    dataset.PatientID = fixed.PatientID
    dataset.PatientName = fixed.PatientName
    dataset.PatientBirthDate = fixed.PatientBirthDate
    dataset.PatientBirthTime = dataset.PatientAge = dataset.PatientWeight = ""
    dataset.PatientSex = fixed.PatientSex
    dataset.PatientPosition = fixed.PatientPosition
    dataset.StudyInstanceUID = fixed.StudyInstanceUID
    dataset.StudyID = fixed.StudyID
    dataset.StudyDescription = ""
    dataset.StudyDate = fixed.StudyDate
    dataset.StudyTime = fixed.StudyTime
    dataset.AccessionNumber = fixed.AccessionNumber
    dataset.ReferringPhysicianName = fixed.ReferringPhysicianName
    dataset.SeriesInstanceUID = generate_uid(prefix=PYDICOMRT_UID_PREFIX)
    dataset.SeriesNumber = "50"
    dataset.SeriesDescription = f"{description} 202501011200"
    dataset.SeriesDate, dataset.SeriesTime = "20250101", "120000"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's note on a 20-character CS: writing one is the point
        dataset.ContentLabel = "SPATIAL REGISTRATION"
    dataset.ContentDescription = "Spatial Registration"
    dataset.ContentCreatorName = "pydicomRT"
    dataset.FrameOfReferenceUID = fixed.FrameOfReferenceUID
    dataset.PositionReferenceIndicator = fixed.PositionReferenceIndicator
    return dataset


def _pydicomrt_code() -> Dataset:
    code = rb.code_item("125024", "DCM", "Image Content-based Alignment")
    code.CodingSchemeVersion = "01"
    return code


def _pydicomrt_matrix(matrix: np.ndarray) -> Dataset:
    """Typed RIGID whatever it is; the README passes ``astype(np.float32).ravel().tolist()``."""
    item = Dataset()
    item.FrameOfReferenceTransformationMatrixType = "RIGID"
    item.FrameOfReferenceTransformationMatrix = [float(v) for v in np.asarray(matrix, dtype=np.float32).ravel()]
    return item


def pydicomrt_float32(matrix: np.ndarray) -> np.ndarray:
    """A matrix as pydicomRT's README stores it: rounded to float32."""
    return np.asarray(matrix, dtype=np.float32).astype(np.float64)


def write_pydicomrt_sro(
    path: Path, fixed: Sequence[Dataset], moving: Sequence[Dataset], matrix_lps: np.ndarray
) -> Path:
    """A 66.1 as ``SpatialRegistrationBuilder.add_rigid_registration`` writes it: one Registration
    Sequence item (the moving frame, its images in a Referenced Image Sequence), the matrix typed
    RIGID in float32, the Registration Type Code Sequence in the Registration Sequence item instead
    of the Matrix Registration Sequence item, no Common Instance Reference. The builder documents
    `matrix_lps` as moving -> fixed (the standard's direction); its README example passes SimpleITK's
    fixed -> moving transform, which a reader cannot tell apart."""
    dataset = _pydicomrt_header(fixed[0], SpatialRegistrationStorage, "Spatial Registration")
    registration = Dataset()
    registration.MatrixSequence = DicomSequence([_pydicomrt_matrix(matrix_lps)])
    item = Dataset()
    item.FrameOfReferenceUID = moving[0].FrameOfReferenceUID
    item.ReferencedImageSequence = DicomSequence(rb.referenced_image_sequence(moving))
    item.MatrixRegistrationSequence = DicomSequence([registration])
    item.RegistrationTypeCodeSequence = DicomSequence([_pydicomrt_code()])
    dataset.RegistrationSequence = DicomSequence([item])
    return _save(dataset, path, ImplicitVRLittleEndian, (PYDICOMRT_UID_PREFIX + "1", "pydicomRT"))


def write_pydicomrt_dro(
    path: Path,
    fixed: Sequence[Dataset],
    moving: Sequence[Dataset],
    grid: rb.GridSpec,
    pre_lps: np.ndarray,
    post_lps: np.ndarray,
) -> Path:
    """A 66.3 as ``DeformableSpatialRegistrationBuilder.add_deformable_registration`` writes it: one
    item with the moving images, the grid of a SimpleITK displacement field (Image Orientation
    (Patient) = the first six direction values, i.e. the first two *rows* of SimpleITK's direction
    matrix, which equal the standard's columns only for a symmetric direction such as the axis-aligned
    one used here), Pre and Post matrices typed RIGID in float32, no Common Instance Reference, no
    Enhanced General Equipment values."""
    dataset = _pydicomrt_header(fixed[0], DeformableSpatialRegistrationStorage, "Deformable Spatial Registration")
    vectors = np.ascontiguousarray(grid.vectors_lps, dtype="<f4")
    n_k, n_j, n_i, _ = vectors.shape
    direction = np.column_stack([grid.iop[:3], grid.iop[3:], np.cross(grid.iop[:3], grid.iop[3:])])
    grid_item = Dataset()
    grid_item.ImagePositionPatient = [float(v) for v in grid.origin_lps]
    grid_item.ImageOrientationPatient = [float(v) for v in direction.ravel()[:6]]
    grid_item.GridDimensions = [n_i, n_j, n_k]
    grid_item.GridResolution = [float(v) for v in grid.spacing_mm]
    grid_item.VectorGridData = vectors.tobytes()
    item = Dataset()
    item.ReferencedImageSequence = DicomSequence(rb.referenced_image_sequence(moving))
    item.DeformableRegistrationGridSequence = DicomSequence([grid_item])
    item.PreDeformationMatrixRegistrationSequence = DicomSequence([_pydicomrt_matrix(pre_lps)])
    item.PostDeformationMatrixRegistrationSequence = DicomSequence([_pydicomrt_matrix(post_lps)])
    item.RegistrationTypeCodeSequence = DicomSequence([_pydicomrt_code()])
    item.SourceFrameOfReferenceUID = moving[0].FrameOfReferenceUID
    dataset.DeformableRegistrationSequence = DicomSequence([item])
    return _save(dataset, path, ImplicitVRLittleEndian, (PYDICOMRT_UID_PREFIX + "1", "pydicomRT"))


# --- ImSimQA (the AAPM TG-132 data sets; Slicer forum topic 13402, SlicerRT pull request #154) -----------


def imsimqa_style_reg() -> rb.Case:
    """A deformable registration under the Spatial Registration SOP Class (66.1), as the ImSimQA files
    of the TG-132 data sets are reported to be: a Deformable Registration Sequence and no Registration
    Sequence. Everything else is :func:`reg_builders.make_case`'s conformant 66.3."""
    case = rb.make_case()
    case.dataset.SOPClassUID = case.dataset.file_meta.MediaStorageSOPClassUID = SpatialRegistrationStorage
    return case
