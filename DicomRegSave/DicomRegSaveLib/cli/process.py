"""What ``dicomregsave`` sets as a process of its own, and a call of :func:`cli.main.main` inside another
Python program must not: the schedule of Python's cyclic garbage collector.

A command's start-up leaves some 300 000 long-lived objects that the collector tracks: the modules,
pydicom's dictionaries and the standard's tables that highdicom's SOP-class constructor loads (200 000
of them). Python's default schedule visits all of them at each of the full collections it makes while
they are being created, and its last collection at the interpreter's exit visits them once more to free
them one by one: together about a third of a rigid export (0.3 of 0.8 s CPU), for a process that ends a
moment later anyway. The schedule is Python's again once the command is done; only the exit skips that
last visit.
"""

from __future__ import annotations

import atexit
import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["FULL_COLLECTION_INTERVAL", "command_process"]

#: Collections of the middle generation between two full collections (Python's default is 10): young
#: objects are collected as usual, a full collection comes once per some 7 million objects created.
FULL_COLLECTION_INTERVAL = 1000


@contextmanager
def command_process() -> Iterator[None]:
    """Run one command as the process's own: full collections rare while it runs (the schedule is
    restored after it), and what is alive when the interpreter exits frozen (:func:`gc.freeze` at
    exit), so that the exit does not visit it again."""
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], FULL_COLLECTION_INTERVAL)
    atexit.register(gc.freeze)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
