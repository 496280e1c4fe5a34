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
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from DicomRegSaveLib import geometry
from DicomRegSaveLib.inputs.field_writer import write_metaimage
from DicomRegSaveLib.model import DisplacementGrid

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
        values = np.asarray(function(points.reshape(-1, 3)), dtype=np.float64).reshape(n_j, n_i)
        return np.clip(np.rint(values), -1024, 3071).astype(np.int16)

    base = _common_dataset(
        patient_name=patient_name,
        patient_id=patient_id,
        patient_birth_date=patient_birth_date,
        patient_sex=patient_sex,
        specific_character_set=specific_character_set,
        study_instance_uid=study_instance_uid,
        study_date=study_date,
        study_time=study_time,
        study_id=study_id,
        accession_number=accession_number,
        study_description=study_description,
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        series_description=series_description,
        frame_of_reference_uid=frame_of_reference_uid,
        rows=n_j,
        columns=n_i,
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
        dataset.SOPClassUID = CTImageStorage
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
    *,
    patient_name: str,
    patient_id: str,
    patient_birth_date: str,
    patient_sex: str,
    specific_character_set: str | None,
    study_instance_uid: str,
    study_date: str,
    study_time: str,
    study_id: str,
    accession_number: str,
    study_description: str,
    series_instance_uid: str,
    series_number: int,
    series_description: str,
    frame_of_reference_uid: str,
    rows: int,
    columns: int,
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
    dataset.SOPClassUID = EnhancedCTImageStorage
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
    dataset.DimensionOrganizationSequence = DicomSequence([_item(DimensionOrganizationUID=dimension_organization_uid)])
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
            [
                _item(
                    PixelSpacing=pixel_spacing,
                    SliceThickness=format_number_as_ds(slice_spacing_mm),
                    SpacingBetweenSlices=format_number_as_ds(slice_spacing_mm),
                )
            ]
        ),
        PlaneOrientationSequence=DicomSequence([_item(ImageOrientationPatient=orientation)]),
        FrameAnatomySequence=DicomSequence([anatomy]),
        PixelValueTransformationSequence=DicomSequence(
            [_item(RescaleIntercept="0", RescaleSlope="1", RescaleType="HU")]
        ),
        FrameVOILUTSequence=DicomSequence([_item(WindowCenter="40", WindowWidth="400")]),
        CTImageFrameTypeSequence=DicomSequence(
            [
                _item(
                    FrameType=["DERIVED", "PRIMARY", "VOLUME", "NONE"],
                    PixelPresentation="MONOCHROME",
                    VolumetricProperties="VOLUME",
                    VolumeBasedCalculationTechnique="NONE",
                )
            ]
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


def write_displacement_field_mha(
    path: str | Path,
    origin_lps: Sequence[float] | np.ndarray,
    direction_lps: np.ndarray,
    spacing_mm: Sequence[float] | np.ndarray,
    vectors_lps: np.ndarray,
) -> Path:
    """Write an ITK displacement field as a single-file MetaImage (``.mha``), float32.

    Geometry (LPS, mm) as for :func:`field_files.field_file_header`; `vectors_lps` are the
    displacements (n_k, n_j, n_i, 3), LPS components in mm, in the resampling (fixed -> moving)
    direction that ITK's DisplacementFieldTransform and Slicer's "from parent" grid use.
    """
    # Values are written as given (tests write invalid ones on purpose).
    grid = DisplacementGrid(origin_lps, direction_lps, spacing_mm, vectors_lps, check_vectors=False)
    grid.vectors_checked = True
    with open(path, "wb") as stream:
        write_metaimage(grid, stream)
    return Path(path)


#: Demo sizes: (dimensions (n_i, n_j, n_k), spacing (mm)); all cover about 192 x 192 x 96 mm.
DEMO_SIZES: dict[str, tuple[tuple[int, int, int], tuple[float, float, float]]] = {
    "tiny": ((16, 16, 8), (12.0, 12.0, 12.0)),
    "small": ((48, 48, 24), (4.0, 4.0, 4.0)),
    "large": ((128, 128, 64), (1.5, 1.5, 1.5)),
}

# The demo deformation (fixed -> moving, LPS mm): a translation (the moving scanner's frame differs
# from the fixed one) plus a Gaussian bump; its largest displacement gradient is about 0.11, so the
# mapping is smooth and invertible.
_DEMO_TRANSLATION_LPS = np.array([3.0, -2.0, 1.5])
_DEMO_BUMP_VECTOR_LPS = np.array([4.0, 3.0, -2.0])
_DEMO_BUMP_CENTRE_LPS = np.array([20.0, -10.0, 0.0])
_DEMO_BUMP_SIGMA_MM = 30.0
# Where the moving series' voxel grid starts relative to the fixed one (mm, LPS).
_DEMO_MOVING_ORIGIN_SHIFT_LPS = np.array([2.0, -1.0, 4.0])


def demo_displacement_lps(points_lps: np.ndarray) -> np.ndarray:
    """The demo's fixed -> moving displacement D(x) (mm, LPS) at fixed points (..., 3) in LPS."""
    points = np.asarray(points_lps, dtype=np.float64)
    squared = np.sum((points - _DEMO_BUMP_CENTRE_LPS) ** 2, axis=-1, keepdims=True)
    return _DEMO_TRANSLATION_LPS + _DEMO_BUMP_VECTOR_LPS * np.exp(-squared / (2.0 * _DEMO_BUMP_SIGMA_MM**2))


@dataclass
class DemoCase:
    """A generated registration case: fixed and moving CT series and the known fixed -> moving field.

    Attributes
    ----------
    folder, fixed_dir, moving_dir, field_path:
        Where the case was written; `field_path` is an ITK displacement field (``.mha``, LPS,
        resampling direction) on the fixed image geometry.
    fixed_paths, moving_paths:
        The DICOM files, in slice order.
    patient_name, patient_id:
        Shared by both series.
    fixed_*_uid, moving_*_uid:
        Study, series and frame of reference UIDs; the moving series is in another study and frame
        of reference.
    field_ijk_to_lps, field_dimensions:
        Geometry of the displacement field grid (index -> LPS mm, (n_i, n_j, n_k)).
    """

    folder: Path
    fixed_dir: Path
    moving_dir: Path
    field_path: Path
    fixed_paths: list[Path]
    moving_paths: list[Path]
    patient_name: str
    patient_id: str
    fixed_study_instance_uid: str
    fixed_series_instance_uid: str
    fixed_frame_of_reference_uid: str
    moving_study_instance_uid: str
    moving_series_instance_uid: str
    moving_frame_of_reference_uid: str
    field_ijk_to_lps: np.ndarray
    field_dimensions: tuple[int, int, int]

    @staticmethod
    def displacement_lps(points_lps: np.ndarray) -> np.ndarray:
        """Fixed -> moving displacement (mm, LPS) at fixed points (..., 3) in LPS."""
        return demo_displacement_lps(points_lps)

    @staticmethod
    def mapping_lps(points_lps: np.ndarray) -> np.ndarray:
        """Map fixed-frame points (..., 3, LPS mm) to the moving frame: ``x + D(x)``."""
        points = np.asarray(points_lps, dtype=np.float64)
        return points + demo_displacement_lps(points)

    @staticmethod
    def inverse_mapping_lps(points_lps: np.ndarray) -> np.ndarray:
        """Map moving-frame points (..., 3, LPS mm) back to the fixed frame (fixed-point iteration)."""
        target = np.asarray(points_lps, dtype=np.float64)
        points = target - _DEMO_TRANSLATION_LPS
        # The displacement's gradient is below 0.12, so each step shrinks the error at least 8-fold.
        for _ in range(20):
            points = target - demo_displacement_lps(points)
        return points


def make_demo_case(
    folder: str | Path,
    *,
    size: str = "small",
    seed: int = 0,
    patient_name: str = "Demo^Phantom",
    patient_id: str = "DRS-DEMO-0001",
    multiframe: bool = False,
) -> DemoCase:
    """Write a demo registration case into `folder` (``fixed/``, ``moving/``, and the field file).

    Parameters
    ----------
    folder:
        Output folder (created if needed; files of an earlier demo there are overwritten).
    size:
        One of :data:`DEMO_SIZES` (``"small"``: 48 x 48 x 24 voxels of 4 mm).
    seed:
        Determines all UIDs; the same seed gives the same files.
    patient_name, patient_id:
        Patient of both series.
    multiframe:
        Write both series as Enhanced CT (one multi-frame file each).
    """
    if size not in DEMO_SIZES:
        raise ValueError(f"size must be one of {sorted(DEMO_SIZES)}; got {size!r}")
    dimensions, spacing = DEMO_SIZES[size]
    folder = Path(folder)

    def uid(name: str) -> str:
        return str(generate_uid(entropy_srcs=["DicomRegSave demo", str(seed), name]))

    uids = {
        name: uid(name)
        for name in ("fixed study", "fixed series", "fixed frame", "moving study", "moving series", "moving frame")
    }
    fixed_origin = -(np.asarray(spacing) * (np.asarray(dimensions) - 1)) / 2.0
    common = dict(
        patient_name=patient_name,
        patient_id=patient_id,
        dimensions=dimensions,
        spacing_mm=spacing,
        multiframe=multiframe,
    )
    fixed_dir, moving_dir = folder / "fixed", folder / "moving"
    fixed_paths = write_image_series(
        fixed_dir,
        **common,
        origin_lps=fixed_origin,
        study_instance_uid=uids["fixed study"],
        series_instance_uid=uids["fixed series"],
        frame_of_reference_uid=uids["fixed frame"],
        study_date="20240315",
        study_time="093000",
        study_id="FIXED",
        series_number=2,
        series_description="Fixed CT",
        file_prefix="FIXED",
    )
    moving_paths = write_image_series(
        moving_dir,
        **common,
        origin_lps=fixed_origin + _DEMO_MOVING_ORIGIN_SHIFT_LPS,
        study_instance_uid=uids["moving study"],
        series_instance_uid=uids["moving series"],
        frame_of_reference_uid=uids["moving frame"],
        study_date="20240612",
        study_time="141500",
        study_id="MOVING",
        series_number=3,
        series_description="Moving CT",
        file_prefix="MOVING",
        pixel_function=lambda points: phantom_hu(DemoCase.inverse_mapping_lps(points)),
    )
    field_ijk_to_lps = geometry.index_to_patient_matrix(fixed_origin, np.eye(3), spacing)
    n_i, n_j, n_k = dimensions
    kk, jj, ii = np.meshgrid(np.arange(n_k), np.arange(n_j), np.arange(n_i), indexing="ij")
    index = np.stack([ii, jj, kk], axis=-1).astype(np.float64)
    grid_points = index @ field_ijk_to_lps[:3, :3].T + field_ijk_to_lps[:3, 3]
    field_path = write_displacement_field_mha(
        folder / "displacement_fixed_to_moving.mha",
        fixed_origin,
        np.eye(3),
        spacing,
        demo_displacement_lps(grid_points).astype(np.float32),
    )
    return DemoCase(
        folder=folder,
        fixed_dir=fixed_dir,
        moving_dir=moving_dir,
        field_path=field_path,
        fixed_paths=fixed_paths,
        moving_paths=moving_paths,
        patient_name=patient_name,
        patient_id=patient_id,
        fixed_study_instance_uid=uids["fixed study"],
        fixed_series_instance_uid=uids["fixed series"],
        fixed_frame_of_reference_uid=uids["fixed frame"],
        moving_study_instance_uid=uids["moving study"],
        moving_series_instance_uid=uids["moving series"],
        moving_frame_of_reference_uid=uids["moving frame"],
        field_ijk_to_lps=field_ijk_to_lps,
        field_dimensions=(n_i, n_j, n_k),
    )
