"""Hand-built DICOM test data for the reader and conformance tests.

Deformable Spatial Registration (PS3.3 A.39.2 / C.20.3) and Spatial Registration (A.39.1 / C.20.2)
datasets are assembled here tag by tag with pydicom only, independently of the engine's writer, so
the reader and the checks test the standard rather than our own encoder. Tiny CT image series provide the referenced
instances (and files for dcentvfy).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

DEFORMABLE_REGISTRATION_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.3"
SPATIAL_REGISTRATION_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.1"
FRAME_OF_REFERENCE_IDENTITY = ("125021", "DCM", "Frame of Reference Identity")
CT_IMAGE_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2"
UID_PREFIX = "1.2.826.0.1.3680043.10.1234."


@dataclass
class Patient:
    name: str = "Reg^Test"
    patient_id: str = "REGTEST01"
    birth_date: str = "19700101"
    sex: str = "O"


def make_ct_series(
    n_slices: int = 3,
    *,
    patient: Patient | None = None,
    study_instance_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    origin_lps: Sequence[float] = (-10.0, -12.0, -4.0),
    iop: Sequence[float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    pixel_spacing: Sequence[float] = (2.0, 2.0),
    slice_spacing_mm: float = 3.0,
    rows: int = 4,
    columns: int = 4,
    series_number: int = 1,
    study_id: str = "S1",
) -> list[Dataset]:
    """Single-frame CT slices of one series (complete headers with tiny pixel data)."""
    patient = patient or Patient()
    study_instance_uid = study_instance_uid or generate_uid(UID_PREFIX)
    frame_of_reference_uid = frame_of_reference_uid or generate_uid(UID_PREFIX)
    series_instance_uid = generate_uid(UID_PREFIX)
    row = np.asarray(iop[:3], dtype=float)
    column = np.asarray(iop[3:], dtype=float)
    normal = np.cross(row, column)
    slices = []
    for index in range(n_slices):
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = CT_IMAGE_SOP_CLASS
        ds.SOPInstanceUID = generate_uid(UID_PREFIX)
        ds.StudyDate = "20240102"
        ds.SeriesDate = "20240102"
        ds.ContentDate = "20240102"
        ds.StudyTime = "101500"
        ds.SeriesTime = "101500"
        ds.ContentTime = "101500"
        ds.AccessionNumber = "ACC1"
        ds.Modality = "CT"
        ds.Manufacturer = "Phantom"
        ds.ReferringPhysicianName = ""
        ds.PatientName = patient.name
        ds.PatientID = patient.patient_id
        ds.PatientBirthDate = patient.birth_date
        ds.PatientSex = patient.sex
        ds.KVP = "120"
        ds.BodyPartExamined = "CHEST"
        ds.PatientPosition = "HFS"
        ds.AcquisitionNumber = 1
        ds.StudyInstanceUID = study_instance_uid
        ds.SeriesInstanceUID = series_instance_uid
        ds.StudyID = study_id
        ds.SeriesNumber = series_number
        ds.InstanceNumber = index + 1
        position = np.asarray(origin_lps, dtype=float) + index * slice_spacing_mm * normal
        ds.ImagePositionPatient = [format_number_as_ds(float(v)) for v in position]
        ds.ImageOrientationPatient = [format_number_as_ds(float(v)) for v in iop]
        ds.FrameOfReferenceUID = frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = format_number_as_ds(float(position @ normal))
        ds.SliceThickness = format_number_as_ds(float(slice_spacing_mm))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = rows
        ds.Columns = columns
        ds.PixelSpacing = [format_number_as_ds(float(v)) for v in pixel_spacing]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.PixelData = (np.arange(rows * columns, dtype="<i2") * (index + 1)).tobytes()
        slices.append(ds)
    return slices


@dataclass
class GridSpec:
    """A displacement grid as the standard encodes it (LPS mm, IOP row/column cosines)."""

    origin_lps: Sequence[float]
    vectors_lps: np.ndarray  # (n_k, n_j, n_i, 3)
    spacing_mm: Sequence[float] = (1.0, 1.0, 1.0)
    iop: Sequence[float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass
class ItemSpec:
    """One Deformable Registration Sequence item."""

    source_frame_of_reference_uid: str
    referenced_images: Sequence[Dataset] = ()
    grid: GridSpec | None = None
    pre_matrix: np.ndarray | None = None
    pre_type: str | None = None
    post_matrix: np.ndarray | None = None
    post_type: str | None = None
    registration_type: tuple[str, str, str] | None = ("125024", "DCM", "Image Content-based Alignment")
    comment: str | None = None
    frame_numbers: dict[str, list[int]] = field(default_factory=dict)


def matrix_item(matrix: np.ndarray, matrix_type: str | None) -> Dataset:
    """A Pre/Post Deformation Matrix Registration Sequence item (row-major DS x 16)."""
    item = Dataset()
    item.FrameOfReferenceTransformationMatrix = [
        format_number_as_ds(float(v)) for v in np.asarray(matrix, dtype=float).reshape(16)
    ]
    item.FrameOfReferenceTransformationMatrixType = matrix_type or "RIGID"
    return item


def grid_item(grid: GridSpec) -> Dataset:
    vectors = np.ascontiguousarray(grid.vectors_lps, dtype="<f4")
    n_k, n_j, n_i, _ = vectors.shape
    item = Dataset()
    item.ImageOrientationPatient = [format_number_as_ds(float(v)) for v in grid.iop]
    item.ImagePositionPatient = [format_number_as_ds(float(v)) for v in grid.origin_lps]
    item.GridDimensions = [n_i, n_j, n_k]
    item.GridResolution = [float(v) for v in grid.spacing_mm]
    item.VectorGridData = vectors.tobytes()
    return item


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def referenced_image_sequence(
    images: Sequence[Dataset], frame_numbers: dict[str, list[int]] | None = None
) -> list[Dataset]:
    """Referenced Image Sequence items (SOP Class/Instance, frame numbers where given)."""
    references = []
    for image in images:
        reference = Dataset()
        reference.ReferencedSOPClassUID = image.SOPClassUID
        reference.ReferencedSOPInstanceUID = image.SOPInstanceUID
        if frame_numbers and image.SOPInstanceUID in frame_numbers:
            reference.ReferencedFrameNumber = frame_numbers[image.SOPInstanceUID]
        references.append(reference)
    return references


def registration_item(spec: ItemSpec) -> Dataset:
    item = Dataset()
    item.SourceFrameOfReferenceUID = spec.source_frame_of_reference_uid
    if spec.referenced_images:
        item.ReferencedImageSequence = referenced_image_sequence(spec.referenced_images, spec.frame_numbers)
    if spec.comment is not None:
        item.FrameOfReferenceTransformationComment = spec.comment
    item.RegistrationTypeCodeSequence = (
        [code_item(*spec.registration_type)] if spec.registration_type is not None else []
    )
    if spec.grid is not None:
        pre = np.eye(4) if spec.pre_matrix is None else spec.pre_matrix
        post = np.eye(4) if spec.post_matrix is None else spec.post_matrix
        item.PreDeformationMatrixRegistrationSequence = [matrix_item(pre, spec.pre_type)]
        item.PostDeformationMatrixRegistrationSequence = [matrix_item(post, spec.post_type)]
        item.DeformableRegistrationGridSequence = [grid_item(spec.grid)]
    return item


@dataclass
class SpatialItemSpec:
    """One Registration Sequence item of a Spatial Registration (66.1).

    `matrices` are the Matrix Sequence items in order, each mapping the **source** frame
    (`frame_of_reference_uid`) towards the registered frame, applied first to last.
    """

    frame_of_reference_uid: str
    referenced_images: Sequence[Dataset] = ()
    matrices: Sequence[np.ndarray] = (np.eye(4),)
    matrix_types: Sequence[str] | None = None
    registration_type: tuple[str, str, str] | None = ("125024", "DCM", "Image Content-based Alignment")


def spatial_registration_item(spec: SpatialItemSpec) -> Dataset:
    item = Dataset()
    if spec.referenced_images:
        item.ReferencedImageSequence = referenced_image_sequence(spec.referenced_images)
    item.FrameOfReferenceUID = spec.frame_of_reference_uid
    matrix_registration = Dataset()
    types = spec.matrix_types or ["RIGID"] * len(spec.matrices)
    matrix_registration.MatrixSequence = [matrix_item(m, t) for m, t in zip(spec.matrices, types)]
    matrix_registration.RegistrationTypeCodeSequence = (
        [code_item(*spec.registration_type)] if spec.registration_type is not None else []
    )
    item.MatrixRegistrationSequence = [matrix_registration]
    return item


def common_instance_reference(ds: Dataset, images: Sequence[Dataset]) -> None:
    """Fill Referenced Series / Studies Containing Other Referenced Instances, split by study."""
    by_study: dict[str, dict[str, list[Dataset]]] = {}
    for image in images:
        by_study.setdefault(image.StudyInstanceUID, {}).setdefault(image.SeriesInstanceUID, []).append(image)

    def series_items(series: dict[str, list[Dataset]]) -> list[Dataset]:
        items = []
        for series_uid, instances in series.items():
            series_item = Dataset()
            series_item.SeriesInstanceUID = series_uid
            references = []
            for image in instances:
                reference = Dataset()
                reference.ReferencedSOPClassUID = image.SOPClassUID
                reference.ReferencedSOPInstanceUID = image.SOPInstanceUID
                references.append(reference)
            series_item.ReferencedInstanceSequence = references
            items.append(series_item)
        return items

    own = by_study.pop(ds.StudyInstanceUID, None)
    if own:
        ds.ReferencedSeriesSequence = series_items(own)
    if by_study:
        others = []
        for study_uid, series in by_study.items():
            study_item = Dataset()
            study_item.StudyInstanceUID = study_uid
            study_item.ReferencedSeriesSequence = series_items(series)
            others.append(study_item)
        ds.StudiesContainingOtherReferencedInstancesSequence = others


def _reg_header(fixed: Sequence[Dataset], sop_class_uid: str, description: str, content_label: str) -> Dataset:
    """Everything of a REG but its registration sequence and references, in the fixed images' study and frame."""
    first = fixed[0]
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = generate_uid(UID_PREFIX)
    now = datetime.datetime(2024, 1, 3, 9, 30, 0)
    ds.StudyDate = first.StudyDate
    ds.SeriesDate = now.strftime("%Y%m%d")
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = first.StudyTime
    ds.SeriesTime = now.strftime("%H%M%S")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.AccessionNumber = first.AccessionNumber
    ds.Modality = "REG"
    ds.Manufacturer = "DicomRegSave tests"
    ds.ReferringPhysicianName = first.ReferringPhysicianName
    ds.SeriesDescription = description
    ds.ManufacturerModelName = "reg_builders"
    ds.PatientName = first.PatientName
    ds.PatientID = first.PatientID
    ds.PatientBirthDate = first.PatientBirthDate
    ds.PatientSex = first.PatientSex
    ds.DeviceSerialNumber = "0"
    ds.SoftwareVersions = "1.0"
    ds.StudyInstanceUID = first.StudyInstanceUID
    ds.SeriesInstanceUID = generate_uid(UID_PREFIX)
    ds.StudyID = first.StudyID
    ds.SeriesNumber = 1000
    ds.InstanceNumber = 1
    ds.FrameOfReferenceUID = first.FrameOfReferenceUID
    ds.PositionReferenceIndicator = ""
    ds.BodyPartExamined = first.BodyPartExamined
    ds.ContentLabel = content_label
    ds.ContentDescription = description
    ds.ContentCreatorName = "Tester^Reg"
    return ds


def _finish(ds: Dataset, referenced: Sequence[Dataset]) -> Dataset:
    common_instance_reference(ds, referenced)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = UID_PREFIX + "1"
    ds.file_meta.ImplementationVersionName = "REGBUILDERS"
    return ds


def build_reg(fixed: Sequence[Dataset], items: Sequence[ItemSpec], *, content_label: str = "REGISTRATION") -> Dataset:
    """A complete Deformable Spatial Registration dataset in the fixed images' study and frame."""
    ds = _reg_header(fixed, DEFORMABLE_REGISTRATION_SOP_CLASS, "Deformable registration", content_label)
    ds.DeformableRegistrationSequence = [registration_item(spec) for spec in items]
    return _finish(ds, [image for spec in items for image in spec.referenced_images])


def build_spatial_reg(
    fixed: Sequence[Dataset], items: Sequence[SpatialItemSpec], *, content_label: str = "RIGID"
) -> Dataset:
    """A complete Spatial Registration (66.1) dataset in the fixed images' study and frame."""
    ds = _reg_header(fixed, SPATIAL_REGISTRATION_SOP_CLASS, "Rigid registration", content_label)
    ds.RegistrationSequence = [spatial_registration_item(spec) for spec in items]
    return _finish(ds, [image for spec in items for image in spec.referenced_images])


@dataclass
class Case:
    """A fixed series, a moving series (other study, other FoR) and a REG between them."""

    fixed: list[Dataset]
    moving: list[Dataset]
    grid: GridSpec
    dataset: Dataset

    @property
    def item(self) -> Dataset:
        """The deformable (moving-frame) item."""
        return self.dataset.DeformableRegistrationSequence[-1]


def smooth_vectors(dimensions_ijk: tuple[int, int, int], seed: int = 0, scale_mm: float = 3.0) -> np.ndarray:
    """A deterministic non-trivial (n_k, n_j, n_i, 3) float32 field."""
    n_i, n_j, n_k = dimensions_ijk
    k, j, i = np.meshgrid(np.arange(n_k), np.arange(n_j), np.arange(n_i), indexing="ij")
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.2, 0.9, size=(3, 3))
    vectors = np.stack([scale_mm * np.sin(a[c, 0] * i + a[c, 1] * j + a[c, 2] * k + c) for c in range(3)], axis=-1)
    return vectors.astype(np.float32)


def make_case(
    *,
    grid: GridSpec | None = None,
    pre_matrix: np.ndarray | None = None,
    post_matrix: np.ndarray | None = None,
    identity_item: bool = False,
    same_study: bool = False,
    same_frame_of_reference: bool = False,
) -> Case:
    """A dciodvfy-clean REG: fixed study/FoR, moving series in another study and FoR (by default)."""
    patient = Patient()
    fixed = make_ct_series(3, patient=patient, series_number=1)
    moving = make_ct_series(
        2,
        patient=patient,
        study_instance_uid=fixed[0].StudyInstanceUID if same_study else None,
        frame_of_reference_uid=fixed[0].FrameOfReferenceUID if same_frame_of_reference else None,
        origin_lps=(-8.0, -9.0, 0.0),
        series_number=2,
        study_id="S1" if same_study else "S2",
    )
    if grid is None:
        grid = GridSpec(
            origin_lps=(-10.0, -12.0, -4.0),
            vectors_lps=smooth_vectors((5, 4, 3)),
            spacing_mm=(2.0, 2.5, 3.0),
        )
    items = []
    if identity_item:
        items.append(
            ItemSpec(
                fixed[0].FrameOfReferenceUID,
                fixed,
                registration_type=("125021", "DCM", "Frame of Reference Identity"),
            )
        )
    items.append(
        ItemSpec(
            moving[0].FrameOfReferenceUID,
            moving,
            grid=grid,
            pre_matrix=pre_matrix,
            post_matrix=post_matrix,
            pre_type=None if pre_matrix is None else _type_of(pre_matrix),
            post_type=None if post_matrix is None else _type_of(post_matrix),
            comment="test deformation",
        )
    )
    return Case(fixed, moving, grid, build_reg(fixed, items))


def _type_of(matrix: np.ndarray) -> str:
    linear = np.asarray(matrix, dtype=float)[:3, :3]
    gram = linear.T @ linear
    if np.allclose(gram, np.eye(3), atol=1e-6) and np.linalg.det(linear) > 0:
        return "RIGID"
    if np.allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-6) and np.linalg.det(linear) > 0:
        return "RIGID_SCALE"
    return "AFFINE"


def write(ds: Dataset, path: Path) -> Path:
    """Write with the dataset's own file meta (Explicit VR Little Endian unless changed)."""
    path = Path(path)
    if getattr(ds, "file_meta", None) is None or "TransferSyntaxUID" not in ds.file_meta:
        _add_image_file_meta(ds)
    ds.save_as(path, enforce_file_format=True)
    return path


def _add_image_file_meta(ds: Dataset) -> None:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = UID_PREFIX + "1"


def write_case(case: Case, folder: Path) -> tuple[Path, list[Path], list[Path]]:
    """Write the REG and its images; returns (reg_path, fixed_paths, moving_paths)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fixed_paths = [write(image, folder / f"fixed_{n}.dcm") for n, image in enumerate(case.fixed)]
    moving_paths = [write(image, folder / f"moving_{n}.dcm") for n, image in enumerate(case.moving)]
    return write(case.dataset, folder / "reg.dcm"), fixed_paths, moving_paths


def reread(ds: Dataset, folder: Path, name: str = "reg.dcm") -> Dataset:
    """Write and read back, as a file on disk would be seen."""
    return pydicom.dcmread(write(ds, Path(folder) / name))
