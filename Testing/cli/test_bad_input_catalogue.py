"""A catalogue of bad inputs to the command line: transform files, DICOM inputs, tag values, outputs
and the reading side. Every case must exit 1 with one paragraph saying what is wrong (no
traceback, no ANSI codes, no "unexpected error"), or, for a malformed option value, exit 2 with
the option named; leave no file behind and change no input (the whole case folder is hashed
before and after).

The commands run in this process (``cli.main``) with file descriptor 2 captured, so that what
VTK/ITK write to stderr from C++ counts too; that keeps ~70 exports affordable in the suite.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest

from DicomRegSaveLib.cli import main as cli
from DicomRegSaveLib.inputs.sampledata import make_demo_case


def _nrrd(path: Path, array: np.ndarray, kinds: str, value_type: str = "float") -> Path:
    sizes = " ".join(str(n) for n in array.shape[::-1])
    directions = "none (1,0,0) (0,1,0) (0,0,1)" if kinds.startswith("vector") else "(1,0,0) (0,1,0) (0,0,1)"
    header = (
        f"NRRD0004\ntype: {value_type}\ndimension: {array.ndim}\nspace: left-posterior-superior\nsizes: {sizes}\n"
        f"space directions: {directions}\nkinds: {kinds}\nendian: little\nencoding: raw\nspace origin: (0,0,0)\n\n"
    )
    path.write_bytes(header.encode() + array.tobytes())
    return path


def _mha(path: Path, vectors_kji: np.ndarray, spacing: str = "4 4 4", channels: int = 3, ndims: int = 3) -> Path:
    dims = " ".join(str(n) for n in vectors_kji.shape[:ndims][::-1])
    header = (
        f"ObjectType = Image\nNDims = {ndims}\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        f"Offset = -60 -60 -40\nElementSpacing = {spacing}\nDimSize = {dims}\n"
        f"ElementNumberOfChannels = {channels}\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n"
    )
    path.write_bytes(header.encode() + vectors_kji.astype("<f4").tobytes())
    return path


def _nifti_scalar(path: Path) -> Path:
    header = bytearray(348)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, 3, 4, 4, 4, 1, 1, 1, 1)
    struct.pack_into("<h", header, 70, 16)
    struct.pack_into("<h", header, 72, 32)
    struct.pack_into("<8f", header, 76, 1, 1, 1, 1, 1, 1, 1, 1)
    struct.pack_into("<f", header, 108, 352)
    header[344:348] = b"n+1\0"
    path.write_bytes(bytes(header) + b"\0" * 4 + np.zeros(64, "<f4").tobytes())
    return path


def _replace_vr(path: Path, tag: tuple[int, int], vr: bytes, new: bytes, target: Path) -> Path:
    data = bytearray(path.read_bytes())
    offset = data.find(struct.pack("<HH", *tag) + vr)
    assert offset > 0, (path, tag)
    data[offset + 4 : offset + 6] = new
    target.write_bytes(data)
    return target


def _set_length(path: Path, tag: tuple[int, int], vr: bytes, length: int, target: Path) -> Path:
    data = bytearray(path.read_bytes())
    offset = data.find(struct.pack("<HH", *tag) + vr)
    assert offset > 0, (path, tag)
    if vr in (b"OB", b"OF", b"SQ", b"UN", b"UT", b"OW"):
        data[offset + 8 : offset + 12] = struct.pack("<I", length)
    else:
        data[offset + 6 : offset + 8] = struct.pack("<H", length)
    target.write_bytes(data)
    return target


def _edit(source: Path, target: Path, change) -> Path:
    dataset = pydicom.dcmread(source)
    change(dataset)
    dataset.save_as(target)
    return target


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """The demo case, a valid REG exported from it, and every bad input (built once)."""
    root = tmp_path_factory.mktemp("catalogue")
    case = make_demo_case(root / "case")
    bad = root / "bad"
    bad.mkdir()
    good_reg = root / "good" / "reg.dcm"
    good_reg.parent.mkdir()
    assert (
        cli.main(
            [
                "export",
                "--transform",
                str(case.field_path),
                "--fixed",
                str(case.fixed_dir),
                "--moving",
                str(case.moving_dir),
                "--output",
                str(good_reg),
            ]
        )
        == 0
    )
    slices = sorted(case.fixed_dir.iterdir())
    vectors = np.zeros((5, 6, 7, 3), np.float32)

    # transform files
    (bad / "garbage.h5").write_bytes(b"not a transform")
    (bad / "garbage.tfm").write_text("#Insight Transform File V1.0\nTransform: Nonsense\n")
    (bad / "transform.xyz").write_text("x")
    (bad / "empty.mha").write_bytes(b"")
    (bad / "binary.mha").write_bytes(os.urandom(200))
    _nrrd(bad / "scalar.nrrd", np.zeros((5, 6, 7), np.float32), "domain domain domain")
    _nrrd(bad / "two.nrrd", np.zeros((5, 6, 7, 2), np.float32), "vector domain domain domain")
    _nrrd(bad / "short.nrrd", np.zeros((5, 6, 7, 3), np.int16), "vector domain domain domain", "short")
    _nifti_scalar(bad / "scalar.nii")
    (bad / "two_d.tfm").write_text(
        "#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_2_2\n"
        "Parameters: 1 0 0 1 5 6\nFixedParameters: 0 0\n"
    )
    nan = vectors.copy()
    nan[1, 2, 3] = nan[4, 5, 6] = np.nan
    _mha(bad / "nan.mha", nan)
    infinite = vectors.copy()
    infinite[0, 0, 0, 1] = np.inf
    _mha(bad / "inf.mha", infinite)
    partial = vectors.copy()
    partial[2, 2, 2, 0] = np.nan
    _mha(bad / "partial_nan.mha", partial)
    _mha(bad / "zero_spacing.mha", vectors, spacing="4 0 4")
    _mha(bad / "two_d.mha", np.zeros((6, 7, 2), np.float32), channels=2, ndims=2)
    (bad / "truncated.mha").write_bytes(_mha(bad / "whole.mha", vectors).read_bytes()[:-100])
    (bad / "detached.mhd").write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 7 6 5\nElementNumberOfChannels = 3\nElementType = MET_FLOAT\n"
        "ElementSpacing = 1 1 1\nElementDataFile = missing.raw\n"
    )

    # DICOM inputs
    (bad / "empty").mkdir()
    (bad / "folder.h5").mkdir()
    (bad / "notes").mkdir()
    (bad / "notes" / "readme.txt").write_text("no DICOM here")
    two = bad / "two_series"
    shutil.copytree(case.fixed_dir, two / "a")
    shutil.copytree(case.moving_dir, two / "b")
    (bad / "garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff")
    for name, damage in {
        "unknown_vr": lambda s, t: _replace_vr(s, (0x0020, 0x0032), b"DS", b"\x01\x02", t),
        "huge_length": lambda s, t: _set_length(s, (0x0028, 0x0030), b"DS", 0xFFFF, t),
        "truncated": lambda s, t: t.write_bytes(s.read_bytes()[:300]) and t,
        "duplicate_uid": None,
        "missing_slice": None,
        "tilted_slice": None,
        "no_frame": None,
    }.items():
        folder = bad / f"fixed_{name}"
        shutil.copytree(case.fixed_dir, folder)
        victim = folder / slices[3].name
        if name == "duplicate_uid":
            _edit(
                folder / slices[4].name,
                folder / "copy.dcm",
                lambda d, victim=victim: setattr(d, "SOPInstanceUID", pydicom.dcmread(victim).SOPInstanceUID),
            )
            (folder / slices[4].name).unlink()
        elif name == "missing_slice":
            victim.unlink()
        elif name == "tilted_slice":
            _edit(victim, victim, lambda d: setattr(d, "ImageOrientationPatient", [1, 0, 0, 0, 0.8, 0.6]))
        elif name == "no_frame":
            for path in folder.iterdir():
                _edit(path, path, lambda d: delattr(d, "FrameOfReferenceUID"))
        else:
            damage(victim, victim)

    # reading side
    (bad / "text.dcm").write_text("not DICOM")
    _replace_vr(good_reg, (0x0008, 0x0070), b"LO", b"ZZ", bad / "reg_unknown_vr.dcm")
    (bad / "reg_truncated.dcm").write_bytes(good_reg.read_bytes()[:-5000])
    _set_length(good_reg, (0x0064, 0x0009), b"OF", 0xFFFFFFF0, bad / "reg_huge_length.dcm")
    _edit(good_reg, bad / "reg_two_uids.dcm", lambda d: setattr(d, "StudyInstanceUID", [d.StudyInstanceUID, "1.2.3"]))
    _edit(
        good_reg,
        bad / "reg_short_vectors.dcm",
        lambda d: setattr(
            d.DeformableRegistrationSequence[0].DeformableRegistrationGridSequence[0],
            "VectorGridData",
            d.DeformableRegistrationSequence[0].DeformableRegistrationGridSequence[0].VectorGridData[:-12],
        ),
    )
    _edit(
        good_reg,
        bad / "reg_one_dimension.dcm",
        lambda d: setattr(
            d.DeformableRegistrationSequence[0].DeformableRegistrationGridSequence[0], "GridDimensions", [4]
        ),
    )
    os.symlink(slices[0], bad / "link_to_fixed.dcm")
    (root / "out").mkdir()
    (root / "out" / "existing.dcm").write_bytes(b"precious")
    return root, case


def _export(root: Path, case, **changes) -> list[str]:
    arguments = {
        "--transform": case.field_path,
        "--fixed": case.fixed_dir,
        "--moving": case.moving_dir,
        "--output": root / "out" / "reg.dcm",
    }
    extra = changes.pop("extra", [])
    arguments.update({f"--{k.replace('_', '-')}": v for k, v in changes.items()})
    return ["export", *[str(x) for pair in arguments.items() for x in pair], *map(str, extra)]


B = Path("bad")
FIRST = "FIXED_0001.dcm"

#: id -> (command line from (root, case), words the message must contain)
CASES = {
    # transform files
    "transform_missing": (lambda r, c: _export(r, c, transform=r / B / "nowhere.h5"), "does not exist"),
    "transform_unsupported": (lambda r, c: _export(r, c, transform=r / B / "transform.xyz"), "unsupported type"),
    "transform_garbage_h5": (lambda r, c: _export(r, c, transform=r / B / "garbage.h5"), "could not be read"),
    "transform_garbage_tfm": (lambda r, c: _export(r, c, transform=r / B / "garbage.tfm"), "could not be read"),
    "transform_empty": (lambda r, c: _export(r, c, transform=r / B / "empty.mha"), "empty.mha"),
    "transform_binary": (lambda r, c: _export(r, c, transform=r / B / "binary.mha"), "binary.mha"),
    "transform_scalar_nrrd": (lambda r, c: _export(r, c, transform=r / B / "scalar.nrrd"), "scalar values"),
    "transform_two_components": (lambda r, c: _export(r, c, transform=r / B / "two.nrrd"), "2 components per point"),
    "transform_integer": (lambda r, c: _export(r, c, transform=r / B / "short.nrrd"), "values of type short"),
    "transform_scalar_nifti": (lambda r, c: _export(r, c, transform=r / B / "scalar.nii"), "scalar values"),
    "transform_2d_affine": (lambda r, c: _export(r, c, transform=r / B / "two_d.tfm"), "2-D to 2-D transform"),
    "transform_2d_field": (lambda r, c: _export(r, c, transform=r / B / "two_d.mha"), "a 2-D image"),
    "transform_nan": (lambda r, c: _export(r, c, transform=r / B / "nan.mha"), "2 of 210 grid points are undefined"),
    "transform_inf": (lambda r, c: _export(r, c, transform=r / B / "inf.mha"), "must be finite"),
    "transform_partial_nan": (
        lambda r, c: _export(r, c, transform=r / B / "partial_nan.mha"),
        "all three components NaN",
    ),
    "transform_zero_spacing": (
        lambda r, c: _export(r, c, transform=r / B / "zero_spacing.mha"),
        "spacing must be positive",
    ),
    "transform_truncated": (lambda r, c: _export(r, c, transform=r / B / "truncated.mha"), "too short"),
    "transform_detached_missing": (lambda r, c: _export(r, c, transform=r / B / "detached.mhd"), "missing.raw"),
    "transform_is_folder": (lambda r, c: _export(r, c, transform=r / B / "folder.h5"), "not a file"),
    "transform_grid_spacing_on_nan": (lambda r, c: _export(r, c, transform=r / B / "nan.mha", grid_spacing=8), "NaN"),
    # DICOM inputs
    "fixed_missing": (lambda r, c: _export(r, c, fixed=r / B / "nowhere"), "does not exist"),
    "moving_empty_folder": (lambda r, c: _export(r, c, moving=r / B / "empty"), "No DICOM files"),
    "moving_only_text": (lambda r, c: _export(r, c, moving=r / B / "notes"), "No DICOM files"),
    "fixed_two_series": (lambda r, c: _export(r, c, fixed=r / B / "two_series"), "2 image series"),
    "fixed_garbage_file": (lambda r, c: _export(r, c, fixed=r / B / "garbage.dcm"), "garbage.dcm"),
    "fixed_text_named_dcm": (lambda r, c: _export(r, c, fixed=r / B / "text.dcm"), "not a DICOM file"),
    "fixed_is_moving": (lambda r, c: _export(r, c, fixed=c.moving_dir), "same series"),
    "fixed_is_a_reg": (lambda r, c: _export(r, c, fixed=r / "good"), "no image series"),
    "fixed_unknown_vr": (
        lambda r, c: _export(r, c, fixed=r / B / "fixed_unknown_vr"),
        "(0020,0032) ImagePositionPatient",
    ),
    "fixed_huge_length": (lambda r, c: _export(r, c, fixed=r / B / "fixed_huge_length"), "PixelSpacing"),
    "fixed_truncated_slice": (lambda r, c: _export(r, c, fixed=r / B / "fixed_truncated"), "cannot be read"),
    "fixed_duplicate_uid": (
        lambda r, c: _export(r, c, fixed=r / B / "fixed_duplicate_uid"),
        "share the SOP Instance UID",
    ),
    "fixed_missing_slice": (lambda r, c: _export(r, c, fixed=r / B / "fixed_missing_slice"), "not uniformly spaced"),
    "fixed_tilted_slice": (lambda r, c: _export(r, c, fixed=r / B / "fixed_tilted_slice"), "Image Orientation"),
    "fixed_no_frame": (lambda r, c: _export(r, c, fixed=r / B / "fixed_no_frame"), "Frame of Reference UID"),
    "fixed_series_not_there": (lambda r, c: _export(r, c, fixed_series="1.2.3"), "1.2.3"),
    # outputs
    "output_folder_missing": (lambda r, c: _export(r, c, output=r / "out" / "missing" / "reg.dcm"), "does not exist"),
    "output_exists": (lambda r, c: _export(r, c, output=r / "out" / "existing.dcm"), "exists already"),
    "output_is_fixed_slice": (
        lambda r, c: _export(r, c, output=c.fixed_dir / FIRST, extra=["--force"]),
        "is the input file",
    ),
    "output_is_transform": (lambda r, c: _export(r, c, output=c.field_path, extra=["--force"]), "is the input file"),
    "output_links_to_fixed": (
        lambda r, c: _export(r, c, output=r / B / "link_to_fixed.dcm", extra=["--force"]),
        "is the input file",
    ),
    "output_unwritable": (lambda r, c: _export(r, c, output="/proc/reg.dcm"), "Cannot write"),
    "json_is_an_input": (lambda r, c: _export(r, c, json=c.fixed_dir / FIRST), "is the input file"),
    "to_transform_over_reg": (
        lambda r, c: ["to-transform", str(r / "good" / "reg.dcm"), str(r / "good" / "reg.dcm"), "--force"],
        "is the input file",
    ),
    "to_transform_bad_extension": (
        lambda r, c: ["to-transform", str(r / "good" / "reg.dcm"), str(r / "out" / "x.xyz")],
        "use one of",
    ),
    # reading side
    "inspect_missing": (lambda r, c: ["inspect", str(r / B / "nowhere.dcm")], "no such file"),
    "inspect_text": (lambda r, c: ["inspect", str(r / B / "text.dcm")], "not a readable DICOM file"),
    "validate_text": (lambda r, c: ["validate", str(r / B / "text.dcm")], "not a readable DICOM file"),
    "read_image_not_reg": (
        lambda r, c: ["to-transform", str(c.fixed_dir / FIRST), str(r / "out" / "t.h5")],
        "this is CT Image Storage",
    ),
    "read_unknown_vr": (
        lambda r, c: ["to-transform", str(r / B / "reg_unknown_vr.dcm"), str(r / "out" / "t.h5")],
        "(0008,0070) Manufacturer",
    ),
    "read_truncated": (
        lambda r, c: ["to-transform", str(r / B / "reg_truncated.dcm"), str(r / "out" / "t.h5")],
        "truncated or a length in it is wrong",
    ),
    "read_huge_length": (
        lambda r, c: ["to-transform", str(r / B / "reg_huge_length.dcm"), str(r / "out" / "t.h5")],
        "truncated or a length in it is wrong",
    ),
    "read_two_uids": (
        lambda r, c: ["to-transform", str(r / B / "reg_two_uids.dcm"), str(r / "out" / "t.h5")],
        "holds 2 UIDs",
    ),
    "read_short_vectors": (
        lambda r, c: ["to-transform", str(r / B / "reg_short_vectors.dcm"), str(r / "out" / "t.nrrd")],
        "(0064,0009)",
    ),
    "read_one_dimension": (
        lambda r, c: ["to-transform", str(r / B / "reg_one_dimension.dcm"), str(r / "out" / "t.nrrd")],
        "Grid Dimensions",
    ),
    "validate_unknown_vr": (lambda r, c: ["validate", str(r / B / "reg_unknown_vr.dcm")], "(0008,0070) Manufacturer"),
    "validate_two_uids": (lambda r, c: ["validate", str(r / B / "reg_two_uids.dcm")], "holds 2 UIDs"),
}

#: Malformed option values: usage errors (exit 2) that name the option, before any input is read.
OPTION_VALUE_CASES = {
    "series_number_too_big": (lambda r, c: _export(r, c, series_number=2**31), "outside the range"),
    "series_number_negative": (lambda r, c: _export(r, c, series_number=-5), "outside the range 1"),
    "description_too_long": (lambda r, c: _export(r, c, series_description="x" * 65), "limit for LO is 64"),
    "description_backslash": (lambda r, c: _export(r, c, series_description="a\\b"), "the standard allows 1"),
    "description_control": (lambda r, c: _export(r, c, series_description="a\x07b"), "control characters"),
    "content_description_nul": (lambda r, c: _export(r, c, content_description="a\x00b"), "NUL"),
    "content_description_ansi": (lambda r, c: _export(r, c, content_description="\x1b[31mred"), "control characters"),
    "content_label_lower": (lambda r, c: _export(r, c, content_label="lower"), "capital letters"),
    "content_label_long": (lambda r, c: _export(r, c, content_label="A" * 17), "the limit is 16"),
    "content_creator_components": (lambda r, c: _export(r, c, content_creator="a^b^c^d^e^f"), "more than 5"),
    "manufacturer_long": (lambda r, c: _export(r, c, manufacturer="m" * 65), "limit for LO is 64"),
    "manufacturer_empty": (lambda r, c: _export(r, c, manufacturer=" "), "must not be empty"),
    "serial_newline": (lambda r, c: _export(r, c, device_serial_number="a\nb"), "control characters"),
    "software_versions_long": (lambda r, c: _export(r, c, software_versions="v" * 65), "limit for LO is 64"),
    "comment_nul": (lambda r, c: _export(r, c, comment="x\x00"), "NUL"),
    "uid_root_leading_zero": (lambda r, c: _export(r, c, uid_root="1.2.03"), "leading zeros"),
    "registration_type_unknown": (lambda r, c: _export(r, c, registration_type="nonsense"), "CID 7100"),
    "tag_bad_date": (lambda r, c: _export(r, c, tag="StudyDate=20241301"), "impossible month or day"),
    "tag_bad_sex": (lambda r, c: _export(r, c, tag="PatientSex=X"), "M, F, O"),
    "tag_unknown_keyword": (lambda r, c: _export(r, c, tag="NoSuchKeyword=1"), "Unknown attribute"),
    "tag_protected": (lambda r, c: _export(r, c, tag="SOPClassUID=1.2.3"), "cannot be overridden"),
    "tag_vm": (lambda r, c: _export(r, c, tag="AccessionNumber=A\\B"), "the standard allows 1"),
}


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in sorted(folder.rglob("*"))
        if not path.is_symlink()
    }


def test_the_catalogue_is_large_enough():
    assert len(CASES) + len(OPTION_VALUE_CASES) >= 60


def run_case(root, capfd, command) -> tuple[list[str], object, object]:
    """Run a catalogue case's command line in this process; its argv, exit status and output. The
    case folder must be unchanged afterwards."""
    folder, case = root
    argv = command(folder, case)
    before = _snapshot(folder)
    capfd.readouterr()
    try:
        status = cli.main(argv)
    except SystemExit as leaving:  # argparse's usage errors
        status = leaving.code
    captured = capfd.readouterr()
    assert _snapshot(folder) == before
    return argv, status, captured


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(root, capfd, name):
    command, expected = CASES[name]
    argv, status, captured = run_case(root, capfd, command)
    assert status == 1, captured.out + captured.err
    message = captured.err if argv[0] != "validate" else captured.out + captured.err
    assert expected in message, message
    stderr = captured.err.strip()
    assert "\x1b" not in captured.err and "Traceback" not in captured.err and "unexpected error" not in captured.err
    if argv[0] != "validate":
        assert stderr.startswith(f"dicomregsave {argv[0]}: error: ") and "\n\n" not in stderr, stderr
        assert "note:" not in stderr and " ERR| " not in stderr, stderr


@pytest.mark.parametrize("name", list(OPTION_VALUE_CASES))
def test_malformed_option_value(root, capfd, name):
    command, expected = OPTION_VALUE_CASES[name]
    argv, status, captured = run_case(root, capfd, command)
    assert status == 2, captured.out + captured.err
    last = captured.err.strip().splitlines()[-1]
    inputs = ("--transform", "--fixed", "--moving", "--output")
    option = next(word for word in argv if word.startswith("--") and word not in inputs)
    assert last.startswith(f"dicomregsave export: error: argument {option}: "), last
    assert expected in last, last
    assert "Traceback" not in captured.err and "bug" not in captured.err


def test_inspect_shows_a_damaged_reg_and_marks_the_damage(root, capfd):
    folder, _ = root
    capfd.readouterr()
    assert cli.main(["inspect", str(folder / B / "reg_unknown_vr.dcm")]) == 0
    out = capfd.readouterr().out
    assert "(0008,0070) ZZ  <cannot decode: NotImplementedError" in out.replace("Manufacturer ", "")
    assert "(0008,0060) CS Modality  [REG]" in out and "VectorGridData" in out


def test_undefined_vectors_are_written_only_when_asked(root, capfd):
    folder, case = root
    target = folder / "out" / "undefined.dcm"
    try:
        assert (
            cli.main(
                _export(
                    folder, case, transform=folder / B / "nan.mha", output=target, extra=["--nan-vectors", "undefined"]
                )
            )
            == 0
        )
        err = capfd.readouterr().err
        assert "2 of 210 grid points are undefined" in err and "as asked" in err
        grid = pydicom.dcmread(target).DeformableRegistrationSequence[0].DeformableRegistrationGridSequence[0]
        assert np.isnan(np.frombuffer(grid.VectorGridData, "<f4")).sum() == 6
    finally:
        target.unlink(missing_ok=True)
