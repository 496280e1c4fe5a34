"""Machine-readable (JSON) reports of the commands, for scripted pipelines.

Every report is one JSON object with ``report`` (the command), ``version`` (:data:`REPORT_VERSION`,
raised whenever a field changes meaning or disappears; new fields may be added within a version),
``generator``, ``ok``, ``errors`` and ``warnings``, plus the command's own fields. The README
documents every field. Findings are objects ``{"source": ..., "message": ...}`` where the source is
``dicomregsave`` (own checks), ``dciodvfy`` or ``dcentvfy``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from DicomRegSaveLib import __version__
from DicomRegSaveLib.output import atomic_output
from DicomRegSaveLib.validation.report import DCENTVFY, DCIODVFY, SOURCE, ConformanceReport

if TYPE_CHECKING:
    from DicomRegSaveLib.cli.batch import BatchResult
    from DicomRegSaveLib.cli.network import SendReport
    from DicomRegSaveLib.export.request import ExportOutcome
    from DicomRegSaveLib.inputs.series import ImageSeries
    from DicomRegSaveLib.model import Registration, RegistrationItem

#: Version of the report format; see the module docstring for what changes it.
REPORT_VERSION = 1

#: Source of findings that come from the command itself (input, output and network errors).
COMMAND_SOURCE = "dicomregsave"

_SOURCES = {SOURCE: "dicomregsave", DCIODVFY: "dciodvfy", DCENTVFY: "dcentvfy"}


def findings(messages: Iterable[str]) -> list[dict[str, str]]:
    """``[source] message`` strings (as in :class:`ConformanceReport`) as ``{"source", "message"}`` objects."""
    result = []
    for text in messages:
        source = COMMAND_SOURCE
        for prefix, name in _SOURCES.items():
            if text.startswith(prefix + " "):
                source, text = name, text[len(prefix) + 1 :]
                break
        result.append({"source": source, "message": text})
    return result


def _base(command: str, ok: bool, errors: Sequence[str], warnings: Sequence[str]) -> dict[str, Any]:
    return {
        "report": command,
        "version": REPORT_VERSION,
        "generator": f"DicomRegSave {__version__}",
        "ok": ok,
        "errors": findings(errors),
        "warnings": findings(warnings),
    }


def failure_report(command: str, message: str) -> dict[str, Any]:
    """The report of a command that stopped with an error before producing its result."""
    return _base(command, False, [message], [])


def _series(series: ImageSeries) -> dict[str, Any]:
    return {
        "series_instance_uid": series.series_instance_uid,
        "study_instance_uid": series.study_instance_uid,
        "frame_of_reference_uid": series.frame_of_reference_uid,
        "modality": series.modality,
        "instances": len(series.headers),
    }


def _grid(items: Sequence[RegistrationItem]) -> dict[str, Any] | None:
    """The first displacement grid's geometry among `items`, or ``None`` when they have none."""
    grid = next((item.grid for item in items if item.grid is not None), None)
    if grid is None:
        return None
    return {
        "dimensions": [int(n) for n in grid.dimensions],
        "spacing_mm": [float(s) for s in grid.spacing_mm],
        "origin_lps_mm": [float(v) for v in grid.origin_lps],
    }


def export_report(outcome: ExportOutcome, sent: SendReport | None = None) -> dict[str, Any]:
    """The report of a successful export (and of sending the file, when it was sent)."""
    result = outcome.result
    dataset = result.dataset
    sent_report = send_report(sent) if sent is not None else None
    report = _base(
        "export",
        result.report.ok and (sent is None or sent.ok),
        list(result.report.errors) + ([] if sent is None or sent.ok else [_send_error(sent)]),
        result.report.warnings,
    )
    report.update(
        path=str(result.path),
        sop_instance_uid=str(dataset.SOPInstanceUID),
        sop_class_uid=str(dataset.SOPClassUID),
        series_instance_uid=str(dataset.SeriesInstanceUID),
        series_number=int(dataset.SeriesNumber),
        study_instance_uid=str(dataset.StudyInstanceUID),
        frame_of_reference_uid=str(dataset.FrameOfReferenceUID),
        fixed=_series(outcome.fixed),
        moving=_series(outcome.moving),
        grid=_grid(result.registration.items),
        sent=sent_report,
    )
    return report


def validate_report(path: str | os.PathLike, report: ConformanceReport) -> dict[str, Any]:
    """The report of ``validate``: ``ok`` when there are no errors."""
    result = _base("validate", report.ok, report.errors, report.warnings)
    result["path"] = str(path)
    return result


def to_transform_report(
    reg: str | os.PathLike, output: str | os.PathLike, registration: Registration, item: RegistrationItem
) -> dict[str, Any]:
    """The report of ``to-transform``: which file was written from which item of which registration."""
    report = _base("to-transform", True, [], [])
    report.update(
        path=str(reg),
        output=str(output),
        frame_of_reference_uid=registration.frame_of_reference_uid,
        source_frame_of_reference_uids=[each.source_frame_of_reference_uid for each in registration.items],
        item=registration.items.index(item) + 1,
        source_frame_of_reference_uid=item.source_frame_of_reference_uid,
        grid=_grid([item]),
    )
    return report


def send_report(sent: SendReport) -> dict[str, Any]:
    """Where the files went and each file's outcome (``status``: the peer's C-STORE status, or ``null``)."""
    return {
        "peer": str(sent.peer),
        "calling_ae_title": sent.calling_ae_title,
        "echo": sent.echo,
        "ok": sent.ok,
        "error": sent.error,
        "files": [
            {
                "path": str(outcome.path),
                "sop_instance_uid": outcome.sop_instance_uid,
                "ok": outcome.ok,
                "status": outcome.status,
                "message": outcome.message,
            }
            for outcome in sent.files
        ],
    }


def send_command_report(sent: SendReport) -> dict[str, Any]:
    """The report of ``send``: the peer, the echo and every file's outcome."""
    report = _base("send", sent.ok, [] if sent.ok else [_send_error(sent)], [])
    report.update(send_report(sent))
    return report


def _send_error(sent: SendReport) -> str:
    if sent.error is not None:
        return sent.error
    failed = [outcome for outcome in sent.files if not outcome.ok]
    return f"{len(failed)} of {len(sent.files)} file(s) were not stored by {sent.peer}."


def batch_report(manifest: str | os.PathLike, output_dir: str | os.PathLike, result: BatchResult) -> dict[str, Any]:
    """The report of ``batch``: one entry per manifest row and the counts by status; the rows' errors
    and their exports' warnings, each prefixed with its row."""
    report = _base(
        "batch",
        result.ok,
        [f"Row {o.row}: {o.error}" for o in result.outcomes if o.error],
        [f"Row {o.row}: {w['message']}" for o in result.outcomes if o.report for w in o.report.get("warnings", [])],
    )
    report.update(
        manifest=str(manifest),
        output_dir=str(output_dir),
        counts=result.counts,
        rows=[o.as_dict() for o in result.outcomes],
    )
    return report


def write_report(report: Mapping[str, Any], destination: str | os.PathLike) -> None:
    """Write `report` as JSON to a file (atomically, replacing an older report) or to stdout for ``-``."""
    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    if str(destination) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with atomic_output(Path(destination), force=True) as temporary:
        temporary.write_text(text, encoding="utf-8")
