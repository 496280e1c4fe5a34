"""Image references: Referenced Image Sequence items and the Common Instance Reference module.

PS3.3 C.12.2: instances in the REG's own study are listed in Referenced Series Sequence; instances
of other studies in Studies Containing Other Referenced Instances Sequence; every instance
referenced anywhere in the object, once, and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydicom.dataset import Dataset

from DicomRegSaveLib.errors import InvalidRegistrationError
from DicomRegSaveLib.model import ImageReference


def referenced_image_item(reference: ImageReference) -> Dataset:
    """One Referenced Image Sequence item (SOP Class/Instance, frame and segment numbers when set)."""
    item = Dataset()
    item.ReferencedSOPClassUID = reference.sop_class_uid
    item.ReferencedSOPInstanceUID = reference.sop_instance_uid
    if reference.frame_numbers:
        item.ReferencedFrameNumber = list(reference.frame_numbers)
    if reference.segment_numbers:
        item.ReferencedSegmentNumber = list(reference.segment_numbers)
    return item


def _series_items(references: Sequence[ImageReference]) -> list[Dataset]:
    by_series: dict[str, list[ImageReference]] = {}
    for reference in references:
        by_series.setdefault(reference.series_instance_uid, []).append(reference)
    series_items = []
    for series_instance_uid, members in by_series.items():
        series = Dataset()
        series.SeriesInstanceUID = series_instance_uid
        instances = []
        for reference in members:
            instance = Dataset()
            instance.ReferencedSOPClassUID = reference.sop_class_uid
            instance.ReferencedSOPInstanceUID = reference.sop_instance_uid
            instances.append(instance)
        series.ReferencedInstanceSequence = instances
        series_items.append(series)
    return series_items


def common_instance_reference(
    references: Sequence[ImageReference], study_instance_uid: str
) -> tuple[list[Dataset], list[Dataset]]:
    """Split references by study into the two sequences of the Common Instance Reference module.

    Parameters
    ----------
    references:
        Every referenced instance, each once (see :attr:`Registration.referenced_images`).
    study_instance_uid:
        The REG object's own Study Instance UID.

    Returns
    -------
    (referenced_series_sequence, studies_containing_other_referenced_instances_sequence)
        Items for (0008,1115) and (0008,1200); either list may be empty, and then the sequence
        must be left out.

    Raises
    ------
    InvalidRegistrationError
        If a reference's series or study is unknown (read from a file that did not list it).
    """
    unlisted = [r.sop_instance_uid for r in references if r.series_instance_uid is None or r.study_instance_uid is None]
    if unlisted:
        raise InvalidRegistrationError(
            f"The series and study of referenced instance(s) {', '.join(unlisted)} are unknown (the file they were "
            "read from did not list them), so the Common Instance Reference module cannot be written."
        )
    in_study = [r for r in references if r.study_instance_uid == study_instance_uid]
    by_study: dict[str, list[ImageReference]] = {}
    for reference in references:
        if reference.study_instance_uid != study_instance_uid:
            by_study.setdefault(reference.study_instance_uid, []).append(reference)
    other_studies = []
    for other_study_uid, members in by_study.items():
        study = Dataset()
        study.StudyInstanceUID = other_study_uid
        study.ReferencedSeriesSequence = _series_items(members)
        other_studies.append(study)
    return _series_items(in_study), other_studies
