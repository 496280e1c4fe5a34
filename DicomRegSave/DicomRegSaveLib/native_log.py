"""What VTK, ITK and Slicer's C++ code print while the engine calls them, captured for its own messages.

Slicer's readers and writers report failures twice: in a message collection the engine reads, and
as ANSI-coloured log lines (with ITK exception dumps) written straight to the process's stderr (and
informational texts to its stdout), which Python's ``sys.stderr`` cannot intercept.
:func:`captured_native_output` redirects file descriptors 1 and 2 while a call runs; :func:`summarize` turns such text into one plain sentence that a
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
# a message collection's entry: "- Error: ", "- Warning: "
_COLLECTION_PREFIX = re.compile(r"^- (?:Error|Warning|Information): ")
# who speaks: "vtkMRMLTransformStorageNode (0x5624e00a64e0): vtkMRMLStorageNode::ReadData: ", "MetaImage: M_Read: "
_SOURCE_PREFIX = re.compile(r"^(?:\w+(?:::\w+)*(?: ?\(0x[0-9a-f]+\))?: )+")
# an ITK exception's description; what follows "Tried to" / "You probably" is advice for programmers
_ITK_DESCRIPTION = re.compile(
    r"^Description: (?:ITK ERROR: )?(?:\w+\(0x[0-9a-f]+\): )?(.*?)(?: Tried to| You probably|$)"
)
# ITK's advice after a description, indented lines up to the end of its exception (a blank line)
_ITK_ADVICE = re.compile(r"^(?:Tried to|You probably)\b")
# the rest of an ITK exception dump: where in ITK's sources it was raised
_ITK_DUMP = re.compile(r"^(?:itk::\w+ \(0x[0-9a-f]+\)|Location: |File: |Line: )")
# what the engine's own message says already: that reading or writing failed, and which file
_RESTATES_FAILURE = re.compile(
    r"^(?:Failed to (?:read|write|save|load)|Error while (?:reading|writing)|Could not (?:read|write)"
    r"|Cannot (?:read|write))\b",
    re.IGNORECASE,
)
# vtkOutputWindow's and ITK's header of a message: "WARNING: In /path/itkMetaImageIO.cxx, line 658"
_SOURCE_LINE = re.compile(r"^(?P<level>WARNING|ERROR|Generic Warning|Warning|Error): In .*, line \d+$")
_MAX_SUMMARY_CHARACTERS = 300


class CapturedText:
    """The text captured by :func:`captured_native_output` (available after the block)."""

    def __init__(self) -> None:
        self.text = ""

    def summary(self) -> str:
        return summarize(self.text)


@contextmanager
def captured_native_output() -> Iterator[CapturedText]:
    """Redirect the process's stdout and stderr (file descriptors 1 and 2) to a temporary file while
    the block runs: vtkOutputWindow prints its "Info:" texts on stdout, warnings and errors on stderr.

    Python's own ``sys.stdout`` and ``sys.stderr`` are flushed before and after, so nothing is lost or
    reordered.
    """
    captured = CapturedText()
    streams = (sys.stdout, sys.stderr)
    for stream in streams:
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield captured
        finally:
            with held():  # a Ctrl-C here would leave the output in the file, and its messages unseen
                for stream in streams:
                    stream.flush()
                for descriptor, copy in enumerate(saved, start=1):
                    os.dup2(copy, descriptor)
                    os.close(copy)
            sink.seek(0)
            captured.text = strip_escapes(sink.read().decode("utf-8", errors="replace"))


def strip_escapes(text: str) -> str:
    """`text` without ANSI escape sequences (colours)."""
    return _ANSI_ESCAPE.sub("", text)


def summarize(text: str) -> str:
    """One plain sentence from log text: the distinct messages without timestamps, file:line and
    object prefixes or ITK's exception dumps, and without the lines that only say that reading or
    writing a file failed (the engine's own message says that, naming the user's file)."""
    messages = []
    skip_warning = False
    described = advice = False
    for raw in strip_escapes(text).splitlines():
        line = _COLLECTION_PREFIX.sub("", _LOG_PREFIX.sub("", raw).strip())
        if described and (advice or _ITK_ADVICE.match(line)):
            # the list of ITK's IO classes and its hints to programmers explain nothing to the user
            described = advice = bool(line)
            continue
        described = described and bool(line)
        header = _SOURCE_LINE.match(line)
        if header or (skip_warning and not line):
            # a warning's message (the line after its header) is not the failure being explained
            skip_warning = skip_warning or bool(header and header["level"].lower().endswith("warning"))
            continue
        if skip_warning:
            skip_warning = False
            continue
        description = _ITK_DESCRIPTION.match(line)
        if description:
            line = description.group(1)
            described = True
        elif _ITK_DUMP.match(line):
            continue
        line = " ".join(_SOURCE_PREFIX.sub("", line).split()).rstrip(".")
        if line and not _RESTATES_FAILURE.match(line):
            messages.append(line)
    summary = "; ".join(dict.fromkeys(messages))
    if len(summary) > _MAX_SUMMARY_CHARACTERS:
        summary = summary[: _MAX_SUMMARY_CHARACTERS - 3] + "..."
    return summary
