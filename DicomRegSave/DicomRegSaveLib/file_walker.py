"""The one file walker: which DICOM instances the files and folders a user names hold.

Every command that takes DICOM files or folders finds its instances here, so that one folder
yields the same instances everywhere: ``export --fixed/--moving`` (and each ``batch`` row, which is
an export), ``validate --images`` and ``send``. It lies in the ground, beside :mod:`dicom_file`
whose reader it uses, because both ``inputs`` and ``validation`` (peers in the layering) need it.

Rules, the same for every use
-----------------------------
* A folder is searched recursively; its files are taken in sorted path order, after the files and
  folders named before it.
* A file reached twice counts once: a path given twice, a file named besides its folder, a symbolic
  or hard link to a file already found. Files are told apart by device and inode; the first path
  that reaches a file is the one reported.
* A file is DICOM when it is a Part 10 file (128-byte preamble, ``DICM``, file meta information) or
  a bare data set written without them (as some scanners and PACS exports do), provided it has a
  valid SOP Class and SOP Instance UID. Both are read by :func:`dicom_file.read_dicom_file`.
* A DICOMDIR (Media Storage Directory) is an index of files, not an instance: skipped.
* A file that is not DICOM is skipped when it was found in a folder (notes, README, scanner logs);
  it is a problem when the user named it, or when its name ends in ``.dcm``.
* A DICOM file that cannot be read (truncated, an element that cannot be decoded, no valid UIDs)
  is a problem.

What each use takes
-------------------
* export (:func:`inputs.series.read_image_series`): the image instances (:func:`is_image`). Other
  objects (RTSTRUCT, RTPLAN, REG, SR, SEG, ...) are left out without a note, since an image folder
  holding them is normal and nothing of theirs is used; they are named when no image is found.
  Problems stop the export.
* validate --images (:func:`validation.validate.validate_file`): the image instances. Non-image
  objects are left out with one warning that counts them by kind (the user asked to check images
  against the REG); problems are errors.
* send (:func:`cli.network.send_files`): every instance, images or not (a REG, an RTSTRUCT: what
  the user names is what is sent). Skipped files and problems get a line each.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MediaStorageDirectoryStorage,
    SegmentationStorage,
)

from DicomRegSaveLib.dicom_file import read_dicom_file
from DicomRegSaveLib.errors import DicomInputError, MalformedDicomError, NotDicomError, require_type
from DicomRegSaveLib.progress import Progress, ignore_progress
from DicomRegSaveLib.values import problem_uid

#: SOP classes that carry image geometry and pixels but label other images rather than being images
#: to register: Segmentation and Label Map Segmentation Storage (the latter is new in the standard
#: and not yet in pydicom.uid).
SEGMENTATION_SOP_CLASS_UIDS = frozenset({SegmentationStorage, "1.2.840.10008.5.1.4.1.1.66.7"})

#: Why a DICOMDIR found among the files is not taken.
DICOMDIR_REASON = "a DICOMDIR is an index of files, not an instance"
#: Why a file that is not DICOM is not taken.
NOT_DICOM_REASON = "not a DICOM file"


@dataclass(frozen=True)
class Instance:
    """One DICOM instance found by :func:`walk`.

    Attributes
    ----------
    path:
        The file, as the user's path reached it.
    header:
        Its data set, read without pixel data (only the elements asked for are decoded).
    """

    path: Path
    header: Dataset

    @property
    def sop_class_uid(self) -> str:
        return str(self.header.SOPClassUID)

    @property
    def sop_instance_uid(self) -> str:
        return str(self.header.SOPInstanceUID)

    @property
    def kind(self) -> str:
        """What the object is, for messages: its Modality (``CT``, ``RTSTRUCT``, ``REG``), else its SOP class."""
        modality = str(self.header.get("Modality", "") or "").strip()
        if modality:
            return modality
        name = self.header.SOPClassUID.name
        return name if name and name != self.sop_class_uid else f"SOP class {self.sop_class_uid}"

    @property
    def transfer_syntax_uid(self) -> str:
        """The file's transfer syntax: its file meta information's, or for a bare data set the
        encoding it was read in (implicit or explicit VR, little or big endian)."""
        meta = getattr(self.header, "file_meta", None)
        if meta is not None and meta.get("TransferSyntaxUID"):
            return str(meta.TransferSyntaxUID)
        implicit, little = self.header.original_encoding
        if implicit:
            return ImplicitVRLittleEndian
        return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


@dataclass(frozen=True)
class PassedOver:
    """A file that is not taken (``skipped``) or cannot be (a problem), and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class FileWalk:
    """What :func:`walk` found, each file in exactly one list, in walking order."""

    instances: list[Instance] = field(default_factory=list)
    skipped: list[PassedOver] = field(default_factory=list)
    problems: list[PassedOver] = field(default_factory=list)

    def images(self) -> list[Instance]:
        """The instances that are images with patient geometry (:func:`is_image`)."""
        return [instance for instance in self.instances if is_image(instance.header)]

    def non_images(self) -> list[Instance]:
        """The other instances: RTSTRUCT, RTPLAN, REG, SR, SEG, ..."""
        return [instance for instance in self.instances if not is_image(instance.header)]

    def non_image_counts(self) -> str:
        """The non-image instances counted by kind, e.g. ``1 RTSTRUCT, 2 REG``; empty if there are none."""
        counts = Counter(instance.kind for instance in self.non_images())
        return ", ".join(f"{n} {kind}" for kind, n in counts.items())


def files_under(paths: Iterable[str | os.PathLike], progress: Progress | None = None) -> list[Path]:
    """The files named and the files in named folders (recursively, sorted), each file once.

    A path that does not exist is listed as given (callers that need it check existence first).
    `progress` is told the number of files found so far in each folder (fraction 0: the total is
    not known before the end).
    """
    report = progress or ignore_progress
    files: dict[object, Path] = {}
    for path in map(Path, paths):
        found = [path]
        if path.is_dir():
            found = []
            for candidate in path.rglob("*"):
                if candidate.is_file():
                    found.append(candidate)
                    report(0.0, f"Scanning {path}: {len(found)} files")
            found.sort()
        for file in found:
            files.setdefault(_identity(file), file)
    return list(files.values())


def walk(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    what: str,
    *,
    decode_tags: Collection[int] | None = None,
    exclude: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> FileWalk:
    """Find the DICOM instances in files and folders, by the rules of this module.

    Parameters
    ----------
    paths:
        Files and folders, as the user gave them.
    what:
        What the paths are, for the message about a missing one: ``"fixed image path"``,
        ``"image path"``, ``"path to send"``.
    decode_tags:
        Decode only these elements of each header (see :func:`dicom_file.read_dicom_file`);
        ``None`` decodes every element before the pixel data.
    exclude:
        A file not to take even if a folder holds it (the REG being validated among its images).
    progress:
        Told the files found while the folders are listed (fraction 0), then the part of them read.

    Raises
    ------
    DicomInputError
        If a path does not exist.
    """
    path_list = _as_path_list(paths)
    for path in path_list:
        if not path.exists():
            raise DicomInputError(
                f"The {what} {path} does not exist. Check the path (a DICOM file or a folder of DICOM files)."
            )
    named = {_identity(path) for path in path_list if not path.is_dir()}
    excluded = _identity(Path(exclude)) if exclude is not None else None
    found = FileWalk()
    files = files_under(path_list, progress)
    report = progress or ignore_progress
    reading = f"Reading {', '.join(map(str, path_list))}: {len(files)} files"
    for number, file in enumerate(files, start=1):
        identity = _identity(file)
        report(number / len(files), reading)
        if identity == excluded:
            continue
        outcome = _read(file, decode_tags)
        if isinstance(outcome, Instance):
            found.instances.append(outcome)
        elif outcome.reason == DICOMDIR_REASON or (
            outcome.reason == NOT_DICOM_REASON and identity not in named and file.suffix.lower() != ".dcm"
        ):
            found.skipped.append(outcome)
        else:
            found.problems.append(outcome)
    return found


def is_image(header: Dataset) -> bool:
    """True if the header describes an image with patient geometry (and is not a segmentation)."""
    if str(header.get("SOPClassUID", "")) in SEGMENTATION_SOP_CLASS_UIDS:
        return False
    if "Rows" not in header or "Columns" not in header:
        return False
    if "ImagePositionPatient" in header and "ImageOrientationPatient" in header:
        return True
    return functional_group_item(header, 1, "PlanePositionSequence") is not None


def functional_group_item(header: Dataset, frame_number: int, keyword: str) -> Dataset | None:
    """The first item of functional group `keyword` for a frame of a multi-frame instance:
    from its Per-Frame Functional Groups Sequence item first, else from the Shared one."""
    per_frame = header.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and 1 <= frame_number <= len(per_frame):
        sequence = per_frame[frame_number - 1].get(keyword)
        if sequence:
            return sequence[0]
    shared = header.get("SharedFunctionalGroupsSequence")
    if shared:
        sequence = shared[0].get(keyword)
        if sequence:
            return sequence[0]
    return None


def _as_path_list(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    require_type("paths", paths, list, tuple)
    for path in paths:
        require_type("paths[...]", path, str, os.PathLike)
    return [Path(p) for p in paths]


def _identity(path: Path) -> object:
    """What tells files apart: device and inode (links and repeated paths are one file)."""
    try:
        status = path.stat()
    except OSError:
        return os.path.abspath(path)
    return (status.st_dev, status.st_ino)


def _read(path: Path, decode_tags: Collection[int] | None) -> Instance | PassedOver:
    try:
        header = read_dicom_file(path, stop_before_pixels=True, decode_tags=decode_tags)
    except NotDicomError:
        header = _read_bare(path, decode_tags)
        if header is None:
            return PassedOver(path, NOT_DICOM_REASON)
    except MalformedDicomError as exc:
        return PassedOver(path, str(exc).removeprefix(f"{path}: "))
    meta = getattr(header, "file_meta", None)
    if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == MediaStorageDirectoryStorage:
        return PassedOver(path, DICOMDIR_REASON)
    if not _has_uids(header):
        return PassedOver(
            path, "no valid SOP Class UID (0008,0016) or SOP Instance UID (0008,0018); the file is damaged"
        )
    return Instance(path, header)


def _read_bare(path: Path, decode_tags: Collection[int] | None) -> Dataset | None:
    """A data set written without the 128-byte preamble, ``DICM`` and file meta information;
    ``None`` if the file is no DICOM (no valid SOP Class and Instance UID in what was read)."""
    try:
        header = read_dicom_file(path, stop_before_pixels=True, force=True, decode_tags=decode_tags)
    except MalformedDicomError:
        return None
    return header if _has_uids(header) else None


def _has_uids(header: Dataset) -> bool:
    return (
        problem_uid(str(header.get("SOPClassUID", ""))) is None
        and problem_uid(str(header.get("SOPInstanceUID", ""))) is None
    )
