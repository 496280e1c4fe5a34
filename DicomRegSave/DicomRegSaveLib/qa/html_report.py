"""The ``--report DIR`` page: ``DIR/index.html`` and the pictures as PNG files beside it.

The page is self-contained (styles inline, every picture embedded as a ``data:`` URI, no script,
no external resource), so it can be filed with a plan on its own; the PNGs are written beside it as
well. The folder is built under a temporary name next to DIR and renamed into place when complete,
so a failed run leaves no partial report.
"""

from __future__ import annotations

import base64
import html
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from DicomRegSaveLib.errors import OutputError
from DicomRegSaveLib.interrupts import held
from DicomRegSaveLib.output import record_completed
from DicomRegSaveLib.qa.pictures import Picture

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #111; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; margin-top: 1.6em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #eee; }
.ok { color: #064; font-weight: bold; } .fail { color: #a00; font-weight: bold; }
figure { margin: 1em 0; } img { max-width: 100%; border: 1px solid #ccc; }
.note { font-size: 0.85em; color: #444; }
"""


def check_report_folder(folder: str | os.PathLike) -> Path:
    """The report folder, refused when it exists and is not empty (a report is never overwritten).

    Raises
    ------
    OutputError
        If `folder` is a file or a non-empty folder.
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise OutputError(
            f"The report folder {folder} exists and is not empty; a report is never written over other files. "
            "Choose a new or empty folder."
        )
    return folder


def _number(value: object, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_number(v, digits) for v in value) + ")"
    return html.escape(str(value))


def _table(rows: Sequence[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{html.escape(name)}</th><td>{_number(value, 6)}</td></tr>" for name, value in rows)
    return f"<table>{body}</table>"


def _identity_section(identity: dict[str, Any] | None) -> str:
    if not identity:
        return ""
    roles = [role for role in ("reg", "fixed", "moving") if identity.get(role)]
    keywords = list(dict.fromkeys(k for role in roles for k in identity[role]))
    head = "".join(f"<th>{html.escape(role.upper() if role == 'reg' else role)}</th>" for role in roles)
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th>"
        + "".join(f"<td>{html.escape(identity[r].get(k, ''))}</td>" for r in roles)
        + "</tr>"
        for k in keywords
    )
    return f"<h2>Identity</h2><table><tr><th></th>{head}</tr>{rows}</table>"


def _verdicts(verdicts: Sequence[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(v['check'])}</td><td>{_number(v['value'], 6)}</td>"
        f"<td>{html.escape(v['comparison'])} {_number(v['tolerance'], 6)} {html.escape(v['unit'])}</td>"
        f'<td class="{"ok" if v["ok"] else "fail"}">{"pass" if v["ok"] else "FAIL"}</td></tr>'
        for v in verdicts
    )
    return f"<table><tr><th>check</th><th>value</th><th>tolerance</th><th>verdict</th></tr>{rows}</table>"


def _item_section(item: dict[str, Any], pictures: Sequence[Picture]) -> str:
    linear = item["linear"]
    parts = [
        f"<h2>Item {item['item']}: {html.escape(item['kind'])}, source frame {html.escape(item['source_frame_of_reference_uid'] or '(not known)')}</h2>",
        "<h3>Verdicts</h3>",
        _verdicts(item["verdicts"]),
        "<h3>Linear part (fixed &rarr; moving, LPS)</h3>",
        _table(
            [
                ("rotation about L, P, S (deg; R = Rz·Ry·Rx)", linear["rotation_deg"]),
                ("translation (mm)", linear["translation_mm"]),
                ("rigid", linear["is_rigid"]),
                ("matrix type", linear["matrix_type"]),
                ("scale along L, P, S", linear["scale"]),
                ("shear LP, LS, PS", linear["shear"]),
                ("determinant", linear["determinant"]),
            ]
        ),
    ]
    if item["jacobian"] is not None:
        jacobian = item["jacobian"]
        parts += [
            "<h3>Jacobian determinant</h3>",
            _table(
                [
                    ("min / mean / max", (jacobian["min"], jacobian["mean"], jacobian["max"])),
                    ("folded points (det ≤ 0)", jacobian["folded_count"]),
                    ("folded fraction", jacobian["folded_fraction"]),
                    ("points evaluated / grid points", (jacobian["points"], jacobian["grid_points"])),
                    ("smallest det at LPS (mm)", jacobian["worst_point_lps"]),
                ]
            ),
            f'<p class="note">Scheme: {html.escape(jacobian["scheme"])}.</p>',
        ]
    displacement = item["displacement_mm"]
    parts += [
        "<h3>Displacement |&phi;(x) &minus; x| (mm)</h3>",
        _table(
            [
                ("mean / 95th percentile / max", (displacement["mean"], displacement["p95"], displacement["max"])),
                ("points", displacement["points"]),
            ]
        ),
    ]
    if item["landmarks"] is not None:
        landmarks = item["landmarks"]
        statistics = landmarks["tre_mm"] or {}
        rows = "".join(
            f"<tr><td>{index}</td><td>{html.escape(p['label'])}</td><td>{_number(p['fixed_lps'])}</td>"
            f"<td>{_number(p['moving_lps'])}</td><td>{_number(p['tre_mm'])}</td></tr>"
            for index, p in enumerate(landmarks["points"], start=1)
        )
        parts += [
            "<h3>Landmarks</h3>",
            _table(
                [
                    ("pairs / evaluated", (landmarks["pairs"], landmarks["count"])),
                    ("TRE mean / SD / max (mm)", (statistics.get("mean"), statistics.get("sd"), statistics.get("max"))),
                ]
            ),
            "<table><tr><th>#</th><th>label</th><th>fixed (LPS mm)</th><th>moving (LPS mm)</th><th>TRE (mm)</th></tr>"
            + rows
            + "</table>",
        ]
    if item["similarity"] is not None:
        before, after = item["similarity"]["before"], item["similarity"]["after"]
        parts += [
            "<h3>Image agreement (moving sampled at the fixed voxels, trilinear)</h3>",
            "<table><tr><th></th><th>mean absolute difference</th><th>normalised cross-correlation</th><th>voxels</th></tr>"
            f"<tr><th>before (identity)</th><td>{_number(before['mad'])}</td><td>{_number(before['ncc'])}</td><td>{before['voxels']}</td></tr>"
            f"<tr><th>after (registration)</th><td>{_number(after['mad'])}</td><td>{_number(after['ncc'])}</td><td>{after['voxels']}</td></tr></table>",
        ]
    parts.append(
        f'<p class="note">Pictures: planes through {html.escape(item["focus"])} at LPS {_number(item["focus_point_lps"])} mm.</p>'
    )
    for picture in pictures:
        data = base64.b64encode(picture.png).decode("ascii")
        parts.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(picture.caption)}">'
            f"<figcaption>{html.escape(picture.caption)} ({html.escape(picture.name)})</figcaption></figure>"
        )
    return "\n".join(parts)


def render_page(report: dict[str, Any], pictures: dict[int, Sequence[Picture]]) -> str:
    """The HTML page of a ``qa`` report; `pictures` by item number."""
    verdict = "all checks pass" if report["ok"] else "NOT all checks pass"
    findings = "".join(
        f"<li>{kind}: {html.escape(f['message'])}</li>"
        for kind, entries in (("error", report["errors"]), ("warning", report["warnings"]))
        for f in entries
    )
    items = "\n".join(_item_section(item, pictures.get(item["item"], ())) for item in report["items"])
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Registration QA: {html.escape(str(report['path']))}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Registration quality report</h1><p>{html.escape(str(report['path']))} &mdash; "
        f'<span class="{"ok" if report["ok"] else "fail"}">{verdict}</span></p>'
        f'<p class="note">{html.escape(report["generator"])}; checks after AAPM TG-132 (Brock et al., Med Phys 44(7) 2017); '
        "&phi; maps the fixed (registered) frame to the moving (source) frame.</p>"
        + (f"<ul>{findings}</ul>" if findings else "")
        + _identity_section(report.get("identity"))
        + items
        + "</body></html>\n"
    )


def write_report_folder(
    folder: str | os.PathLike, report: dict[str, Any], pictures: dict[int, Sequence[Picture]]
) -> Path:
    """Write ``index.html`` and the PNGs into `folder` (new or empty), all at once.

    Raises
    ------
    OutputError
        If the folder exists and is not empty, or cannot be written.
    """
    folder = check_report_folder(folder).absolute()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.dicomregsave-", suffix=".partial", dir=folder.parent))
    except OSError as error:
        raise OutputError(
            f"Cannot write the report folder {folder}: {error}. Choose a folder you can write to."
        ) from error
    try:
        for entries in pictures.values():
            for picture in entries:
                (staging / picture.name).write_bytes(picture.png)
        (staging / "index.html").write_text(render_page(report, pictures), encoding="utf-8")
        # mkdtemp makes the folder private; a report folder gets the mode the umask gives a new folder
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)
        with held():
            if folder.exists():
                folder.rmdir()
            staging.rename(folder)
            record_completed(folder)
    except OSError as error:
        raise OutputError(f"Writing the report folder {folder} failed: {error}. Nothing was written.") from error
    finally:
        with held():
            shutil.rmtree(staging, ignore_errors=True)
    return folder
