"""Safe output files: never replace an existing file unless asked, never leave a partial file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError

#: Multi-part extensions that a temporary file must keep, because writers choose the format by it.
_COMPOUND_SUFFIXES = (".nii.gz", ".tar.gz")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in _COMPOUND_SUFFIXES:
        if name.endswith(suffix):
            return path.name[-len(suffix):]
    return path.suffix


def check_output_path(path: str | os.PathLike, force: bool = False) -> Path:
    """Return `path` if a file may be written there.

    Raises
    ------
    OutputError
        If its folder does not exist, or the file exists and `force` is false.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(
            f"Cannot write {path}: the folder {path.parent} does not exist (or is not a folder). "
            "Create it first or choose another output."
        )
    if path.is_dir():
        raise OutputError(f"Cannot write {path}: it is a folder. Give a file name.")
    if path.exists() and not force:
        raise OutputError(f"{path} exists already. Choose another name, or allow replacing it (--force).")
    return path


@contextmanager
def atomic_output(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target folder (same extension); rename it to `path` on success.

    On any exception the temporary file is removed and the target is left as it was.
    """
    path = check_output_path(path, force)
    try:
        handle, temporary_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=f".partial{_suffix(path)}", dir=path.parent
        )
    except OSError as error:
        raise OutputError(
            f"Cannot write in the folder {path.parent}: {error.strerror}. Choose a folder you can write to."
        ) from error
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        yield temporary
        if not temporary.exists() or temporary.stat().st_size == 0:
            raise OutputError(f"Writing {path} produced no data; nothing was written.")
        if not force and path.exists():
            raise OutputError(f"{path} appeared while writing; it was left as it is. Choose another name.")
        os.replace(temporary, path)
    except OSError as error:
        raise OutputError(f"Writing {path} failed: {error}. Nothing was written.") from error
    finally:
        temporary.unlink(missing_ok=True)
