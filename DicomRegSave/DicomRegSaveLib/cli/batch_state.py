"""What a batch records about the REGs it writes, so that a rerun redoes exactly the rows that changed.

Each folder a batch writes REGs into holds a state file, :data:`STATE_FILE_NAME`, rewritten
atomically (:func:`output.atomic_output`) after every REG the batch writes. Per REG file name it
records:

* ``sop_instance_uid``: the REG's SOP Instance UID, which tells the file the batch wrote from one
  put at that name since (by hand, by another program, by an older version without this record);
* ``inputs``: for ``transform`` (with the data file of a detached ``.mhd``/``.nhdr`` header),
  ``fixed`` and ``moving``: the paths as resolved, the number of files, and a SHA-256 digest of
  every file's path, size and modification time (ns). A replaced, edited or touched input, or a
  file added to or removed from a series folder, is a change. Contents are not read, since a
  displacement field can be gigabytes: what ``make`` trusts is trusted here;
* ``options``: the values of the other export options the row sets, by manifest column;
* ``sent``: for a row with ``send``, whether the peer stored the REG: ``false`` when the send failed or
  was interrupted after the REG was written, so that a rerun exports the row again and sends it;
* ``generator``: the DicomRegSave version that wrote the REG (information; not compared).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from DicomRegSaveLib import __version__
from DicomRegSaveLib.errors import DicomRegSaveError, OutputError
from DicomRegSaveLib.export.option_table import EXPORT_OPTIONS, MANIFEST_COLUMNS, REQUIRED_COLUMNS
from DicomRegSaveLib.output import atomic_output

__all__ = ["STATE_FILE_NAME", "BatchState", "Fingerprint", "changes", "row_fingerprint"]

#: The state file's name in each folder the batch writes REGs into.
STATE_FILE_NAME = ".dicomregsave-batch.json"
#: What the state file's ``format`` field holds, and the layout's version.
_FORMAT = "dicomregsave batch state"
_VERSION = 1
#: Export flag -> the manifest column that sets it; ``None`` for a flag the batch adds itself (a row's
#: Series Number slot depends on the number of rows, not on the row).
_COLUMN_OF_FLAG = {
    **{option.flag: None for option in EXPORT_OPTIONS if option.flag is not None},
    **{option.flag: column for column, option in MANIFEST_COLUMNS.items()},
}

#: ``{"inputs": {column: {...}}, "options": {column: [values]}}``, as the state file records a row.
Fingerprint = dict[str, dict[str, Any]]


def row_fingerprint(arguments: Sequence[str]) -> Fingerprint:
    """The inputs (files: paths, sizes, modification times) and options of a row's export arguments."""
    values: dict[str, list[str]] = {}
    column: str | None = ""
    for argument in arguments:
        if argument in _COLUMN_OF_FLAG:
            column = _COLUMN_OF_FLAG[argument]
            if column is not None:
                values.setdefault(column, [])
        elif column is not None:
            values.setdefault(column, []).append(argument)
    return {
        "inputs": {
            column: _files_fingerprint(column, values[column]) for column in REQUIRED_COLUMNS if column in values
        },
        "options": {column: found for column, found in values.items() if column not in REQUIRED_COLUMNS},
    }


def _files_fingerprint(column: str, paths: Iterable[str]) -> dict[str, Any]:
    # imported here: `dicomregsave --help` and the other commands do not load pydicom and numpy for this
    from DicomRegSaveLib.file_walker import files_under
    from DicomRegSaveLib.inputs.transform_files import source_files

    resolved = [Path(path).resolve() for path in paths]
    files = [f for path in resolved for f in source_files(path)] if column == "transform" else files_under(resolved)
    digest = hashlib.sha256()
    for file in files:
        try:
            status = file.stat()
            line = f"{file}\t{status.st_size}\t{status.st_mtime_ns}\n"
        except OSError:
            line = f"{file}\tmissing\n"
        digest.update(line.encode("utf-8", "surrogateescape"))
    return {"paths": [str(path) for path in resolved], "files": len(files), "digest": digest.hexdigest()}


def changes(recorded: dict[str, Any], fingerprint: Fingerprint) -> str | None:
    """What differs between a recorded row and its fingerprint now, in words, e.g. ``options changed
    (series_description)``; ``None`` when nothing does."""
    found = []
    for part in ("inputs", "options"):
        old = recorded.get(part)
        old = old if isinstance(old, dict) else {}
        new = fingerprint[part]
        names = [name for name in dict.fromkeys([*new, *old]) if old.get(name) != new.get(name)]
        if names:
            found.append(f"{part} changed ({', '.join(names)})")
    return " and ".join(found) or None


class BatchState:
    """The state files of the folders a batch writes REGs into.

    Parameters
    ----------
    outputs:
        The REG files the batch may write; the state file of each one's folder is read now, so that a
        damaged one stops the batch before any row runs.

    Raises
    ------
    OutputError
        If a state file exists but is not one (unreadable, not JSON, another layout).
    """

    def __init__(self, outputs: Iterable[Path]) -> None:
        self._entries = {folder: _read_state(folder / STATE_FILE_NAME) for folder in {p.parent for p in outputs}}

    @staticmethod
    def path(output: Path) -> Path:
        """The state file that records `output`."""
        return output.parent / STATE_FILE_NAME

    def recorded(self, output: Path) -> dict[str, Any] | None:
        """What the state file holds for `output`, or ``None`` if the batch never recorded writing it."""
        entry = self._entries.get(output.parent, {}).get(output.name)
        return entry if isinstance(entry, dict) else None

    def identity_problem(self, output: Path, recorded: dict[str, Any]) -> str | None:
        """Why the existing file `output` is not the REG the batch recorded, or ``None`` when it is."""
        try:
            uid = _sop_instance_uid(output)
        except DicomRegSaveError as error:
            return f"it cannot be read: {error}"
        if uid != recorded.get("sop_instance_uid"):
            return f"its SOP Instance UID is {uid or '(none)'}, the batch wrote {recorded.get('sop_instance_uid')}"
        return None

    def record(self, output: Path, fingerprint: Fingerprint, sent: bool | None = None) -> None:
        """Record that the batch wrote the REG `output` from `fingerprint`, in the state file of its folder;
        `sent` says whether the row's ``send`` stored it (``None``: the row does not send).

        The state file is read again first, so that what another batch writing into the folder
        recorded meanwhile is kept; the folder is locked from that read to the write (see
        :func:`_folder_locked`), so that two batches recording at once do not overwrite each other.

        Raises
        ------
        DicomRegSaveError
            If the REG's SOP Instance UID cannot be read, or the state file cannot be read again or
            written (:class:`OutputError`).
        """
        path = self.path(output)
        with _folder_locked(output.parent):
            entries = _read_state(path)
            entries[output.name] = {
                "sop_instance_uid": _sop_instance_uid(output),
                "generator": f"DicomRegSave {__version__}",
            }
            if sent is not None:
                entries[output.name]["sent"] = sent
            entries[output.name].update(fingerprint)
            self._entries[output.parent] = entries
            text = json.dumps({"format": _FORMAT, "version": _VERSION, "outputs": entries}, indent=1, sort_keys=True)
            with atomic_output(path, force=True) as temporary:
                temporary.write_text(text + "\n", encoding="utf-8")


@contextmanager
def _folder_locked(folder: Path) -> Iterator[None]:
    """`folder` locked against other batches' records while the block runs: an advisory ``flock`` on the
    folder, which the system releases also when the process is killed. Not locked where the system has
    no ``flock`` (Windows).

    Raises
    ------
    OutputError
        If the folder cannot be opened to be locked.
    """
    try:
        import fcntl
    except ImportError:
        fcntl = None
    if fcntl is None:
        yield
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError as error:
        raise OutputError(f"Cannot lock the folder {folder} to record a REG in it: {error.strerror}.") from error
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _sop_instance_uid(path: Path) -> str:
    """The SOP Instance UID of the DICOM file `path` (empty if it has none), without decoding the rest."""
    from DicomRegSaveLib.dicom_file import read_dicom_file

    return str(read_dicom_file(path, specific_tags=["SOPInstanceUID"]).get("SOPInstanceUID", ""))


def _read_state(path: Path) -> dict[str, Any]:
    """The entries of the state file `path`; none when it does not exist."""
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _unreadable(path, str(error)) from error
    if not isinstance(state, dict) or state.get("format") != _FORMAT or not isinstance(state.get("outputs"), dict):
        raise _unreadable(path, "it is not a batch state file")
    if state.get("version") != _VERSION:
        raise _unreadable(path, f"its layout version is {state.get('version')}, this DicomRegSave reads {_VERSION}")
    return state["outputs"]


def _unreadable(path: Path, why: str) -> OutputError:
    return OutputError(
        f"The batch state file {path} cannot be read ({why}). It records which REGs in its folder the batch "
        "wrote and from what; remove it to start afresh (existing REGs are then refused as not written by the "
        "batch unless --force is given)."
    )
