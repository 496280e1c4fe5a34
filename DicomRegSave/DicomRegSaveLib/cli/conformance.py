"""``dicomregsave conformance``: print the DICOM conformance statement (:mod:`cli.conformance_statement`)."""

from __future__ import annotations

import argparse

from DicomRegSaveLib.cli.parser import EXIT_OK

__all__ = ["command_conformance", "register"]


def register(commands: argparse._SubParsersAction) -> None:
    conformance = commands.add_parser("conformance", help="print the DICOM conformance statement (Markdown)")
    conformance.set_defaults(run=command_conformance)


def command_conformance(args: argparse.Namespace) -> int:
    from DicomRegSaveLib.cli.conformance_statement import conformance_statement

    print(conformance_statement(), end="")
    return EXIT_OK
