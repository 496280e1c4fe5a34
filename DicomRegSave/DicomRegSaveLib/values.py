"""Checks of DICOM values with messages a user can act on: one set for the writer, the validator,
tag overrides and the Slicer panel.

Each ``problem_*`` function returns ``None`` for a valid value or a sentence saying what is wrong.
:func:`problem_for_attribute` checks any value against its VR (length, character repertoire,
format, range), its attribute's rules and its multiplicity; the conformance check applies it to
every element of a dataset, and the writer runs that check before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
from pydicom.datadict import dictionary_VM, dictionary_VR
from pydicom.multival import MultiValue

from DicomRegSaveLib.errors import InvalidRegistrationError

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


# Any value against its VR and its attribute (the writer's and the validator's one set of checks) ---

#: Largest number of characters of one value (PS3.5 Table 6.2-1).
MAX_CHARACTERS = {
    "AE": 16,
    "AS": 4,
    "CS": 16,
    "DA": 8,
    "DS": 16,
    "DT": 26,
    "IS": 12,
    "LO": 64,
    "LT": 10240,
    "SH": 16,
    "ST": 1024,
    "TM": 14,
    "UI": 64,
}
#: Inclusive ranges of the integer VRs.
INTEGER_RANGES = {
    "IS": (-(2**31), 2**31 - 1),
    "SS": (-(2**15), 2**15 - 1),
    "US": (0, 2**16 - 1),
    "SL": (-(2**31), 2**31 - 1),
    "UL": (0, 2**32 - 1),
    "SV": (-(2**63), 2**63 - 1),
    "UV": (0, 2**64 - 1),
}
#: VRs whose values are text; the backslash separates values in all but the single-valued ones.
_STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)
_SINGLE_VALUED_TEXT_VRS = frozenset({"LT", "ST", "UT", "UR"})
#: Control characters allowed in free text for layout (PS3.5 6.1.3): TAB, LF, FF, CR.
_LAYOUT_CONTROLS = frozenset("\t\n\f\r")
_ESCAPE = "\x1b"

_DECIMAL_PATTERN = re.compile(r"^ *[+-]?(\d+|\d+\.\d*|\.\d+)([eE][+-]?\d+)? *$")
_INTEGER_PATTERN = re.compile(r"^ *[+-]?\d+ *$")
_DATETIME_PATTERN = re.compile(r"^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?$")
_AGE_PATTERN = re.compile(r"^\d{3}[DWMY]$")
_VM_PATTERN = re.compile(r"(\d+)(?:-(\d*)(n?))?")

#: Rules of particular attributes on top of their VR's.
_ATTRIBUTE_RULES: dict[str, Callable[[object], str | None]] = {
    "ContentLabel": lambda value: problem_content_label(str(value)),
    "PatientSex": lambda value: problem_patient_sex(str(value)),
    "SeriesNumber": problem_integer_string,
    # 0 is a valid Instance Number (IS allows it; RayStation writes it).
    "InstanceNumber": lambda value: problem_integer_string(value, 0),
}


def separates_values(vr: str) -> bool:
    """True if a backslash in a text value of `vr` separates values (all text VRs but LT, ST, UT, UR)."""
    return vr in _STRING_VRS and vr not in _SINGLE_VALUED_TEXT_VRS


def problem_characters(vr: str, text: str, code_extensions: bool = False) -> str | None:
    """Characters that a value of `vr` may not hold: NUL and other control characters (free text
    keeps TAB, LF, FF, CR; ESC only with ISO 2022 code extensions) and, where it separates values,
    the backslash."""
    for character in text:
        if character == "\0":
            return "it contains a NUL character"
        if character == _ESCAPE and code_extensions:
            continue
        if ord(character) < 32 or ord(character) == 127:
            if vr in _SINGLE_VALUED_TEXT_VRS and character in _LAYOUT_CONTROLS:
                continue
            return f"it contains control characters ({character!r})"
    if "\\" in text and separates_values(vr):
        return "it contains a backslash, which DICOM reads as a separator between values"
    return None


def problem_value(vr: str, value: object, code_extensions: bool = False) -> str | None:
    """One value of VR `vr` as it will be written: length, character repertoire, format, range.

    Returns ``None`` when the value is valid (or of a VR without such rules), else a sentence.
    """
    if value is None:
        return None
    if vr in INTEGER_RANGES and vr != "IS" and not isinstance(value, str):
        low, high = INTEGER_RANGES[vr]
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            return f"{value!r} is not a whole number (VR {vr})"
        if not low <= int(value) <= high:
            return f"{int(value)} is outside the range of VR {vr} ({low} to {high})"
        return None
    if vr in ("FL", "FD"):
        return (
            None if isinstance(value, (int, float, np.floating, np.integer)) else f"{value!r} is not a number (VR {vr})"
        )
    if vr not in _STRING_VRS or isinstance(value, (bytes, bytearray)):
        return None
    text = str(value)
    # formats that say more than a length would
    if vr == "UI":
        return problem_uid(text) if text else None
    if vr == "DA":
        return problem_date(text.rstrip(" "))
    if vr == "TM":
        return problem_time(text.rstrip(" "))
    limit = MAX_CHARACTERS.get(vr)
    if limit is not None and len(text.rstrip(" ")) > limit:
        hint = " (format numbers with pydicom.valuerep.format_number_as_ds)" if vr == "DS" else ""
        shown = repr(text) if len(text) <= 24 else repr(text[:20]) + "..."
        return f"{shown} is {len(text)} characters long; the limit for {vr} is {limit}{hint}"
    problem = problem_characters(vr, text, code_extensions)
    if problem is not None:
        return f"{text[:40]!r}: {problem}"
    if vr == "PN":
        return problem_person_name(text)
    if vr == "CS" and text and not _CONTENT_LABEL_PATTERN.match(text.rstrip(" ")):
        return f"code string {text!r} may contain only capital letters A-Z, digits, space and underscore"
    if vr == "DS" and text.strip() and not (_DECIMAL_PATTERN.match(text) and np.isfinite(float(text))):
        return f"{text!r} is not a decimal number (VR DS)"
    if vr == "IS" and text.strip():
        if not _INTEGER_PATTERN.match(text):
            return f"{text!r} is not a whole number (VR IS)"
        low, high = INTEGER_RANGES["IS"]
        if not low <= int(text) <= high:
            return f"{int(text)} is outside the range of VR IS ({low} to {high})"
    if vr == "DT" and text.strip() and not _DATETIME_PATTERN.match(text.rstrip(" ")):
        return f"date-time {text!r} must be written YYYYMMDDHHMMSS.FFFFFF&ZZXX (leading parts only)"
    if vr == "AS" and text and not _AGE_PATTERN.match(text):
        return f"age {text!r} must be three digits and D, W, M or Y (e.g. 045Y)"
    return None


def problem_multiplicity(vm: str, count: int) -> str | None:
    """`count` values against a Value Multiplicity of the data dictionary (``1``, ``1-n``, ``2-2n``, ``1-3``)."""
    match = _VM_PATTERN.fullmatch(vm.strip())
    if count == 0 or match is None:
        return None
    low = int(match[1])
    if match[2] is None:
        high, step = low, 1
    elif match[3]:
        high, step = None, int(match[2]) if match[2] else 1
    else:
        high, step = int(match[2]), 1
    if count < low or (high is not None and count > high) or (count - low) % step:
        return f"it holds {count} value(s); the standard allows {vm}"
    return None


def _as_list(value: object) -> list:
    return list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]


def problem_for_attribute(
    keyword: str | int, value: object, vr: str | None = None, code_extensions: bool = False
) -> str | None:
    """`value` (one value or a list) for the attribute `keyword`: each value against its VR
    (:func:`problem_value`), the attribute's own rules, and the multiplicity. ``None`` when valid.

    `keyword` may be a tag for attributes without one (private or unknown: no multiplicity
    check); `vr` defaults to the data dictionary's; `code_extensions` allows ESC (ISO 2022).
    """
    vr = vr or dictionary_VR(keyword)
    if vr == "SQ" or value is None:
        return None
    values = _as_list(value)
    for single in values:
        problem = None
        if keyword in _ATTRIBUTE_RULES and single not in ("", None):
            problem = _ATTRIBUTE_RULES[keyword](single)
        problem = problem or problem_value(vr, single, code_extensions)
        if problem is not None:
            return problem
    if not isinstance(keyword, str):
        return None
    count = 0 if values in ([], [""]) else len(values)
    return problem_multiplicity(dictionary_VM(keyword), count)


def uses_code_extensions(dataset) -> bool:
    """True if the dataset's Specific Character Set switches character sets with ISO 2022 escapes."""
    return any("2022" in str(term) for term in _as_list(dataset.get("SpecificCharacterSet") or []))
