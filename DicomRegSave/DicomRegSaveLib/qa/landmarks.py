"""Landmark files and target registration error (TRE).

Accepted files, row i of the fixed file paired with row i of the moving file:

* ``.csv``: a header with ``x,y,z`` (LPS mm) and optionally ``label``; other columns are ignored.
* Slicer ``.fcsv``: ``# columns = id,x,y,z,...`` and ``# CoordinateSystem = RAS|LPS|0|1`` (0 = RAS,
  1 = LPS); RAS when the file does not say.
* Slicer ``.mrk.json``: the control points of the first markup, in its ``coordinateSystem``
  (RAS when absent).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from DicomRegSaveLib import geometry
from DicomRegSaveLib.errors import QualityInputError
from DicomRegSaveLib.model import RegistrationItem


@dataclass(frozen=True)
class Landmarks:
    """Points (N, 3) in LPS mm with one label each (empty when the file has none)."""

    points_lps: np.ndarray
    labels: tuple[str, ...]
    source: str


def _coordinates(values: list[str], where: str) -> list[float]:
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        raise QualityInputError(
            f"{where}: the coordinates {values} are not numbers. Each landmark needs x, y and z in mm."
        ) from None
    if not np.all(np.isfinite(numbers)):
        raise QualityInputError(f"{where}: the coordinates {values} are not finite numbers.")
    return numbers


def _from_rows(rows: list[dict[str, str]], name: str, ras: bool) -> Landmarks:
    if not rows:
        raise QualityInputError(f"{name} holds no landmarks. Give at least one row of x,y,z coordinates.")
    points, labels = [], []
    for number, row in enumerate(rows, start=1):
        points.append(_coordinates([row.get(axis, "") or "" for axis in ("x", "y", "z")], f"{name} landmark {number}"))
        labels.append((row.get("label") or "").strip())
    array = np.array(points, dtype=np.float64)
    return Landmarks(geometry.ras_to_lps_points(array) if ras else array, tuple(labels), name)


def _read_csv(text: str, name: str) -> Landmarks:
    reader = csv.DictReader(io.StringIO(text))
    header = [(h or "").strip().lower() for h in reader.fieldnames or []]
    if not {"x", "y", "z"} <= set(header):
        raise QualityInputError(
            f"{name}: the first line must be a header naming the columns x,y,z (LPS mm) and optionally "
            f"label; it is {','.join(reader.fieldnames or [])!r}."
        )
    reader.fieldnames = header
    rows = [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader if any(row.values())]
    return _from_rows(rows, name, ras=False)


def _read_fcsv(text: str, name: str) -> Landmarks:
    columns = ["id", "x", "y", "z", "ow", "ox", "oy", "oz", "vis", "sel", "lock", "label", "desc", "associatedNodeID"]
    ras = True
    data_lines = []
    for line in text.splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            key, value = key.strip().lower(), value.strip()
            if key == "columns":
                columns = [c.strip() for c in value.split(",")]
            elif key == "coordinatesystem":
                if value.upper() not in ("RAS", "LPS", "0", "1"):
                    raise QualityInputError(f"{name}: unknown CoordinateSystem {value!r}; expected RAS or LPS.")
                ras = value.upper() in ("RAS", "0")
        elif line.strip():
            data_lines.append(line)
    rows = [dict(zip(columns, (v.strip() for v in values))) for values in csv.reader(data_lines)]
    return _from_rows(rows, name, ras=ras)


def _read_markups_json(text: str, name: str) -> Landmarks:
    try:
        document = json.loads(text)
        markup = document["markups"][0]
        control_points = markup["controlPoints"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise QualityInputError(
            f"{name} is not a Slicer markups file with control points (markups[0].controlPoints)."
        ) from None
    system = str(markup.get("coordinateSystem", "RAS")).upper()
    if system not in ("RAS", "LPS"):
        raise QualityInputError(f"{name}: unknown coordinateSystem {system!r}; expected RAS or LPS.")
    rows = []
    for point in control_points:
        position = point.get("position") if isinstance(point, dict) else None
        if not isinstance(position, list) or len(position) != 3:
            raise QualityInputError(f"{name}: a control point has no position [x, y, z].")
        rows.append(
            {"x": str(position[0]), "y": str(position[1]), "z": str(position[2]), "label": str(point.get("label", ""))}
        )
    return _from_rows(rows, name, ras=system == "RAS")


def read_landmarks(path: str | Path) -> Landmarks:
    """Read a landmark file (see the module documentation) into LPS points.

    Raises
    ------
    QualityInputError
        If the file is missing, of another kind, or malformed.
    """
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise QualityInputError(f"Cannot read the landmark file {name}: {error}.") from error
    lower = path.name.lower()
    if lower.endswith(".mrk.json") or lower.endswith(".json"):
        return _read_markups_json(text, name)
    if lower.endswith(".fcsv"):
        return _read_fcsv(text, name)
    if lower.endswith(".csv"):
        return _read_csv(text, name)
    raise QualityInputError(
        f"{name}: landmark files must be .csv (x,y,z in LPS mm), Slicer .fcsv or .mrk.json; this one is neither."
    )


def target_registration_error(
    item: RegistrationItem, fixed: Landmarks, moving: Landmarks
) -> tuple[dict[str, object], list[str]]:
    """TRE_i = |phi(p_fixed,i) - p_moving,i| (mm) and its statistics, with warnings.

    Returns the report's ``landmarks`` object: ``count`` (pairs with a TRE), ``pairs``, ``tre_mm``
    {``mean``, ``sd`` (population), ``max``} and ``points`` (per pair, input order: ``label``,
    ``fixed_lps``, ``moving_lps``, ``mapped_lps``, ``tre_mm``; null TRE where phi is undefined).

    Raises
    ------
    QualityInputError
        If the files hold different numbers of landmarks.
    """
    if len(fixed.points_lps) != len(moving.points_lps):
        raise QualityInputError(
            f"The fixed landmark file {fixed.source} holds {len(fixed.points_lps)} landmarks and the moving "
            f"file {moving.source} {len(moving.points_lps)}; row i of one is paired with row i of the other, "
            "so both need the same number."
        )
    mapped = item.map_points(fixed.points_lps)
    tre = np.linalg.norm(mapped - moving.points_lps, axis=1)
    defined = np.isfinite(tre)
    warnings = []
    if not defined.all():
        warnings.append(
            f"{int((~defined).sum())} of {len(tre)} fixed landmarks lie outside the displacement grid, where the "
            "registration is undefined; they are left out of the TRE statistics."
        )
    values = tre[defined]
    points = []
    for index in range(len(tre)):
        label = fixed.labels[index] or moving.labels[index]
        points.append(
            {
                "label": label,
                "fixed_lps": fixed.points_lps[index].tolist(),
                "moving_lps": moving.points_lps[index].tolist(),
                "mapped_lps": mapped[index].tolist() if defined[index] else None,
                "tre_mm": float(tre[index]) if defined[index] else None,
            }
        )
    statistics = (
        {"mean": float(values.mean()), "sd": float(values.std()), "max": float(values.max())} if values.size else None
    )
    return {"count": int(values.size), "pairs": len(tre), "tre_mm": statistics, "points": points}, warnings
