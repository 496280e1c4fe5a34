"""``validate``: every check of one REG file, and of the images given with it.

:func:`validate_file` runs the IOD rules (:mod:`iod_rules`) and dciodvfy on the file and, with
images, the cross-file checks (:mod:`cross_file`) and dcentvfy on the images the project's file
walker finds (:mod:`file_walker`): the same instances that ``export`` reads from those folders.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from DicomRegSaveLib.errors import DicomInputError, DicomRegSaveError, require_type
from DicomRegSaveLib.file_walker import walk
from DicomRegSaveLib.progress import Progress, ignore_progress
from DicomRegSaveLib.reg.reader import read_dataset
from DicomRegSaveLib.validation.cross_file import check_against_images, referenced_roles
from DicomRegSaveLib.validation.dicom3tools import run_dcentvfy, run_dciodvfy
from DicomRegSaveLib.validation.iod_rules import check_dataset
from DicomRegSaveLib.validation.report import ConformanceReport

#: How dcentvfy reports a referenced instance that is not among its files (once per reference).
_DANGLING_REFERENCE = re.compile(r"Missing SOPInstanceUID that was referenced - (\S+)")


def validate_file(
    path: str | os.PathLike, image_paths: Sequence[str | os.PathLike] = (), progress: Progress | None = None
) -> ConformanceReport:
    """All checks of one REG file: :func:`iod_rules.check_dataset`, dciodvfy and, with images,
    :func:`cross_file.check_against_images` and dcentvfy.

    `image_paths` may name image files or folders (searched recursively, the REG file itself left
    out). Only image instances are checked: other objects among them (RTSTRUCT, RTPLAN, other
    REGs) get one warning counting them; files that are not DICOM in the folders are passed over;
    a file reached twice counts once. Referenced instances that were not supplied get one warning
    with their count, not one finding each (dcentvfy's own lines for them are folded into it).
    `progress` is told each step: the own checks and each validator's run (their length unknown:
    fraction 0), and the search and reading of the images (:func:`file_walker.walk`).
    """
    require_type("path", path, str, os.PathLike)
    step = progress or ignore_progress
    report = ConformanceReport()
    step(0.0, f"Checking {path}")
    try:
        dataset = read_dataset(path)
    except DicomRegSaveError as exc:
        report.error(str(exc))
        return report
    report.extend(check_dataset(dataset))
    step(0.0, "Checking with dciodvfy")
    report.extend(run_dciodvfy(path))
    if not image_paths:
        return report
    try:
        walked = walk(image_paths, "image path", exclude=path, progress=progress)
    except DicomInputError as exc:
        report.error(str(exc))
        return report
    for problem in walked.problems:
        report.error(f"Image {problem}")
    non_images = walked.non_images()
    if non_images:
        report.warning(
            f"{len(non_images)} object(s) among the images are not images and were not checked "
            f"against the registration ({walked.non_image_counts()})."
        )
    images = walked.images()
    if not images:
        report.error(f"No DICOM image files were found in {', '.join(str(p) for p in image_paths)}.")
        return report
    step(0.0, "Checking the references against the images")
    report.extend(check_against_images(dataset, [image.header for image in images]))
    unsupplied = set(referenced_roles(dataset)) - {image.sop_instance_uid for image in images}
    step(0.0, "Checking with dcentvfy")
    report.extend(_without_dangling(run_dcentvfy(path, [image.path for image in images]), unsupplied))
    return report


def _without_dangling(report: ConformanceReport, unsupplied: set[str]) -> ConformanceReport:
    """`report` without dcentvfy's errors about references to `unsupplied` instances, which
    :func:`cross_file.check_against_images` counts in one warning."""
    kept = ConformanceReport(warnings=list(report.warnings))
    for error in report.errors:
        match = _DANGLING_REFERENCE.search(error)
        if match is None or match.group(1) not in unsupplied:
            kept.errors.append(error)
    return kept
