"""Messages name the user's own paths, never the temporary files the writers use (issue 16 item 7)."""

from __future__ import annotations

import numpy as np

from commands import run
from DicomRegSaveLib.export.options import ExportOptions
from DicomRegSaveLib.export.pipeline import export_registration
from DicomRegSaveLib.inputs.series import read_image_series
from DicomRegSaveLib.model import Deformation, DisplacementGrid, RegistrationMatrix
from mrml_helpers import homogeneous, rotation


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
