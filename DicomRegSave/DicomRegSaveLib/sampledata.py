"""Deterministic phantom CT series and a demo registration case with a known deformation.

Everything is generated (no network, no shipped files): the phantom is a smooth function of the
LPS position (mm), so series of any geometry written from it show the same anatomy, and a moving
series resampled through a known mapping is exactly related to the fixed one.

* :func:`write_image_series` writes CT Image Storage (one file per slice) or Enhanced CT Image
  Storage (one multi-frame file), Explicit VR Little Endian, int16 Hounsfield units.
* :func:`make_demo_case` writes a fixed series, a moving series in another study and frame of
  reference, and the fixed -> moving displacement field as an ITK ``.mha`` file (LPS vectors,
  resampling direction, i.e. 3D Slicer's "from parent" transform of the moving image).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from . import geometry

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"

#: Hounsfield units of air, the phantom's background.
AIR_HU = -1000.0

PixelFunction = Callable[[np.ndarray], np.ndarray]

# (centre LPS mm, semi-axes mm, HU added inside): body, lungs, spine, liver, a marker sphere.
_PHANTOM_ELLIPSOIDS: tuple[tuple[tuple[float, float, float], tuple[float, float, float], float], ...] = (
    ((0.0, 0.0, 0.0), (80.0, 60.0, 70.0), 1000.0),
    ((35.0, -5.0, 12.0), (22.0, 30.0, 38.0), -780.0),
    ((-35.0, -5.0, 12.0), (22.0, 30.0, 38.0), -780.0),
    ((0.0, 38.0, 0.0), (11.0, 11.0, 90.0), 650.0),
    ((-30.0, 5.0, -32.0), (35.0, 30.0, 22.0), 60.0),
    ((22.0, -32.0, -10.0), (8.0, 8.0, 8.0), 400.0),
)
#: Width of the smooth edges of the phantom's ellipsoids (mm).
_EDGE_WIDTH_MM = 2.5


def phantom_hu(points_lps: np.ndarray) -> np.ndarray:
    """Phantom intensity (Hounsfield units) at points of shape (..., 3) in LPS (mm).

    A smooth torso of ellipsoids (air, soft tissue, lungs, spine, a liver-like region and a bright
    sphere) centred on the LPS origin, about 160 x 120 x 140 mm.
    """
    points = np.asarray(points_lps, dtype=np.float64)
    values = np.full(points.shape[:-1], AIR_HU)
    for centre, semi_axes, contrast in _PHANTOM_ELLIPSOIDS:
        radius = np.sqrt(np.sum(((points - centre) / semi_axes) ** 2, axis=-1))
        # Scaling the normalised radius by the smallest semi-axis makes the edge roughly mm wide.
        distance_mm = (radius - 1.0) * min(semi_axes)
        values += contrast * 0.5 * (1.0 - np.tanh(distance_mm / _EDGE_WIDTH_MM))
    return values


def _ds(values: Sequence[float] | np.ndarray) -> list[str]:
    return [format_number_as_ds(float(v)) for v in np.ravel(values)]


def write_image_series(
    folder: str | Path,
    *,
    patient_name: str,
    patient_id: str,
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    dimensions: tuple[int, int, int] = (32, 32, 16),
    spacing_mm: tuple[float, float, float] = (4.0, 4.0, 4.0),
    origin_lps: Sequence[float] | None = None,
    direction_lps: np.ndarray | None = None,
    modality: str = "CT",
    multiframe: bool = False,
    specific_character_set: str | None = None,
    study_date: str = "20240315",
    study_time: str = "093000",
    study_id: str = "1",
    accession_number: str = "",
    study_description: str = "Phantom study",
    series_number: int = 1,
    series_description: str = "Phantom CT",
    patient_birth_date: str = "19700101",
    patient_sex: str = "O",
    pixel_function: PixelFunction | None = None,
    file_prefix: str = "CT",
) -> list[Path]:
    """Write a phantom CT series and return the files written (in k order).

    Parameters
    ----------
    folder:
        Output folder (created if needed).
    patient_name, patient_id:
        Patient's Name (``Family^Given``; non-ASCII allowed) and Patient ID.
    study_instance_uid, series_instance_uid, frame_of_reference_uid:
        UIDs to use; new random UIDs when ``None``. SOP Instance UIDs derive from the series UID,
        so a given series UID always gives the same instance UIDs.
    dimensions:
        (n_i, n_j, n_k) = (Columns, Rows, slices).
    spacing_mm:
        Voxel spacing along i, j, k (mm); Pixel Spacing is written as (s_j, s_i).
    origin_lps:
        Centre of voxel (0, 0, 0), LPS (mm); by default the volume is centred on the LPS origin.
    direction_lps:
        3x3 matrix whose columns are the unit i, j, k axes in LPS (identity = axial,
        IOP ``1\\0\\0\\0\\1\\0``). A left-handed matrix gives slices whose positions decrease
        along row x column as k (and Instance Number) increases.
    modality:
        Only ``"CT"`` is supported.
    multiframe:
        Write one Enhanced CT Image Storage file instead of one CT Image Storage file per slice.
    specific_character_set:
        Specific Character Set, e.g. ``"ISO_IR 100"`` or ``"ISO_IR 192"``; when ``None`` it is
        ``"ISO_IR 192"`` (UTF-8) if the patient name is not ASCII, else absent.
    pixel_function:
        LPS points (N, 3) in mm -> Hounsfield units (N,); :func:`phantom_hu` by default.
    file_prefix:
        Start of the file names.

    Raises
    ------
    ValueError
        On an unsupported modality, non-positive dimensions or spacing, or a non-orthonormal direction.
    """
    if modality != "CT":
        raise ValueError(f"Only CT phantom series can be written; got modality {modality!r}.")
    n_i, n_j, n_k = (int(n) for n in dimensions)
    if min(n_i, n_j, n_k) < 1:
        raise ValueError(f"dimensions must be positive; got {dimensions}")
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    if spacing.shape != (3,) or np.any(spacing <= 0):
        raise ValueError(f"spacing_mm must be 3 positive numbers; got {spacing_mm}")
    direction = geometry.check_direction(np.eye(3) if direction_lps is None else direction_lps, "series direction")
    if origin_lps is None:
        centre_index = (np.array([n_i, n_j, n_k]) - 1) / 2.0
        origin = -(direction * spacing) @ centre_index
    else:
        origin = np.asarray(origin_lps, dtype=np.float64)
    if specific_character_set is None and not patient_name.isascii():
        specific_character_set = "ISO_IR 192"
    function = pixel_function or phantom_hu
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study_instance_uid = study_instance_uid or generate_uid()
    series_instance_uid = series_instance_uid or generate_uid()
    frame_of_reference_uid = frame_of_reference_uid or generate_uid()

    ijk_to_lps = geometry.index_to_patient_matrix(origin, direction, spacing)
    jj, ii = np.meshgrid(np.arange(n_j), np.arange(n_i), indexing="ij")
    plane_index = np.stack([ii, jj, np.zeros_like(ii)], axis=-1).astype(np.float64)

    def slice_pixels(k: int) -> np.ndarray:
        index = plane_index.copy()
        index[..., 2] = k
        points = index @ ijk_to_lps[:3, :3].T + ijk_to_lps[:3, 3]
        return np.clip(np.rint(function(points)), -1024, 3071).astype(np.int16)

    base = _common_dataset(
        patient_name=patient_name, patient_id=patient_id, patient_birth_date=patient_birth_date,
        patient_sex=patient_sex, specific_character_set=specific_character_set,
        study_instance_uid=study_instance_uid, study_date=study_date, study_time=study_time,
        study_id=study_id, accession_number=accession_number, study_description=study_description,
        series_instance_uid=series_instance_uid, series_number=series_number,
        series_description=series_description, frame_of_reference_uid=frame_of_reference_uid,
        rows=n_j, columns=n_i,
    )
    orientation = _ds(np.r_[direction[:, 0], direction[:, 1]])
    pixel_spacing = _ds([spacing[1], spacing[0]])
    positions = [origin + k * spacing[2] * direction[:, 2] for k in range(n_k)]
    if multiframe:
        dataset = _enhanced_ct(base, n_k, orientation, pixel_spacing, spacing[2], positions, series_instance_uid)
        dataset.PixelData = np.stack([slice_pixels(k) for k in range(n_k)]).tobytes()
        path = folder / f"{file_prefix}_enhanced.dcm"
        _save(dataset, path)
        return [path]
    paths = []
    for k in range(n_k):
        dataset = _copy(base)
        dataset.SOPClassUID = CT_IMAGE_STORAGE
        dataset.SOPInstanceUID = generate_uid(entropy_srcs=[series_instance_uid, "instance", str(k)])
        dataset.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        dataset.InstanceNumber = k + 1
        dataset.AcquisitionNumber = 1
        dataset.PatientOrientation = ""
        dataset.ImagePositionPatient = _ds(positions[k])
        dataset.ImageOrientationPatient = orientation
        dataset.PixelSpacing = pixel_spacing
        dataset.SliceThickness = format_number_as_ds(float(spacing[2]))
        dataset.SliceLocation = format_number_as_ds(float(positions[k] @ np.cross(direction[:, 0], direction[:, 1])))
        dataset.KVP = "120"
        dataset.RescaleIntercept = "0"
        dataset.RescaleSlope = "1"
        dataset.RescaleType = "HU"
        dataset.WindowCenter = "40"
        dataset.WindowWidth = "400"
        dataset.PixelData = slice_pixels(k).tobytes()
        path = folder / f"{file_prefix}_{k + 1:04d}.dcm"
        _save(dataset, path)
        paths.append(path)
    return paths


def _common_dataset(
    *, patient_name: str, patient_id: str, patient_birth_date: str, patient_sex: str,
    specific_character_set: str | None, study_instance_uid: str, study_date: str, study_time: str,
    study_id: str, accession_number: str, study_description: str, series_instance_uid: str,
    series_number: int, series_description: str, frame_of_reference_uid: str, rows: int, columns: int,
) -> Dataset:
    """Patient, study, series, frame of reference, equipment and pixel description shared by all files."""
    dataset = Dataset()
    if specific_character_set:
        dataset.SpecificCharacterSet = specific_character_set
    dataset.PatientName = patient_name
    dataset.PatientID = patient_id
    dataset.PatientBirthDate = patient_birth_date
    dataset.PatientSex = patient_sex
    dataset.StudyInstanceUID = study_instance_uid
    dataset.StudyDate = study_date
    dataset.StudyTime = study_time
    dataset.StudyID = study_id
    dataset.AccessionNumber = accession_number
    dataset.ReferringPhysicianName = ""
    dataset.StudyDescription = study_description
    dataset.Modality = "CT"
    dataset.SeriesInstanceUID = series_instance_uid
    dataset.SeriesNumber = series_number
    dataset.SeriesDescription = series_description
    dataset.SeriesDate = study_date
    dataset.SeriesTime = study_time
    dataset.ContentDate = study_date
    dataset.ContentTime = study_time
    dataset.BodyPartExamined = "CHEST"
    dataset.PatientPosition = "HFS"
    dataset.FrameOfReferenceUID = frame_of_reference_uid
    dataset.PositionReferenceIndicator = ""
    dataset.Manufacturer = "DicomRegSave"
    dataset.ManufacturerModelName = "Phantom generator"
    dataset.DeviceSerialNumber = "0"
    dataset.SoftwareVersions = "DicomRegSave sampledata"
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.Rows = rows
    dataset.Columns = columns
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 1
    return dataset


def _copy(dataset: Dataset) -> Dataset:
    copy = Dataset()
    for element in dataset:
        copy.add(pydicom.DataElement(element.tag, element.VR, element.value))
    return copy


def _item(**attributes: object) -> Dataset:
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def _enhanced_ct(
    base: Dataset,
    n_frames: int,
    orientation: list[str],
    pixel_spacing: list[str],
    slice_spacing_mm: float,
    positions: list[np.ndarray],
    series_instance_uid: str,
) -> Dataset:
    """Enhanced CT Image Storage header: shared geometry and pixel transform, per-frame positions."""
    dataset = _copy(base)
    dataset.SOPClassUID = ENHANCED_CT_IMAGE_STORAGE
    dataset.SOPInstanceUID = generate_uid(entropy_srcs=[series_instance_uid, "instance", "enhanced"])
    dataset.ImageType = ["DERIVED", "PRIMARY", "VOLUME", "NONE"]
    dataset.PixelPresentation = "MONOCHROME"
    dataset.VolumetricProperties = "VOLUME"
    dataset.VolumeBasedCalculationTechnique = "NONE"
    dataset.InstanceNumber = 1
    dataset.NumberOfFrames = n_frames
    dataset.BurnedInAnnotation = "NO"
    dataset.RecognizableVisualFeatures = "NO"
    dataset.LossyImageCompression = "00"
    dataset.PresentationLUTShape = "IDENTITY"
    dataset.ContentQualification = "RESEARCH"
    dataset.AcquisitionContextSequence = DicomSequence()
    dimension_organization_uid = generate_uid(entropy_srcs=[series_instance_uid, "dimension organization"])
    dataset.DimensionOrganizationSequence = DicomSequence(
        [_item(DimensionOrganizationUID=dimension_organization_uid)]
    )
    dataset.DimensionOrganizationType = "3D"
    dataset.DimensionIndexSequence = DicomSequence(
        [
            _item(
                DimensionOrganizationUID=dimension_organization_uid,
                DimensionIndexPointer=pydicom.tag.Tag("InStackPositionNumber"),
                FunctionalGroupPointer=pydicom.tag.Tag("FrameContentSequence"),
                DimensionDescriptionLabel="In-Stack Position",
            )
        ]
    )
    anatomy = _item(
        AnatomicRegionSequence=DicomSequence(
            [_item(CodeValue="51185008", CodingSchemeDesignator="SCT", CodeMeaning="Chest")]
        ),
        FrameLaterality="U",
    )
    shared = _item(
        PixelMeasuresSequence=DicomSequence(
            [_item(
                PixelSpacing=pixel_spacing,
                SliceThickness=format_number_as_ds(slice_spacing_mm),
                SpacingBetweenSlices=format_number_as_ds(slice_spacing_mm),
            )]
        ),
        PlaneOrientationSequence=DicomSequence([_item(ImageOrientationPatient=orientation)]),
        FrameAnatomySequence=DicomSequence([anatomy]),
        PixelValueTransformationSequence=DicomSequence(
            [_item(RescaleIntercept="0", RescaleSlope="1", RescaleType="HU")]
        ),
        FrameVOILUTSequence=DicomSequence([_item(WindowCenter="40", WindowWidth="400")]),
        CTImageFrameTypeSequence=DicomSequence(
            [_item(
                FrameType=["DERIVED", "PRIMARY", "VOLUME", "NONE"],
                PixelPresentation="MONOCHROME",
                VolumetricProperties="VOLUME",
                VolumeBasedCalculationTechnique="NONE",
            )]
        ),
        IrradiationEventIdentificationSequence=DicomSequence(
            [_item(IrradiationEventUID=generate_uid(entropy_srcs=[series_instance_uid, "irradiation"]))]
        ),
    )
    dataset.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    for k, position in enumerate(positions):
        per_frame.append(
            _item(
                FrameContentSequence=DicomSequence(
                    [_item(StackID="1", InStackPositionNumber=k + 1, DimensionIndexValues=[k + 1])]
                ),
                PlanePositionSequence=DicomSequence([_item(ImagePositionPatient=_ds(position))]),
            )
        )
    dataset.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    return dataset


def _save(dataset: Dataset, path: Path) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    dataset.file_meta = meta
    dataset.InstanceCreationDate = dataset.ContentDate
    dataset.InstanceCreationTime = dataset.ContentTime
    dataset.save_as(path, enforce_file_format=True)
