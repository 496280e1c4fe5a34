"""The ``dicomregsave`` command: export, send, batch, to-transform, inspect, validate, qa, resample, conformance,
demo.

The command line parses arguments and prints; the work is done by the engine's modules. Each
command lives in a module of this package with a ``register(commands)`` function
(:mod:`cli.parser`); :data:`COMMANDS` lists them, in the order of the help. Adding a command is
one module and one line there. How every command ends (exit statuses, messages, reports of
failures) is :mod:`cli.policy`'s.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import nullcontext

from DicomRegSaveLib.cli import batch_command, conformance, demo, export_send, qa_commands, reading
from DicomRegSaveLib.cli.parser import build_parser
from DicomRegSaveLib.cli.policy import run_command
from DicomRegSaveLib.cli.process import command_process

__all__ = ["COMMANDS", "main"]

#: The command modules, in the order of the help.
COMMANDS = (export_send, batch_command, reading, qa_commands, conformance, demo)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dicomregsave ARGV``; return the exit status. Without `argv` (the console script,
    ``python -m``) it runs the process's own arguments as the process's one command
    (:func:`cli.process.command_process`)."""
    with command_process() if argv is None else nullcontext():
        return run_command(build_parser(COMMANDS), argv)


if __name__ == "__main__":
    sys.exit(main())
