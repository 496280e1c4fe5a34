"""Which attributes a REG inherits from the fixed image, user overrides, and what is never copied.

The module tables of the Spatial Registration and Deformable Spatial Registration IODs come from highdicom's copy of the
standard (see :func:`standard_tables`), so no keyword list is retyped here except
the few series/frame-of-reference attributes that are deliberately taken from the fixed image.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterable, Mapping
from functools import cache

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import DeformableSpatialRegistrationStorage

from DicomRegSaveLib.dicom_file import tag_text
from DicomRegSaveLib.errors import InvalidRegistrationError
from DicomRegSaveLib.values import problem_for_attribute

logger = logging.getLogger(__name__)

#: The IODs written: Deformable Spatial Registration (66.3) and Spatial Registration (66.1).
DEFORMABLE_IOD_KEY = "deformable-spatial-registration"
SPATIAL_IOD_KEY = "spatial-registration"
REG_IOD_KEYS = (DEFORMABLE_IOD_KEY, SPATIAL_IOD_KEY)

#: Information entities whose attributes are copied from the fixed image, as the REG joins its study.
INHERITED_ENTITIES = ("Patient", "Study")

#: Outside those entities, attributes of the fixed image that describe the same patient anatomy
#: and frame: Laterality is Type 2C in General Series and dciodvfy expects it with Body Part.
INHERITED_FROM_FIXED_SERIES = ("BodyPartExamined", "Laterality", "PositionReferenceIndicator")

#: Modules the writer fills itself: copying source values into them would describe the image,
#: not the registration (wrong equipment, UIDs, geometry).
GENERATED_MODULES = (
    "general-series",
    "spatial-registration-series",
    "frame-of-reference",
    "general-equipment",
    "enhanced-general-equipment",
    "deformable-spatial-registration",
    "spatial-registration",
    "common-instance-reference",
    "sop-common",
)

#: Overrides that would silently break the registration's meaning or structure; a modifier
#: callable can still change them, and the conformance check then runs on the result.
PROTECTED_KEYWORDS = frozenset(
    {
        "SOPClassUID",
        "Modality",
        "FrameOfReferenceUID",
        "DeformableRegistrationSequence",
        "RegistrationSequence",
        "ReferencedSeriesSequence",
        "StudiesContainingOtherReferencedInstancesSequence",
    }
)


#: Attributes that say whose images and which study the REG belongs to: a value set by the user
#: must be the fixed image's, since the REG must match the images it references.
IDENTITY_KEYWORDS = ("PatientName", "PatientID", "StudyInstanceUID")


@cache
def standard_tables() -> tuple[dict[str, list], dict[str, list]]:
    """highdicom's copy of the standard: (IOD key -> modules, module key -> attributes).

    highdicom 0.27 (bundled with 3D Slicer) has them as Python modules, 0.28 and later as JSON
    behind ``_standard_utils``; both are private, so this is the one place that knows.
    """
    try:
        from highdicom._standard_utils import get_iod_module_map, get_module_attribute_map
    except ImportError:
        from highdicom._iods import IOD_MODULE_MAP
        from highdicom._modules import MODULE_ATTRIBUTE_MAP

        return IOD_MODULE_MAP, MODULE_ATTRIBUTE_MAP
    return get_iod_module_map(), get_module_attribute_map()


def load_standard_tables() -> None:
    """Load every copy of the standard's tables that writing a REG reads, once per process.

    Ours (:func:`standard_tables`) and the ones highdicom's SOP-class constructor consults through
    ``is_attribute_in_iod`` (on 0.28 and later also the SOP class -> IOD map). A process that
    forks workers calls this first, so that each worker starts with the tables loaded.
    """
    standard_tables()
    try:
        from highdicom._standard_utils import is_attribute_in_iod
    except ImportError:
        from highdicom._module_utils import is_attribute_in_iod
    is_attribute_in_iod("ContentDate", DeformableSpatialRegistrationStorage)


def _reg_modules() -> list[dict]:
    """The modules of both registration IODs, each once."""
    modules = {module["key"]: module for key in REG_IOD_KEYS for module in standard_tables()[0][key]}
    return list(modules.values())


@cache
def module_root_keywords(module_key: str) -> frozenset[str]:
    """Keywords at the root level of one module of the standard (e.g. ``"general-study"``)."""
    return frozenset(str(entry["keyword"]) for entry in standard_tables()[1][module_key] if not entry["path"])


@cache
def inherited_keywords() -> tuple[str, ...]:
    """Root keywords of the REG IOD's Patient and Study modules, plus the fixed-series extras."""
    keywords: list[str] = []
    for module in _reg_modules():
        if module["ie"] in INHERITED_ENTITIES:
            keywords.extend(sorted(module_root_keywords(module["key"])))
    keywords.extend(INHERITED_FROM_FIXED_SERIES)
    return tuple(dict.fromkeys(keywords))


@cache
def _reg_iod_keywords() -> frozenset[str]:
    return frozenset().union(*(module_root_keywords(m["key"]) for m in _reg_modules()))


@cache
def _generated_keywords() -> frozenset[str]:
    return frozenset().union(*(module_root_keywords(key) for key in GENERATED_MODULES))


def check_reg_attribute(keyword: str) -> None:
    """Raise InvalidRegistrationError unless `keyword` belongs to a module of the REG IOD."""
    if keyword not in _reg_iod_keywords():
        raise InvalidRegistrationError(
            f"{keyword} belongs to no module of the registration object (PS3.3 A.39.2), so it cannot be set "
            "on it; validators would flag it. Set only attributes of the REG's modules."
        )


def check_identity(values: Mapping[str, object], fixed_image: Dataset) -> None:
    """Raise InvalidRegistrationError if `values` give a patient or study (:data:`IDENTITY_KEYWORDS`)
    other than the fixed image's."""
    contradictions = [
        f"{keyword} {values[keyword]!r} (the fixed image has {str(fixed_image.get(keyword, ''))!r})"
        for keyword in IDENTITY_KEYWORDS
        if keyword in values and str(values[keyword]) != str(fixed_image.get(keyword, ""))
    ]
    if contradictions:
        raise InvalidRegistrationError(
            "The registration must belong to the fixed image's patient and study, but these values differ: "
            + "; ".join(contradictions)
            + ". Leave them out (they are inherited), or choose the right fixed image."
        )


def inherit_from_fixed(dataset: Dataset, fixed_image: Dataset) -> None:
    """Copy the patient, study and fixed-series attributes present in `fixed_image` into `dataset`.

    Specific Character Set is copied with them, because the copied text is encoded in it.
    """
    if "SpecificCharacterSet" in fixed_image:
        dataset.SpecificCharacterSet = fixed_image.SpecificCharacterSet
    for keyword in inherited_keywords():
        if keyword in fixed_image:
            dataset[keyword] = copy.deepcopy(fixed_image[keyword])


def copy_extra_attributes(dataset: Dataset, source: Dataset, keywords: Iterable[str]) -> None:
    """Opt-in: copy further attributes from a source image, warning about each.

    Raises
    ------
    InvalidRegistrationError
        For attributes of the modules the writer generates itself (UIDs, equipment, geometry):
        set those with overrides instead.
    """
    for keyword in keywords:
        if tag_for_keyword(keyword) is None:
            raise InvalidRegistrationError(f"Cannot copy {keyword!r}: not a DICOM keyword.")
        if keyword in _generated_keywords() or keyword == "PixelData":
            raise InvalidRegistrationError(
                f"{keyword} describes the registration object itself and is never copied from an "
                "image; set it with an override if you need a specific value."
            )
        if keyword not in source:
            raise InvalidRegistrationError(f"Cannot copy {keyword}: the source image has no such attribute.")
        where = (
            "a REG module" if keyword in _reg_iod_keywords() else "no module of the REG IOD (validators will flag it)"
        )
        message = f"Copying {keyword} from the source image on request; it belongs to {where}."
        warnings.warn(message, stacklevel=2)
        logger.warning(message)
        dataset[keyword] = copy.deepcopy(source[keyword])


def resolve_keyword(key: str) -> str:
    """A DICOM keyword from a keyword or a tag written ``gggg,eeee`` / ``(gggg,eeee)``."""
    text = key.strip()
    if tag_for_keyword(text) is not None:
        return text
    digits = text.strip("()").replace(",", "")
    try:
        keyword = keyword_for_tag(Tag(int(digits, 16)))
    except ValueError:
        keyword = ""
    if not keyword:
        raise InvalidRegistrationError(
            f"Unknown attribute {key!r}: name it by its DICOM keyword (e.g. SeriesDescription) or as a "
            "public tag gggg,eeee; private attributes cannot be set."
        )
    return keyword


def override_problem(keyword: str, value: object) -> str | None:
    """What is wrong with `value` for the attribute `keyword` as an override, or ``None``: the
    checks of :func:`values.problem_for_attribute`, which the conformance check applies too."""
    if keyword in PROTECTED_KEYWORDS:
        return (
            f"{keyword} cannot be overridden: it defines what the registration means or references. "
            "Change the inputs instead"
        )
    if value is None or value == "":
        return None
    return problem_for_attribute(keyword, value)


def check_override(keyword: str, value: object) -> None:
    """Raise InvalidRegistrationError naming the attribute if :func:`override_problem` finds a problem."""
    problem = override_problem(keyword, value)
    if problem is not None:
        raise InvalidRegistrationError(f"Override {tag_text(Tag(keyword))}: {problem}.")


def apply_overrides(dataset: Dataset, overrides: Mapping[str, object]) -> None:
    """Set (or, with value ``None``, delete) attributes by keyword or tag, after checking each value."""
    for key, value in overrides.items():
        keyword = resolve_keyword(key)
        check_override(keyword, value)
        if value is None:
            if keyword in dataset:
                del dataset[keyword]
            continue
        setattr(dataset, keyword, value)
        if keyword == "SOPInstanceUID" and getattr(dataset, "file_meta", None) is not None:
            dataset.file_meta.MediaStorageSOPInstanceUID = value


def ensure_character_set(dataset: Dataset) -> None:
    """Declare UTF-8 (ISO_IR 192) when text needs more than ASCII and no character set is declared."""
    if "SpecificCharacterSet" in dataset:
        return
    text_vrs = {"PN", "LO", "SH", "ST", "LT", "UT", "UC"}
    for element in dataset.iterall():
        if element.VR in text_vrs and element.value is not None:
            if not str(element.value).isascii():
                dataset.SpecificCharacterSet = "ISO_IR 192"
                return
