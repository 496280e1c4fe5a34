"""The DICOM conformance statement of DicomRegSave, generated from the tables the writer uses.

:func:`conformance_statement` renders ``Resources/ConformanceStatement.md``: the module lists of the
IODs (66.3 and 66.1) come from the standard's tables (:func:`tags.standard_tables`), what is inherited from the
fixed image from :mod:`tags`, the user-settable attributes from :data:`export.option_table.OPTION_FIELDS`, the
attributes written from a REG built in memory by the writer itself, and the network side from
:mod:`network`. A test compares the file with this output, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from pydicom.datadict import dictionary_description, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import UID, DeformableSpatialRegistrationStorage, SpatialRegistrationStorage

from DicomRegSaveLib import IMPLEMENTATION_VERSION_NAME, __version__
from DicomRegSaveLib.cli import network
from DicomRegSaveLib.model import DisplacementGrid, ImageReference, Registration, RegistrationItem, RegistrationMatrix
from DicomRegSaveLib.reg import tags

#: Sources of the attributes the writer fills itself, beyond the generated default. Keys are
#: attribute paths (``Sequence > Keyword``) of the REG; values say where the value comes from.
FROM_INPUTS = {
    "FrameOfReferenceUID": "the fixed image's Frame of Reference UID (the Registered RCS)",
    "PositionReferenceIndicator": "the fixed image's, or empty",
    "DeformableRegistrationSequence > SourceFrameOfReferenceUID": "the moving image's Frame of Reference UID",
    "DeformableRegistrationSequence > ReferencedImageSequence": "every moving image instance (frame numbers for frame subsets)",
    "DeformableRegistrationSequence > DeformableRegistrationGridSequence": "the transform's displacement grid, in the fixed frame",
    "DeformableRegistrationSequence > PreDeformationMatrixRegistrationSequence": "the transform's linear part before the grid (identity if none)",
    "DeformableRegistrationSequence > PostDeformationMatrixRegistrationSequence": "the transform's linear part after the grid (identity if none)",
    "DeformableRegistrationSequence > RegistrationTypeCodeSequence": "user-set (`--registration-type`), default 125024 Image Content-based Alignment",
    "DeformableRegistrationSequence > FrameOfReferenceTransformationComment": "user-set (`--comment`)",
    "ReferencedSeriesSequence": "moving images in the fixed image's study (Common Instance Reference)",
    "StudiesContainingOtherReferencedInstancesSequence": "moving images in other studies, by study",
    "RegistrationSequence > FrameOfReferenceUID": "the moving image's Frame of Reference UID (the source frame)",
    "RegistrationSequence > ReferencedImageSequence": "every moving image instance (frame numbers for frame subsets)",
    "RegistrationSequence > MatrixRegistrationSequence": "the inverse of the linear transform (it maps the moving "
    "frame to the fixed frame) as one Matrix Sequence item with its type (RIGID, RIGID_SCALE or AFFINE); "
    "Registration Type Code (`--registration-type`) and comment (`--comment`) as for a deformable registration",
}

#: (title, IOD key in the standard's tables) of the IODs written.
_IODS = (("Deformable Spatial Registration", tags.DEFORMABLE_IOD_KEY), ("Spatial Registration", tags.SPATIAL_IOD_KEY))

_USAGE = {"M": "Mandatory", "C": "Conditional", "U": "User option"}


def _sample_dataset(iod_key: str) -> Dataset:
    """A REG of the IOD as the writer makes it for a small registration, with every optional item present."""
    from DicomRegSaveLib.export.options import ExportOptions
    from DicomRegSaveLib.export.pipeline import create_dataset

    fixed = Dataset()
    fixed.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    fixed.SOPInstanceUID = "1.2.3.1"
    fixed.PatientName, fixed.PatientID = "Sample^Patient", "SAMPLE"
    fixed.StudyInstanceUID, fixed.SeriesInstanceUID = "1.2.3.2", "1.2.3.3"
    fixed.FrameOfReferenceUID = "1.2.3.4"
    moving = ImageReference("1.2.840.10008.5.1.4.1.1.2", "1.2.3.5", "1.2.3.6", "1.2.3.7", "1.2.3.8")
    in_study = ImageReference("1.2.840.10008.5.1.4.1.1.2", "1.2.3.9", "1.2.3.10", "1.2.3.2", "1.2.3.8")
    grid = DisplacementGrid([0.0, 0.0, 0.0], np.eye(3), [1.0, 1.0, 1.0], np.zeros((2, 2, 2, 3), np.float32))
    if iod_key == tags.SPATIAL_IOD_KEY:
        item = RegistrationItem(
            "1.2.3.8", [moving, in_study], matrix_registration=RegistrationMatrix.identity(), comment="sample"
        )
    else:
        item = RegistrationItem("1.2.3.8", [moving, in_study], grid, comment="sample")
    registration = Registration("1.2.3.4", [item])
    return create_dataset(registration, fixed, ExportOptions(content_creator_name="Sample^Creator"))


def _paths(dataset: Dataset, prefix: str = "") -> Iterator[str]:
    for element in dataset:
        if element.tag.is_private or element.tag.group == 0x0002:
            continue
        path = f"{prefix}{element.keyword}"
        yield path
        if element.VR == "SQ" and element.value and path not in FROM_INPUTS:
            yield from _paths(element.value[0], path + " > ")


def _name(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    return f"{dictionary_description(tag)} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


#: Option attributes whose default is chosen for each REG rather than fixed.
_CHOSEN_DEFAULTS = {
    "SeriesNumber": "the lowest number from 1000 up that no series of the fixed image's study uses among the "
    "series the export sees (input files, output folder, Slicer's DICOM database)",
}


def _source(path: str) -> str:
    from DicomRegSaveLib.export.option_table import OPTION_FIELDS

    keyword = path.split(" > ")[-1]
    if path in FROM_INPUTS:
        return FROM_INPUTS[path]
    if " > " not in path and keyword in tags.inherited_keywords():
        return "inherited from the fixed image"
    if " > " not in path and keyword in OPTION_FIELDS:
        default = _CHOSEN_DEFAULTS.get(keyword, "DicomRegSave's default")
        return f"user-set (`ExportOptions.{OPTION_FIELDS[keyword]}`: command-line option, panel field), else {default}"
    return "generated by DicomRegSave"


def _module_of(keyword: str, iod_key: str) -> str:
    for module in tags.standard_tables()[0][iod_key]:
        if keyword in tags.module_root_keywords(module["key"]):
            return module["key"]
    return "file meta / other"


def conformance_statement() -> str:
    """The conformance statement as Markdown (what ``dicomregsave conformance`` prints)."""
    samples = {key: _sample_dataset(key) for _, key in _IODS}
    meta = samples[tags.DEFORMABLE_IOD_KEY].file_meta
    reg = UID(DeformableSpatialRegistrationStorage)
    spatial = UID(SpatialRegistrationStorage)
    written = UID(str(meta.TransferSyntaxUID))
    lines = [
        f"# DICOM Conformance Statement — DicomRegSave {__version__}",
        "",
        "Generated by `dicomregsave conformance` from the tables the writer uses; "
        "a test fails when this file and the code disagree.",
        "",
        "## 1 Implementation model",
        "",
        "DicomRegSave is an application (3D Slicer module and the `dicomregsave` command) that writes a "
        "registration between a fixed and a moving DICOM image series as a DICOM registration object "
        "(file-set creator), reads such objects back (file-set reader) and sends DICOM files to a storage "
        "SCP (Storage SCU). It has no SCP role and does not accept associations.",
        "",
        f"* Implementation Class UID: `{meta.ImplementationClassUID}` (the toolkit's)",
        f"* Implementation Version Name: `{IMPLEMENTATION_VERSION_NAME}` (file meta and association)",
        "",
        "## 2 SOP classes",
        "",
        "| SOP Class | UID | Role |",
        "|---|---|---|",
        f"| {reg.name} | `{reg}` | file-set creator (FSC), file-set reader (FSR), Storage SCU |",
        f"| {spatial.name} | `{spatial}` | file-set creator (FSC, for linear transforms), file-set reader (FSR), "
        "Storage SCU |",
        "| Any storage SOP class of a file given to `send` | (as in the file) | Storage SCU |",
        f"| {UID(network.VERIFICATION_SOP_CLASS_UID).name} | `{network.VERIFICATION_SOP_CLASS_UID}` | SCU (C-ECHO before sending) |",
        "",
        "## 3 Transfer syntaxes",
        "",
        f"* Written: {written.name} (`{written}`) only.",
        "* Read: any transfer syntax pydicom decodes (Explicit/Implicit VR Little Endian, Deflated, Big Endian).",
        "* Sent: for each SOP class, one presentation context proposing the files' own transfer syntaxes "
        "(so that they arrive as they are) and, for uncompressed files, a second one proposing "
        + " and ".join(f"{UID(s).name} (`{s}`)" for s in network.UNCOMPRESSED_TRANSFER_SYNTAXES)
        + ". At most "
        f"{network.MAX_PRESENTATION_CONTEXTS} presentation contexts per association, Verification included.",
        "",
        "## 4 Network (Storage SCU)",
        "",
        f"* Calling AE title `{network.DEFAULT_CALLING_AE_TITLE}` unless `--calling-aet` is given; the called AE "
        "title, host and port come from `--to AET@HOST:PORT`.",
        "* One association per command: C-ECHO first, then one C-STORE per file; no retries. A file is stored "
        "when the status is Success or Warning; any other status, a rejected or aborted association or an "
        "unreachable peer is reported with the peer's status explained, and the command exits with 1.",
        f"* Timeouts (connection, ACSE, DIMSE, network): {network.DEFAULT_TIMEOUT_S:g} s unless `--timeout` is given.",
        "",
        "## 5 The IODs' modules",
    ]
    for title, iod_key in _IODS:
        lines += [
            "",
            f"### {title}",
            "",
            "| IE | Module | Usage | Written |",
            "|---|---|---|---|",
        ]
        for module in tags.standard_tables()[0][iod_key]:
            key = module["key"]
            if module["ie"] in tags.INHERITED_ENTITIES:
                how = "attributes present in the fixed image are copied"
            elif key in tags.GENERATED_MODULES:
                how = "always (see section 6)"
            else:
                how = "only attributes set by the user (`--tag`)"
            lines.append(f"| {module['ie']} | {key} | {_USAGE.get(module['usage'], module['usage'])} | {how} |")
    lines += [
        "",
        "## 6 Attributes written and their source",
        "",
        "Inherited from the fixed image (when present there): every attribute of the "
        + ", ".join(
            m["key"] for m in tags.standard_tables()[0][tags.DEFORMABLE_IOD_KEY] if m["ie"] in tags.INHERITED_ENTITIES
        )
        + " modules, and "
        + ", ".join(tags.INHERITED_FROM_FIXED_SERIES)
        + ". The Specific Character Set is copied with them.",
    ]
    for title, iod_key in _IODS:
        lines += [
            "",
            f"### {title}",
            "",
            "| Attribute | Module | Source |",
            "|---|---|---|",
        ]
        for path in _paths(samples[iod_key]):
            keyword = path.split(" > ")[-1]
            name = " > ".join(_name(k) for k in path.split(" > "))
            module = _module_of(path.split(" > ")[0], iod_key)
            if " > " not in path and keyword in tags.inherited_keywords() and keyword not in FROM_INPUTS:
                continue
            lines.append(f"| {name} | {module} | {_source(path)} |")
    lines += [
        "",
        "Any other attribute of the IOD's modules can be set with `--tag KEYWORD=VALUE` (checked against its VR); "
        "never " + ", ".join(sorted(tags.PROTECTED_KEYWORDS)) + ", which define what the registration means. "
        "Patient Name, Patient ID and Study Instance UID must equal the fixed image's.",
        "",
        "## 7 Character sets",
        "",
        "The fixed image's Specific Character Set is copied with the text inherited from it. When no character "
        "set is declared and a text value needs more than ASCII, ISO_IR 192 (UTF-8) is declared.",
        "",
        "## 8 UIDs",
        "",
        "* Study Instance UID and Frame of Reference UID: the fixed image's (the registration joins its study and "
        "frame).",
        "* Series Instance UID and SOP Instance UID: new for every export, under the UID root given with "
        "`--uid-root` (at most 44 characters, so that 20 unique digits remain within 64 characters), else under "
        "highdicom's root.",
        "* Referenced SOP Class/Instance UIDs: the fixed and moving images' own.",
        "",
    ]
    return "\n".join(lines)
