"""The rules of the Spatial Registration (66.1) and Deformable Spatial Registration (66.3) IODs that
the validator ``dciodvfy`` does not check (dicom-reg-spec.md §4, §5 and §7).

:func:`check_dataset` checks grid encoding, matrix types, code sequences, UIDs, every value against
its VR and attribute rules, the file meta information and the Common Instance Reference split by
study. :func:`registration_items` and :func:`listed_instances` walk the object's references for
the cross-file checks too.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    DeformableSpatialRegistrationStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SpatialRegistrationStorage,
)

from DicomRegSaveLib import geometry
from DicomRegSaveLib.errors import InvalidRegistrationError, require_type
from DicomRegSaveLib.model import grid_point_ijk, vector_kinds
from DicomRegSaveLib.reg.vector_grid_data import VectorGridBuffer, vector_chunks
from DicomRegSaveLib.validation.report import ConformanceReport
from DicomRegSaveLib.values import problem_content_label, problem_for_attribute, uses_code_extensions

#: Sequences whose items reference objects that are not composite instances of a series
#: (procedure steps, studies, patients, visits): they do not belong in Common Instance Reference.
_NON_INSTANCE_REFERENCE_SEQUENCES = {
    "ReferencedPerformedProcedureStepSequence",
    "ReferencedStudySequence",
    "ReferencedPatientSequence",
    "ReferencedVisitSequence",
}
_COMMON_INSTANCE_REFERENCE_SEQUENCES = {"ReferencedSeriesSequence", "StudiesContainingOtherReferencedInstancesSequence"}

_ENHANCED_GENERAL_EQUIPMENT = (
    ("Manufacturer", "(0008,0070)"),
    ("ManufacturerModelName", "(0008,1090)"),
    ("DeviceSerialNumber", "(0018,1000)"),
    ("SoftwareVersions", "(0018,1020)"),
)


def check_dataset(dataset: Dataset) -> ConformanceReport:
    """Check a (Deformable) Spatial Registration dataset against the rules dciodvfy does not check.

    Parameters
    ----------
    dataset:
        The REG object, in memory (as built by the writer) or read from a file
        (:func:`reader.read_dataset` avoids a copy of Vector Grid Data).

    Returns
    -------
    ConformanceReport
        Errors for violations of the standard (PS3.3 A.39.1, A.39.2, C.20.2, C.20.3, C.12.2, PS3.5),
        warnings for legal but risky encodings.
    """
    require_type("dataset", dataset, Dataset)
    report = ConformanceReport()
    _check_identity(dataset, report)
    _check_equipment_and_label(dataset, report)
    if dataset.get("SOPClassUID") == SpatialRegistrationStorage:
        _check_spatial_registration_sequence(dataset, report)
    else:
        _check_registration_sequence(dataset, report)
    _check_common_instance_reference(dataset, report)
    _check_values(dataset, "", report)
    _check_file_meta(dataset, report)
    return report


def _where(keyword: str, index: int | None = None) -> str:
    tag = Tag(keyword)
    text = f"{keyword} ({tag.group:04X},{tag.element:04X})"
    return text if index is None else f"{text} item {index}"


def _is_empty(value: object) -> bool:
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (
            not isinstance(value, (bytes, bytearray, memoryview, io.IOBase))
            and hasattr(value, "__len__")
            and len(value) == 0
        )
    )


def _check_identity(dataset: Dataset, report: ConformanceReport) -> None:
    sop_class_uid = dataset.get("SOPClassUID")
    if sop_class_uid not in (SpatialRegistrationStorage, DeformableSpatialRegistrationStorage):
        report.error(
            f"SOP Class UID (0008,0016) is {sop_class_uid!r}; a Spatial Registration must be "
            f"{SpatialRegistrationStorage}, a Deformable Spatial Registration "
            f"{DeformableSpatialRegistrationStorage}."
        )
    if dataset.get("Modality") != "REG":
        report.error(f"Modality (0008,0060) is {dataset.get('Modality')!r}; a spatial registration must be 'REG'.")
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        if _is_empty(dataset.get(keyword)):
            report.error(f"{_where(keyword)} is missing or empty (Type 1).")


def _check_equipment_and_label(dataset: Dataset, report: ConformanceReport) -> None:
    # Only the deformable IOD has Enhanced General Equipment; in a 66.1 these are Type 2/3.
    enhanced = dataset.get("SOPClassUID") != SpatialRegistrationStorage
    for keyword, tag in _ENHANCED_GENERAL_EQUIPMENT if enhanced else ():
        if _is_empty(dataset.get(keyword)):
            report.error(
                f"{keyword} {tag} is missing or empty; the Enhanced General Equipment module requires it "
                "(Type 1), describing the software that created the registration."
            )
    # A present label's value is checked with every other value (_check_values), so only absence is told here.
    label = dataset.get("ContentLabel")
    if _is_empty(label):
        report.error(f"Content Label (0070,0080): {problem_content_label('')}.")


def _check_registration_sequence(dataset: Dataset, report: ConformanceReport) -> None:
    sequence = dataset.get("DeformableRegistrationSequence")
    if not sequence:
        report.error(
            "Deformable Registration Sequence (0064,0002) is missing or empty; it needs at least one item "
            "with a Deformable Registration Grid Sequence (0064,0005)."
        )
        return
    registered_frame = dataset.get("FrameOfReferenceUID")
    has_grid = False
    for number, item in enumerate(sequence, start=1):
        where = _where("DeformableRegistrationSequence", number)
        source_frame = item.get("SourceFrameOfReferenceUID")
        if _is_empty(source_frame):
            report.error(f"{where}: Source Frame of Reference UID (0064,0003) is missing or empty (Type 1).")
        grid = _single_item(item, "DeformableRegistrationGridSequence", where, report)
        if grid is not None:
            has_grid = True
            _check_grid(grid, f"{where} > {_where('DeformableRegistrationGridSequence', 1)}", report)
        for keyword in ("PreDeformationMatrixRegistrationSequence", "PostDeformationMatrixRegistrationSequence"):
            matrix_item = _single_item(item, keyword, where, report)
            if matrix_item is not None:
                _check_matrix(matrix_item, f"{where} > {_where(keyword, 1)}", report)
        _check_registration_type(item, where, report)
        _check_referenced_images(item, where, grid is not None and source_frame == registered_frame, report)
    if not has_grid:
        report.error(
            "No Deformable Registration Sequence (0064,0002) item has a Deformable Registration Grid "
            "Sequence (0064,0005); a deformable registration needs at least one displacement grid."
        )


def _check_referenced_images(item: Dataset, where: str, required: bool, report: ConformanceReport) -> None:
    """Referenced Image Sequence items complete; `required` when the item maps within the registered frame."""
    references = item.get("ReferencedImageSequence")
    if required and not references:
        report.error(
            f"{where}: the item's source frame of reference equals the registered frame (0020,0052) and the "
            "item is not an identity, so the Referenced Image Sequence (0008,1140) is required to tell the "
            "moving images from the fixed ones; it is missing."
        )
    for ref_number, reference in enumerate(references or (), start=1):
        for keyword in ("ReferencedSOPClassUID", "ReferencedSOPInstanceUID"):
            if _is_empty(reference.get(keyword)):
                report.error(
                    f"{where} > {_where('ReferencedImageSequence', ref_number)}: {_where(keyword)} is missing."
                )


def _check_spatial_registration_sequence(dataset: Dataset, report: ConformanceReport) -> None:
    """The Registration Sequence of a 66.1 (C.20.2): source frame, one Matrix Registration item, matrices."""
    sequence = dataset.get("RegistrationSequence")
    if not sequence:
        report.error(
            "Registration Sequence (0070,0308) is missing or empty; a Spatial Registration needs at least one item "
            "with a Matrix Registration Sequence (0070,0309)."
        )
        return
    registered_frame = dataset.get("FrameOfReferenceUID")
    for number, item in enumerate(sequence, start=1):
        where = _where("RegistrationSequence", number)
        source_frame = item.get("FrameOfReferenceUID")
        if _is_empty(source_frame):
            report.warning(
                f"{where}: Frame of Reference UID (0020,0052) is absent, so the item names no source frame of "
                "reference; receivers cannot map a moving image with it."
            )
        matrix_registration = _single_item(item, "MatrixRegistrationSequence", where, report)
        if matrix_registration is None:
            report.error(f"{where}: Matrix Registration Sequence (0070,0309) is missing (Type 1).")
            continue
        registration_where = f"{where} > {_where('MatrixRegistrationSequence', 1)}"
        matrices = matrix_registration.get("MatrixSequence")
        if not matrices:
            report.error(f"{registration_where}: Matrix Sequence (0070,030A) is missing or empty (Type 1).")
        for matrix_number, matrix_item in enumerate(matrices or (), start=1):
            _check_matrix(matrix_item, f"{registration_where} > {_where('MatrixSequence', matrix_number)}", report)
        identity = bool(matrices) and all(_is_identity_matrix(m) for m in matrices)
        _check_registration_type(matrix_registration, registration_where, report)
        _check_referenced_images(item, where, not identity and source_frame == registered_frame, report)


def _is_identity_matrix(matrix_item: Dataset) -> bool:
    values = matrix_item.get("FrameOfReferenceTransformationMatrix")
    try:
        return values is not None and np.array_equal([float(v) for v in values], np.eye(4).ravel())
    except (TypeError, ValueError):
        return False


def _single_item(dataset: Dataset, keyword: str, where: str, report: ConformanceReport) -> Dataset | None:
    if keyword not in dataset:
        return None
    sequence = dataset[keyword].value
    if len(sequence) != 1:
        report.error(f"{where}: {_where(keyword)} holds {len(sequence)} items; it must hold exactly one.")
    return sequence[0] if len(sequence) else None


def _numbers(dataset: Dataset, keyword: str, count: int, where: str, report: ConformanceReport) -> np.ndarray | None:
    """The values of a numeric attribute with exactly `count` finite values, else an error and None."""
    if keyword not in dataset or _is_empty(dataset[keyword].value):
        report.error(f"{where}: {_where(keyword)} is missing or empty.")
        return None
    value = dataset[keyword].value
    values = list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
    try:
        numbers = np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        report.error(f"{where}: {_where(keyword)} holds non-numeric values {values!r}.")
        return None
    if numbers.shape != (count,):
        report.error(
            f"{where}: {_where(keyword)} must have exactly {count} values (VM {count}); it has {len(numbers)}."
        )
        return None
    if not np.all(np.isfinite(numbers)):
        report.error(f"{where}: {_where(keyword)} holds non-finite values {numbers.tolist()}.")
        return None
    return numbers


def _check_grid(grid: Dataset, where: str, report: ConformanceReport) -> None:
    orientation = _numbers(grid, "ImageOrientationPatient", 6, where, report)
    if orientation is not None:
        row, column = orientation[:3], orientation[3:]
        tolerance = geometry.ORTHONORMAL_TOLERANCE
        if abs(np.linalg.norm(row) - 1) > tolerance or abs(np.linalg.norm(column) - 1) > tolerance:
            report.error(
                f"{where}: Image Orientation (Patient) (0020,0037) row and column must be unit vectors; their "
                f"lengths are {np.linalg.norm(row):.6g} and {np.linalg.norm(column):.6g}."
            )
        if abs(float(row @ column)) > tolerance:
            report.error(
                f"{where}: Image Orientation (Patient) (0020,0037) row and column must be orthogonal; their dot "
                f"product is {float(row @ column):.6g}."
            )
    _numbers(grid, "ImagePositionPatient", 3, where, report)
    dimensions = _numbers(grid, "GridDimensions", 3, where, report)
    if dimensions is not None and (np.any(dimensions < 1) or np.any(dimensions != np.round(dimensions))):
        report.error(
            f"{where}: Grid Dimensions (0064,0007) must be 3 whole numbers of 1 or more; got {dimensions.tolist()}."
        )
        dimensions = None
    resolution = _numbers(grid, "GridResolution", 3, where, report)
    if resolution is not None and np.any(resolution <= 0):
        report.error(
            f"{where}: Grid Resolution (0064,0008) must be 3 positive spacings in mm; got {resolution.tolist()}."
        )
    if "VectorGridData" not in grid:
        report.error(f"{where}: Vector Grid Data (0064,0009) is missing.")
        return
    element = grid["VectorGridData"]
    if element.VR != "OF":
        report.error(
            f"{where}: Vector Grid Data (0064,0009) has VR {element.VR}; the standard requires OF "
            "(32-bit float). Re-encode it as OF."
        )
    if dimensions is None:
        return
    n_i, n_j, n_k = (int(d) for d in dimensions)
    expected = 12 * n_i * n_j * n_k
    length = _value_length(element.value)
    if length != expected:
        report.error(
            f"{where}: Vector Grid Data (0064,0009) has {length} bytes, but Grid Dimensions (0064,0007) "
            f"{n_i}x{n_j}x{n_k} require exactly 12 x {n_i * n_j * n_k} = {expected} bytes."
        )
        return
    if isinstance(element.value, VectorGridBuffer):
        # A field about to be written is checked plane by plane as it is written
        # (VectorGridBuffer.write_to), so that it is read once, not once here and once there.
        return
    big_endian = grid.original_encoding[1] is False
    _check_vector_values(element.value, (n_i, n_j), big_endian, where, report)


def _value_length(value: object) -> int:
    if isinstance(value, io.IOBase):
        position = value.tell()
        length = value.seek(0, os.SEEK_END)
        value.seek(position)
        return length
    if value is None:
        return 0
    return memoryview(value).nbytes


def _check_vector_values(
    value: object, dimensions_ij: tuple[int, int], big_endian: bool, where: str, report: ConformanceReport
) -> None:
    n_i, n_j = dimensions_ij
    partial = infinite = undefined = total = 0
    first_bad: tuple[int, list[float]] | None = None
    for start, triples in vector_chunks(value, big_endian):
        total += len(triples)
        if np.isfinite(triples).all():
            continue
        is_partial, is_infinite, is_undefined = vector_kinds(triples)
        partial += int(is_partial.sum())
        infinite += int(is_infinite.sum())
        undefined += int(is_undefined.sum())
        bad = np.flatnonzero(is_partial | is_infinite)
        if first_bad is None and bad.size:
            first_bad = (start + int(bad[0]), triples[bad[0]].tolist())
    if first_bad is not None:
        voxel, vector = first_bad
        i, j, k = grid_point_ijk(voxel, n_i, n_j)
        report.error(
            f"{where}: Vector Grid Data (0064,0009) has {partial} partly-NaN and {infinite} infinite vector(s), "
            f"the first at grid point (i={i}, j={j}, k={k}): {vector}. Vectors must be finite, or NaN in all "
            "three components to mark a point as undefined."
        )
    if total and undefined == total:
        report.warning(f"{where}: every vector of Vector Grid Data (0064,0009) is NaN (undefined everywhere).")


def _check_matrix(item: Dataset, where: str, report: ConformanceReport) -> None:
    values = _numbers(item, "FrameOfReferenceTransformationMatrix", 16, where, report)
    matrix_type = item.get("FrameOfReferenceTransformationMatrixType")
    if _is_empty(matrix_type):
        report.error(f"{where}: Frame of Reference Transformation Matrix Type (0070,030C) is missing (Type 1).")
    elif matrix_type not in geometry.MATRIX_TYPES:
        report.error(
            f"{where}: Frame of Reference Transformation Matrix Type (0070,030C) is {matrix_type!r}; "
            f"use one of {', '.join(geometry.MATRIX_TYPES)}."
        )
    if values is None:
        return
    try:
        if matrix_type in geometry.MATRIX_TYPES:
            geometry.check_matrix_type(values.reshape(4, 4), matrix_type)
        else:
            geometry.classify_matrix(values.reshape(4, 4))
    except InvalidRegistrationError as exc:
        report.error(f"{where}: Frame of Reference Transformation Matrix (3006,00C6): {exc}")


def _check_registration_type(item: Dataset, where: str, report: ConformanceReport) -> None:
    if "RegistrationTypeCodeSequence" not in item:
        report.error(
            f"{where}: Registration Type Code Sequence (0070,030D) is missing; it is Type 2 "
            "(present, with zero or one item)."
        )
        return
    codes = item.RegistrationTypeCodeSequence
    if len(codes) > 1:
        report.error(
            f"{where}: Registration Type Code Sequence (0070,030D) holds {len(codes)} items; at most one is allowed."
        )
    for number, code in enumerate(codes, start=1):
        value = code.get("CodeValue") or code.get("LongCodeValue") or code.get("URNCodeValue")
        missing = [
            name
            for name, present in (
                ("Code Value (0008,0100)", value),
                ("Coding Scheme Designator (0008,0102)", code.get("CodingSchemeDesignator")),
                ("Code Meaning (0008,0104)", code.get("CodeMeaning")),
            )
            if _is_empty(present)
        ]
        if missing:
            report.error(
                f"{where} > {_where('RegistrationTypeCodeSequence', number)} lacks {', '.join(missing)}; "
                "write a complete CID 7100 code (e.g. 125024, DCM, Image Content-based Alignment) or leave "
                "the sequence empty, never an empty item."
            )


# Common Instance Reference -----------------------------------------------------------------------------


def registration_items(dataset: Dataset) -> Iterator[tuple[str, object, Dataset]]:
    """(where, source Frame of Reference UID, item) of every registration item, 66.1 or 66.3."""
    if dataset.get("SOPClassUID") == SpatialRegistrationStorage:
        keyword, source_keyword = "RegistrationSequence", "FrameOfReferenceUID"
    else:
        keyword, source_keyword = "DeformableRegistrationSequence", "SourceFrameOfReferenceUID"
    for number, item in enumerate(dataset.get(keyword) or (), start=1):
        yield _where(keyword, number), item.get(source_keyword), item


def referenced_instances(dataset: Dataset, path: str = "") -> Iterator[tuple[str, str | None, str]]:
    """(SOP Instance UID, SOP Class UID, attribute path) of every instance referenced outside the CIR module."""
    for element in dataset:
        if element.VR != "SQ":
            continue
        keyword = element.keyword
        if keyword in _NON_INSTANCE_REFERENCE_SEQUENCES or (
            not path and keyword in _COMMON_INSTANCE_REFERENCE_SEQUENCES
        ):
            continue
        for number, item in enumerate(element.value, start=1):
            item_path = f"{path}{keyword}[{number}]"
            instance_uid = item.get("ReferencedSOPInstanceUID")
            if instance_uid:
                yield str(instance_uid), item.get("ReferencedSOPClassUID"), item_path
            yield from referenced_instances(item, item_path + ".")


@dataclass
class ListedInstance:
    """One entry of an instance in the Common Instance Reference module: its study, series, SOP
    class and the attribute path of the entry."""

    study_instance_uid: str
    series_instance_uid: str
    sop_class_uid: str | None
    path: str


def listed_instances(dataset: Dataset, report: ConformanceReport) -> dict[str, list[ListedInstance]]:
    """SOP Instance UID -> its entries in Referenced Series / Studies Containing Other Referenced Instances."""
    own_study = dataset.get("StudyInstanceUID")
    listed: dict[str, list[ListedInstance]] = {}
    series_study: dict[str, str] = {}

    def add_series(sequence: Sequence[Dataset], study_uid: str, path: str) -> None:
        if len(sequence) == 0:
            report.error(f"{path} is present but empty; remove it or list the referenced series in it.")
        for number, series in enumerate(sequence, start=1):
            series_path = f"{path}[{number}]"
            series_uid = series.get("SeriesInstanceUID")
            if _is_empty(series_uid):
                report.error(f"{series_path}: Series Instance UID (0020,000E) is missing.")
                continue
            if series_uid in series_study:
                report.error(
                    f"{series_path}: series {series_uid} is listed more than once; list each series once, "
                    "with all its referenced instances."
                )
            series_study.setdefault(series_uid, study_uid)
            instances = series.get("ReferencedInstanceSequence")
            if not instances:
                report.error(f"{series_path}: Referenced Instance Sequence (0008,114A) is missing or empty.")
            for instance_number, instance in enumerate(instances or (), start=1):
                instance_uid = instance.get("ReferencedSOPInstanceUID")
                if _is_empty(instance_uid):
                    report.error(
                        f"{series_path}.ReferencedInstanceSequence[{instance_number}]: Referenced SOP Instance UID is missing."
                    )
                    continue
                listed.setdefault(str(instance_uid), []).append(
                    ListedInstance(
                        study_uid,
                        str(series_uid),
                        instance.get("ReferencedSOPClassUID"),
                        f"{series_path}.ReferencedInstanceSequence[{instance_number}]",
                    )
                )

    if "ReferencedSeriesSequence" in dataset:
        add_series(dataset.ReferencedSeriesSequence, own_study, "ReferencedSeriesSequence (0008,1115)")
    if "StudiesContainingOtherReferencedInstancesSequence" in dataset:
        studies = dataset.StudiesContainingOtherReferencedInstancesSequence
        path = "StudiesContainingOtherReferencedInstancesSequence (0008,1200)"
        if len(studies) == 0:
            report.error(f"{path} is present but empty; remove it or list the other studies in it.")
        seen_studies: set[str] = set()
        for number, study in enumerate(studies, start=1):
            study_path = f"{path}[{number}]"
            study_uid = study.get("StudyInstanceUID")
            if _is_empty(study_uid):
                report.error(f"{study_path}: Study Instance UID (0020,000D) is missing.")
                continue
            if study_uid == own_study:
                report.error(
                    f"{study_path}: study {study_uid} is the registration's own study; its series belong in "
                    "the top-level Referenced Series Sequence (0008,1115), not among other studies."
                )
            if study_uid in seen_studies:
                report.error(f"{study_path}: study {study_uid} is listed more than once.")
            seen_studies.add(study_uid)
            add_series(
                study.get("ReferencedSeriesSequence") or [], str(study_uid), f"{study_path}.ReferencedSeriesSequence"
            )
    return listed


def _check_common_instance_reference(dataset: Dataset, report: ConformanceReport) -> None:
    listed = listed_instances(dataset, report)
    referenced: dict[str, tuple[str | None, str]] = {}
    for instance_uid, sop_class_uid, path in referenced_instances(dataset):
        referenced.setdefault(instance_uid, (sop_class_uid, path))
    for instance_uid, (sop_class_uid, path) in referenced.items():
        entries = listed.get(instance_uid, [])
        if not entries:
            report.error(
                f"{path} references instance {instance_uid}, which is not listed in the Common Instance "
                "Reference module: list it under Referenced Series Sequence (0008,1115) if it is in the "
                "registration's study, else under Studies Containing Other Referenced Instances Sequence (0008,1200)."
            )
            continue
        if len(entries) > 1:
            report.error(
                f"Instance {instance_uid} is listed {len(entries)} times in the Common Instance Reference "
                f"module ({'; '.join(e.path for e in entries)}); list it exactly once."
            )
        for entry in entries:
            if sop_class_uid and entry.sop_class_uid and entry.sop_class_uid != sop_class_uid:
                report.error(
                    f"{entry.path}: Referenced SOP Class UID {entry.sop_class_uid} differs from {sop_class_uid} "
                    f"given for the same instance at {path}."
                )
    for instance_uid, entries in listed.items():
        if instance_uid not in referenced:
            report.error(
                f"{entries[0].path} lists instance {instance_uid}, which nothing else in the registration "
                "references; the Common Instance Reference module must list exactly the referenced instances."
            )


# Values everywhere ---------------------------------------------------------------------------------------


def _check_values(dataset: Dataset, path: str, report: ConformanceReport, code_extensions: bool | None = None) -> None:
    """Every value, in the dataset and every nested item, against its VR, multiplicity and
    attribute rules (:func:`values.problem_for_attribute`, the checks the writer applies too)."""
    if code_extensions is None:
        code_extensions = uses_code_extensions(dataset)
    for element in dataset:
        where = f"{path}{element.keyword or element.tag} ({element.tag.group:04X},{element.tag.element:04X})"
        if element.VR == "SQ":
            for number, item in enumerate(element.value, start=1):
                _check_values(item, f"{path}{element.keyword}[{number}].", report, code_extensions)
            continue
        keyword = element.keyword if not element.tag.is_private else ""
        problem = problem_for_attribute(keyword or element.tag, element.value, element.VR, code_extensions)
        if problem is not None:
            report.error(f"{where}: {problem}.")


def _check_file_meta(dataset: Dataset, report: ConformanceReport) -> None:
    file_meta = getattr(dataset, "file_meta", None)
    if file_meta is None or len(file_meta) == 0:
        return
    transfer_syntax = file_meta.get("TransferSyntaxUID")
    if transfer_syntax in (ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian):
        report.warning(
            f"Transfer Syntax UID (0002,0010) is {transfer_syntax}; Explicit VR Little Endian "
            f"({ExplicitVRLittleEndian}) is what receivers and validators handle best (it records OF as OF)."
        )
    elif transfer_syntax != ExplicitVRLittleEndian:
        report.error(
            f"Transfer Syntax UID (0002,0010) is {transfer_syntax!r}; write the registration with Explicit VR "
            f"Little Endian ({ExplicitVRLittleEndian})."
        )
    for meta_keyword, keyword in (
        ("MediaStorageSOPClassUID", "SOPClassUID"),
        ("MediaStorageSOPInstanceUID", "SOPInstanceUID"),
    ):
        if file_meta.get(meta_keyword) != dataset.get(keyword):
            report.error(
                f"File meta {_where(meta_keyword)} is {file_meta.get(meta_keyword)!r} but the dataset's "
                f"{_where(keyword)} is {dataset.get(keyword)!r}; they must be equal."
            )
