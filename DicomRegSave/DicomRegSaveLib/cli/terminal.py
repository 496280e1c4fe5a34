"""Progress on the terminal: one line on stderr, redrawn in place, for steps that take a while.

Drawn only when stderr is a terminal, so that scripts, pipes and captured output never see it, and
only once the command has run for :data:`DEFAULT_DELAY_S` (short commands print nothing). The
environment variable ``DICOMREGSAVE_PROGRESS_DELAY_S`` changes that delay (the tests use it to see
the line without waiting).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import time
from typing import TextIO

from DicomRegSaveLib.interrupts import held

__all__ = ["DEFAULT_DELAY_S", "DELAY_VARIABLE", "TerminalProgress"]

#: Seconds a command runs before its progress is shown.
DEFAULT_DELAY_S = 2.0
#: The environment variable that replaces :data:`DEFAULT_DELAY_S`.
DELAY_VARIABLE = "DICOMREGSAVE_PROGRESS_DELAY_S"
#: Digits in a progress message.
_NUMBERS = re.compile(r"\d+")
#: Characters the terminal itself may have added after the line: the ``^C`` it echoes on Ctrl-C.
_ECHOED = 2


def _step(message: str) -> str:
    """What names the step in a progress message: the message without its numbers (a count of
    files found changes as the step goes on)."""
    return _NUMBERS.sub("", message)


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
    or ``message... N s`` for a step whose amount of work is not known (fraction 0: files being
    found, an external program running), N the seconds the step has run.

    Draws only when `stream` (default stderr) is a terminal, and only after `delay_s` (default: the
    environment's, else :data:`DEFAULT_DELAY_S`) since it was made. A new step (a message that
    differs from the last in more than its numbers, or a fraction lower than the last: the steps
    of one operation each go from 0 to 1) is drawn at once, updates of a step (a count, a
    percentage) at most every `interval_s` seconds. A helper thread
    redraws the line every `interval_s` while the engine is busy between two calls, so that a
    long step appears once the delay has passed and its seconds count on. The line is cut to the
    terminal's width.

    :meth:`close` (or leaving the ``with`` block, also on an error or Ctrl-C) clears the line;
    whatever the command prints next starts at the line's beginning. A later call draws again.
    """

    def __init__(self, stream: TextIO | None = None, delay_s: float | None = None, interval_s: float = 0.1) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = time.monotonic()
        self._delay_s = _environment_delay_s() if delay_s is None else delay_s
        self._interval_s = interval_s
        # the state below is shared with the redrawing thread, under the lock
        self._lock = threading.Lock()
        self._message: str | None = None
        self._fraction = 0.0
        self._step_since = 0.0
        self._drawn_at = 0.0
        self._shown = ""
        self._terminal: TextIO | None = None
        self._stop = threading.Event()
        self._redrawing: threading.Thread | None = None

    def __call__(self, fraction: float, message: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        with self._lock:
            new_step = self._message is None or fraction < self._fraction or _step(message) != _step(self._message)
            if new_step:
                self._step_since = now
            self._message, self._fraction = message, fraction
            if new_step or now - self._drawn_at >= self._interval_s:
                self._draw(now)
        if self._redrawing is None:
            self._stop.clear()
            redrawing = threading.Thread(target=self._redraw, name="progress line", daemon=True)
            redrawing.start()  # before it is recorded: close() joins only a started thread
            self._redrawing = redrawing

    def _redraw(self) -> None:
        """The helper thread: the line as it is now, every `interval_s`, until :meth:`close`."""
        while not self._stop.wait(self._interval_s):
            with self._lock:
                if self._message is not None:
                    self._draw(time.monotonic())

    def _draw(self, now: float) -> None:
        """Show the current step (with the lock held), unless the delay has not passed yet."""
        if now - self._started < self._delay_s:
            return
        self._drawn_at = now
        if self._fraction > 0:
            text = f"{self._message}: {100.0 * self._fraction:3.0f}%"
        else:
            seconds = int(now - self._step_since)
            text = f"{self._message}... {seconds} s" if seconds else f"{self._message}..."
        if self._terminal is None:
            # a descriptor of its own: the engine redirects stderr's while native code runs
            # (native_log.captured_native_output), and the line must not land in what it captures
            self._terminal = open(
                os.dup(self.stream.fileno()), "w", encoding=getattr(self.stream, "encoding", None), errors="replace"
            )
        text = text[: self._columns() - 1]
        if text != self._shown:
            previous, self._shown = self._shown, text
            self._terminal.write("\r" + text.ljust(len(previous)))
            self._terminal.flush()

    def _columns(self) -> int:
        """The terminal's width (80 where it does not say)."""
        try:
            columns = os.get_terminal_size(self._terminal.fileno()).columns
        except (OSError, ValueError):
            columns = 0
        return columns or 80

    def close(self) -> None:
        """Stop redrawing and clear the line (if one was drawn). A Ctrl-C meanwhile waits until it is clear."""
        with held():
            redrawing, self._redrawing = self._redrawing, None
            if redrawing is not None:
                self._stop.set()
                redrawing.join()
            with self._lock:
                self._message, self._fraction = None, 0.0
                if self._terminal is not None:
                    if self._shown:
                        width = min(len(self._shown) + _ECHOED, self._columns() - 1)
                        self._terminal.write("\r" + " " * width + "\r")
                    self._terminal.close()
                    self._terminal, self._shown = None, ""

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
