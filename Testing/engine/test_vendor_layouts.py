"""The REG layouts other systems write (docs/vendor-layouts.md), each from a minimal independent writer
(support/foreign_writers.py): the reader reads it with exactly the expected warnings, chooses the item
that moves the moving image, finds its references, maps points as the writer meant (within 1e-6 mm),
and ``validate`` reports exactly the file's deviations from the standard.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pytest

import foreign_writers as fw
import reg_builders as rb
from DicomRegSaveLib.errors import InvalidRegistrationError
from DicomRegSaveLib.model import Registration
from DicomRegSaveLib.reg.reader import read_registration
from DicomRegSaveLib.reg.references import common_instance_reference
from DicomRegSaveLib.validation.validate import validate_file
from mrml_helpers import homogeneous, rotation

MAPPING_TOLERANCE_MM = 1e-6

#: plastimatch's moving -> fixed matrix as it prints it (six decimals): the inverse of an ITK affine
#: fixed -> moving transform (1.05 / 0.97 / 1.02 scales, small shears).
PLASTIMATCH_AFFINE_LPS = np.array(
    [
        [0.952375, -0.019637, 0.000578, -12.048791],
        [0.000289, 1.030922, -0.030321, 7.561538],
        [-0.009337, 0.000193, 0.980386, -2.823051],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
#: A rigid moving -> fixed matrix, as a registration of two CT series gives one.
RIGID_LPS = homogeneous(rotation((0.3, -1.0, 0.2), np.radians(7.0)), (5.5, -18.0, 40.25))

#: Findings of plastimatch 1.10's 66.1 and 66.3 headers (checked against files plastimatch wrote).
PLASTIMATCH_HEADER_FINDINGS = [
    "[dicomregsave] Content Label (0070,0080): the Content Label must not be empty.",
    "[dicomregsave] ReferencedSeriesSequence (0008,1115)[1].ReferencedInstanceSequence[1] lists instance",
    "[dicomregsave] ReferencedSeriesSequence (0008,1115)[2].ReferencedInstanceSequence[1] lists instance",
    "[dciodvfy] Error - </Laterality(0020,0060)> - Missing attribute for Type 2C Conditional",
    "[dciodvfy] Error - </PositionReferenceIndicator(0020,1040)> - Missing attribute for Type 2 Required",
    "[dciodvfy] Error - </InstanceNumber(0020,0013)> - Missing attribute for Type 1 Required",
    "[dciodvfy] Error - </ContentLabel(0070,0080)> - Missing attribute for Type 1 Required",
    "[dciodvfy] Error - </ContentDescription(0070,0081)> - Missing attribute for Type 2 Required",
    "[dciodvfy] Error - </ReferencedSeriesSequence(0008,1115)> - ReferencedSeriesSequence present but Instance does "
    "not reference Instances",
]
PLASTIMATCH_HEADER_WARNINGS = ["[dciodvfy] Warning - </SeriesNumber(0020,0011)> - Missing attribute or value"]

#: Findings of pydicomRT's header (BaseRegistrationBuilder), both classes.
PYDICOMRT_HEADER_FINDINGS = [
    "[dicomregsave] ContentLabel (0070,0080): Content Label 'SPATIAL REGISTRATION' is 20 characters long",
    "[dciodvfy] Error - </ContentLabel(0070,0080)[1]> - Value invalid for this VR [CS] = <SPATIAL REGISTRATION>",
    "[dciodvfy] Error - </Laterality(0020,0060)> - Missing attribute for Type 2C Conditional",
    "[dciodvfy] Error - </ContentDate(0008,0023)> - Missing attribute for Type 1 Required",
    "[dciodvfy] Error - </ContentTime(0008,0033)> - Missing attribute for Type 1 Required",
    "[dciodvfy] Error - </InstanceNumber(0020,0013)> - Missing attribute for Type 1 Required",
    "[dciodvfy] Error - </ReferencedSeriesSequence(0008,1115)> - Missing attribute for Type 1C Conditional",
    "[dciodvfy] Error - </StudiesContainingOtherReferencedInstancesSequence(0008,1200)> - Missing attribute for Type "
    "1C Conditional",
]
PYDICOMRT_HEADER_WARNINGS = [
    "[dicomregsave] Transfer Syntax UID (0002,0010) is 1.2.840.10008.1.2; Explicit VR Little Endian",
    "[dciodvfy] Warning - </ContentCreatorName(0070,0084)[1]> - Value dubious for this VR [PN] = <pydicomRT>",
]


def _fixed_points_lps(n: int = 500) -> np.ndarray:
    return np.random.default_rng(16).uniform(-100.0, 100.0, size=(n, 3))


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def _grid_nodes_lps(grid: rb.GridSpec) -> np.ndarray:
    """Every node of an axis-aligned grid, in the order of its vectors (i fastest)."""
    n_k, n_j, n_i, _ = grid.vectors_lps.shape
    k, j, i = np.meshgrid(np.arange(n_k), np.arange(n_j), np.arange(n_i), indexing="ij")
    ijk = np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1)
    return np.asarray(grid.origin_lps) + ijk * np.asarray(grid.spacing_mm)


def _grid() -> rb.GridSpec:
    return rb.GridSpec((-10.0, -12.0, -4.0), rb.smooth_vectors((5, 4, 3)), (2.0, 2.5, 3.0))


def _read(path, caplog) -> tuple[Registration, list[str]]:
    """(the registration, the reader's warnings)."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="DicomRegSaveLib.reg.reader"):
        registration = read_registration(path)
    return registration, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _assert_findings(found: Sequence[str], expected: Sequence[str]) -> None:
    """Each expected text starts exactly one finding, and there is no other finding."""
    for text in expected:
        assert sum(finding.startswith(text) for finding in found) == 1, (text, found)
    assert len(found) == len(expected), "\n".join(found)


def test_plastimatch_sro_affine_typed_rigid(tmp_path, caplog):
    fixed, moving = fw.ct_pair()
    path = fw.write_plastimatch_style_sro(tmp_path / "sro.dcm", PLASTIMATCH_AFFINE_LPS, fixed=fixed, moving=moving)
    registration, messages = _read(path, caplog)
    (message,) = messages
    assert (
        "item 2: Matrix Registration Sequence (0070,0309) > Matrix Sequence (0070,030A) item 1: The matrix is "
        in message
    )
    assert "declared RIGID but is AFFINE" in message
    assert registration.frame_of_reference_uid == fixed[0].FrameOfReferenceUID
    identity, moving_item = registration.items
    assert identity.is_identity and identity.source_frame_of_reference_uid == fixed[0].FrameOfReferenceUID
    assert registration.choose_item() is moving_item
    assert moving_item.source_frame_of_reference_uid == moving[0].FrameOfReferenceUID
    assert moving_item.referenced_images == () and identity.referenced_images == ()
    assert moving_item.registration_type.value == "125025"
    points = _fixed_points_lps()
    expected = _apply(np.linalg.inv(PLASTIMATCH_AFFINE_LPS), points)
    np.testing.assert_allclose(moving_item.map_points(points), expected, rtol=0, atol=MAPPING_TOLERANCE_MM)

    report = validate_file(path)
    _assert_findings(
        report.errors,
        [
            *PLASTIMATCH_HEADER_FINDINGS,
            "[dicomregsave] RegistrationSequence (0070,0308) item 2 > MatrixRegistrationSequence (0070,0309) item 1 > "
            "MatrixSequence (0070,030A) item 1: Frame of Reference Transformation Matrix (3006,00C6): The matrix is "
            "declared RIGID but is AFFINE",
        ],
    )
    _assert_findings(report.warnings, PLASTIMATCH_HEADER_WARNINGS)


def test_plastimatch_dro(tmp_path, caplog):
    fixed, moving = fw.ct_pair()
    grid = _grid()
    path = fw.write_plastimatch_dro(tmp_path / "dro.dcm", fixed, moving, grid)
    registration, messages = _read(path, caplog)
    assert messages == []
    (item,) = registration.items
    assert registration.choose_item() is item
    assert registration.frame_of_reference_uid == fixed[0].FrameOfReferenceUID
    assert item.source_frame_of_reference_uid == moving[0].FrameOfReferenceUID
    assert item.referenced_images == () and item.registration_type is None
    assert item.pre_deformation_matrix.is_identity and item.post_deformation_matrix.is_identity
    nodes = _grid_nodes_lps(grid)
    expected = nodes + grid.vectors_lps.reshape(-1, 3)
    np.testing.assert_allclose(item.map_points(nodes), expected, rtol=0, atol=MAPPING_TOLERANCE_MM)

    report = validate_file(path)
    code_item = "DeformableRegistrationSequence(0064,0002)[1]/RegistrationTypeCodeSequence(0070,030d)[1]"
    _assert_findings(
        report.errors,
        [
            *PLASTIMATCH_HEADER_FINDINGS,
            "[dicomregsave] DeviceSerialNumber (0018,1000) is missing or empty",
            "[dicomregsave] DeformableRegistrationSequence (0064,0002) item 1 > RegistrationTypeCodeSequence "
            "(0070,030D) item 1 lacks Code Value (0008,0100), Coding Scheme Designator (0008,0102), Code Meaning",
            "[dciodvfy] Error - </DeviceSerialNumber(0018,1000)> - Empty attribute (no value) for Type 1 Required",
            *(
                f"[dciodvfy] Error - </{code_item}/{attribute}> - Missing attribute"
                for attribute in ("CodeValue(0008,0100)", "CodeMeaning(0008,0104)")
                + ("LongCodeValue(0008,0119)", "URNCodeValue(0008,0120)")
            ),
        ],
    )
    _assert_findings(report.warnings, PLASTIMATCH_HEADER_WARNINGS)


def test_slicerrt_export_swaps_the_roles(tmp_path, caplog):
    """SlicerRT exports the node's to-parent transform T (moving -> fixed): the file registers the
    fixed image to the moving one, and a standard reader maps moving-image points by T."""
    to_parent_lps = np.linalg.inv(PLASTIMATCH_AFFINE_LPS)
    path, fixed_copy, moving_copy = fw.write_slicerrt_sro(tmp_path / "sro.dcm", to_parent_lps)
    registration, messages = _read(path, caplog)
    (message,) = messages
    assert "declared RIGID but is AFFINE" in message
    assert registration.frame_of_reference_uid == moving_copy[0].FrameOfReferenceUID
    identity, source_item = registration.items
    assert identity.is_identity and identity.source_frame_of_reference_uid == moving_copy[0].FrameOfReferenceUID
    assert registration.choose_item() is source_item
    assert source_item.source_frame_of_reference_uid == fixed_copy[0].FrameOfReferenceUID
    points = _fixed_points_lps()
    np.testing.assert_allclose(
        source_item.map_points(points), _apply(to_parent_lps, points), rtol=0, atol=MAPPING_TOLERANCE_MM
    )


def test_pydicomrt_sro_without_common_instance_reference(tmp_path, caplog):
    fixed, moving = fw.ct_pair()
    path = fw.write_pydicomrt_sro(tmp_path / "sro.dcm", fixed, moving, RIGID_LPS)
    registration, messages = _read(path, caplog)
    (message,) = messages
    assert message.startswith(
        f"{path}: 2 referenced instance(s) ({min(image.SOPInstanceUID for image in moving)}, ...) are not listed in "
        "the Common Instance Reference module"
    )
    assert "series and study are unknown" in message and "`dicomregsave validate` reports this" in message
    (item,) = registration.items
    assert registration.choose_item() is item
    assert registration.frame_of_reference_uid == fixed[0].FrameOfReferenceUID
    assert item.source_frame_of_reference_uid == moving[0].FrameOfReferenceUID
    assert [r.sop_instance_uid for r in item.referenced_images] == [image.SOPInstanceUID for image in moving]
    assert {(r.series_instance_uid, r.study_instance_uid) for r in item.referenced_images} == {(None, None)}
    assert item.registration_type is None  # written beside the Matrix Registration Sequence, not in it
    stored = fw.pydicomrt_float32(RIGID_LPS)
    np.testing.assert_array_equal(item.matrix_registration.matrix_lps, stored)
    points = _fixed_points_lps()
    np.testing.assert_allclose(
        item.map_points(points), _apply(np.linalg.inv(stored), points), rtol=0, atol=MAPPING_TOLERANCE_MM
    )

    report = validate_file(path)
    matrix = "RegistrationSequence(0070,0308)[1]/MatrixRegistrationSequence(0070,0309)[1]/MatrixSequence(0070,030a)[1]"
    long_values = [n for n, v in enumerate(stored[:3].ravel(), start=1) if len(str(v)) > 16]
    assert len(long_values) >= 9
    _assert_findings(
        report.errors,
        [
            *PYDICOMRT_HEADER_FINDINGS,
            "[dicomregsave] RegistrationSequence (0070,0308) item 1 > MatrixRegistrationSequence (0070,0309) item 1: "
            "Registration Type Code Sequence (0070,030D) is missing",
            "[dicomregsave] RegistrationSequence[1].ReferencedImageSequence[1] references instance",
            "[dicomregsave] RegistrationSequence[1].ReferencedImageSequence[2] references instance",
            "[dicomregsave] RegistrationSequence[1].MatrixRegistrationSequence[1].MatrixSequence[1]."
            "FrameOfReferenceTransformationMatrix (3006,00C6): '",
            f"[dciodvfy] Error - </{matrix.split('/MatrixSequence')[0]}/RegistrationTypeCodeSequence(0070,030d)> - "
            "Missing attribute for Type 2 Required",
            *(
                f"[dciodvfy] Error - </{matrix}/FrameOfReferenceTransformationMatrix(3006,00c6)[{n}]> - Value invalid"
                for n in long_values
            ),
        ],
    )
    misplaced = "RegistrationSequence(0070,0308)[1]/RegistrationTypeCodeSequence(0070,030d)"
    _assert_findings(
        report.warnings,
        [
            *PYDICOMRT_HEADER_WARNINGS,
            *(
                f"[dciodvfy] Warning - </{misplaced}[1]/{attribute}> - Attribute is not present in standard DICOM IOD"
                for attribute in ("CodeValue(0008,0100)", "CodingSchemeDesignator(0008,0102)")
                + ("CodingSchemeVersion(0008,0103)", "CodeMeaning(0008,0104)")
            ),
            f"[dciodvfy] Warning - </{misplaced}> - Attribute is not present in standard DICOM IOD",
        ],
    )


def test_pydicomrt_dro_with_a_rigid_pre_matrix(tmp_path, caplog):
    fixed, moving = fw.ct_pair()
    grid = _grid()
    pre_lps = np.linalg.inv(RIGID_LPS)
    path = fw.write_pydicomrt_dro(tmp_path / "dro.dcm", fixed, moving, grid, pre_lps, np.eye(4))
    registration, messages = _read(path, caplog)
    (message,) = messages
    assert "2 referenced instance(s)" in message and "Common Instance Reference module" in message
    (item,) = registration.items
    assert registration.choose_item() is item
    assert item.source_frame_of_reference_uid == moving[0].FrameOfReferenceUID
    assert [r.sop_instance_uid for r in item.referenced_images] == [image.SOPInstanceUID for image in moving]
    assert item.registration_type.value == "125024"
    nodes = _grid_nodes_lps(grid)
    expected = _apply(fw.pydicomrt_float32(pre_lps), nodes) + grid.vectors_lps.reshape(-1, 3)
    np.testing.assert_allclose(item.map_points(nodes), expected, rtol=0, atol=MAPPING_TOLERANCE_MM)

    report = validate_file(path)
    pre_where = "DeformableRegistrationSequence(0064,0002)[1]/PreDeformationMatrixRegistrationSequence(0064,000f)[1]"
    long_values = [n for n, v in enumerate(fw.pydicomrt_float32(pre_lps)[:3].ravel(), start=1) if len(str(v)) > 16]
    _assert_findings(
        report.errors,
        [
            *PYDICOMRT_HEADER_FINDINGS,
            *(
                f"[dicomregsave] {keyword} ({tag}) is missing or empty; the Enhanced General Equipment module"
                for keyword, tag in [
                    ("Manufacturer", "0008,0070"),
                    ("ManufacturerModelName", "0008,1090"),
                    ("DeviceSerialNumber", "0018,1000"),
                    ("SoftwareVersions", "0018,1020"),
                ]
            ),
            "[dicomregsave] DeformableRegistrationSequence[1].ReferencedImageSequence[1] references instance",
            "[dicomregsave] DeformableRegistrationSequence[1].ReferencedImageSequence[2] references instance",
            "[dicomregsave] DeformableRegistrationSequence[1].PreDeformationMatrixRegistrationSequence[1]."
            "FrameOfReferenceTransformationMatrix (3006,00C6): '",
            "[dciodvfy] Error - </Manufacturer(0008,0070)> - Empty attribute (no value) for Type 1 Required",
            "[dciodvfy] Error - </ManufacturerModelName(0008,1090)> - Empty attribute (no value) for Type 1 Required",
            "[dciodvfy] Error - </DeviceSerialNumber(0018,1000)> - Missing attribute for Type 1 Required",
            "[dciodvfy] Error - </SoftwareVersions(0018,1020)> - Missing attribute for Type 1 Required",
            *(
                f"[dciodvfy] Error - </{pre_where}/FrameOfReferenceTransformationMatrix(3006,00c6)[{n}]> - Value "
                "invalid"
                for n in long_values
            ),
        ],
    )
    _assert_findings(report.warnings, PYDICOMRT_HEADER_WARNINGS)


@pytest.mark.parametrize("layout", ["pydicomrt_sro", "pydicomrt_dro"])
def test_references_without_a_series_cannot_be_written_back(tmp_path, layout):
    """A registration read from a file without Common Instance Reference names its images by SOP
    Instance UID only; writing it again would need their series, which the writer refuses to invent."""
    fixed, moving = fw.ct_pair()
    if layout == "pydicomrt_sro":
        path = fw.write_pydicomrt_sro(tmp_path / "reg.dcm", fixed, moving, RIGID_LPS)
    else:
        path = fw.write_pydicomrt_dro(tmp_path / "reg.dcm", fixed, moving, _grid(), np.eye(4), np.eye(4))
    references = read_registration(path).referenced_images
    with pytest.raises(InvalidRegistrationError, match="series and study of referenced instance"):
        common_instance_reference(references, fixed[0].StudyInstanceUID)


def test_imsimqa_deformable_sequence_under_the_spatial_registration_class(tmp_path, caplog):
    case = fw.imsimqa_style_reg()
    path = rb.write(case.dataset, tmp_path / "imsimqa.dcm")
    registration, messages = _read(path, caplog)
    (message,) = messages
    assert message == (
        f"{path}: the SOP Class UID (0008,0016) is Spatial Registration (1.2.840.10008.5.1.4.1.1.66.1), but the file "
        "holds a Deformable Registration Sequence (0064,0002) and no Registration Sequence (0070,0308); it is read "
        "as the Deformable Spatial Registration its content is, in the standard's direction; the writer's own "
        "direction is not documented, so check the mapping (landmarks with `dicomregsave qa`). `dicomregsave "
        "validate` reports this as an error of the file."
    )
    (item,) = registration.items
    assert registration.choose_item() is item
    assert [r.sop_instance_uid for r in item.referenced_images] == [image.SOPInstanceUID for image in case.moving]
    nodes = _grid_nodes_lps(case.grid)
    np.testing.assert_allclose(
        item.map_points(nodes), nodes + case.grid.vectors_lps.reshape(-1, 3), rtol=0, atol=MAPPING_TOLERANCE_MM
    )
    report = validate_file(path)
    _assert_findings(
        report.errors,
        [
            "[dicomregsave] Registration Sequence (0070,0308) is missing or empty; a Spatial Registration needs",
            "[dciodvfy] Error - </RegistrationSequence(0070,0308)> - Missing attribute for Type 1 Required",
        ],
    )
    assert report.warnings and all(
        w.startswith("[dciodvfy] Warning - </DeformableRegistrationSequence(0064,0002)")
        and w.endswith("- Attribute is not present in standard DICOM IOD")
        for w in report.warnings
    )
