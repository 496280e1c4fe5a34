"""``dicomregsave qa`` and ``resample`` end to end: the demo phantom, a vendor-style 66.1, SimpleITK, a real browser."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, SpatialRegistrationStorage, generate_uid
from pydicom.valuerep import format_number_as_ds

from commands import export_demo, run
from debian_tools import debian_program
from DicomRegSaveLib.inputs.series import read_image_series
from DicomRegSaveLib.qa.linear import rotation_from_angles
from DicomRegSaveLib.reg.reader import read_registration

ANGLES_DEG = (4.0, -6.5, 9.25)
TRANSLATION_MM = (6.5, -3.25, 4.75)


@pytest.fixture(scope="module")
def deformable_reg(case, tmp_path_factory) -> Path:
    """The demo's REG (66.3), exported from the known phantom deformation."""
    path = tmp_path_factory.mktemp("reg") / "reg.dcm"
    result = export_demo(case, path)
    assert result.returncode == 0, result.stderr
    return path


def fixed_to_moving_matrix() -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = rotation_from_angles(ANGLES_DEG)
    matrix[:3, 3] = TRANSLATION_MM
    return matrix


def write_vendor_spatial_registration(path: Path, case) -> Path:
    """A 66.1 as planning systems write it, by pydicom alone: a leading identity item for the fixed frame,
    then the moving frame's item whose matrix maps moving -> fixed (PS3.3 C.20.2.1.1), Instance Number 0."""
    fixed = pydicom.dcmread(case.fixed_paths[0], stop_before_pixels=True)
    moving = [pydicom.dcmread(p, stop_before_pixels=True) for p in case.moving_paths]
    dataset = Dataset()
    dataset.SOPClassUID = SpatialRegistrationStorage
    dataset.SOPInstanceUID = generate_uid()
    dataset.PatientName, dataset.PatientID = fixed.PatientName, fixed.PatientID
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = fixed.StudyInstanceUID, generate_uid()
    dataset.Modality, dataset.InstanceNumber = "REG", 0
    dataset.Manufacturer, dataset.ContentLabel = "Vendor TPS", "REG1"
    dataset.ContentDate, dataset.ContentTime = "20240701", "101500"
    dataset.FrameOfReferenceUID = fixed.FrameOfReferenceUID

    def item(frame_uid: str, matrix: np.ndarray, references) -> Dataset:
        matrix_item = Dataset()
        matrix_item.FrameOfReferenceTransformationMatrix = [format_number_as_ds(float(v)) for v in matrix.reshape(-1)]
        matrix_item.FrameOfReferenceTransformationMatrixType = "RIGID"
        registration = Dataset()
        registration.MatrixSequence = Sequence([matrix_item])
        result = Dataset()
        result.FrameOfReferenceUID = frame_uid
        result.ReferencedImageSequence = Sequence([Dataset() for _ in references])
        for reference, header in zip(result.ReferencedImageSequence, references):
            reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID = (
                header.SOPClassUID,
                header.SOPInstanceUID,
            )
        result.MatrixRegistrationSequence = Sequence([registration])
        return result

    dataset.RegistrationSequence = Sequence(
        [
            item(fixed.FrameOfReferenceUID, np.eye(4), [fixed]),
            item(moving[0].FrameOfReferenceUID, np.linalg.inv(fixed_to_moving_matrix()), moving),
        ]
    )

    # Common Instance Reference: the fixed series in this study, the moving series in its own study
    def series(headers) -> Dataset:
        entry = Dataset()
        entry.SeriesInstanceUID = headers[0].SeriesInstanceUID
        entry.ReferencedInstanceSequence = Sequence([Dataset() for _ in headers])
        for reference, header in zip(entry.ReferencedInstanceSequence, headers):
            reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID = (
                header.SOPClassUID,
                header.SOPInstanceUID,
            )
        return entry

    dataset.ReferencedSeriesSequence = Sequence([series([fixed])])
    other_study = Dataset()
    other_study.StudyInstanceUID = moving[0].StudyInstanceUID
    other_study.ReferencedSeriesSequence = Sequence([series(moving)])
    dataset.StudiesContainingOtherReferencedInstancesSequence = Sequence([other_study])
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.save_as(path, enforce_file_format=True)
    return path


def with_images(command: str, reg: Path, case, *extra: object):
    """``dicomregsave COMMAND REG --fixed ... --moving ...`` on the demo case's series."""
    return run(command, reg, "--fixed", case.fixed_dir, "--moving", case.moving_dir, *extra)


def write_csv(path: Path, points: np.ndarray) -> Path:
    path.write_text(
        "x,y,z,label\n" + "".join(f"{p[0]:.17g},{p[1]:.17g},{p[2]:.17g},L{n}\n" for n, p in enumerate(points))
    )
    return path


def test_qa_on_the_demo_phantom_shows_the_agreement_improving(case, deformable_reg, tmp_path):
    result = with_images(
        "qa",
        deformable_reg,
        case,
        "--json",
        "-",
        "--report",
        tmp_path / "report",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["report"], report["version"], report["ok"], report["errors"]) == ("qa", 1, True, [])
    assert report["generator"].startswith("DicomRegSave ") and report["path"] == str(deformable_reg)
    (item,) = report["items"]
    assert item["kind"] == "deformable" and item["source_frame_of_reference_uid"] == case.moving_frame_of_reference_uid
    similarity = item["similarity"]
    assert similarity["after"]["mad"] < similarity["before"]["mad"] / 3
    assert similarity["after"]["ncc"] > similarity["before"]["ncc"]
    # the known deformation is smooth (largest gradient about 0.11): no folding, det within 1 +- 0.35
    jacobian = item["jacobian"]
    assert jacobian["folded_count"] == 0 and 0.65 < jacobian["min"] < 1 < jacobian["max"] < 1.35
    assert jacobian["points"] == jacobian["grid_points"] == int(np.prod(case.field_dimensions))
    index = np.stack(np.meshgrid(*[np.arange(n) for n in case.field_dimensions], indexing="ij"), -1).reshape(-1, 3)
    points = index @ case.field_ijk_to_lps[:3, :3].T + case.field_ijk_to_lps[:3, 3]
    magnitude = np.linalg.norm(case.displacement_lps(points), axis=1)
    assert item["displacement_mm"]["max"] == pytest.approx(magnitude.max(), abs=1e-4)
    assert item["displacement_mm"]["mean"] == pytest.approx(magnitude.mean(), abs=1e-4)
    assert item["verdicts"] == [
        {
            "check": "folding",
            "value": 0,
            "tolerance": 0,
            "comparison": "<=",
            "unit": "grid points with det J <= 0",
            "ok": True,
        }
    ]
    assert report["identity"]["moving"]["SeriesInstanceUID"] == case.moving_series_instance_uid
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        "index.html",
        "item1_checkerboard.png",
        "item1_difference.png",
        "item1_displacement.png",
        "item1_jacobian.png",
    ]
    assert "All checks pass." in result.stderr


def test_qa_of_a_vendor_spatial_registration_gives_its_angles_translation_and_rigid_verdict(case, tmp_path):
    reg = write_vendor_spatial_registration(tmp_path / "vendor.dcm", case)
    rng = np.random.default_rng(4)
    fixed_points = rng.uniform(-40.0, 40.0, (6, 3))
    mapped = fixed_points @ fixed_to_moving_matrix()[:3, :3].T + fixed_to_moving_matrix()[:3, 3]
    fixed_csv = write_csv(tmp_path / "fixed.csv", fixed_points)
    arguments = ["--json", tmp_path / "qa.json"]
    close = with_images(
        "qa",
        reg,
        case,
        *arguments,
        "--landmarks",
        fixed_csv,
        write_csv(tmp_path / "near.csv", mapped + [0.3, 0.0, 0.0]),
    )
    assert close.returncode == 0, close.stdout + close.stderr
    report = json.loads((tmp_path / "qa.json").read_text())
    (item,) = report["items"]  # the identity item is not checked
    assert (item["item"], item["kind"]) == (2, "linear") and item["jacobian"] is None
    np.testing.assert_allclose(item["linear"]["rotation_deg"], ANGLES_DEG, atol=1e-4)
    np.testing.assert_allclose(item["linear"]["translation_mm"], TRANSLATION_MM, atol=1e-4)
    assert item["linear"]["is_rigid"]
    np.testing.assert_allclose(item["landmarks"]["tre_mm"]["max"], 0.3, atol=1e-3)
    verdicts = {v["check"]: v for v in item["verdicts"]}
    assert verdicts["tre_max_voxel"]["tolerance"] == 4.0 and verdicts["tre_max_voxel"]["ok"]
    assert verdicts["linear_determinant"]["value"] == pytest.approx(1.0)
    assert report["identity"]["reg"]["Manufacturer"] == "Vendor TPS"

    far = with_images(
        "qa", reg, case, *arguments, "--landmarks", fixed_csv, write_csv(tmp_path / "far.csv", mapped + [0.0, 4.5, 0.0])
    )
    assert far.returncode == 1
    verdicts = {v["check"]: v for v in json.loads((tmp_path / "qa.json").read_text())["items"][0]["verdicts"]}
    assert (
        verdicts["tre_max"]["ok"] and verdicts["tre_mean"]["ok"] is False and verdicts["tre_max_voxel"]["ok"] is False
    )
    assert "FAIL: tre_max_voxel" in far.stdout


def sitk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return sitk.Cast(reader.Execute(), sitk.sitkFloat64)


@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
@pytest.mark.parametrize("kind", ["deformable", "vendor 66.1"])
def test_resample_equals_simpleitk_through_the_to_transform_output(case, deformable_reg, tmp_path, kind, interpolation):
    if kind == "deformable":
        reg, transform_file = deformable_reg, tmp_path / "field.nrrd"
    else:
        reg, transform_file = write_vendor_spatial_registration(tmp_path / "vendor.dcm", case), tmp_path / "affine.tfm"
    converted = run("to-transform", reg, transform_file)
    assert converted.returncode == 0, converted.stderr
    output = tmp_path / "warped.nii.gz"
    result = with_images(
        "resample",
        reg,
        case,
        "--output",
        output,
        "--interpolation",
        interpolation,
    )
    assert result.returncode == 0, result.stderr

    fixed, moving = sitk_series(case.fixed_dir), sitk_series(case.moving_dir)
    if kind == "deformable":
        transform = sitk.DisplacementFieldTransform(
            sitk.Cast(sitk.ReadImage(str(transform_file)), sitk.sitkVectorFloat64)
        )
    else:
        transform = sitk.ReadTransform(str(transform_file))
    fill = float(sitk.GetArrayViewFromImage(moving).min())
    method = sitk.sitkLinear if interpolation == "linear" else sitk.sitkNearestNeighbor
    expected = sitk.GetArrayFromImage(sitk.Resample(moving, fixed, transform, method, fill))
    warped = sitk.ReadImage(str(output))
    assert warped.GetSize() == fixed.GetSize()
    np.testing.assert_allclose(warped.GetOrigin(), fixed.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(warped.GetDirection(), fixed.GetDirection(), atol=1e-6)
    ours = sitk.GetArrayFromImage(warped)
    # ITK also extrapolates into the half voxel beyond the moving image's edge centres, which counts as
    # outside here: compare where phi(x) lies inside the moving image, away from its edge by rounding
    fixed_series, moving_series = (
        read_image_series(case.fixed_dir, "fixed"),
        read_image_series(case.moving_dir, "moving"),
    )
    n_i, n_j, n_k = fixed_series.dimensions
    k, j, i = np.meshgrid(np.arange(n_k), np.arange(n_j), np.arange(n_i), indexing="ij")
    index = np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1).astype(np.float64)
    points = index @ fixed_series.ijk_to_lps[:3, :3].T + fixed_series.ijk_to_lps[:3, 3]
    mapped = read_registration(reg).choose_item(case.moving_frame_of_reference_uid).map_points(points)
    to_index = np.linalg.inv(moving_series.ijk_to_lps)
    moving_index = mapped @ to_index[:3, :3].T + to_index[:3, 3]
    last = np.array(moving_series.dimensions) - 1
    inside = np.all((moving_index > 1e-3) & (moving_index < last - 1e-3), axis=1).reshape(ours.shape)
    outside = np.any((moving_index < -1e-3) | (moving_index > last + 1e-3), axis=1).reshape(ours.shape)
    assert inside.mean() > 0.4 and outside.any()
    np.testing.assert_allclose(ours[inside], expected[inside], atol=0.01)
    assert np.all(ours[outside] == fill)


def test_the_report_page_loads_in_chromium_without_errors_and_every_image_decodes(case, deformable_reg, tmp_path):
    result = with_images("qa", deformable_reg, case, "--report", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "report" / "index.html").read_text()
    assert "<script" not in page and "://" not in page  # self-contained: nothing to run, nothing fetched
    # a copy of the page with a probe that records every image's decoded width once the page has loaded
    probe = (
        '<script>window.addEventListener("load", () => document.body.setAttribute("data-widths", '
        'Array.from(document.images).map(i => i.complete ? i.naturalWidth : -1).join(",")));</script>'
    )
    (tmp_path / "report" / "probe.html").write_text(page.replace("</body>", probe + "</body>"))
    dom, console = chromium(tmp_path / "report" / "probe.html")
    widths = [int(w) for w in re.search(r'data-widths="([^"]*)"', dom).group(1).split(",")]
    assert len(widths) == page.count("<img ") == 4 and all(w > 0 for w in widths)
    assert console == []
    # the console check itself sees an error when there is one
    (tmp_path / "control.html").write_text(
        '<!DOCTYPE html><html><body><script>console.error("seen")</script></body></html>'
    )
    assert any('"seen"' in line for line in chromium(tmp_path / "control.html")[1])


def chromium(page: Path) -> tuple[str, list[str]]:
    """Debian's chromium, headless: the DOM after load and the page's console messages."""
    result = subprocess.run(
        [
            debian_program("chromium", "chromium"),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout, [line for line in result.stderr.splitlines() if ":CONSOLE" in line]


def test_qa_refuses_a_report_folder_that_holds_files(case, deformable_reg, tmp_path):
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "notes.txt").write_text("keep")
    result = with_images(
        "qa",
        deformable_reg,
        case,
        "--report",
        tmp_path / "report",
        "--json",
        tmp_path / "qa.json",
    )
    assert result.returncode == 1
    assert "is not empty" in result.stderr and "Traceback" not in result.stderr
    report = json.loads((tmp_path / "qa.json").read_text())
    assert report["report"] == "qa" and report["ok"] is False and "not empty" in report["errors"][0]["message"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.json", "report"]
    assert [p.name for p in (tmp_path / "report").iterdir()] == ["notes.txt"]


def test_resample_never_replaces_a_file(case, deformable_reg, tmp_path):
    (tmp_path / "out.nrrd").write_text("old")
    result = with_images(
        "resample",
        deformable_reg,
        case,
        "--output",
        tmp_path / "out.nrrd",
    )
    assert result.returncode == 1 and "exists" in result.stderr
    assert (tmp_path / "out.nrrd").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nrrd"]
