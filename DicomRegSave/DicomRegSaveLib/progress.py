"""One progress and cancel protocol for the engine's long operations.

A long operation (searching folders, sampling a transform onto a grid, writing Vector Grid Data,
writing a field file, building transform nodes) takes an optional ``progress`` callable and calls it between
chunks as ``progress(fraction, message)``: `fraction` is the part of the operation done, from 0.0
to 1.0, never decreasing; `message` says in a few words what is being done.

A step whose amount of work is not known reports fraction 0 and its label: finding files in
folders, with the count so far in the message (:func:`file_walker.walk`); an external program
running (``Checking with dciodvfy``); a library call that says nothing until it is done (``Writing
out.nrrd``). A caller may give one callback to several operations in turn (a line on a terminal
shows each, and takes a lower fraction or a new label for the next step); a caller that shows one
bar for the whole gives each a :func:`part`.

To cancel, the callback raises (preferably :class:`OperationCancelled`). The operation stops at
once, the exception propagates unchanged to the caller, and no output file is left behind: every
writer of the engine writes to a temporary file that is removed on any exception
(:func:`output.atomic_output`).
"""

from __future__ import annotations

from collections.abc import Callable

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
