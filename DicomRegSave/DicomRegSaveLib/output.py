"""Safe output files: never replace an input, never replace an existing file unless asked, never
leave a partial file, and give written files the mode the user's umask asks for.

Where Linux allows it, a stream output is written to an unnamed file (``O_TMPFILE``) that is linked
into place when complete: a killed process leaves nothing behind. Writers that need a file name
get a named temporary file whose name records the host and process that own it; the next output
into that folder removes such files whose process no longer runs.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from DicomRegSaveLib.errors import OutputError, OutputExistsError
from DicomRegSaveLib.interrupts import held

#: Multi-part extensions that a temporary file must keep, because writers choose the format by it.
_COMPOUND_SUFFIXES = (".nii.gz", ".tar.gz")

#: Marks the temporary files this module creates: ``.<target>.dicomregsave-<host>-<pid>-<token>.partial<ext>``.
_OWNED = re.compile(r"^\..+\.dicomregsave-(?P<host>[^/]+)-(?P<pid>\d+)-[0-9a-f]{8}\.partial(\.[^/]*)?$")

#: Files are created readable by everyone the umask allows (0644 under the usual 022).
_FILE_MODE = 0o666

#: What :func:`record_completed` notes while :func:`recording_completed` runs; ``None`` outside, where
#: nothing is kept (in Slicer, in a program that calls the engine).
_recorded: list[Path] | None = None


@contextmanager
def recording_completed() -> Iterator[list[Path]]:
    """The files and folders put in place complete while the block runs, in order: what a command
    interrupted after them leaves, and nothing else. A block inside another passes its paths on to the
    outer one when it ends."""
    global _recorded
    outer, _recorded = _recorded, []
    inner = _recorded
    try:
        yield inner
    finally:
        _recorded = outer
        if outer is not None:
            outer.extend(inner)


def record_completed(path: Path) -> None:
    """Note that `path` is in place and complete (see :func:`recording_completed`); call it in the same
    :func:`interrupts.held` block as the step that put it there, so that an interrupt never comes
    between the two."""
    if _recorded is not None:
        _recorded.append(path)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in _COMPOUND_SUFFIXES:
        if name.endswith(suffix):
            return path.name[-len(suffix) :]
    return path.suffix


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _temporary_name(path: Path) -> Path:
    token = secrets.token_hex(4)
    return path.parent / f".{path.name}.dicomregsave-{_host()}-{os.getpid()}-{token}.partial{_suffix(path)}"


def _status(path: Path) -> os.stat_result | None:
    """The status of the file `path` names (links followed), or ``None`` if it cannot be found."""
    try:
        return path.stat()
    except OSError:
        return None


def _is_same_file(output: Path, output_status: os.stat_result | None, source: Path) -> bool:
    """Whether `source` is the file `output` names: by device and inode when both exist (one status
    call per input, which matters for series of hundreds of slices), by resolved path when neither does;
    a path that exists and one that does not are different files."""
    source_status = _status(source)
    if output_status is not None and source_status is not None:
        return os.path.samestat(output_status, source_status)
    return output_status is None and source_status is None and output.resolve() == source.resolve()


def check_output_path(path: str | os.PathLike, force: bool = False, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Return `path` if a file may be written there.

    Parameters
    ----------
    inputs:
        Files the output was made from; writing over one of them (by any name: links are
        resolved, hard links compared by inode) is refused even with `force`.

    Raises
    ------
    OutputError
        If its folder does not exist, it is a folder, it is one of `inputs`, or the file exists and
        `force` is false.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(
            f"Cannot write {path}: the folder {path.parent} does not exist (or is not a folder). "
            "Create it first or choose another output."
        )
    if path.is_dir():
        raise OutputError(f"Cannot write {path}: it is a folder. Give a file name.")
    output_status = _status(path)
    for source in inputs:
        if _is_same_file(path, output_status, Path(source)):
            raise OutputError(
                f"Cannot write {path}: it is the input file {source}, which would be destroyed "
                "(an input is never replaced, even where replacing is allowed). Choose another output name."
            )
    if path.exists() and not force:
        raise OutputExistsError(path)
    return path


def create_folder(path: str | os.PathLike) -> Path:
    """Return `path` as a folder, creating it and its missing parents (with the mode the umask gives).

    Raises
    ------
    OutputError
        If `path` or one of its parents is a file, or a folder cannot be created there.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as error:
        raise OutputError(f"Cannot use {path} as a folder: it is a file. Choose another folder.") from error
    except NotADirectoryError as error:
        raise OutputError(
            f"Cannot create the folder {path}: a part of that path is a file, not a folder. Choose another folder."
        ) from error
    except OSError as error:
        raise OutputError(
            f"Cannot create the folder {path}: {error.strerror}. Choose a folder you can write to."
        ) from error
    return path


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove this module's temporary files in `folder` whose process (on this host) has ended.

    Returns the files removed. Files of running processes, of other hosts and anything not
    named by this module are left alone.
    """
    removed = []
    host = _host()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _OWNED.match(entry.name)
        if match is None or match["host"] != host or _is_running(int(match["pid"])):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _create_named(path: Path) -> Path:
    temporary = _temporary_name(path)
    try:
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE))
    except OSError as error:
        raise OutputError(
            f"Cannot write in the folder {path.parent}: {error.strerror}. Choose a folder you can write to."
        ) from error
    return temporary


def _move_into_place(temporary: Path, path: Path, force: bool) -> None:
    """Rename, or without `force` link (which fails if `path` appeared meanwhile) and unlink."""
    if force:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)
    except FileExistsError as error:
        raise OutputError(f"{path} appeared while writing; it was left as it is. Choose another name.") from error
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
        # file systems without hard links: check, then rename (a tiny window remains)
        if path.exists():
            raise OutputError(f"{path} appeared while writing; it was left as it is. Choose another name.") from error
        os.replace(temporary, path)
    temporary.unlink(missing_ok=True)


@contextmanager
def atomic_output(
    path: str | os.PathLike, force: bool = False, inputs: Iterable[str | os.PathLike] = ()
) -> Iterator[Path]:
    """Yield a temporary path in the target folder (same extension); move it to `path` on success.

    For writers that need a file name (the format is chosen by the extension). On any exception
    the temporary file is removed and the target is left as it was; see :func:`check_output_path`
    for `force` and `inputs`.
    """
    path = check_output_path(path, force, inputs)
    remove_stale_temporaries(path.parent)
    temporary = _create_named(path)
    try:
        yield temporary
        if not temporary.exists() or temporary.stat().st_size == 0:
            raise OutputError(f"Writing {path} produced no data; nothing was written.")
        with held():
            _move_into_place(temporary, path, force)
            record_completed(path)
    except OSError as error:
        raise OutputError(f"Writing {path} failed: {_reason(error)}. Nothing was written.") from error
    finally:
        with held():
            temporary.unlink(missing_ok=True)


def _reason(error: OSError) -> str:
    """What the system said, without the file name: that may be a temporary file the user never sees."""
    return error.strerror or str(error)


def _open_unnamed(folder: Path) -> int | None:
    """A file descriptor of an unnamed file in `folder`, or None where the OS or file system has none."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not Path("/proc/self/fd").is_dir():
        return None
    try:
        return os.open(folder, flag | os.O_WRONLY, _FILE_MODE)
    except OSError as error:
        if error.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None
        raise OutputError(
            f"Cannot write in the folder {folder}: {error.strerror}. Choose a folder you can write to."
        ) from error


def _link(descriptor: int, path: Path) -> None:
    """Give the unnamed file `descriptor` the name `path` (linkat with AT_SYMLINK_FOLLOW, which
    Python's os.link uses only when a directory descriptor is passed)."""
    folder = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(str(descriptor), path, src_dir_fd=folder, follow_symlinks=True)
    finally:
        os.close(folder)


def _link_unnamed(descriptor: int, path: Path, force: bool) -> None:
    if not force:
        try:
            _link(descriptor, path)
        except FileExistsError as error:
            raise OutputError(f"{path} appeared while writing; it was left as it is. Choose another name.") from error
        return
    # a link cannot replace a file: link under a temporary name, then rename over the old file
    linked = _temporary_name(path)
    _link(descriptor, linked)
    try:
        os.replace(linked, path)
    finally:
        linked.unlink(missing_ok=True)


@contextmanager
def atomic_stream(
    path: str | os.PathLike, force: bool = False, inputs: Iterable[str | os.PathLike] = ()
) -> Iterator[BinaryIO]:
    """Yield a binary stream whose content becomes `path` (flushed to disk) when the block succeeds.

    On Linux the stream is an unnamed file linked into place at the end, so even a killed
    process leaves nothing; elsewhere a named temporary file is used (see :func:`atomic_output`).
    """
    path = check_output_path(path, force, inputs)
    descriptor = _open_unnamed(path.parent)
    if descriptor is None:
        with atomic_output(path, force, inputs) as temporary, open(temporary, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        return
    try:
        with os.fdopen(descriptor, "wb") as stream:
            yield stream
            stream.flush()
            if stream.tell() == 0:
                raise OutputError(f"Writing {path} produced no data; nothing was written.")
            os.fsync(stream.fileno())
            remove_stale_temporaries(path.parent)
            with held():
                _link_unnamed(stream.fileno(), path, force)
                record_completed(path)
    except OSError as error:
        raise OutputError(f"Writing {path} failed: {_reason(error)}. Nothing was written.") from error
