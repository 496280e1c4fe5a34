"""What the command says (issue 16 item 7): the user's own paths and option names, one line per real
risk and each only once on stderr, library log text folded or dropped, a refused connection said as such,
help texts that list exactly the supported file types."""

from __future__ import annotations

import json
import re
import socket

import numpy as np
import pytest

from commands import export_demo, run
from DicomRegSaveLib.export.options import ExportOptions
from DicomRegSaveLib.export.pipeline import export_registration
from DicomRegSaveLib.inputs.sampledata import write_displacement_field_mha, write_image_series
from DicomRegSaveLib.inputs.series import read_image_series
from DicomRegSaveLib.model import Deformation, DisplacementGrid, RegistrationMatrix
from DicomRegSaveLib.reg.reader import read_registration
from DicomRegSaveLib.transform_file_types import (
    FIELD_WRITE_TYPES,
    ITK_TRANSFORM_TYPES,
    READABLE_TYPES,
    TRANSFORM_WRITE_TYPES,
)
from mrml_helpers import homogeneous, rotation
from storage_scp import LOOPBACK

#: What a library's log text looks like when it leaks: vtkLogger timestamps, file:line, object addresses.
LOG_TEXT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d|\(\s*[\d.]+s\)|ERR\||\.cxx|0x[0-9a-f]{6,}|itk::")


@pytest.fixture(scope="module")
def demo_reg(case, tmp_path_factory):
    """The demo's REG, exported once for the tests that only read it."""
    reg = tmp_path_factory.mktemp("messages") / "reg.dcm"
    result = export_demo(case, reg)
    assert result.returncode == 0, result.stderr
    return reg


def export_with(case, transform, output, *options):
    return run(
        "export", "--transform", transform, "--fixed", case.fixed_dir, "--moving", case.moving_dir,
        "--output", output, *options,
    )  # fmt: skip


def test_to_transform_refusals_name_the_requested_file(case, tmp_path):
    fixed = read_image_series(case.fixed_dir, "fixed")
    moving = read_image_series(case.moving_dir, "moving")
    rigid_lps = homogeneous(rotation([0.0, 0.0, 1.0], 0.1), (4.0, -2.0, 1.0))
    zero = DisplacementGrid(fixed.origin_lps, fixed.direction_lps, fixed.spacing_mm, np.zeros((2, 2, 2, 3)))
    linear = Deformation(zero, post_deformation_matrix=RegistrationMatrix(rigid_lps), linear=True)
    reg = export_registration(linear, fixed, moving, tmp_path / "rigid.dcm", ExportOptions()).path
    target = tmp_path / "rigid_back.nrrd"
    result = run("to-transform", reg, target)
    assert result.returncode == 1
    assert f"Cannot write {target}: the registration item is linear" in result.stderr
    assert "partial" not in result.stderr and "dicomregsave-" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rigid.dcm"]
    written = run("to-transform", reg, tmp_path / "rigid_back.tfm")
    assert written.returncode == 0, written.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rigid.dcm", "rigid_back.tfm"]


# ------------------------------------------------------------------ warnings: real risks only, once, on stderr


def test_a_plain_field_file_gives_no_interpolation_warning(case, demo_reg, tmp_path):
    """A .nii.gz field is read through Slicer, which would interpolate it cubically; the file itself has no
    interpolation, so there is nothing to warn about."""
    field = tmp_path / "field.nii.gz"
    assert run("to-transform", demo_reg, field).returncode == 0
    result = export_with(case, field, tmp_path / "again.dcm")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "warning:" not in result.stdout and "cubic" not in result.stdout


def field_before_translation(case, path, shift_lps):
    """An ITK composite [demo field, translation]: ITK applies the translation first, so the fixed image
    is carried `shift_lps` beyond the field's grid."""
    import SimpleITK as sitk

    field = sitk.ReadImage(str(case.field_path), sitk.sitkVectorFloat64)
    composite = sitk.CompositeTransform(
        [sitk.DisplacementFieldTransform(field), sitk.TranslationTransform(3, shift_lps)]
    )
    sitk.WriteTransform(composite, str(path))
    return path


def test_each_warning_once_on_stderr_and_once_in_the_json_report(case, tmp_path):
    transform = field_before_translation(case, tmp_path / "shifted.h5", (20.0, 0.0, 0.0))
    result = export_with(case, transform, tmp_path / "reg.dcm", "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stderr
    expected = (
        "dicomregsave export: warning: Transform 'shifted': parts of the fixed image lie up to 20 mm outside the "
        "displacement field's grid, after the linear transform applied before it (in an ITK file: a composite "
        "listing [field, affine]), where the field is undefined: Slicer (VTK) holds the displacement of the "
        "grid's edge, ITK and ANTs use zero. The REG keeps the field's own grid, so there each receiver applies "
        "its own convention; requesting a grid spacing samples the whole fixed image with Slicer's convention "
        "instead."
    )
    assert result.stderr.splitlines() == [expected]
    assert "warning:" not in result.stdout and "outside" not in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["warnings"] == [
        {"source": "dicomregsave", "message": expected.removeprefix("dicomregsave export: warning: ")}
    ]


def test_a_requested_grid_spacing_is_no_warning(case, tmp_path):
    result = export_demo(case, tmp_path / "reg.dcm", "--grid-spacing", "8")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "  Deformable Spatial Registration: grid 25x25x13 at 8/8/8 mm" in result.stdout
    assert "resampled" not in result.stdout and "warning:" not in result.stdout


def test_a_grid_spacing_finer_than_the_image_in_some_axes_says_which_and_what_was_written(case, tmp_path):
    """Fine in-plane, coarse between slices: the request holds in x and y; z gets the image's spacing."""
    common = dict(patient_name=case.patient_name, patient_id=case.patient_id, dimensions=(40, 40, 8))
    geometry = dict(spacing_mm=(0.49, 0.49, 2.5), origin_lps=(-10.0, -10.0, -9.0))
    fixed = write_image_series(tmp_path / "fixed", **common, **geometry, series_number=5, file_prefix="F")
    moving = write_image_series(tmp_path / "moving", **common, **geometry, series_number=6, file_prefix="M")
    assert fixed and moving
    output = tmp_path / "reg.dcm"
    result = run(
        "export", "--transform", case.field_path, "--fixed", tmp_path / "fixed", "--moving", tmp_path / "moving",
        "--output", output, "--grid-spacing", "0.7",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "dicomregsave export: warning: The requested grid spacing 0.7 mm is finer than the fixed image in z "
        "(2.5 mm); written: 0.7 × 0.7 × 2.5 mm."
    ]
    assert "  Deformable Spatial Registration: grid 29x29x8 at 0.7/0.7/2.5 mm" in result.stdout
    np.testing.assert_allclose(read_registration(output).choose_item().grid.spacing_mm, [0.7, 0.7, 2.5])


# ------------------------------------------------------------------ library log text


def test_an_unreadable_transform_file_is_explained_without_slicer_log_text(case, tmp_path):
    garbage = tmp_path / "garbage.nii"
    garbage.write_text("not a NIfTI file")
    result = export_with(case, garbage, tmp_path / "reg.dcm")
    assert result.returncode == 1
    supported = ", ".join(sorted(READABLE_TYPES))
    assert result.stderr.splitlines() == [
        f"dicomregsave export: error: Transform file {garbage} could not be read as a displacement field (NIfTI). "
        f"Check that it is a valid transform file; supported: {supported}."
    ]


def test_an_itk_exception_is_folded_into_its_description(case, tmp_path):
    short = tmp_path / "short.tfm"
    short.write_text(
        "#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
        "Parameters: 1 0 0\nFixedParameters: 0 0 0\n"
    )
    result = export_with(case, short, tmp_path / "reg.dcm")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"dicomregsave export: error: Transform file {short} could not be read as an ITK transform (text): "
        "Error setting parameters: parameters array size (3) is less than expected"
    )
    assert line.endswith(
        ". Check that it is a valid transform file; supported: " + ", ".join(sorted(READABLE_TYPES)) + "."
    )
    assert not LOG_TEXT.search(line), line
    assert "Failed to read" not in line and "ReadData" not in line


# ------------------------------------------------------------------ sending


def closed_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def test_send_to_a_closed_port_says_connection_refused(case, demo_reg, tmp_path):
    reg = demo_reg
    port = closed_loopback_port()
    result = run("send", reg, "--to", f"NOBODY@{LOOPBACK}:{port}", "--timeout", "20")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"Sending to NOBODY@{LOOPBACK}:{port} as DICOMREGSAVE",
        f"  {reg}: not sent: no association",
        f"0 of 1 file(s) stored by NOBODY@{LOOPBACK}:{port}; Cannot connect to NOBODY@{LOOPBACK}:{port}: "
        f"connection refused by {LOOPBACK}:{port} (nothing listens on that port). Check the port, and that the "
        "peer is running.",
    ]
    # neither pynetdicom's log lines nor Python's "unclosed <socket>" warning
    assert result.stderr == ""


def test_a_peer_that_never_answers_is_a_timeout(case, demo_reg, tmp_path):
    reg = demo_reg
    with socket.socket() as silent:
        silent.bind((LOOPBACK, 0))
        silent.listen(1)  # the kernel accepts the connection; nobody answers the association request
        port = silent.getsockname()[1]
        result = run("send", reg, "--to", f"SILENT@{LOOPBACK}:{port}", "--timeout", "1")
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == (
        f"0 of 1 file(s) stored by SILENT@{LOOPBACK}:{port}; Cannot connect to SILENT@{LOOPBACK}:{port}: no DICOM "
        f"peer answered within the timeout (1 s) at {LOOPBACK}:{port}. Check the address and port, and that the "
        "peer is running and reachable from here."
    )
    assert result.stderr == ""


def test_an_unknown_host_is_named(case, demo_reg, tmp_path):
    reg = demo_reg
    result = run("send", reg, "--to", "PACS@no-such-host.invalid:104")
    assert result.returncode == 1
    assert "Cannot connect to PACS@no-such-host.invalid:104: the host no-such-host.invalid was not found (" in (
        result.stdout
    )
    assert result.stderr == ""


# ------------------------------------------------------------------ the user's terms


def test_an_existing_output_names_the_commands_own_remedy(case, demo_reg, tmp_path):
    reg = demo_reg
    again = export_demo(case, reg)
    assert again.stderr.splitlines() == [
        f"dicomregsave export: error: {reg} exists already. Choose another name, or add --force to replace it."
    ]
    volume = tmp_path / "warped.nrrd"
    volume.write_bytes(b"keep")
    resampled = run("resample", reg, "--fixed", case.fixed_dir, "--moving", case.moving_dir, "--output", volume)
    # resample has no --force
    assert resampled.stderr.splitlines() == [
        f"dicomregsave resample: error: {volume} exists already. Choose another name."
    ]
    assert volume.read_bytes() == b"keep"


def test_a_private_tag_is_refused_without_python_words(case, tmp_path):
    result = export_demo(case, tmp_path / "reg.dcm", "--tag", "0009,0010=x")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "dicomregsave export: error: argument --tag: Unknown attribute '0009,0010': name it by its DICOM keyword "
        "(e.g. SeriesDescription) or as a public tag gggg,eeee; private attributes cannot be set"
    )


def test_nan_vectors_name_the_option(case, tmp_path):
    vectors = np.zeros((4, 4, 4, 3), dtype=np.float32)
    vectors[1, 2, 3] = np.nan
    field = write_displacement_field_mha(tmp_path / "holes.mha", (-20.0, -20.0, -20.0), np.eye(3), (10.0,) * 3, vectors)
    result = export_with(case, field, tmp_path / "reg.dcm")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.endswith("(dicomregsave export --nan-vectors undefined).")
    assert "ExportOptions" not in line and "undefined_vectors" not in line


# ------------------------------------------------------------------ help texts


def help_of(*command: str) -> str:
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split())


def extensions_in(text: str) -> list[str]:
    return re.findall(r"(?<![\w.])\.[a-z0-9]+(?:\.gz)?(?![\w.])", text)


def test_export_help_lists_exactly_the_readable_transform_types():
    text = help_of("export")
    described = text.split("--transform FILE ", 2)[2].split(" --fixed PATH")[0]
    assert described == (
        f"ITK transform ({' '.join(ITK_TRANSFORM_TYPES)}) or displacement field "
        f"({' '.join(t for t in READABLE_TYPES if t not in ITK_TRANSFORM_TYPES)})"
    )
    assert sorted(extensions_in(described)) == sorted(READABLE_TYPES)
    assert ".mat" in extensions_in(described)


def test_to_transform_help_lists_exactly_the_written_types():
    text = help_of("to-transform")
    described = text.split("positional arguments: REG.dcm OUTPUT ", 1)[1].split(" options:")[0]
    assert sorted(extensions_in(described)) == sorted(TRANSFORM_WRITE_TYPES + FIELD_WRITE_TYPES)
    assert {".nii", ".hdf5"} <= set(extensions_in(described))


@pytest.mark.parametrize("extension", TRANSFORM_WRITE_TYPES + FIELD_WRITE_TYPES)
def test_every_listed_output_type_is_written(case, demo_reg, tmp_path, extension):
    reg = demo_reg
    result = run("to-transform", reg, tmp_path / f"back{extension}")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / f"back{extension}").stat().st_size > 0


def test_demo_help_says_which_folder_it_takes():
    text = help_of("demo")
    assert (
        "--output DIR the folder for the demo's inputs (DIR/input) and its REG: a new folder, or one where no demo "
        "ran yet (default: a new folder under ./dicomregsave-demo)"
    ) in text


@pytest.mark.parametrize("extension", [".nrrd", ".mha"])
def test_resample_prints_its_summary_and_no_library_text(case, demo_reg, tmp_path, extension):
    """Slicer's volume writer tells on stdout (vtkOutputWindow's "Info:") that it removes the temporary
    file it was given; that is the library's business, not the user's."""
    output = tmp_path / f"warped{extension}"
    result = run("resample", demo_reg, "--fixed", case.fixed_dir, "--moving", case.moving_dir, "--output", output)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [line for line in result.stdout.splitlines() if line.startswith("Wrote ")]
    assert len(result.stdout.splitlines()) == 1 and result.stderr == ""
    assert ".partial" not in result.stdout + result.stderr
