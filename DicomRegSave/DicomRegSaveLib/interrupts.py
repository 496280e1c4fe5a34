"""Ctrl-C (SIGINT) at any moment: acted on only where it leaves nothing half done.

Python turns Ctrl-C into a KeyboardInterrupt at whatever bytecode runs. Raised while a module is
being imported, it leaves that module half initialised: numpy, VTK or Slicer's extension modules
then fail to import again ("cannot load module more than once"), raise odd errors, or crash the
process when it ends. Raised while a finished file is being moved into place, or while a
temporary file is being removed, it leaves the file system half done.

:func:`installed` sets a handler that holds a Ctrl-C back

* from the start of the command until its error policy is ready for it (:func:`allow`),
* while a module is being imported (any frame of the import system on the stack); a helper thread
  asks again every few milliseconds, so the interrupt is raised as soon as the import has ended,
* inside :func:`held` blocks (a few steps that must finish once begun);

and otherwise raises KeyboardInterrupt at once, so that every writer's clean-up
(:func:`output.atomic_output`) runs as for any other exception. After the first interrupt, further
Ctrl-Cs are ignored: the clean-up it started is not cut short.
"""

from __future__ import annotations

import _thread
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["allow", "held", "installed"]

#: Seconds between the helper thread's requests while an import holds an interrupt back.
_RETRY_S = 0.02
#: Module names of the import system's own frames (frozen, or from source in some builds).
_IMPORT_SYSTEM = frozenset(
    {"_frozen_importlib", "_frozen_importlib_external", "importlib._bootstrap", "importlib._bootstrap_external"}
)


class _State:
    """The handler's state: one per :func:`installed` block."""

    def __init__(self) -> None:
        self.starting = True
        self.depth = 0
        self.pending = False
        self.interrupting = False
        self.retrying = False


_state = _State()


@contextmanager
def installed(ends_process: bool = False) -> Iterator[None]:
    """Handle Ctrl-C as this module says while the block runs.

    Ctrl-C is held back from the start of the block until :func:`allow`. Afterwards the previous
    handler is restored, or with `ends_process` (the block is all the process does) Ctrl-C is
    ignored: the command's exit status stands while the process ends. Nested blocks share the
    outer one's handling. Where SIGINT is ignored (``nohup``, a background job) or handled by
    someone else, or outside the main thread, nothing is changed.
    """
    global _state
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main_thread else None
    if previous is not signal.default_int_handler:
        yield
        return
    _state = _State()
    signal.signal(signal.SIGINT, _on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN if ends_process else previous)
        _state = _State()


def allow() -> None:
    """End the hold from the start of :func:`installed`: a Ctrl-C held back so far is raised now,
    later ones when they come."""
    _state.starting = False
    _raise_if_pending()


@contextmanager
def held() -> Iterator[None]:
    """Hold Ctrl-C back while the block runs; one that came meanwhile is raised when it ends."""
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
    _raise_if_pending()


def _raise_if_pending() -> None:
    if _state.pending and not _state.starting and not _state.depth:
        _state.pending = False
        _state.interrupting = True
        raise KeyboardInterrupt


def _on_interrupt(number: int, frame: FrameType | None) -> None:
    if _state.interrupting:
        return
    if _state.starting or _state.depth:
        _state.pending = True
        return
    if _importing(frame):
        _state.pending = True
        _ask_again_later()
        return
    _state.pending = False
    _state.interrupting = True
    raise KeyboardInterrupt


def _importing(frame: FrameType | None) -> bool:
    """True when the import system is on the stack of `frame`."""
    while frame is not None:
        if frame.f_globals.get("__name__") in _IMPORT_SYSTEM:
            return True
        frame = frame.f_back
    return False


def _ask_again_later() -> None:
    """Until the held interrupt is raised, deliver it again every few milliseconds (a simulated
    signal: the handler runs again at the main thread's next bytecode, no system call is disturbed)."""
    if _state.retrying:
        return
    _state.retrying = True
    state = _state

    def retry() -> None:
        while True:
            time.sleep(_RETRY_S)
            if state is not _state or not state.pending or state.interrupting:
                break
            _thread.interrupt_main(signal.SIGINT)
        state.retrying = False

    # a bare thread: threading's own locks may be held by the frame this handler interrupted
    _thread.start_new_thread(retry, ())
