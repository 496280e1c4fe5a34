"""The dicomregsave command, end to end in subprocesses: outputs, exit codes, messages, no leftovers."""

import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from commands import export_demo, run
from DicomRegSaveLib.inputs.sampledata import write_image_series
from DicomRegSaveLib.reg.reader import read_registration


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_export_writes_a_reg_that_maps_like_the_field(case, tmp_path):
    result = export_demo(
        case,
        tmp_path / "reg.dcm",
        "--series-description",
        "CBCT to CT",
        "--series-number",
        "77",
        "--content-label",
        "DIR_1",
        "--content-creator",
        "Physicist^Ann",
        "--manufacturer",
        "Clinic",
        "--identity-item",
    )
    assert result.returncode == 0, result.stderr
    assert "Wrote" in result.stdout and "reg.dcm" in result.stdout
    dataset = pydicom.dcmread(tmp_path / "reg.dcm")
    assert (dataset.SeriesDescription, dataset.SeriesNumber, dataset.ContentLabel) == ("CBCT to CT", 77, "DIR_1")
    assert str(dataset.ContentCreatorName) == "Physicist^Ann" and dataset.Manufacturer == "Clinic"
    assert len(dataset.DeformableRegistrationSequence) == 2
    registration = read_registration(tmp_path / "reg.dcm")
    grid = registration.choose_item().grid
    rng = np.random.default_rng(5)
    index = rng.uniform(0.1, 0.9, size=(1000, 3)) * (np.array(grid.dimensions) - 1)
    points = index @ grid.index_to_lps[:3, :3].T + grid.index_to_lps[:3, 3]
    assert np.max(np.abs(registration.choose_item().map_points(points) - case.mapping_lps(points))) < 0.5


def test_export_into_a_folder_names_the_file_after_the_instance(case, tmp_path):
    result = export_demo(case, tmp_path)
    assert result.returncode == 0, result.stderr
    (written,) = tmp_path.iterdir()
    assert written.name == pydicom.dcmread(written).SOPInstanceUID + ".dcm"


def test_existing_output_is_kept_without_force(case, tmp_path):
    target = tmp_path / "reg.dcm"
    target.write_bytes(b"precious")
    result = export_demo(case, target)
    assert result.returncode == 1
    assert "exists already" in result.stderr and "--force" in result.stderr
    assert target.read_bytes() == b"precious" and listing(tmp_path) == ["reg.dcm"]
    forced = export_demo(
        case,
        target,
        "--force",
    )
    assert forced.returncode == 0, forced.stderr
    assert pydicom.dcmread(target).Modality == "REG"


@pytest.mark.parametrize(
    "change, message, status",
    [
        (lambda c, d: {"--fixed": d / "nowhere"}, "does not exist", 1),
        (lambda c, d: {"--moving": d / "empty"}, "No DICOM files", 1),
        (lambda c, d: {"--fixed": d / "two"}, "2 image series", 1),
        (lambda c, d: {"--fixed": d / "garbage.dcm"}, "garbage.dcm", 1),
        (lambda c, d: {"--transform": d / "transform.xyz"}, "transform.xyz", 1),
        (lambda c, d: {"--output": "/proc/reg.dcm"}, "Cannot write in the folder /proc", 1),
        (lambda c, d: {"--output": d / "missing" / "reg.dcm"}, "does not exist", 1),
        (lambda c, d: {"--content-label": "lower case"}, "argument --content-label: 'lower case'", 2),
    ],
)
def test_bad_input_fails_with_a_message_and_leaves_nothing(case, tmp_path, change, message, status):
    (tmp_path / "empty").mkdir()
    two = tmp_path / "two"
    shutil.copytree(case.fixed_dir, two / "a")
    shutil.copytree(case.moving_dir, two / "b")
    (tmp_path / "garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff")
    (tmp_path / "transform.xyz").write_text("not a transform")
    out = tmp_path / "out"
    out.mkdir()
    arguments = {
        "--transform": case.field_path,
        "--fixed": case.fixed_dir,
        "--moving": case.moving_dir,
        "--output": out / "reg.dcm",
    }
    arguments.update(change(case, tmp_path))
    result = run("export", *[x for pair in arguments.items() for x in pair])
    assert result.returncode == status, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert listing(out) == []


def test_usage_errors_exit_2():
    assert run("export", "--transform").returncode == 2
    assert run("frobnicate").returncode == 2
    result = run(
        "export", "--transform", "a.mha", "--fixed", "f", "--moving", "m", "--output", "o", "--grid-spacing", "1", "2"
    )
    assert result.returncode == 2 and "1 or 3 positive numbers" in result.stderr


def test_inspect_summarises_the_vectors_and_filters(case, tmp_path):
    assert export_demo(case, tmp_path / "reg.dcm").returncode == 0
    everything = run("inspect", tmp_path / "reg.dcm")
    assert everything.returncode == 0
    assert "(0064,0009) OF VectorGridData" in everything.stdout and "mean" in everything.stdout
    assert "(0008,0060) CS Modality  [REG]" in everything.stdout
    filtered = run("inspect", tmp_path / "reg.dcm", "--filter", "Grid(Dimensions|Resolution)")
    assert [line.split()[2] for line in filtered.stdout.splitlines()] == ["GridDimensions", "GridResolution"]
    short = run(
        "inspect", tmp_path / "reg.dcm", "--filter", "ImplementationVersionName|SoftwareVersions", "--max-chars", "8"
    )
    assert "..." in short.stdout
    missing = run("inspect", tmp_path / "none.dcm")
    assert missing.returncode == 1 and "none.dcm" in missing.stderr


def test_validate_exit_status_follows_the_errors(case, tmp_path):
    assert export_demo(case, tmp_path / "reg.dcm").returncode == 0
    good = run("validate", tmp_path / "reg.dcm", "--images", case.fixed_dir, case.moving_dir)
    assert good.returncode == 0, good.stdout
    assert "0 error(s)" in good.stdout
    dataset = pydicom.dcmread(tmp_path / "reg.dcm")
    grid_item = dataset.DeformableRegistrationSequence[0].DeformableRegistrationGridSequence[0]
    grid_item.GridDimensions = [grid_item.GridDimensions[0] + 1, *grid_item.GridDimensions[1:]]
    dataset.save_as(tmp_path / "broken.dcm")
    bad = run("validate", tmp_path / "broken.dcm")
    assert bad.returncode == 1 and "Vector Grid Data" in bad.stdout


def test_to_transform_writes_a_field_that_reads_back_as_the_same_mapping(case, tmp_path):
    assert export_demo(case, tmp_path / "reg.dcm").returncode == 0
    result = run("to-transform", tmp_path / "reg.dcm", tmp_path / "back.mha")
    assert result.returncode == 0, result.stderr
    again = run("to-transform", tmp_path / "reg.dcm", tmp_path / "back.mha")
    assert again.returncode == 1 and "exists already" in again.stderr
    second = run(
        "export",
        "--transform",
        tmp_path / "back.mha",
        "--fixed",
        case.fixed_dir,
        "--moving",
        case.moving_dir,
        "--output",
        tmp_path / "again.dcm",
    )
    assert second.returncode == 0, second.stderr
    first = read_registration(tmp_path / "reg.dcm").choose_item().grid
    back = read_registration(tmp_path / "again.dcm").choose_item().grid
    assert np.array_equal(first.vectors_lps, back.vectors_lps)
    assert np.allclose(first.index_to_lps, back.index_to_lps, atol=1e-6)


def test_demo_runs_and_validates(tmp_path):
    result = run("demo", "--output", tmp_path / "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 error(s)" in result.stdout
    regs = [p for p in (tmp_path / "demo").iterdir() if p.suffix == ".dcm"]
    assert len(regs) == 1 and pydicom.dcmread(regs[0]).Modality == "REG"
    occupied = run("demo", "--output", tmp_path / "demo")
    assert occupied.returncode == 1 and "already holds a demo" in occupied.stderr
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "demo.log").write_text("a log written before the demo starts")
    assert run("demo", "--output", tmp_path / "other").returncode == 0


def test_demo_default_output_is_a_new_folder(tmp_path):
    result = run("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_folder,) = (tmp_path / "dicomregsave-demo").iterdir()
    assert any(p.suffix == ".dcm" for p in run_folder.iterdir())


def test_references_are_the_moving_input_files_and_a_patient_mismatch_is_reported(case, tmp_path):
    extra = tmp_path / "moving_copy"
    write_image_series(
        extra,
        patient_name="Other^Patient",
        patient_id="X",
        dimensions=(8, 8, 4),
        spacing_mm=(2.0, 2.0, 2.0),
        origin_lps=(0.0, 0.0, 0.0),
        direction_lps=np.eye(3),
    )
    result = run(
        "export",
        "--transform",
        case.field_path,
        "--fixed",
        case.fixed_dir,
        "--moving",
        extra,
        "--output",
        tmp_path / "reg.dcm",
    )
    assert result.returncode == 0, result.stderr
    assert "patient ID 'DRS-DEMO-0001'" in result.stderr and "'X'" in result.stderr
    same = run(
        "export",
        "--transform",
        case.field_path,
        "--fixed",
        case.fixed_dir,
        "--moving",
        case.fixed_dir,
        "--output",
        tmp_path / "same.dcm",
    )
    assert same.returncode == 1 and "same series" in same.stderr
    dataset = pydicom.dcmread(tmp_path / "reg.dcm")
    referenced = {i.ReferencedSOPInstanceUID for i in dataset.DeformableRegistrationSequence[0].ReferencedImageSequence}
    assert referenced == {pydicom.dcmread(p).SOPInstanceUID for p in extra.rglob("*.dcm")}


def bad_field(case, path, change):
    """The demo field with one thing broken: the vectors, or a header line."""
    from DicomRegSaveLib.inputs.sampledata import write_displacement_field_mha

    vectors = np.zeros((case.field_dimensions[2], case.field_dimensions[1], case.field_dimensions[0], 3), np.float32)
    index_to_lps = case.field_ijk_to_lps
    spacing = np.linalg.norm(index_to_lps[:3, :3], axis=0)
    write_displacement_field_mha(path, index_to_lps[:3, 3], index_to_lps[:3, :3] / spacing, spacing, vectors)
    if callable(change):
        change(vectors)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - vectors.nbytes] + vectors.astype("<f4").tobytes())
    else:
        old, new = change
        path.write_bytes(path.read_bytes().replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda v: v.__setitem__((3, 4, 5, 1), np.nan), "(i=5, j=4, k=3)"),
        (lambda v: v.__setitem__((0, 0, 2, 0), np.inf), "must be finite"),
        ((b"ElementSpacing = 4.0", b"ElementSpacing = 0.0"), "positive"),
    ],
)
def test_bad_field_values_fail_with_a_message_and_leave_nothing(case, tmp_path, change, message):
    field = bad_field(case, tmp_path / "bad.mha", change)
    out = tmp_path / "out"
    out.mkdir()
    result = run(
        "export", "--transform", field, "--fixed", case.fixed_dir, "--moving", case.moving_dir, "--output", out
    )
    assert result.returncode == 1, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr
    assert listing(out) == []


def test_a_field_too_large_for_vector_grid_data_is_refused_before_any_input_is_read(case, tmp_path):
    """A 4.5 GiB field as a sparse file: its header alone decides; the image folders are never read."""
    field = bad_field(case, tmp_path / "huge.mha", lambda vectors: None)
    header, _, _ = field.read_bytes().partition(b"ElementDataFile = LOCAL\n")
    dimensions = next(line for line in header.split(b"\n") if line.startswith(b"DimSize"))
    header = header.replace(dimensions, b"DimSize = 512 512 1536") + b"ElementDataFile = LOCAL\n"
    field.write_bytes(header)
    os.truncate(field, len(header) + 12 * 512 * 512 * 1536)
    out = tmp_path / "out"
    out.mkdir()
    result = run(
        "export",
        "--transform",
        field,
        "--fixed",
        tmp_path / "no-such-folder",
        "--moving",
        tmp_path / "no-such-folder",
        "--output",
        out,
    )
    assert result.returncode == 1, result.stdout
    assert "512x512x1536 needs 4831838208 bytes, more than Vector Grid Data (OF) can hold" in result.stderr
    assert listing(out) == []
