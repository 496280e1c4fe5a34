"""The ``dicomregsave`` parser: one sub-command per registered command module, and the arguments
and helpers several commands share.

A command module has ``register(commands)``: it adds its sub-command(s) to `commands` (the result of
``add_subparsers``), each with ``set_defaults(run=FUNCTION)``, ``FUNCTION(args) -> exit status``.
Modules import what their work needs inside those functions, so that parsing stays fast.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import TextIO

from DicomRegSaveLib import __version__
from DicomRegSaveLib.errors import DicomRegSaveError
from DicomRegSaveLib.export.option_table import BY_NAME, ExportOption

__all__ = [
    "EXIT_CLOSED_PIPE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "add_json_argument",
    "add_network_arguments",
    "add_option",
    "build_parser",
    "network_defaults",
    "peer",
    "positive_int",
    "regular_expression",
    "text_stream",
]

#: Exit statuses: success, an error explained in one paragraph on stderr, wrong usage (a malformed
#: option value included, named by its option).
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
#: Exit status when the reader of the output has gone (``dicomregsave inspect REG | head``): what a
#: shell reports for a writer ended by SIGPIPE.
EXIT_CLOSED_PIPE = 128 + 13
#: Exit status after Ctrl-C (nothing partial left): what a shell reports for a command ended by SIGINT.
EXIT_INTERRUPTED = 128 + 2


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


def _usage_error(check: Callable[[str], object]) -> Callable[[str], object]:
    """`check` as an argparse type: the engine's error about the value becomes a usage error (exit 2)
    that argparse prefixes with the option's name."""

    def convert(text: str) -> object:
        try:
            return check(text)
        except DicomRegSaveError as error:
            raise argparse.ArgumentTypeError(str(error).rstrip(".")) from error

    convert.__name__ = check.__name__
    return convert


@_usage_error
def _tag_assignment(text: str) -> tuple[str, str]:
    """``KEYWORD=VALUE`` (or ``gggg,eeee=VALUE``) as (keyword, value), the attribute and the value
    checked as the module panel checks its fields."""
    from DicomRegSaveLib.export.options import describe_keyword, tag_problem
    from DicomRegSaveLib.reg import tags

    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEYWORD=VALUE (e.g. InstitutionName=Clinic)")
    keyword = tags.resolve_keyword(key)
    tags.check_reg_attribute(keyword)
    problem = tag_problem(keyword, value)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{describe_keyword(keyword)} {value!r}: {problem}")
    return keyword, value


def _attribute_text(keyword: str) -> Callable[[str], str]:
    """An argparse type for a value of the attribute `keyword`, checked as a panel field is."""

    def check(text: str) -> str:
        from DicomRegSaveLib.export.options import describe_keyword, tag_problem

        problem = tag_problem(keyword, text)
        if problem is not None:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {describe_keyword(keyword)}: {problem}")
        return text

    check.__name__ = keyword
    return check


def _positive(convert: Callable[[str], float], what: str) -> Callable[[str], float]:
    """An argparse type for a positive number (finite), converted by `convert`, named `what` in the message."""

    def check(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            value = 0
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    check.__name__ = convert.__name__
    return check


positive_int = _positive(int, "a positive whole number")
_positive_seconds = _positive(float, "a positive number of seconds")


def regular_expression(text: str) -> str:
    try:
        re.compile(text)
    except re.error as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid regular expression ({error})") from error
    return text


def _slot(text: str) -> tuple[int, int]:
    """``K/N`` (1 <= K <= N): the automatic Series Number slot of row K of N (--series-number-slot)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text, re.ASCII)
    if match is None or not 1 <= int(match[1]) <= int(match[2]):
        raise argparse.ArgumentTypeError(f"{text!r} is not K/N with 1 <= K <= N (for example 2/5)")
    return int(match[1]), int(match[2])


def _uid(text: str) -> str:
    from DicomRegSaveLib.values import problem_uid

    problem = problem_uid(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a UID: {problem}")
    return text


@_usage_error
def _uid_root(text: str) -> str:
    from DicomRegSaveLib.export.pipeline import checked_uid_root

    return checked_uid_root(text)


@_usage_error
def _registration_type(text: str) -> object:
    from DicomRegSaveLib.export.options import registration_type_code

    return registration_type_code(text)


@_usage_error
def peer(text: str) -> object:
    from DicomRegSaveLib.cli.network import Peer

    return Peer.parse(text)


def _ae_title(text: str) -> str:
    from DicomRegSaveLib.cli.network import valid_ae_title

    if not valid_ae_title(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an AE title: 1-16 characters, no backslash or control characters"
        )
    return text


#: How the command line converts and checks an option's text, by its value type (the others stay text).
_CONVERTERS: dict[str, Callable[[str], object]] = {
    "path": Path,
    "float": float,
    "seconds": _positive_seconds,
    "slot": _slot,
    "tag": _tag_assignment,
    "code": _registration_type,
    "uid": _uid,
    "uid_root": _uid_root,
    "peer": peer,
    "ae_title": _ae_title,
}


def _converter(option: ExportOption) -> Callable[[str], object] | None:
    """An attribute's value is checked by the attribute's rules; other values by their type."""
    keyword = option.value_keyword or option.keyword
    if keyword is not None:
        return _attribute_text(keyword)
    return _CONVERTERS.get(option.value_type)


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
    if _converter(option) is not None:
        details["type"] = _converter(option)
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
