"""What VTK, ITK and Slicer's C++ code print while the engine calls them, captured for its own messages.

Slicer's readers and writers report failures twice: in a message collection the engine reads, and
as ANSI-coloured log lines (with ITK exception dumps) written straight to the process's stderr,
which Python's ``sys.stderr`` cannot intercept. :func:`captured_native_output` redirects file
descriptor 2 while a call runs; :func:`summarize` turns such text into one plain sentence that a
message can include.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from DicomRegSaveLib.interrupts import held

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# vtkLogger's prefix: "2026-11-30 17:09:12.850 (   6.169s) [    7F26B7AACB80]vtkMRMLTransformStorage:158    ERR| "
_LOG_PREFIX = re.compile(r"^\S+ \S+ \(\s*[\d.]+s\) \[[^\]]*\][^|]*\|\s*")
_ITK_DESCRIPTION = re.compile(
    r"Description: (?:ITK ERROR: )?(?:\w+\(0x[0-9a-f]+\): )?(.*?)(?: Tried to| You probably|$)"
)
_MAX_SUMMARY_CHARACTERS = 300


class CapturedText:
    """The text captured by :func:`captured_native_output` (available after the block)."""

    def __init__(self) -> None:
        self.text = ""

    def summary(self) -> str:
        return summarize(self.text)


@contextmanager
def captured_native_output() -> Iterator[CapturedText]:
    """Redirect the process's stderr (file descriptor 2) to a temporary file while the block runs.

    Python's own ``sys.stderr`` is flushed before and after, so nothing is lost or reordered.
    """
    captured = CapturedText()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 2)
            yield captured
        finally:
            with held():  # a Ctrl-C here would leave stderr in the file, and its message unseen
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
            sink.seek(0)
            captured.text = strip_escapes(sink.read().decode("utf-8", errors="replace"))


def strip_escapes(text: str) -> str:
    """`text` without ANSI escape sequences (colours)."""
    return _ANSI_ESCAPE.sub("", text)


def summarize(text: str) -> str:
    """One plain sentence from log text: ITK exception descriptions, else the distinct log messages."""
    plain = " ".join(strip_escapes(text).split())
    descriptions = list(dict.fromkeys(m.strip() for m in _ITK_DESCRIPTION.findall(plain) if m.strip()))
    if descriptions:
        summary = "; ".join(descriptions)
    else:
        lines = [_LOG_PREFIX.sub("", line).strip() for line in strip_escapes(text).splitlines()]
        summary = "; ".join(dict.fromkeys(line for line in lines if line))
    if len(summary) > _MAX_SUMMARY_CHARACTERS:
        summary = summary[: _MAX_SUMMARY_CHARACTERS - 3] + "..."
    return summary
