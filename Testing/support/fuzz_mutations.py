"""Mutated REG files for fuzzing the reading side: seeds, mutation operators and the code under test.

Shared by the fuzz test in the suite (``test_fuzz.py``, hypothesis, fixed seed) and the long run
outside it (``fuzz_reader.py``). A mutation is a list of ``(operator, position, value)`` triples
applied in order, so hypothesis can shrink it and the long run can print it to reproduce a crash.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian

import reg_builders as rb
from DicomRegSaveLib.dicom_file import open_dicom_file
from DicomRegSaveLib.errors import DicomRegSaveError
from DicomRegSaveLib.reg.dump import dump
from DicomRegSaveLib.reg.reader import read_dataset, read_registration
from DicomRegSaveLib.validation.cross_file import check_against_images
from DicomRegSaveLib.validation.iod_rules import check_dataset

#: Lengths that damaged files declare: empty, odd, just too long, undefined, huge.
INTERESTING_LENGTHS = (0, 1, 3, 7, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF)
#: VR codes to write over a VR: real ones of the wrong kind, and unknown ones.
VR_CODES = (b"SQ", b"OF", b"UN", b"US", b"FD", b"DS", b"UI", b"ZZ", b"\x00\x00", b"ob", b"LT", b"AT", b"PN")

OPERATORS = (
    "flip_byte",
    "set_byte",
    "set_length",
    "set_vr",
    "truncate",
    "delete_span",
    "insert_bytes",
    "duplicate_span",
    "swap_value_text",
)


def seed_files(folder: Path) -> tuple[list[bytes], list[Dataset]]:
    """(REG files as bytes, image files of the first REG): explicit VR with and without an identity
    item and a pre-matrix, implicit VR, and a multi-item REG whose sequences are undefined length."""
    folder.mkdir(parents=True, exist_ok=True)
    numbers = itertools.count(1)
    # the same bytes in every run, so a mutation found once reproduces
    with mock.patch.object(rb, "generate_uid", lambda prefix: f"{prefix}{next(numbers)}"):
        return _seed_files(folder)


def _seed_files(folder: Path) -> tuple[list[bytes], list[Dataset]]:
    case = rb.make_case(identity_item=True, pre_matrix=np.diag([1.0, 1.0, 1.0, 1.0]))
    reg_path, _, _ = rb.write_case(case, folder / "a")
    seeds = [reg_path.read_bytes()]
    implicit = rb.make_case()
    implicit.dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    seeds.append(rb.write(implicit.dataset, folder / "implicit.dcm").read_bytes())
    undefined = rb.make_case(identity_item=True)
    for element in undefined.dataset.iterall():
        if element.VR == "SQ":
            element.is_undefined_length = True
    seeds.append(rb.write(undefined.dataset, folder / "undefined.dcm").read_bytes())
    return seeds, [*case.fixed, *case.moving]


def _u32(value: int) -> int:
    return value & 0xFFFFFFFF


def mutate(data: bytes, mutations: Sequence[tuple[str, int, int]]) -> bytes:
    """Apply ``(operator, position, value)`` mutations in order; positions wrap around the data."""
    buffer = bytearray(data)
    for operator, position, value in mutations:
        if not buffer:
            break
        at = position % len(buffer)
        if operator == "flip_byte":
            buffer[at] ^= 1 << (value % 8)
        elif operator == "set_byte":
            buffer[at] = value % 256
        elif operator == "set_length":
            length = INTERESTING_LENGTHS[value % len(INTERESTING_LENGTHS)] if value % 3 else _u32(value)
            buffer[at : at + 4] = struct.pack("<I", length)
        elif operator == "set_vr":
            vr_positions = _vr_positions(buffer)
            if vr_positions:
                where = vr_positions[position % len(vr_positions)]
                buffer[where : where + 2] = VR_CODES[value % len(VR_CODES)]
        elif operator == "truncate":
            del buffer[max(132, at) :]
        elif operator == "delete_span":
            del buffer[at : at + 1 + value % 64]
        elif operator == "insert_bytes":
            buffer[at:at] = value.to_bytes(8, "little")[: 1 + value % 8]
        elif operator == "duplicate_span":
            span = buffer[at : at + 1 + value % 256]
            buffer[at:at] = span
        elif operator == "swap_value_text":
            buffer[at : at + 8] = (b"\\", b"\x00", b"\x1b[31m", b"1.2.03", b"-5", b"9" * 20, b"nan", b"\xff\xfe")[
                value % 8
            ]
    return bytes(buffer)


def _vr_positions(buffer: bytearray) -> list[int]:
    """Offsets of explicit VRs of the seeds' elements (an even tag, then two capital letters)."""
    found = []
    for vr in (b"SQ", b"OF", b"UI", b"DS", b"FD", b"US", b"UL", b"CS", b"LO", b"SH", b"IS", b"PN", b"DA"):
        start = 0
        while (index := buffer.find(vr, start)) != -1:
            found.append(index)
            start = index + 1
    return sorted(found)


def exercise(path: Path, images: Sequence[Dataset]) -> dict[str, str]:
    """Run the reader, the dump (``inspect``) and the in-process checks (``validate``) on one file.

    Returns the outcome of each: ``"ok"`` or the product error's class name. Any other exception
    propagates: that is a crash the fuzzing is looking for. The REG is read once for the reader and
    the checks (``read_registration(path)`` is ``read_registration(read_dataset(path))``).
    """
    outcomes: dict[str, str] = {}
    try:
        dataset, _ = open_dicom_file(path)
        dump(dataset, max_chars=40)
        outcomes["inspect"] = "ok"
    except DicomRegSaveError as error:
        outcomes["inspect"] = type(error).__name__
    try:
        dataset = read_dataset(path)
    except DicomRegSaveError as error:
        outcomes["read"] = outcomes["validate"] = type(error).__name__
        return outcomes
    try:
        read_registration(dataset)
        outcomes["read"] = "ok"
    except DicomRegSaveError as error:
        outcomes["read"] = type(error).__name__
    check_dataset(dataset)
    check_against_images(dataset, images)
    outcomes["validate"] = "ok"
    return outcomes
