"""Swapped or mismatched fixed/moving inputs are noticed from the transform's own grid (issue 16)."""

from __future__ import annotations

import dataclasses

import numpy as np

from DicomRegSaveLib.export.input_checks import describe_series, swapped_inputs_warning
from DicomRegSaveLib.inputs.series import read_image_series
from DicomRegSaveLib.inputs.transform_files import deformation_from_file
from DicomRegSaveLib.model import DisplacementGrid


def demo_inputs(case):
    fixed = read_image_series(case.fixed_dir, "fixed")
    moving = read_image_series(case.moving_dir, "moving")
    return fixed, moving, deformation_from_file(case.field_path, fixed.ijk_to_lps, fixed.dimensions)


def test_the_demo_as_made_raises_no_warning(case):
    fixed, moving, deformation = demo_inputs(case)
    assert swapped_inputs_warning(deformation, fixed, moving) is None


def test_a_field_on_the_moving_series_grid_is_reported_as_swapped_inputs(case):
    fixed, moving, deformation = demo_inputs(case)
    warning = swapped_inputs_warning(deformation, moving, fixed)
    assert warning is not None and "look swapped" in warning and "moving series" in warning


def test_a_field_that_leaves_the_fixed_image_outside_is_reported(case):
    fixed, moving, deformation = demo_inputs(case)
    grid = deformation.grid
    # The field moved 60 % of the fixed image's extent along L: most of the fixed image lies outside,
    # and a moving series placed there lies inside.
    shift_lps = np.array([0.6 * grid.spacing_mm[0] * grid.dimensions[0], 0.0, 0.0])
    shifted = DisplacementGrid(grid.origin_lps + shift_lps, grid.direction_lps, grid.spacing_mm, grid.vectors_lps)
    moved_moving = dataclasses.replace(moving, ijk_to_lps=shifted.index_to_lps.copy())
    shifted_by_half_voxel = moved_moving.ijk_to_lps.copy()
    shifted_by_half_voxel[:3, 3] += 0.5 * np.asarray(grid.spacing_mm)
    moved_moving = dataclasses.replace(moved_moving, ijk_to_lps=shifted_by_half_voxel)
    warning = swapped_inputs_warning(dataclasses.replace(deformation, grid=shifted), fixed, moved_moving)
    assert warning is not None and warning.startswith("Only 44% of the fixed image")
    assert "against 100% of the moving image" in warning


def test_series_are_described_as_a_user_recognises_them(case):
    fixed, moving, _ = demo_inputs(case)
    count = len(fixed.headers)
    assert describe_series(fixed) == f'CT series 2 "Fixed CT" of 2024-03-15, {count} instances'
    assert describe_series(moving) == f'CT series 3 "Moving CT" of 2024-06-12, {count} instances'
