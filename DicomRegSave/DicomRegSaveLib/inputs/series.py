"""One DICOM image series: its instances stacked into a voxel grid in LPS (mm).

The registration writer needs, for the fixed and the moving image, the instances to reference and
the voxel grid (``ijk_to_lps``) they form. :func:`read_image_series` takes the one image series
among files and folders (found by :func:`file_walker.walk`, headers read without pixel data);
:func:`series_from_headers` stacks headers already read (:mod:`inputs.lookup` finds them by SOP
Instance UID).

Conventions
-----------
* Voxel index (i, j, k): i = column, j = row, k = slice; ``ijk_to_lps`` maps the index of a voxel
  centre to DICOM patient coordinates (LPS, mm).
* Slices (single-frame instances, or frames of multi-frame instances) are sorted along the slice
  normal row x column, so k always increases along row x column and ``ijk_to_lps`` is right-handed
  for an untilted stack, whatever order the files were written or numbered in. This is also the
  orientation a DICOM grid needs (k = row x column).
* The k column of ``ijk_to_lps`` is ``(last position - first position) / (n - 1)``; for a
  gantry-tilted stack it is not perpendicular to the slices (the matrix is then sheared).
* A frame subset of multi-frame instances is selected with ``frame_numbers`` (see
  :func:`series_from_headers` and :meth:`ImageSeries.subset`); references then carry Referenced
  Frame Number for each instance of which only some frames are used.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from DicomRegSaveLib.dicom_file import decode_whole, series_number
from DicomRegSaveLib.errors import DicomInputError
from DicomRegSaveLib.file_walker import Instance, functional_group_item, is_image, walk
from DicomRegSaveLib.model import ImageReference
from DicomRegSaveLib.progress import Progress
from DicomRegSaveLib.values import problem_uid

#: The attributes read from every instance of a series (identity, geometry, what messages show);
#: the other elements are decoded only for the series' first instance, whose patient and study
#: information the registration inherits (:func:`dicom_file.decode_whole`).
INSTANCE_TAGS = frozenset(
    tag_for_keyword(keyword)
    for keyword in (
        "MediaStorageSOPClassUID",
        "SpecificCharacterSet",
        "SOPClassUID",
        "SOPInstanceUID",
        "Modality",
        "SeriesDescription",
        "SliceThickness",
        "SpacingBetweenSlices",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "InstanceNumber",
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "FrameOfReferenceUID",
        "NumberOfFrames",
        "GridFrameOffsetVector",
        "Rows",
        "Columns",
        "PixelSpacing",
        "SharedFunctionalGroupsSequence",
        "PerFrameFunctionalGroupsSequence",
    )
)

#: Largest allowed difference between direction cosines of slices of one stack (dimensionless).
ORIENTATION_TOLERANCE = 1e-4
#: Largest allowed difference between Pixel Spacing values of slices of one stack (mm).
PIXEL_SPACING_TOLERANCE_MM = 1e-3
#: Largest allowed distance of a slice from its place on a uniform stack, as a fraction of the slice
#: spacing (dimensionless) ...
SLICE_POSITION_TOLERANCE = 0.02
#: ... but never less than this (mm), so rounding of Image Position (Patient) never counts.
SLICE_POSITION_TOLERANCE_FLOOR_MM = 0.01

FrameSelection = Mapping[str, Sequence[int]] | Sequence[int] | None


@dataclass(frozen=True)
class SliceFrame:
    """One 2D slice of a series: a single-frame instance or one frame of a multi-frame instance.

    Parameters
    ----------
    header_index:
        Index of the instance in :attr:`ImageSeries.headers`.
    frame_number:
        1-based frame number in a multi-frame instance; ``None`` for a single-frame instance.
    position_lps:
        Image Position (Patient): centre of the first transmitted pixel, mm, LPS.
    """

    header_index: int
    frame_number: int | None
    position_lps: tuple[float, float, float]


@dataclass
class ImageSeries:
    """One DICOM image series (single-frame slices or one or more multi-frame instances).

    Attributes
    ----------
    headers:
        Instance headers read without pixel data, sorted along the slice normal (for multi-frame
        instances: by their first frame used).
    paths:
        Files of `headers`, same order; empty when the series was built from datasets in memory.
    role:
        ``"fixed"`` or ``"moving"`` (used in messages).
    study_instance_uid, series_instance_uid, frame_of_reference_uid, sop_class_uid, modality:
        Taken from the headers (all instances share them; ``sop_class_uid`` is the first instance's).
    ijk_to_lps:
        4x4 matrix from voxel index (i = column, j = row, k = slice) to the voxel centre in LPS (mm).
    dimensions:
        (n_i, n_j, n_k) = (Columns, Rows, number of slices).
    frames:
        The slice at each k, in k order.
    series_numbers_seen:
        File -> (Study Instance UID, Series Number) of every DICOM instance found with this series in its
        files and folders (images and other objects, this series included) that has a Series Number:
        which numbers a new series of a study must not take (by file, so that a file being replaced
        can be left out). Empty when the series was built from headers in memory.
    """

    headers: list[Dataset]
    paths: list[Path]
    role: str
    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str
    sop_class_uid: str
    modality: str
    ijk_to_lps: np.ndarray
    dimensions: tuple[int, int, int]
    frames: tuple[SliceFrame, ...] = field(default_factory=tuple)
    series_numbers_seen: Mapping[Path, tuple[str, int]] = field(default_factory=dict)

    @property
    def first_header(self) -> Dataset:
        """Header of the first instance (for patient and study information)."""
        return self.headers[0]

    @property
    def spacing_mm(self) -> np.ndarray:
        """Distance between voxel centres along i, j, k (mm)."""
        return np.linalg.norm(self.ijk_to_lps[:3, :3], axis=0)

    @property
    def origin_lps(self) -> np.ndarray:
        """Centre of voxel (0, 0, 0), mm, LPS."""
        return self.ijk_to_lps[:3, 3].copy()

    @property
    def direction_lps(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit i, j, k axes in LPS."""
        return self.ijk_to_lps[:3, :3] / self.spacing_mm

    def image_references(self) -> list[ImageReference]:
        """One reference per instance, in slice order, with the study, series and frame of reference.

        ``frame_numbers`` lists the frames used (ascending) for a multi-frame instance of which only
        a subset belongs to this series; it is empty when every frame (or a single-frame instance) is used.
        """
        used: dict[int, list[int]] = {}
        for frame in self.frames:
            numbers = used.setdefault(frame.header_index, [])
            if frame.frame_number is not None:
                numbers.append(frame.frame_number)
        references = []
        for header_index, numbers in used.items():
            header = self.headers[header_index]
            n_frames = _number_of_frames(header)
            subset = tuple(sorted(numbers)) if numbers and len(numbers) < n_frames else ()
            references.append(
                ImageReference(
                    sop_class_uid=str(header.SOPClassUID),
                    sop_instance_uid=str(header.SOPInstanceUID),
                    series_instance_uid=str(header.SeriesInstanceUID),
                    study_instance_uid=str(header.StudyInstanceUID),
                    frame_of_reference_uid=str(header.FrameOfReferenceUID),
                    frame_numbers=subset,
                )
            )
        return references

    def subset(self, frame_numbers: FrameSelection) -> ImageSeries:
        """The series built from a subset of the frames of its multi-frame instances.

        Parameters
        ----------
        frame_numbers:
            SOP Instance UID -> 1-based frame numbers, or a plain sequence of frame numbers when the
            series holds exactly one multi-frame instance. Instances not named keep all their frames.
        """
        subset = series_from_headers(self.headers, self.role, self.paths or None, frame_numbers=frame_numbers)
        return dataclasses.replace(subset, series_numbers_seen=self.series_numbers_seen)


def read_image_series(
    paths: str | Path | Sequence[str | Path],
    role: str,
    *,
    frame_numbers: FrameSelection = None,
    series_instance_uid: str | None = None,
    progress: Progress | None = None,
) -> ImageSeries:
    """Read the one image series found in DICOM files and folders.

    Parameters
    ----------
    paths:
        A DICOM file, a folder (searched recursively), or several files/folders. Non-DICOM files
        (DICOMDIR, text, ...) are ignored; non-image objects (RTSTRUCT, REG, SR, SEG, ...) are
        ignored when exactly one image series is found.
    role:
        ``"fixed"`` or ``"moving"``, used in messages.
    frame_numbers:
        Optional frame subset of multi-frame instances (see :meth:`ImageSeries.subset`).
    series_instance_uid:
        Pick this image series when the paths hold several.
    progress:
        Follows the search of the folders and the reading of the headers (:func:`file_walker.walk`).

    Raises
    ------
    DicomInputError
        If a path does not exist, a DICOM-looking file cannot be read, there is no DICOM file,
        no image series, more than one image series (and none chosen), the chosen series is not
        there, or the series geometry is inconsistent.
    """
    walked = walk(paths, f"{role} image path", decode_tags=INSTANCE_TAGS, progress=progress)
    where = ", ".join(map(str, [paths] if isinstance(paths, (str, os.PathLike)) else paths))
    if walked.problems:
        shown = "\n  - ".join(map(str, walked.problems[:5])) + (
            f"\n  ... and {len(walked.problems) - 5} more" if len(walked.problems) > 5 else ""
        )
        raise DicomInputError(
            f"{len(walked.problems)} DICOM file(s) given for the {role} image cannot be read:\n  - {shown}\n"
            "Remove or replace the damaged files, or pass only the files of the intended series."
        )
    if not walked.instances:
        raise DicomInputError(
            f"No DICOM files were found in {where} for the {role} image. "
            f"Pass a DICOM file or a folder holding the {role} image series."
        )
    images = [(instance.path, instance.header) for instance in walked.images()]
    if not images:
        raise DicomInputError(
            f"{where} holds DICOM objects but no image series for the {role} image (found: "
            f"{_describe_found(walked.instances)}). Pass the folder or files of the {role} image series "
            "(for example the CT or MR slices)."
        )
    by_series: dict[str, list[tuple[Path, Dataset]]] = {}
    for path, header in images:
        by_series.setdefault(str(header.get("SeriesInstanceUID", "")), []).append((path, header))
    if series_instance_uid is not None:
        if series_instance_uid not in by_series:
            raise DicomInputError(
                f"{where} holds no image series with Series Instance UID {series_instance_uid} for the "
                f"{role} image; it holds:\n{_series_listing(by_series)}\nChoose one of these."
            )
        by_series = {series_instance_uid: by_series[series_instance_uid]}
    if len(by_series) > 1:
        raise DicomInputError(
            f"{where} holds {len(by_series)} image series; the {role} image must be exactly one:\n"
            f"{_series_listing(by_series)}\nPass one series' folder or files as the {role} image, "
            "or choose one by its Series Instance UID."
        )
    members = next(iter(by_series.values()))
    series = series_from_headers([h for _, h in members], role, [p for p, _ in members], frame_numbers=frame_numbers)
    return dataclasses.replace(series, series_numbers_seen=_series_numbers_by_file(walked.instances))


def _series_numbers_by_file(instances: Sequence[Instance]) -> dict[Path, tuple[str, int]]:
    """File -> (Study Instance UID, Series Number) of the instances (those without one are passed over)."""
    numbers = {}
    for instance in instances:
        number = series_number(instance.header)
        if number is not None:
            numbers[instance.path] = (str(instance.header.get("StudyInstanceUID", "")), number)
    return numbers


def series_from_headers(
    headers: Sequence[Dataset],
    role: str,
    paths: Sequence[str | Path] | None = None,
    *,
    frame_numbers: FrameSelection = None,
) -> ImageSeries:
    """Build an :class:`ImageSeries` from the headers of the instances of one image series.

    Parameters
    ----------
    headers:
        Instance headers (pixel data not needed), any order. Copies of one instance (same SOP
        Instance UID, position and number) are kept once; different instances sharing a UID are refused.
    role:
        ``"fixed"`` or ``"moving"``, used in messages.
    paths:
        Files of `headers` (same order), or ``None``.
    frame_numbers:
        SOP Instance UID -> 1-based frame numbers to use from that multi-frame instance, or a plain
        sequence of frame numbers when there is exactly one multi-frame instance; ``None`` uses all.

    Raises
    ------
    DicomInputError
        If the headers are not one image series with one consistent, uniformly spaced geometry.
    """
    if not headers:
        raise DicomInputError(f"No DICOM headers were given for the {role} image.")
    if paths is not None and len(paths) != len(headers):
        raise ValueError("paths must have one entry per header")
    unique: dict[str, tuple[Dataset, Path | None]] = {}
    for index, header in enumerate(headers):
        uid = str(header.get("SOPInstanceUID", ""))
        if problem_uid(uid) is not None:
            raise DicomInputError(
                f"A {role} image header{_in_file(header, paths, index)} has no valid SOP Instance UID ({uid!r})."
            )
        path = Path(paths[index]) if paths is not None else None
        if uid in unique and _identity(unique[uid][0]) != _identity(header):
            first_path = unique[uid][1]
            raise DicomInputError(
                f"Two different {role} images share the SOP Instance UID {uid}"
                f"{f' ({first_path} and {path})' if first_path and path else ''}: their position or instance "
                "number differ, so a reference to that UID would be ambiguous. The series is damaged (or "
                "anonymised badly); pass a series whose instances have their own UIDs."
            )
        unique.setdefault(uid, (header, path))
    header_list = [h for h, _ in unique.values()]
    path_list = [p for _, p in unique.values()]
    for index, header in enumerate(header_list):
        if not is_image(header):
            raise DicomInputError(
                f"The {role} instance {header.SOPInstanceUID}{_in_file(header, path_list, index)} "
                f"(modality {header.get('Modality', '?')}) is not an image with patient geometry "
                "(it needs Rows, Columns and Image Position/Orientation (Patient) or plane functional groups)."
            )
    series_uids = {str(h.get("SeriesInstanceUID", "")) for h in header_list}
    if len(series_uids) > 1:
        listing = "\n".join(
            "  - " + _series_summary([h for h in header_list if str(h.get("SeriesInstanceUID", "")) == uid])
            for uid in sorted(series_uids)
        )
        raise DicomInputError(
            f"The {role} image instances belong to {len(series_uids)} series; they must be one series:\n{listing}"
        )
    first = header_list[0]
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        values = {str(h.get(keyword, "")) for h in header_list}
        if len(values) > 1 or problem_uid(next(iter(values))) is not None:
            raise DicomInputError(
                f"The {role} image series {first.get('SeriesInstanceUID', '?')} has "
                f"{'differing' if len(values) > 1 else 'no valid'} {_tag_name(keyword)} values "
                f"({', '.join(sorted(values)) or 'empty'}); a registration needs one per image series."
            )
    selection = _frame_selection(header_list, frame_numbers, role)
    geometry = _PlaneCollector(role, str(first.SeriesInstanceUID))
    for index, header in enumerate(header_list):
        geometry.add_instance(index, header, selection.get(str(header.SOPInstanceUID)))
    ijk_to_lps, n_columns, n_rows, frames = geometry.stack()
    instance_order: list[int] = []
    for frame in frames:
        if frame.header_index not in instance_order:
            instance_order.append(frame.header_index)
    remap = {old: new for new, old in enumerate(instance_order)}
    frames = tuple(SliceFrame(remap[f.header_index], f.frame_number, f.position_lps) for f in frames)
    sorted_paths = [path_list[i] for i in instance_order] if paths is not None else []
    first_index = instance_order[0]
    first_file = _file_of(header_list[first_index], path_list, first_index)
    decode_whole(header_list[first_index], first_file or f"the first {role} image instance")
    return ImageSeries(
        headers=[header_list[i] for i in instance_order],
        paths=[p for p in sorted_paths if p is not None],
        role=role,
        study_instance_uid=str(first.StudyInstanceUID),
        series_instance_uid=str(first.SeriesInstanceUID),
        frame_of_reference_uid=str(first.FrameOfReferenceUID),
        sop_class_uid=str(first.SOPClassUID),
        modality=str(first.get("Modality", "")),
        ijk_to_lps=ijk_to_lps,
        dimensions=(n_columns, n_rows, len(frames)),
        frames=frames,
    )


class _PlaneCollector:
    """Collects the slices of a series and checks that they form one uniform stack."""

    def __init__(self, role: str, series_uid: str) -> None:
        self.role = role
        self.series_uid = series_uid
        self.frames: list[SliceFrame] = []
        self.orientations: list[np.ndarray] = []
        self.pixel_spacings: list[np.ndarray] = []
        self.sizes: set[tuple[int, int]] = set()
        self.instance_uids: dict[int, str] = {}
        self.slice_spacing: float | None = None

    def _error(self, message: str) -> DicomInputError:
        return DicomInputError(f"The {self.role} image series {self.series_uid}: {message}")

    def add_instance(self, index: int, header: Dataset, frame_numbers: Sequence[int] | None) -> None:
        self.instance_uids[index] = str(header.SOPInstanceUID)
        self.sizes.add((int(header.Columns), int(header.Rows)))
        n_frames = _number_of_frames(header)
        has_groups = functional_group_item(header, 1, "PlanePositionSequence") is not None
        if not has_groups and n_frames == 1:
            self._add(index, None, header, header)
            return
        numbers = list(frame_numbers) if frame_numbers is not None else list(range(1, n_frames + 1))
        if has_groups:
            for number in numbers:
                self._add_functional_frame(index, number, header)
            return
        offsets = header.get("GridFrameOffsetVector")
        if offsets is None or len(offsets) != n_frames:
            raise self._error(
                f"instance {header.SOPInstanceUID} has {n_frames} frames but neither per-frame plane "
                "functional groups nor a Grid Frame Offset Vector, so the frame positions are unknown."
            )
        orientation = np.array(header.ImageOrientationPatient, dtype=np.float64)
        normal = np.cross(orientation[:3], orientation[3:])
        position = np.array(header.ImagePositionPatient, dtype=np.float64)
        # PS3.3 C.8.8.3.2: a first offset of 0 means offsets relative to the position along the
        # normal; otherwise the offsets are z coordinates (axial images only).
        reference = 0.0 if float(offsets[0]) == 0.0 else float(position @ normal)
        for number in numbers:
            frame_position = position + (float(offsets[number - 1]) - reference) * normal
            self._add(index, number, header, header, frame_position)

    def _add_functional_frame(self, index: int, number: int, header: Dataset) -> None:
        position_item = functional_group_item(header, number, "PlanePositionSequence")
        orientation_item = functional_group_item(header, number, "PlaneOrientationSequence")
        measures_item = functional_group_item(header, number, "PixelMeasuresSequence")
        if position_item is None or orientation_item is None or measures_item is None:
            raise self._error(
                f"frame {number} of instance {header.SOPInstanceUID} lacks a Plane Position, Plane "
                "Orientation or Pixel Measures functional group; its geometry is unknown."
            )
        merged = Dataset()
        merged.ImagePositionPatient = position_item.ImagePositionPatient
        merged.ImageOrientationPatient = orientation_item.ImageOrientationPatient
        merged.PixelSpacing = measures_item.PixelSpacing
        for keyword in ("SpacingBetweenSlices", "SliceThickness"):
            if keyword in measures_item:
                setattr(merged, keyword, measures_item[keyword].value)
        self._add(index, number, header, merged)

    def _add(
        self,
        index: int,
        number: int | None,
        header: Dataset,
        plane: Dataset,
        position: np.ndarray | None = None,
    ) -> None:
        where = f"instance {header.SOPInstanceUID}" + (f" frame {number}" if number is not None else "")
        try:
            orientation = np.array(plane.ImageOrientationPatient, dtype=np.float64)
            pixel_spacing = np.array(plane.PixelSpacing, dtype=np.float64)
            if position is None:
                position = np.array(plane.ImagePositionPatient, dtype=np.float64)
        except (AttributeError, TypeError, ValueError) as exc:
            raise self._error(
                f"{where} has no usable Image Position/Orientation (Patient) or Pixel Spacing ({exc})."
            ) from exc
        if orientation.shape != (6,) or position.shape != (3,) or pixel_spacing.shape != (2,):
            raise self._error(
                f"{where} has Image Orientation (Patient) {orientation.tolist()}, Image Position (Patient) "
                f"{position.tolist()}, Pixel Spacing {pixel_spacing.tolist()}; expected 6, 3 and 2 values."
            )
        if np.any(pixel_spacing <= 0) or not np.all(np.isfinite(np.r_[orientation, position, pixel_spacing])):
            raise self._error(f"{where} has an invalid geometry (Pixel Spacing {pixel_spacing.tolist()}).")
        if self.slice_spacing is None:
            for keyword in ("SpacingBetweenSlices", "SliceThickness"):
                value = plane.get(keyword)
                if value is not None and value != "" and float(value) > 0:
                    self.slice_spacing = float(value)
                    break
        self.frames.append(SliceFrame(index, number, tuple(float(v) for v in position)))
        self.orientations.append(orientation)
        self.pixel_spacings.append(pixel_spacing)

    def _describe(self, frame: SliceFrame) -> str:
        instance = f"instance {self.instance_uids[frame.header_index]}"
        return f"frame {frame.frame_number} of {instance}" if frame.frame_number is not None else instance

    def stack(self) -> tuple[np.ndarray, int, int, list[SliceFrame]]:
        """Sort the slices along the normal and return (ijk_to_lps, n_columns, n_rows, frames)."""
        if len(self.sizes) > 1:
            raise self._error(
                f"the slices have different sizes (Columns x Rows: {sorted(self.sizes)}); they cannot form one volume."
            )
        orientations = np.array(self.orientations)
        if np.max(np.abs(orientations - orientations[0])) > ORIENTATION_TOLERANCE:
            distinct = np.unique(np.round(orientations, 4), axis=0)
            raise self._error(
                f"the slices have different Image Orientation (Patient) values ({distinct.tolist()}); "
                "a series with several orientations (e.g. localizers mixed with axial slices) cannot "
                "be one volume. Pass only the slices of one stack."
            )
        spacings = np.array(self.pixel_spacings)
        if np.max(np.abs(spacings - spacings[0])) > PIXEL_SPACING_TOLERANCE_MM:
            raise self._error(
                f"the slices have different Pixel Spacing values ({np.unique(spacings, axis=0).tolist()})."
            )
        row_direction, column_direction = orientations[0][:3], orientations[0][3:]
        if (
            abs(np.linalg.norm(row_direction) - 1) > 1e-3
            or abs(np.linalg.norm(column_direction) - 1) > 1e-3
            or abs(row_direction @ column_direction) > 1e-3
        ):
            raise self._error(
                f"Image Orientation (Patient) {orientations[0].tolist()} is not two orthogonal unit vectors."
            )
        row_direction = row_direction / np.linalg.norm(row_direction)
        column_direction = column_direction / np.linalg.norm(column_direction)
        normal = np.cross(row_direction, column_direction)
        positions = np.array([f.position_lps for f in self.frames])
        distances = positions @ normal
        order = sorted(range(len(self.frames)), key=lambda n: (distances[n], self.frames[n].frame_number or 0))
        positions = positions[order]
        frames = [self.frames[n] for n in order]
        n_slices = len(frames)
        if n_slices == 1:
            step = normal * (self.slice_spacing or 1.0)
        else:
            gaps = np.diff(distances[order])
            if np.min(gaps) <= SLICE_POSITION_TOLERANCE_FLOOR_MM:
                twin = int(np.argmin(gaps))
                raise self._error(
                    f"two slices lie at the same position ({self._describe(frames[twin])} and "
                    f"{self._describe(frames[twin + 1])}, both at {np.round(positions[twin], 3).tolist()} mm); "
                    "the series holds more than one stack (e.g. several phases or echoes). Select one stack "
                    "(pass its files, or its frame numbers for a multi-frame image)."
                )
            step = (positions[-1] - positions[0]) / (n_slices - 1)
            expected = positions[0] + np.outer(np.arange(n_slices), step)
            deviation = np.linalg.norm(positions - expected, axis=1)
            tolerance = max(SLICE_POSITION_TOLERANCE * np.linalg.norm(step), SLICE_POSITION_TOLERANCE_FLOOR_MM)
            if np.max(deviation) > tolerance:
                worst = int(np.argmax(deviation))
                raise self._error(
                    f"the {n_slices} slices are not uniformly spaced: slice gaps range from "
                    f"{np.min(gaps):.4g} to {np.max(gaps):.4g} mm, and {self._describe(frames[worst])} lies "
                    f"{deviation[worst]:.3g} mm from its place on a uniform stack (tolerance {tolerance:.3g} mm). "
                    "A stack with missing or irregular slices cannot be described by one voxel grid; "
                    "check for missing files or resample the series to uniform spacing."
                )
        ijk_to_lps = np.eye(4)
        ijk_to_lps[:3, 0] = row_direction * spacings[0][1]
        ijk_to_lps[:3, 1] = column_direction * spacings[0][0]
        ijk_to_lps[:3, 2] = step
        ijk_to_lps[:3, 3] = positions[0]
        n_columns, n_rows = next(iter(self.sizes))
        return ijk_to_lps, n_columns, n_rows, frames


def _identity(header: Dataset) -> tuple[str, ...]:
    """What tells one instance from another copy of itself (same UID, same slice)."""
    return tuple(
        str(header.get(keyword, ""))
        for keyword in (
            "SOPClassUID",
            "SeriesInstanceUID",
            "InstanceNumber",
            "ImagePositionPatient",
            "NumberOfFrames",
            "Rows",
            "Columns",
        )
    )


def _number_of_frames(header: Dataset) -> int:
    value = header.get("NumberOfFrames")
    try:
        return max(1, int(value)) if value not in (None, "") else 1
    except (TypeError, ValueError):
        return 1


def _frame_selection(headers: list[Dataset], frame_numbers: FrameSelection, role: str) -> dict[str, list[int]]:
    if frame_numbers is None:
        return {}
    multiframe = [h for h in headers if _number_of_frames(h) > 1]
    if isinstance(frame_numbers, Mapping):
        selection = {str(uid): [int(n) for n in numbers] for uid, numbers in frame_numbers.items()}
    else:
        if len(multiframe) != 1:
            raise DicomInputError(
                f"A plain list of frame numbers needs exactly one multi-frame instance in the {role} image "
                f"series; it has {len(multiframe)}. Give the frame numbers per SOP Instance UID instead."
            )
        selection = {str(multiframe[0].SOPInstanceUID): [int(n) for n in frame_numbers]}
    by_uid = {str(h.SOPInstanceUID): h for h in headers}
    for uid, numbers in selection.items():
        if uid not in by_uid:
            raise DicomInputError(
                f"Frame numbers were given for instance {uid}, which is not in the {role} image series."
            )
        n_frames = _number_of_frames(by_uid[uid])
        if n_frames == 1 and "NumberOfFrames" not in by_uid[uid]:
            raise DicomInputError(
                f"Frame numbers were given for the {role} instance {uid}, which is a single-frame image."
            )
        bad = [n for n in numbers if not 1 <= n <= n_frames]
        if not numbers or bad or len(set(numbers)) != len(numbers):
            raise DicomInputError(
                f"The frame numbers for the {role} instance {uid} must be distinct values from 1 to "
                f"{n_frames}; got {numbers}."
            )
    return selection


def _series_summary(headers: Sequence[Dataset]) -> str:
    first = headers[0]
    description = str(first.get("SeriesDescription", "") or "").strip() or "(no description)"
    count = len({str(h.get("SOPInstanceUID", "")) for h in headers})
    return (
        f"Series Instance UID {first.get('SeriesInstanceUID', '?')}, modality {first.get('Modality', '?')}, "
        f"'{description}', {count} instance(s)"
    )


def _series_listing(by_series: Mapping[str, Sequence[tuple[Path, Dataset]]]) -> str:
    return "\n".join("  - " + _series_summary([h for _, h in members]) for members in by_series.values())


def _describe_found(found: list[Instance]) -> str:
    counts: dict[str, int] = {}
    for instance in found:
        key = f"{instance.kind} series {instance.header.get('SeriesInstanceUID', '?')}"
        counts[key] = counts.get(key, 0) + 1
    return "; ".join(f"{key} ({n} object(s))" for key, n in counts.items())


def _file_of(header: Dataset, paths: Sequence[object] | None, index: int) -> str | None:
    if paths is not None and index < len(paths) and paths[index] is not None:
        return str(paths[index])
    filename = getattr(header, "filename", None)
    return filename if isinstance(filename, str) and filename else None


def _in_file(header: Dataset, paths: Sequence[object] | None, index: int) -> str:
    file = _file_of(header, paths, index)
    return f" (file {file})" if file else ""


def _tag_name(keyword: str) -> str:
    return {
        "StudyInstanceUID": "Study Instance UID",
        "SeriesInstanceUID": "Series Instance UID",
        "FrameOfReferenceUID": "Frame of Reference UID",
    }[keyword]
