"""The ``dicomregsave`` command: export, send, batch, to-transform, inspect, validate, qa, resample, conformance,
demo.

The command line parses arguments and prints; the work is done by the engine's modules. Each
command lives in a module of this package with a ``register(commands)`` function
(:mod:`cli.parser`); :func:`commands` lists them, in the order of the help. Adding a command is
one module and one line there. How every command ends (exit statuses, messages, reports of
failures) is :mod:`cli.policy`'s.

This module imports nothing else at first: :func:`main` takes charge of Ctrl-C before the command
modules and the libraries they use are imported (:mod:`interrupts`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import nullcontext
from types import ModuleType

from DicomRegSaveLib import interrupts
from DicomRegSaveLib.cli.process import command_process

__all__ = ["commands", "main"]


def commands() -> tuple[ModuleType, ...]:
    """The command modules, in the order of the help."""
    from DicomRegSaveLib.cli import batch_command, conformance, demo, export_send, qa_commands, reading

    return (export_send, batch_command, reading, qa_commands, conformance, demo)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dicomregsave ARGV`` and return the exit status.

    Without `argv` (the console script, ``python -m``) the process's own arguments are run and the
    command is all the process does: a Ctrl-C after the command has ended no longer changes its exit
    status, and the garbage collector's schedule is the command process's
    (:func:`cli.process.command_process`) from before the libraries are imported.
    """
    own_process = argv is None
    with interrupts.installed(ends_process=own_process), command_process() if own_process else nullcontext():
        from DicomRegSaveLib.cli.parser import build_parser
        from DicomRegSaveLib.cli.policy import run_command

        return run_command(build_parser(commands()), argv)


if __name__ == "__main__":
    sys.exit(main())
