"""Behaviours that protect users and that no other test pins down (issue 19): a small real correction is
never taken for an identity item, and NaN vectors are refused by the API's defaults."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from DicomRegSaveLib.errors import InvalidRegistrationError, RegistrationChoiceError
from DicomRegSaveLib.export.pipeline import ExportOptions, export_registration
from DicomRegSaveLib.inputs.series import read_image_series
from DicomRegSaveLib.inputs.transform_files import deformation_from_file
from DicomRegSaveLib.model import DisplacementGrid, Registration, RegistrationItem, RegistrationMatrix
from DicomRegSaveLib.slicer.importing import moving_items
from mrml_helpers import homogeneous, rotation

FIXED_FRAME = "1.2.826.0.1.3680043.8.498.1001"
MOVING_FRAME = "1.2.826.0.1.3680043.8.498.1002"
OTHER_FRAME = "1.2.826.0.1.3680043.8.498.1003"

#: A real, small rigid correction: 0.01 rad (0.57°) about an oblique axis and a 0.05 mm shift.
SMALL_CORRECTION_LPS = homogeneous(rotation([0.3, -0.5, 0.8], 0.01), (0.05, 0.0, 0.0))


def rigid_item(source_frame: str, matrix_lps: np.ndarray) -> RegistrationItem:
    return RegistrationItem(source_frame, matrix_registration=RegistrationMatrix(matrix_lps, "RIGID"))


def identity_item() -> RegistrationItem:
    return rigid_item(FIXED_FRAME, np.eye(4))


def test_a_small_real_rotation_or_shift_is_not_an_identity_item():
    assert identity_item().is_identity
    assert not rigid_item(FIXED_FRAME, SMALL_CORRECTION_LPS).is_identity
    assert not rigid_item(FIXED_FRAME, homogeneous(rotation([0.0, 0.0, 1.0], 0.01), (0.0, 0.0, 0.0))).is_identity
    assert not rigid_item(FIXED_FRAME, homogeneous(np.eye(3), (0.0, 0.05, 0.0))).is_identity


def test_a_small_correction_is_chosen_beside_an_identity_item():
    correction = rigid_item(MOVING_FRAME, SMALL_CORRECTION_LPS)
    registration = Registration(FIXED_FRAME, [identity_item(), correction])
    assert registration.choose_item() is correction
    # a correction within the registered frame itself (a re-positioning of the same scan) as well
    in_frame = rigid_item(FIXED_FRAME, SMALL_CORRECTION_LPS)
    assert Registration(FIXED_FRAME, [identity_item(), in_frame]).choose_item() is in_frame


def test_a_small_correction_beside_another_registration_makes_the_choice_ambiguous():
    small = rigid_item(MOVING_FRAME, SMALL_CORRECTION_LPS)
    large = rigid_item(OTHER_FRAME, homogeneous(rotation([0.0, 0.0, 1.0], 0.3), (12.0, -4.0, 2.0)))
    registration = Registration(FIXED_FRAME, [identity_item(), small, large])
    with pytest.raises(RegistrationChoiceError, match="2 items that move different images") as raised:
        registration.choose_item()
    assert MOVING_FRAME in str(raised.value) and OTHER_FRAME in str(raised.value)
    assert registration.choose_item(MOVING_FRAME) is small


def test_slicer_import_keeps_a_small_correction_of_the_registered_frame():
    in_frame = rigid_item(FIXED_FRAME, SMALL_CORRECTION_LPS)
    assert moving_items(Registration(FIXED_FRAME, [identity_item(), in_frame])) == [in_frame]


def test_api_export_with_default_options_refuses_a_nan_vector_and_writes_nothing(case, tmp_path):
    fixed = read_image_series(case.fixed_dir, "fixed")
    moving = read_image_series(case.moving_dir, "moving")
    deformation = deformation_from_file(case.field_path, fixed.ijk_to_lps, fixed.dimensions)
    grid = deformation.grid
    vectors_lps = np.array(grid.vectors_lps)
    vectors_lps[2, 3, 4] = np.nan  # the whole vector: DICOM's "undefined here" marker
    grid = DisplacementGrid(grid.origin_lps, grid.direction_lps, grid.spacing_mm, vectors_lps)
    deformation = dataclasses.replace(deformation, grid=grid)
    assert ExportOptions().undefined_vectors == "refuse"
    with pytest.raises(InvalidRegistrationError, match="NaN") as raised:
        export_registration(deformation, fixed, moving, tmp_path / "reg.dcm")
    assert "(i=4, j=3, k=2)" in str(raised.value)
    assert list(tmp_path.iterdir()) == []
