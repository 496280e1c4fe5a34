"""The ``dicomregsave`` parser: one sub-command per registered command module, and the arguments
and helpers several commands share.

A command module has ``register(commands)``: it adds its sub-command(s) to `commands` (the result of
``add_subparsers``), each with ``set_defaults(run=FUNCTION)``, ``FUNCTION(args) -> exit status``.
Modules import what their work needs inside those functions, so that parsing stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import TextIO

from DicomRegSaveLib import __version__
from DicomRegSaveLib.export.option_table import BY_NAME, ExportOption

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "add_json_argument",
    "add_network_arguments",
    "add_option",
    "build_parser",
    "network_defaults",
    "positive_int",
    "text_stream",
]

#: Exit statuses: success, an error explained in one paragraph on stderr, wrong usage.
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def build_parser(commands: Iterable[ModuleType]) -> argparse.ArgumentParser:
    """The parser of ``dicomregsave`` with the sub-commands of the command modules `commands`, in order."""
    parser = argparse.ArgumentParser(
        prog="dicomregsave",
        description="Save registrations as DICOM Spatial Registration or Deformable Spatial Registration (REG) objects.",
    )
    parser.add_argument("--version", action="version", version=f"dicomregsave {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in commands:
        module.register(subparsers)
    return parser


def tag_assignment(text: str) -> tuple[str, str]:
    """``KEYWORD=VALUE`` as (keyword, value); the value is checked when the REG is built."""
    keyword, separator, value = text.partition("=")
    if not separator or not keyword.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEYWORD=VALUE (e.g. InstitutionName=Clinic)")
    return keyword.strip(), value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


#: How the command line converts an option's text, by its value type (the others stay text).
_CONVERTERS = {"path": Path, "float": float, "int": int, "tag": tag_assignment}


def add_option(parser: argparse.ArgumentParser, option: ExportOption, default: object = None) -> None:
    """`option` of the export option table as an argument of `parser`; `default` replaces the table's
    (and is named in the help)."""
    details: dict[str, object] = {"help": option.help}
    default = option.default if default is None else default
    if option.kind == "switch":
        parser.add_argument(option.flag, action="store_true", **details)
        return
    if default is not None and not option.choices:
        details["help"] = (
            f"{option.help} (default {default:g})"
            if isinstance(default, float)
            else (f"{option.help} (default {default})")
        )
    if option.kind == "values":
        details["nargs"] = "+"
    if option.kind == "repeat":
        details["action"] = "append"
    if option.value_type in _CONVERTERS:
        details["type"] = _CONVERTERS[option.value_type]
    if option.choices:
        details["choices"] = option.choices
    else:
        details["metavar"] = option.metavar
    parser.add_argument(option.flag, required=option.required, default=default, **details)


def network_defaults() -> dict[str, object]:
    """Option name -> default of the options of commands that send (our AE title, the peer's time-out)."""
    from DicomRegSaveLib.cli.network import DEFAULT_CALLING_AE_TITLE, DEFAULT_TIMEOUT_S

    return {"calling_aet": DEFAULT_CALLING_AE_TITLE, "timeout": DEFAULT_TIMEOUT_S}


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    """Our AE title and the peer's time-out, for commands that send."""
    for name, default in network_defaults().items():
        add_option(parser, BY_NAME[name], default)


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    add_option(parser, BY_NAME["json"])


def text_stream(args: argparse.Namespace) -> TextIO:
    """Where the text lines go: stderr when the JSON report takes stdout."""
    return sys.stderr if getattr(args, "json", None) == "-" else sys.stdout
