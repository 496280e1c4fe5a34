"""The image series of a volume loaded from DICOM, found by its SOP Instance UIDs.

Slicer knows a loaded volume by the SOP Instance UIDs of its instances (the ``DICOM.instanceUIDs``
attribute) and finds each instance's file in its DICOM database
(``slicer.dicomDatabase.fileForInstance``). A :data:`HeaderLookup` is that question as a callable,
so that the engine never reaches for the database itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pydicom.dataset import Dataset

from DicomRegSaveLib.dicom_file import read_dicom_file
from DicomRegSaveLib.errors import DicomInputError, MalformedDicomError
from DicomRegSaveLib.inputs.series import INSTANCE_TAGS, ImageSeries, series_from_headers

#: SOP Instance UID -> the instance's pydicom header, or the path of its file (str or Path);
#: ``None`` or ``""`` when the instance is unknown.
HeaderLookup = Callable[[str], "Dataset | str | Path | None"]


def series_from_instance_uids(uids: str | Sequence[str], lookup: HeaderLookup, role: str) -> ImageSeries:
    """Build the series of the instances that a volume was loaded from.

    Parameters
    ----------
    uids:
        SOP Instance UIDs, as a sequence or as one space-separated string (Slicer's
        ``DICOM.instanceUIDs`` volume attribute). Repeats (one per frame) are kept once.
    lookup:
        SOP Instance UID -> pydicom header, or path of the file (str or Path); ``None`` or ``""``
        when the instance is unknown (``slicer.dicomDatabase.fileForInstance`` returns ``""``).
    role:
        ``"fixed"`` or ``"moving"``, used in messages.

    Raises
    ------
    DicomInputError
        If no UIDs are given, an instance cannot be found or read, or the instances are not one
        consistent image series.
    """
    uid_list = uids.split() if isinstance(uids, str) else [str(u).strip() for u in uids]
    uid_list = list(dict.fromkeys(u for u in uid_list if u))
    if not uid_list:
        raise DicomInputError(
            f"The {role} volume has no DICOM instance UIDs; it was not loaded from DICOM. "
            f"Load the {role} image from the DICOM database or pass its DICOM files."
        )
    headers: list[Dataset] = []
    paths: list[Path | None] = []
    missing: list[str] = []
    for uid in uid_list:
        found = lookup(uid)
        if found is None or (isinstance(found, str) and not found.strip()):
            missing.append(uid)
            continue
        if isinstance(found, Dataset):
            filename = getattr(found, "filename", None)
            headers.append(found)
            paths.append(Path(filename) if isinstance(filename, (str, Path)) and filename else None)
            continue
        path = Path(found)
        try:
            headers.append(read_dicom_file(path, stop_before_pixels=True, decode_tags=INSTANCE_TAGS))
        except MalformedDicomError as exc:
            raise DicomInputError(
                f"The {role} image instance {uid}: {exc} Check that the file exists and is a DICOM file."
            ) from exc
        paths.append(path)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise DicomInputError(
            f"{len(missing)} of the {len(uid_list)} {role} image instances were not found: {shown}. "
            f"Import the {role} image series into the DICOM database (or pass its folder)."
        )
    known_paths = paths if all(p is not None for p in paths) else None
    return series_from_headers(headers, role, known_paths)
