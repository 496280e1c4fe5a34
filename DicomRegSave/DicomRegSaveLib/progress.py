"""One progress and cancel protocol for the engine's long operations.

A long operation (sampling a transform onto a grid, writing Vector Grid Data, writing a field
file, building transform nodes) takes an optional ``progress`` callable and calls it between
chunks as ``progress(fraction, message)``: `fraction` is the part of the operation done, from 0.0
to 1.0, never decreasing; `message` says in a few words what is being done.

To cancel, the callback raises (preferably :class:`OperationCancelled`). The operation stops at
once, the exception propagates unchanged to the caller, and no output file is left behind: every
writer of the engine writes to a temporary file that is removed on any exception
(:func:`output.atomic_output`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

#: ``progress(fraction, message)``; see the module documentation.
Progress = Callable[[float, str], None]


def ignore_progress(fraction: float, message: str) -> None:
    """The callback used when the caller passes none."""


def part(progress: Progress | None, start: float, stop: float) -> Progress:
    """A callback for one step of a longer operation: its 0..1 is reported as `start`..`stop`."""
    if progress is None:
        return ignore_progress

    def report(fraction: float, message: str) -> None:
        progress(start + (stop - start) * min(max(fraction, 0.0), 1.0), message)

    return report


class TerminalProgress:
    """A progress callback that draws ``message: NN%`` on one line of a terminal (stderr).

    Draws only when `stream` is a terminal, at most every `interval_s` seconds, and only after the
    operation has run for `delay_s` (short operations print nothing). :meth:`close` ends the line.
    """

    def __init__(self, stream: TextIO | None = None, delay_s: float = 0.5, interval_s: float = 0.1) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = time.monotonic()
        self._delay_s = delay_s
        self._interval_s = interval_s
        self._last_drawn = 0.0
        self._width = 0

    def __call__(self, fraction: float, message: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._started < self._delay_s or (now - self._last_drawn < self._interval_s and fraction < 1.0):
            return
        self._last_drawn = now
        text = f"{message}: {100.0 * fraction:3.0f}%"
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def close(self) -> None:
        """Clear the progress line (if one was drawn)."""
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
