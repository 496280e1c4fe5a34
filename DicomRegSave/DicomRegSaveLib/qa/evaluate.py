"""Per-item registration quality metrics, their verdicts and the ``qa`` JSON report.

The report is one JSON object with the house's report fields (``report`` = ``"qa"``, ``version``,
``generator``, ``ok``, ``errors``, ``warnings``; findings are ``{"source", "message"}`` objects as in
the other commands' reports), ``path``, ``identity`` and ``items``; docs/qa.md documents every field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from DicomRegSaveLib import __version__
from DicomRegSaveLib.model import Registration, RegistrationItem
from DicomRegSaveLib.progress import Progress, part
from DicomRegSaveLib.qa.jacobian import (
    DisplacementStatistics,
    JacobianStatistics,
    field_statistics,
    linear_displacement_statistics,
)
from DicomRegSaveLib.qa.landmarks import Landmarks, target_registration_error
from DicomRegSaveLib.qa.linear import LinearDecomposition, decompose, linear_matrix
from DicomRegSaveLib.qa.volumes import Volume, agreement

#: Version of the qa report format (raised when a field changes meaning or disappears).
REPORT_VERSION = 1

#: TG-132 (Brock et al., Med Phys 44(7) 2017, Table 6) landmark TRE tolerances for deformable registration (mm).
TRE_MEAN_TOLERANCE_MM = 2.0
TRE_MAX_TOLERANCE_MM = 5.0

#: The header attributes shown as the identity of the REG and of the images.
IDENTITY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "StudyInstanceUID",
    "StudyDescription",
    "SeriesInstanceUID",
    "SeriesDescription",
    "Modality",
    "ContentLabel",
    "ContentDescription",
    "ContentCreatorName",
    "ContentDate",
    "ContentTime",
    "SeriesDate",
    "Manufacturer",
    "ManufacturerModelName",
    "SoftwareVersions",
    "FrameOfReferenceUID",
    "SOPClassUID",
    "SOPInstanceUID",
)


def identity(dataset: Dataset | None) -> dict[str, str] | None:
    """The identifying attributes of a header as text (absent ones left out)."""
    if dataset is None:
        return None
    shown = {}
    for keyword in IDENTITY_KEYWORDS:
        value = dataset.get(keyword)
        if value is not None and str(value) != "":
            shown[keyword] = "\\".join(str(v) for v in value) if isinstance(value, MultiValue) else str(value)
    return shown


def _verdict(check: str, value: float | None, tolerance: float, comparison: str, unit: str) -> dict[str, Any]:
    if value is None:
        ok = False
    elif comparison == "<=":
        ok = bool(value <= tolerance)
    else:
        ok = bool(value > tolerance)
    return {"check": check, "value": value, "tolerance": tolerance, "comparison": comparison, "unit": unit, "ok": ok}


@dataclass
class ItemQuality:
    """The metrics of one registration item (see docs/qa.md for the meaning of each)."""

    number: int
    item: RegistrationItem
    linear: LinearDecomposition
    jacobian: JacobianStatistics | None
    displacement: DisplacementStatistics
    landmarks: dict[str, Any] | None
    similarity: dict[str, Any] | None
    verdicts: list[dict[str, Any]]
    focus_lps: np.ndarray
    focus_reason: str
    warnings: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "deformable" if self.item.grid is not None else "linear"

    @property
    def ok(self) -> bool:
        return all(verdict["ok"] for verdict in self.verdicts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "item": self.number,
            "source_frame_of_reference_uid": self.item.source_frame_of_reference_uid,
            "kind": self.kind,
            "linear": self.linear.as_dict(),
            "jacobian": None if self.jacobian is None else self.jacobian.as_dict(),
            "displacement_mm": self.displacement.as_dict(),
            "landmarks": self.landmarks,
            "similarity": self.similarity,
            "focus_point_lps": [float(v) for v in self.focus_lps],
            "focus": self.focus_reason,
            "verdicts": self.verdicts,
            "ok": self.ok,
        }


def evaluate_item(
    item: RegistrationItem,
    number: int,
    fixed: Volume,
    moving: Volume | None,
    landmarks: tuple[Landmarks, Landmarks] | None = None,
    progress: Progress | None = None,
) -> ItemQuality:
    """Every metric and verdict of one item; `moving` and `landmarks` ``None`` skip those parts."""
    warnings: list[str] = []
    linear = decompose(linear_matrix(item))
    jacobian = None
    if item.grid is not None:
        jacobian, displacement = field_statistics(item, part(progress, 0.0, 0.6))
    else:
        displacement = linear_displacement_statistics(
            linear.matrix_lps, fixed.ijk_to_lps, fixed.dimensions, part(progress, 0.0, 0.6)
        )
    landmark_report = None
    if landmarks is not None:
        landmark_report, landmark_warnings = target_registration_error(item, *landmarks)
        warnings += landmark_warnings
    similarity = agreement(item, fixed, moving, part(progress, 0.6, 1.0)) if moving is not None else None

    verdicts = []
    if jacobian is not None:
        verdicts.append(_verdict("folding", jacobian.folded_count, 0, "<=", "grid points with det J <= 0"))
    else:
        verdicts.append(_verdict("linear_determinant", linear.determinant, 0.0, ">", "det of the linear part"))
    if landmark_report is not None:
        statistics = landmark_report["tre_mm"] or {}
        verdicts.append(_verdict("tre_mean", statistics.get("mean"), TRE_MEAN_TOLERANCE_MM, "<=", "mm"))
        verdicts.append(_verdict("tre_max", statistics.get("max"), TRE_MAX_TOLERANCE_MM, "<=", "mm"))
        if jacobian is None and linear.is_rigid:
            voxel = float(np.max(fixed.spacing_mm))
            verdicts.append(
                _verdict("tre_max_voxel", statistics.get("max"), voxel, "<=", "mm (largest fixed voxel dimension)")
            )

    centre = fixed.ijk_to_lps[:3, :3] @ ((np.array(fixed.dimensions) - 1) / 2.0) + fixed.ijk_to_lps[:3, 3]
    if jacobian is not None and jacobian.worst_point_lps is not None:
        focus, reason = np.array(jacobian.worst_point_lps), "smallest Jacobian determinant"
    elif landmark_report is not None and landmark_report["count"]:
        worst = max((p for p in landmark_report["points"] if p["tre_mm"] is not None), key=lambda p: p["tre_mm"])
        focus, reason = np.array(worst["fixed_lps"]), f"largest landmark TRE ({worst['label'] or 'unlabelled'})"
    else:
        focus, reason = centre, "centre of the fixed image"
    return ItemQuality(
        number, item, linear, jacobian, displacement, landmark_report, similarity, verdicts, focus, reason, warnings
    )


@dataclass
class QualityResult:
    """The evaluated items of one registration with the findings about the inputs."""

    items: list[ItemQuality]
    warnings: list[str]
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and all(item.ok for item in self.items)

    def report(self, path: str | os.PathLike | None, identities: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``qa`` JSON report (see the module documentation)."""
        warnings = self.warnings + [w for item in self.items for w in item.warnings]
        return {
            "report": "qa",
            "version": REPORT_VERSION,
            "generator": f"DicomRegSave {__version__}",
            "ok": self.ok,
            "errors": [{"source": "dicomregsave", "message": m} for m in self.errors],
            "warnings": [{"source": "dicomregsave", "message": m} for m in warnings],
            "path": None if path is None else str(path),
            "identity": identities,
            "items": [item.as_dict() for item in self.items],
        }


def items_to_check(registration: Registration, source_frame_of_reference_uid: str | None) -> list[RegistrationItem]:
    """The chosen item, or every item that moves a series (not an identity item).

    Raises
    ------
    RegistrationChoiceError
        If the chosen source frame has no item, or every item is an identity item of the registered frame.
    """
    if source_frame_of_reference_uid is not None:
        return [registration.choose_item(source_frame_of_reference_uid)]
    moving = [item for item in registration.items if not item.is_identity]
    return moving or [registration.choose_item()]


def evaluate_registration(
    registration: Registration,
    fixed: Volume,
    moving: Volume,
    *,
    fixed_frame_of_reference_uid: str | None = None,
    moving_frame_of_reference_uid: str | None = None,
    source_frame_of_reference_uid: str | None = None,
    landmarks: tuple[Landmarks, Landmarks] | None = None,
    progress: Progress | None = None,
) -> QualityResult:
    """Evaluate every item that moves a series (or the chosen one) against a fixed and a moving image.

    The image agreement and the landmarks belong to the item whose source frame is the moving
    image's frame (or to the only item evaluated); frames that do not match are warned about.
    """
    items = items_to_check(registration, source_frame_of_reference_uid)
    warnings = []
    if fixed_frame_of_reference_uid not in (None, registration.frame_of_reference_uid):
        warnings.append(
            f"The fixed image is in frame of reference {fixed_frame_of_reference_uid}, not in the REG's registered "
            f"frame {registration.frame_of_reference_uid}: the REG was made for another fixed image, so the image "
            "agreement and the landmarks may not mean what they seem."
        )
    matching = [item for item in items if item.source_frame_of_reference_uid == moving_frame_of_reference_uid]
    if len(items) == 1:
        paired = items[0]
        if moving_frame_of_reference_uid is not None and not matching:
            warnings.append(
                f"The moving image is in frame of reference {moving_frame_of_reference_uid}, but the item checked maps "
                f"to frame {paired.source_frame_of_reference_uid}: the REG was made for another moving image."
            )
    else:
        paired = matching[0] if matching else None
        if paired is None:
            warnings.append(
                f"No item maps to the moving image's frame of reference {moving_frame_of_reference_uid}; the image "
                "agreement and the landmarks were left out. Choose an item with --source-frame."
            )
    results = []
    for index, item in enumerate(items):
        with_images = item is paired
        results.append(
            evaluate_item(
                item,
                registration.items.index(item) + 1,
                fixed,
                moving if with_images else None,
                landmarks if with_images else None,
                part(progress, index / len(items), (index + 1) / len(items)),
            )
        )
    return QualityResult(results, warnings)


def _number(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def summary_text(report: dict[str, Any]) -> str:
    """The report as the lines ``dicomregsave qa`` prints and the Slicer panel shows."""
    lines = [f"{report['path'] or 'The transform'}: {len(report['items'])} item(s) checked"]
    for item in report["items"]:
        linear = item["linear"]
        rotation = (
            "none (mirrored)"
            if linear["rotation_deg"] is None
            else "/".join(f"{a:.4g}" for a in linear["rotation_deg"])
        )
        lines.append(f"  item {item['item']} ({item['kind']}), source frame {item['source_frame_of_reference_uid']}")
        lines.append(
            f"    linear part: rotation L/P/S {rotation} deg, translation "
            f"{'/'.join(f'{t:.4g}' for t in linear['translation_mm'])} mm, {linear['matrix_type']}"
        )
        if item["jacobian"] is not None:
            jacobian = item["jacobian"]
            lines.append(
                f"    Jacobian determinant: min {_number(jacobian['min'])}, mean {_number(jacobian['mean'])}, max "
                f"{_number(jacobian['max'])}; {jacobian['folded_count']} folded of {jacobian['points']} grid points"
            )
        displacement = item["displacement_mm"]
        lines.append(
            f"    displacement: mean {_number(displacement['mean'])}, p95 {_number(displacement['p95'])}, max "
            f"{_number(displacement['max'])} mm"
        )
        if item["landmarks"] is not None and item["landmarks"]["tre_mm"] is not None:
            tre = item["landmarks"]["tre_mm"]
            lines.append(
                f"    landmark TRE ({item['landmarks']['count']} pairs): mean {tre['mean']:.4g}, SD {tre['sd']:.4g}, "
                f"max {tre['max']:.4g} mm"
            )
        if item["similarity"] is not None:
            before, after = item["similarity"]["before"], item["similarity"]["after"]
            lines.append(
                f"    image agreement before -> after: MAD {_number(before['mad'])} -> {_number(after['mad'])}, "
                f"NCC {_number(before['ncc'])} -> {_number(after['ncc'])}"
            )
        for verdict in item["verdicts"]:
            lines.append(
                f"    {'pass' if verdict['ok'] else 'FAIL'}: {verdict['check']} = {_number(verdict['value'], 6)} "
                f"({verdict['comparison']} {verdict['tolerance']:g} {verdict['unit']})"
            )
    lines += [f"  warning: {w['message']}" for w in report["warnings"]]
    lines.append("All checks pass." if report["ok"] else "NOT all checks pass.")
    return "\n".join(lines)
