"""Progress on the terminal: one line on stderr, redrawn in place, for steps that take a while.

Drawn only when stderr is a terminal, so that scripts, pipes and captured output never see it, and
only once the command has run for :data:`DEFAULT_DELAY_S` (short commands print nothing). The
environment variable ``DICOMREGSAVE_PROGRESS_DELAY_S`` changes that delay (the tests use it to see
the line without waiting).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TextIO

__all__ = ["DEFAULT_DELAY_S", "DELAY_VARIABLE", "TerminalProgress"]

#: Seconds a command runs before its progress is shown.
DEFAULT_DELAY_S = 2.0
#: The environment variable that replaces :data:`DEFAULT_DELAY_S`.
DELAY_VARIABLE = "DICOMREGSAVE_PROGRESS_DELAY_S"


def _environment_delay_s() -> float:
    """The delay :data:`DELAY_VARIABLE` sets, else :data:`DEFAULT_DELAY_S`.

    Raises
    ------
    argparse.ArgumentTypeError
        If the variable holds no number: a usage error that names it.
    """
    value = os.environ.get(DELAY_VARIABLE)
    if value is None:
        return DEFAULT_DELAY_S
    try:
        return float(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"the environment variable {DELAY_VARIABLE} is {value!r}; it takes the seconds before progress is "
            "shown on a terminal, e.g. 2"
        ) from error


class TerminalProgress:
    """A progress callback (:mod:`progress`) that draws ``message: NN%`` on one line of a terminal,
    or ``message...`` while the amount of work is not known (fraction 0, e.g. files being found).

    Draws only when `stream` (default stderr) is a terminal, at most every `interval_s` seconds,
    and only after `delay_s` (default: the environment's, else :data:`DEFAULT_DELAY_S`) since it
    was made. The line is cut to the terminal's width. :meth:`close` (or leaving the ``with``
    block, also on an error or Ctrl-C) clears it.
    """

    def __init__(self, stream: TextIO | None = None, delay_s: float | None = None, interval_s: float = 0.1) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = time.monotonic()
        self._delay_s = _environment_delay_s() if delay_s is None else delay_s
        self._interval_s = interval_s
        self._last_drawn = 0.0
        self._width = 0

    def __call__(self, fraction: float, message: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._started < self._delay_s or now - self._last_drawn < self._interval_s:
            return
        self._last_drawn = now
        text = f"{message}: {100.0 * fraction:3.0f}%" if fraction > 0 else f"{message}..."
        text = text[: self._columns() - 1]
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def _columns(self) -> int:
        """The terminal's width (80 where it does not say)."""
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError):
            columns = 0
        return columns or 80

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
