"""Read a DICOM Spatial Registration (66.1) or Deformable Spatial Registration (66.3) into the model (LPS, mm).

The reader follows PS3.3 A.39.1 / C.20.2 (66.1) and A.39.2 / C.20.3 (66.3) and returns the same
:class:`~.model.Registration` that the writers consume, with every item of the file, so round
trips, ``to-transform``, the Slicer import and validation share one model.
Vector Grid Data is wrapped with :func:`numpy.frombuffer`: the displacement array is a view of
the bytes pydicom read, not a second copy of a field that may be hundreds of megabytes.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sr.coding import Code
from pydicom.uid import UID, DeformableSpatialRegistrationStorage, SpatialRegistrationStorage

from DicomRegSaveLib.dicom_file import read_dicom_file
from DicomRegSaveLib.errors import DicomRegSaveError, InvalidRegistrationError
from DicomRegSaveLib.geometry import MATRIX_TYPES, ORTHONORMAL_TOLERANCE
from DicomRegSaveLib.model import DisplacementGrid, ImageReference, Registration, RegistrationItem, RegistrationMatrix
from DicomRegSaveLib.values import problem_uid

#: SOP classes that users confuse with a REG, with what to tell them.
_RELATED_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.2": "a Spatial Fiducials object (…66.2), which holds landmarks only",
    "1.2.840.10008.5.1.4.1.1.66.4": "a Segmentation (…66.4)",
}

_T = TypeVar("_T")

logger = logging.getLogger(__name__)


def read_registration(source: str | Path | Dataset) -> Registration:
    """Read a Spatial Registration or Deformable Spatial Registration file or dataset.

    Parameters
    ----------
    source:
        Path of a REG file, or a pydicom Dataset already in memory (used as it is, not copied).

    Returns
    -------
    Registration
        Registered frame = the REG's Frame of Reference UID (0020,0052); one
        :class:`RegistrationItem` per item of the Registration Sequence (0070,0308) of a 66.1 or
        the Deformable Registration Sequence (0064,0002) of a 66.3, in file order, identity
        items included. Matrices and grids are in LPS (mm); a grid's vectors are a read-only
        float32 view of Vector Grid Data (0064,0009).

    Raises
    ------
    InvalidRegistrationError
        If the file cannot be read, is not a (Deformable) Spatial Registration, or an attribute
        the mapping depends on is missing or malformed; the message names the file and the tag.
    """
    dataset, name = _load(source)
    sop_class_uid = _content_class(dataset, _check_sop_class(dataset, name), name)
    registered_frame = _required(dataset, "FrameOfReferenceUID", "(0020,0052)", name)
    series_and_study = _instance_locations(dataset, name)
    if sop_class_uid == SpatialRegistrationStorage:
        keyword, tag, read_item = "RegistrationSequence", "(0070,0308)", _read_spatial_item
    else:
        keyword, tag, read_item = "DeformableRegistrationSequence", "(0064,0002)", _read_item
    sequence = _required(dataset, keyword, tag, name)
    if len(sequence) == 0:
        raise InvalidRegistrationError(f"{name}: the {_spaced(keyword)} {tag} is empty; a REG needs at least one item.")
    items = [
        read_item(item, f"{name}: {_spaced(keyword)} {tag} item {number}", series_and_study)
        for number, item in enumerate(sequence, start=1)
    ]
    _warn_unlisted(items, name)
    if sop_class_uid == DeformableSpatialRegistrationStorage and all(item.grid is None for item in items):
        raise InvalidRegistrationError(
            f"{name}: no Deformable Registration Sequence (0064,0002) item has a Deformable Registration Grid "
            "Sequence (0064,0005); a deformable registration needs at least one item with a displacement grid."
        )
    return _wrap(lambda: Registration(str(registered_frame), items), name)


def read_dataset(path: str | Path) -> Dataset:
    """Read a DICOM file, every element decoded (Vector Grid Data without a copy).

    Raises
    ------
    InvalidRegistrationError
        If the file does not exist, is not DICOM, or an element cannot be decoded
        (:class:`~DicomRegSaveLib.errors.MalformedDicomError`, naming the file and the element).
    """
    return read_dicom_file(path)


def _load(source: str | Path | Dataset) -> tuple[Dataset, str]:
    if isinstance(source, Dataset):
        filename = getattr(source, "filename", None)
        if isinstance(filename, str) and filename:
            return source, filename
        return source, f"REG dataset {source.get('SOPInstanceUID', '(no SOP Instance UID)')}"
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a path or a pydicom Dataset, not {type(source).__name__}")
    return read_dataset(source), str(source)


def _check_sop_class(dataset: Dataset, name: str) -> str:
    """The SOP Class UID if it is 66.1 or 66.3, else an error that says what the object is."""
    sop_class_uid = dataset.get("SOPClassUID")
    if sop_class_uid in (SpatialRegistrationStorage, DeformableSpatialRegistrationStorage):
        return str(sop_class_uid)
    if sop_class_uid is None:
        what = "an object without SOP Class UID (0008,0016)"
    elif sop_class_uid in _RELATED_SOP_CLASSES:
        what = f"this is {_RELATED_SOP_CLASSES[sop_class_uid]}"
    elif problem_uid(str(sop_class_uid)) is not None:
        what = f"its SOP Class UID (0008,0016) {str(sop_class_uid)!r} is not a valid UID"
    else:
        what = f"this is {UID(sop_class_uid).name} ({sop_class_uid})"
    raise InvalidRegistrationError(
        f"{name} is not a Spatial Registration (SOP Class {SpatialRegistrationStorage}) or Deformable "
        f"Spatial Registration ({DeformableSpatialRegistrationStorage}): {what}. Choose the REG object."
    )


def _content_class(dataset: Dataset, sop_class_uid: str, name: str) -> str:
    """The class the content is: a 66.1 holding a Deformable Registration Sequence and no Registration
    Sequence (the ImSimQA files of the AAPM TG-132 data sets) is read as the 66.3 it is, with a warning."""
    if (
        sop_class_uid == SpatialRegistrationStorage
        and "RegistrationSequence" not in dataset
        and "DeformableRegistrationSequence" in dataset
    ):
        logger.warning(
            "%s: the SOP Class UID (0008,0016) is Spatial Registration (%s), but the file holds a Deformable "
            "Registration Sequence (0064,0002) and no Registration Sequence (0070,0308); it is read as the Deformable "
            "Spatial Registration its content is, in the standard's direction; the writer's own direction is not "
            "documented, so check the mapping (landmarks with `dicomregsave qa`). `dicomregsave validate` reports "
            "this as an error of the file.",
            name,
            SpatialRegistrationStorage,
        )
        return str(DeformableSpatialRegistrationStorage)
    return sop_class_uid


def _required(dataset: Dataset, keyword: str, tag: str, where: str) -> object:
    value = dataset.get(keyword)
    if value is None or (not isinstance(value, (bytes, bytearray)) and value == ""):
        raise InvalidRegistrationError(f"{where}: {_spaced(keyword)} {tag} is missing or empty.")
    return value


def _spaced(keyword: str) -> str:
    """'GridDimensions' -> 'Grid Dimensions' for messages."""
    words = []
    for character in keyword:
        if character.isupper() and words and not words[-1].endswith(" ") and not words[-1][-1].isupper():
            words.append(" ")
        words.append(character)
    return "".join(words)


def _wrap(build: Callable[[], _T], where: str) -> _T:
    """Run a model constructor, prefixing its error with where in the file the values came from."""
    try:
        return build()
    except (DicomRegSaveError, ValueError, TypeError) as exc:
        raise InvalidRegistrationError(f"{where}: {exc}") from exc


def _instance_locations(dataset: Dataset, name: str) -> dict[str, tuple[str, str]]:
    """SOP Instance UID -> (Series Instance UID, Study Instance UID) from Common Instance Reference."""
    locations: dict[str, tuple[str, str]] = {}
    own_study = str(_required(dataset, "StudyInstanceUID", "(0020,000D)", name))

    def add_series(series_sequence: object, study_uid: str, where: str) -> None:
        for number, series in enumerate(series_sequence or (), start=1):
            series_where = f"{where} item {number}"
            series_uid = str(_required(series, "SeriesInstanceUID", "(0020,000E)", series_where))
            for instance in series.get("ReferencedInstanceSequence") or ():
                sop_instance_uid = instance.get("ReferencedSOPInstanceUID")
                if sop_instance_uid:
                    locations.setdefault(str(sop_instance_uid), (series_uid, study_uid))

    add_series(dataset.get("ReferencedSeriesSequence"), own_study, f"{name}: Referenced Series Sequence (0008,1115)")
    other_where = f"{name}: Studies Containing Other Referenced Instances Sequence (0008,1200)"
    for number, study in enumerate(dataset.get("StudiesContainingOtherReferencedInstancesSequence") or (), start=1):
        study_where = f"{other_where} item {number}"
        study_uid = str(_required(study, "StudyInstanceUID", "(0020,000D)", study_where))
        add_series(
            study.get("ReferencedSeriesSequence"), study_uid, f"{study_where} Referenced Series Sequence (0008,1115)"
        )
    return locations


def _read_item(item: Dataset, where: str, locations: dict[str, tuple[str, str]]) -> RegistrationItem:
    source_frame = str(_required(item, "SourceFrameOfReferenceUID", "(0064,0003)", where))
    references = [
        _read_reference(
            reference, f"{where}: Referenced Image Sequence (0008,1140) item {number}", source_frame, locations
        )
        for number, reference in enumerate(item.get("ReferencedImageSequence") or (), start=1)
    ]
    grid_item = _single_item(item, "DeformableRegistrationGridSequence", "(0064,0005)", where)
    pre_item = _single_item(item, "PreDeformationMatrixRegistrationSequence", "(0064,000F)", where)
    post_item = _single_item(item, "PostDeformationMatrixRegistrationSequence", "(0064,0010)", where)
    comment = item.get("FrameOfReferenceTransformationComment")
    return _wrap(
        lambda: RegistrationItem(
            source_frame_of_reference_uid=source_frame,
            referenced_images=references,
            grid=None
            if grid_item is None
            else _read_grid(grid_item, f"{where}: Deformable Registration Grid Sequence (0064,0005)"),
            pre_deformation_matrix=None
            if pre_item is None
            else _read_matrix(pre_item, f"{where}: Pre Deformation Matrix Registration Sequence (0064,000F)"),
            post_deformation_matrix=None
            if post_item is None
            else _read_matrix(post_item, f"{where}: Post Deformation Matrix Registration Sequence (0064,0010)"),
            registration_type=_read_registration_type(item, where),
            comment=None if comment in (None, "") else str(comment),
        ),
        where,
    )


def _single_item(dataset: Dataset, keyword: str, tag: str, where: str) -> Dataset | None:
    sequence = dataset.get(keyword)
    if sequence is None or len(sequence) == 0:
        return None
    if len(sequence) > 1:
        raise InvalidRegistrationError(
            f"{where}: {_spaced(keyword)} {tag} holds {len(sequence)} items; the standard allows exactly one."
        )
    return sequence[0]


def _read_spatial_item(item: Dataset, where: str, locations: dict[str, tuple[str, str]]) -> RegistrationItem:
    """One Registration Sequence item of a 66.1: its source frame, images and Matrix Registration."""
    source_frame = item.get("FrameOfReferenceUID")
    if source_frame in (None, ""):
        raise InvalidRegistrationError(
            f"{where}: Frame of Reference UID (0020,0052) is missing, so the item's source frame is unknown; "
            "only registrations between frames of reference can be read."
        )
    source_frame = str(source_frame)
    references = [
        _read_reference(
            reference, f"{where}: Referenced Image Sequence (0008,1140) item {number}", source_frame, locations
        )
        for number, reference in enumerate(item.get("ReferencedImageSequence") or (), start=1)
    ]
    registration_where = f"{where}: Matrix Registration Sequence (0070,0309)"
    matrix_registration = _single_item(item, "MatrixRegistrationSequence", "(0070,0309)", where)
    if matrix_registration is None:
        raise InvalidRegistrationError(
            f"{registration_where} is missing or empty (Type 1): the item holds no matrix. Items registered by "
            "fiducials alone cannot be read; ask the producer for the matrix."
        )
    matrices = matrix_registration.get("MatrixSequence") or ()
    if len(matrices) == 0:
        raise InvalidRegistrationError(f"{registration_where} item 1: Matrix Sequence (0070,030A) is missing or empty.")
    # C.20.2.1.1: several matrices are applied in the order of the items.
    matrix = _read_matrix(matrices[0], f"{registration_where} > Matrix Sequence (0070,030A) item 1")
    for number, matrix_item in enumerate(matrices[1:], start=2):
        matrix = matrix.compose(
            _read_matrix(matrix_item, f"{registration_where} > Matrix Sequence (0070,030A) item {number}")
        )
    comment = matrix_registration.get("FrameOfReferenceTransformationComment")
    return _wrap(
        lambda: RegistrationItem(
            source_frame_of_reference_uid=source_frame,
            referenced_images=references,
            matrix_registration=matrix,
            registration_type=_read_registration_type(matrix_registration, registration_where),
            comment=None if comment in (None, "") else str(comment),
        ),
        where,
    )


def _read_reference(
    reference: Dataset, where: str, source_frame: str, locations: dict[str, tuple[str, str]]
) -> ImageReference:
    sop_class_uid = str(_required(reference, "ReferencedSOPClassUID", "(0008,1150)", where))
    sop_instance_uid = str(_required(reference, "ReferencedSOPInstanceUID", "(0008,1155)", where))
    series_uid, study_uid = locations.get(sop_instance_uid, (None, None))
    return _wrap(
        lambda: ImageReference(
            sop_class_uid=sop_class_uid,
            sop_instance_uid=sop_instance_uid,
            series_instance_uid=series_uid,
            study_instance_uid=study_uid,
            frame_of_reference_uid=source_frame,
            frame_numbers=_integers(reference.get("ReferencedFrameNumber")),
            segment_numbers=_integers(reference.get("ReferencedSegmentNumber")),
        ),
        where,
    )


def _warn_unlisted(items: list[RegistrationItem], name: str) -> None:
    """One warning for the referenced instances the Common Instance Reference module does not list.

    pydicomRT writes no Common Instance Reference module at all. Only the series and study of those
    instances are unknown; the item still names them by SOP Instance UID, which is how they are found.
    """
    unlisted = sorted(
        {r.sop_instance_uid for item in items for r in item.referenced_images if r.series_instance_uid is None}
    )
    if unlisted:
        logger.warning(
            "%s: %d referenced instance(s) (%s%s) are not listed in the Common Instance Reference module "
            "(Referenced Series Sequence (0008,1115) / Studies Containing Other Referenced Instances Sequence "
            "(0008,1200)), so their series and study are unknown; the registration is read with them named by "
            "SOP Instance UID only. `dicomregsave validate` reports this as an error of the file.",
            name,
            len(unlisted),
            unlisted[0],
            ", ..." if len(unlisted) > 1 else "",
        )


def _integers(value: object) -> tuple[int, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, (list, tuple, MultiValue)):
        return tuple(int(v) for v in value)
    return (int(value),)


def _floats(dataset: Dataset, keyword: str, tag: str, count: int, where: str) -> np.ndarray:
    value = _required(dataset, keyword, tag, where)
    values = value if isinstance(value, (list, tuple, MultiValue)) else [value]
    try:
        numbers = np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidRegistrationError(f"{where}: {_spaced(keyword)} {tag} is not numeric ({exc}).") from exc
    if numbers.shape != (count,) or not np.all(np.isfinite(numbers)):
        raise InvalidRegistrationError(
            f"{where}: {_spaced(keyword)} {tag} must hold {count} finite numbers; got {numbers.tolist()}."
        )
    return numbers


def _read_matrix(item: Dataset, where: str) -> RegistrationMatrix:
    """The matrix as stored, its type detected from its content.

    A declared type the content does not satisfy (plastimatch, and so SlicerRT's exporter, type
    every 66.1 matrix RIGID; a rigid matrix stored with few decimals is not orthonormal to 1e-4),
    a type in lower case or a missing type do not change the mapping: the matrix is read as stored,
    as pydicomRT and SlicerRT apply it, with a warning that names the mismatch. ``validate`` keeps
    reporting it as an error.
    """
    matrix = _floats(item, "FrameOfReferenceTransformationMatrix", "(3006,00C6)", 16, where).reshape(4, 4)
    stored = _wrap(lambda: RegistrationMatrix(matrix), f"{where}: Frame of Reference Transformation Matrix (3006,00C6)")
    declared = item.get("FrameOfReferenceTransformationMatrixType")
    problem = _matrix_type_problem(declared, stored)
    if problem is not None:
        logger.warning(
            "%s: %s The matrix is applied as stored (it is %s), as pydicomRT and SlicerRT apply it; "
            "`dicomregsave validate` reports this as an error of the file.",
            where,
            problem,
            stored.matrix_type,
        )
    declared_type = str(declared).strip().upper() if declared is not None else ""
    if declared_type in MATRIX_TYPES and MATRIX_TYPES.index(stored.matrix_type) <= MATRIX_TYPES.index(declared_type):
        # a type the matrix satisfies, though wider than the detected one, is the file's to keep
        return RegistrationMatrix(stored.matrix_lps, declared_type)
    return stored


def _matrix_type_problem(declared: object, stored: RegistrationMatrix) -> str | None:
    """How Frame of Reference Transformation Matrix Type (0070,030C) disagrees with the matrix, or None."""
    name = "Frame of Reference Transformation Matrix Type (0070,030C)"
    text = str(declared).strip() if declared is not None else ""
    if not text:
        return f"{name} is missing (Type 1)."
    if text.upper() not in MATRIX_TYPES:
        return f"{name} is {text!r}, none of {', '.join(MATRIX_TYPES)}."
    case = "" if text == text.upper() else f" (written {text!r}; the standard's term is {text.upper()})"
    if MATRIX_TYPES.index(stored.matrix_type) <= MATRIX_TYPES.index(text.upper()):
        return f"{name} is in lower case{case}." if case else None
    linear = stored.matrix_lps[:3, :3]
    why = "it mirrors (determinant < 0)" if np.linalg.det(linear) < 0 else "it scales or shears"
    if text.upper() == "RIGID" and np.linalg.det(linear) > 0:
        deviation = float(np.max(np.abs(linear.T @ linear - np.eye(3))))
        why = f"its 3x3 part deviates from a rotation by up to {deviation:.2g} (tolerance {ORTHONORMAL_TOLERANCE:g})"
    return f"The matrix is declared {text.upper()}{case} but is {stored.matrix_type}: {why}."


def _read_grid(item: Dataset, where: str) -> DisplacementGrid:
    orientation = _floats(item, "ImageOrientationPatient", "(0020,0037)", 6, where)
    origin = _floats(item, "ImagePositionPatient", "(0020,0032)", 3, where)
    spacing = _floats(item, "GridResolution", "(0064,0008)", 3, where)
    dimensions = _floats(item, "GridDimensions", "(0064,0007)", 3, where)
    if np.any(dimensions < 1) or np.any(dimensions != np.round(dimensions)):
        raise InvalidRegistrationError(
            f"{where}: Grid Dimensions (0064,0007) must be three whole numbers of 1 or more; got {dimensions.tolist()}."
        )
    n_i, n_j, n_k = (int(d) for d in dimensions)
    row, column = orientation[:3], orientation[3:]
    # Image Orientation (Patient) lists the i (row) then j (column) axis; k is row x column.
    direction = np.column_stack([row, column, np.cross(row, column)])
    vectors = _vector_grid_data(item, (n_k, n_j, n_i), where)
    return _wrap(lambda: DisplacementGrid(origin, direction, spacing, vectors), where)


def _vector_grid_data(item: Dataset, shape_kji: tuple[int, int, int], where: str) -> np.ndarray:
    if "VectorGridData" not in item:
        raise InvalidRegistrationError(f"{where}: Vector Grid Data (0064,0009) is missing.")
    data = item["VectorGridData"].value
    if isinstance(data, io.BufferedIOBase):
        # A dataset built in memory for writing may hold a stream; reading it is the only way in.
        data.seek(0)
        data = data.read()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidRegistrationError(
            f"{where}: Vector Grid Data (0064,0009) holds {type(data).__name__}, not the float32 bytes of VR OF."
        )
    expected = 12 * shape_kji[0] * shape_kji[1] * shape_kji[2]
    if memoryview(data).nbytes != expected:
        n_k, n_j, n_i = shape_kji
        raise InvalidRegistrationError(
            f"{where}: Vector Grid Data (0064,0009) has {memoryview(data).nbytes} bytes, but Grid Dimensions (0064,0007) "
            f"{n_i}x{n_j}x{n_k} need exactly 12 x {n_i * n_j * n_k} = {expected} bytes. The file is truncated "
            "or its grid dimensions are wrong."
        )
    # original_encoding is (implicit VR, little endian) as read; (None, None) for an in-memory dataset.
    if item.original_encoding[1] is False:
        return np.frombuffer(data, dtype=">f4").astype(np.float32).reshape(*shape_kji, 3)
    return np.frombuffer(data, dtype="<f4").reshape(*shape_kji, 3)


def _read_registration_type(item: Dataset, where: str) -> Code | None:
    sequence = item.get("RegistrationTypeCodeSequence")
    if sequence is None or len(sequence) == 0:
        return None
    if len(sequence) > 1:
        raise InvalidRegistrationError(
            f"{where}: Registration Type Code Sequence (0070,030D) holds {len(sequence)} items; at most one is allowed."
        )
    code = sequence[0]
    value = code.get("CodeValue") or code.get("LongCodeValue") or code.get("URNCodeValue")
    # Some writers (plastimatch) emit an empty item; it carries no information, like an empty sequence.
    if not value:
        return None
    return Code(
        str(value),
        str(code.get("CodingSchemeDesignator", "")),
        str(code.get("CodeMeaning", "")),
        scheme_version=code.get("CodingSchemeVersion") or None,
    )
