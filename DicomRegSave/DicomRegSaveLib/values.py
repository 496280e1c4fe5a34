"""Checks of single DICOM values (UI, CS, PN, DA, TM, IS, sex) with messages a user can act on.

Each ``problem_*`` function returns ``None`` for a valid value or a sentence saying what is wrong;
the Slicer panel shows these inline, the writer raises them through :func:`require`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .errors import InvalidRegistrationError

_UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_CONTENT_LABEL_PATTERN = re.compile(r"^[A-Z0-9_ ]*$")
_DATE_PATTERN = re.compile(r"^\d{8}$")
_TIME_PATTERN = re.compile(r"^([01]\d|2[0-3])([0-5]\d([0-5]\d(\.\d{1,6})?)?)?$")


def problem_uid(value: str) -> str | None:
    """UI: at most 64 characters, dot-separated numbers without leading zeros."""
    if not isinstance(value, str) or not value:
        return "a UID must be a non-empty string"
    if len(value) > 64:
        return f"UID {value!r} is {len(value)} characters long; the limit is 64"
    if not _UID_PATTERN.match(value):
        return f"UID {value!r} must consist of digits and dots, with no leading zeros in a component"
    return None


def problem_content_label(value: str) -> str | None:
    """Content Label (CS, Type 1): 1 to 16 characters of A-Z, 0-9, space and underscore."""
    if not value or not value.strip():
        return "the Content Label must not be empty"
    if len(value) > 16:
        return f"Content Label {value!r} is {len(value)} characters long; the limit is 16"
    if not _CONTENT_LABEL_PATTERN.match(value):
        return (
            f"Content Label {value!r} may contain only capital letters A-Z, digits, space and "
            "underscore (DICOM code string)"
        )
    return None


def problem_person_name(value: str) -> str | None:
    """PN: at most five ``^``-separated components, each at most 64 characters, no control characters."""
    if value is None:
        return None
    text = str(value)
    for group in text.split("="):
        components = group.split("^")
        if len(components) > 5:
            return f"person name {text!r} has more than 5 '^'-separated components"
        if any(len(c) > 64 for c in components):
            return f"a component of person name {text!r} is longer than 64 characters"
    if any(ord(c) < 32 for c in text):
        return f"person name {text!r} contains control characters"
    return None


def problem_date(value: str) -> str | None:
    """DA: YYYYMMDD, or empty."""
    if value in ("", None):
        return None
    if not _DATE_PATTERN.match(value):
        return f"date {value!r} must be written YYYYMMDD"
    month, day = int(value[4:6]), int(value[6:8])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return f"date {value!r} has an impossible month or day"
    return None


def problem_time(value: str) -> str | None:
    """TM: HH[MM[SS[.FFFFFF]]], or empty."""
    if value in ("", None):
        return None
    if not _TIME_PATTERN.match(value):
        return f"time {value!r} must be written HHMMSS[.FFFFFF]"
    return None


def problem_patient_sex(value: str) -> str | None:
    """Patient's Sex: M, F, O or empty."""
    if value in ("", None, "M", "F", "O"):
        return None
    return f"patient's sex {value!r} must be M, F, O or empty"


def problem_integer_string(value: object, minimum: int = 1, maximum: int = 2**31 - 1) -> str | None:
    """IS within [minimum, maximum] (Series Number, Instance Number)."""
    try:
        number = int(str(value).strip())
    except ValueError:
        return f"{value!r} is not a whole number"
    if not minimum <= number <= maximum:
        return f"{number} is outside the range {minimum} to {maximum}"
    return None


def require(problem: Callable[..., str | None], value: object, what: str, *args: object) -> None:
    """Raise InvalidRegistrationError naming `what` if ``problem(value, *args)`` finds a problem."""
    message = problem(value, *args)
    if message is not None:
        raise InvalidRegistrationError(f"{what}: {message}.")
