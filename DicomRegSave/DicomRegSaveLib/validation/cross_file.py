"""Checks of a registration against the image headers it references (``validate --images``).

:func:`check_against_images` compares what the REG records about each referenced instance (frame
of reference, SOP class, series, study) with the instance's own header, and the REG's patient and
study with the fixed images'. :func:`referenced_roles` tells which instances the REG references
and as what, so that instances not supplied are counted once, by role.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from pydicom.dataset import Dataset

from DicomRegSaveLib.validation.iod_rules import listed_instances, referenced_instances, registration_items
from DicomRegSaveLib.validation.report import ConformanceReport


def check_against_images(dataset: Dataset, images: Iterable[Dataset]) -> ConformanceReport:
    """Compare the registration with the headers of the images it should reference.

    Parameters
    ----------
    dataset:
        The REG object.
    images:
        Headers of the fixed and moving images (pydicom Datasets, pixel data not needed; messages
        name an image by its ``filename``, else its SOP Instance UID). Non-image objects are the
        caller's to leave out (:func:`file_walker.walk` tells them apart).

    Returns
    -------
    ConformanceReport
        Errors: a referenced image in another frame of reference than its item's Source FoR, a
        different SOP Class, series or study than the REG records, or another patient than the
        fixed images. Warnings: referenced instances not supplied (one warning counting them by
        role), supplied images that are not referenced, a REG outside the fixed images' study.
    """
    report = ConformanceReport()
    headers: dict[str, tuple[Dataset, str]] = {}
    for header in images:
        uid = header.get("SOPInstanceUID")
        if uid:
            headers.setdefault(str(uid), (header, str(getattr(header, "filename", None) or uid)))

    listed = {uid: entries[0] for uid, entries in listed_instances(dataset, ConformanceReport()).items()}
    referenced: set[str] = set()
    for where, source_frame, item in registration_items(dataset):
        for reference in item.get("ReferencedImageSequence") or ():
            uid = str(reference.get("ReferencedSOPInstanceUID"))
            referenced.add(uid)
            if uid not in headers:
                continue
            header, name = headers[uid]
            if header.get("FrameOfReferenceUID") != source_frame:
                report.error(
                    f"{where}: Source Frame of Reference UID {source_frame} differs from the Frame of Reference UID "
                    f"{header.get('FrameOfReferenceUID')} of referenced image {name}: the item would map into the "
                    "wrong frame."
                )
            if header.get("SOPClassUID") != reference.get("ReferencedSOPClassUID"):
                report.error(
                    f"{where}: Referenced SOP Class UID {reference.get('ReferencedSOPClassUID')} of {uid} differs "
                    f"from the image's SOP Class UID {header.get('SOPClassUID')} ({name})."
                )
            entry = listed.get(uid)
            if entry is not None and (
                entry.series_instance_uid != header.get("SeriesInstanceUID")
                or entry.study_instance_uid != header.get("StudyInstanceUID")
            ):
                report.error(
                    f"{entry.path}: lists {uid} in series {entry.series_instance_uid} of study "
                    f"{entry.study_instance_uid}, but image {name} is in series {header.get('SeriesInstanceUID')} "
                    f"of study {header.get('StudyInstanceUID')}."
                )
    missing = {uid: role for uid, role in referenced_roles(dataset).items() if uid not in headers}
    if missing:
        counts = Counter(missing.values())
        roles = [role for role in ("moving", "fixed", "other") if counts[role]]
        report.warning(
            f"{' and '.join(f'{counts[role]} {role}' for role in roles)} instance(s) referenced by the registration "
            f"were not supplied, so they were not checked against it (first: {next(iter(missing))}). "
            f"Give the {' and '.join(r for r in roles if r != 'other') or 'referenced'} series' files or folders "
            "to --images as well to check them."
        )
    # Fixed images need not be referenced (only the optional identity item lists them).
    registered_frame = dataset.get("FrameOfReferenceUID")
    unreferenced = [
        name
        for uid, (header, name) in headers.items()
        if uid not in referenced and header.get("FrameOfReferenceUID") != registered_frame
    ]
    if unreferenced:
        report.warning(
            f"{len(unreferenced)} supplied image(s) outside the registered frame of reference are not referenced "
            f"by the registration (first: {unreferenced[0]}); were they meant to be the moving images?"
        )
    _check_patient_and_study(dataset, [h for h, _ in headers.values()], report)
    return report


def referenced_roles(dataset: Dataset) -> dict[str, str]:
    """SOP Instance UID -> ``"moving"``, ``"fixed"`` or ``"other"`` for every instance the REG references.

    An instance in the Referenced Image Sequence of a registration item is moving, or fixed when
    the item's source frame is the registered frame (an identity item); one referenced only
    elsewhere (the Common Instance Reference module, other references) is other.
    """
    registered_frame = dataset.get("FrameOfReferenceUID")
    roles: dict[str, str] = {}
    for _, source_frame, item in registration_items(dataset):
        role = "fixed" if source_frame == registered_frame else "moving"
        for reference in item.get("ReferencedImageSequence") or ():
            roles.setdefault(str(reference.get("ReferencedSOPInstanceUID")), role)
    for uid, _, _ in referenced_instances(dataset):
        roles.setdefault(uid, "other")
    for uid in listed_instances(dataset, ConformanceReport()):
        roles.setdefault(uid, "other")
    return roles


def _check_patient_and_study(dataset: Dataset, headers: list[Dataset], report: ConformanceReport) -> None:
    registered_frame = dataset.get("FrameOfReferenceUID")
    fixed = [h for h in headers if h.get("FrameOfReferenceUID") == registered_frame]
    if not fixed:
        if headers:
            report.warning(
                f"None of the supplied images is in the registered frame of reference {registered_frame} (the "
                "fixed images); patient and study consistency was not checked."
            )
        return
    patient_ids = {str(h.get("PatientID", "")) for h in fixed}
    if str(dataset.get("PatientID", "")) not in patient_ids or len(patient_ids) > 1:
        report.error(
            f"Patient ID (0010,0020) {dataset.get('PatientID')!r} of the registration differs from the fixed "
            f"images' Patient ID {sorted(patient_ids)}; the registration must belong to the fixed image's patient."
        )
    names = {str(h.get("PatientName", "")) for h in fixed}
    if str(dataset.get("PatientName", "")) not in names:
        report.warning(
            f"Patient's Name (0010,0010) {str(dataset.get('PatientName', ''))!r} differs from the fixed images' "
            f"{sorted(names)}."
        )
    studies = {h.get("StudyInstanceUID") for h in fixed}
    if dataset.get("StudyInstanceUID") not in studies:
        report.warning(
            f"The registration's Study Instance UID {dataset.get('StudyInstanceUID')} is not the fixed images' "
            f"study {sorted(studies)}; receivers look for the registration in the fixed image's study."
        )
