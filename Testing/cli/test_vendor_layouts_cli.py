"""A pydicomRT 66.1 (no Common Instance Reference module) through the command line, as a user meets it:
``to-transform`` writes the fixed -> moving transform the file means, with one note naming the unlisted
instances; ``inspect`` shows the file; ``validate`` fails it and names the references (docs/vendor-layouts.md)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

import foreign_writers as fw
from commands import run
from mrml_helpers import homogeneous, rotation

#: moving -> fixed (LPS mm), as pydicomRT's builder documents the matrix it is given.
MOVING_TO_FIXED_LPS = homogeneous(rotation((0.3, -1.0, 0.2), np.radians(7.0)), (5.5, -18.0, 40.25))


def test_pydicomrt_sro_through_the_command_line(tmp_path):
    fixed, moving = fw.ct_pair()
    reg = fw.write_pydicomrt_sro(tmp_path / "pydicomrt.dcm", fixed, moving, MOVING_TO_FIXED_LPS)

    result = run("to-transform", reg, tmp_path / "fixed_to_moving.tfm")
    assert result.returncode == 0, result.stderr
    (note,) = [line for line in result.stderr.splitlines() if "note:" in line]
    assert f"{reg}: 2 referenced instance(s)" in note and "not listed in the Common Instance Reference module" in note
    assert "Traceback" not in result.stderr
    assert "referenced series: not listed" in result.stdout
    written = sitk.ReadTransform(str(tmp_path / "fixed_to_moving.tfm"))
    fixed_to_moving = np.linalg.inv(fw.pydicomrt_float32(MOVING_TO_FIXED_LPS))
    points = np.random.default_rng(6).uniform(-100.0, 100.0, size=(50, 3))
    mapped = np.array([written.TransformPoint(p.tolist()) for p in points])
    np.testing.assert_allclose(mapped, points @ fixed_to_moving[:3, :3].T + fixed_to_moving[:3, 3], atol=1e-6)

    shown = run("inspect", reg)
    assert shown.returncode == 0 and "(0002,0013) SH ImplementationVersionName  [pydicomRT]" in shown.stdout

    checked = run("validate", reg)
    assert checked.returncode == 1
    for image in moving:
        assert (
            f"references instance {image.SOPInstanceUID}, which is not listed in the Common Instance Reference module"
            in checked.stdout
        )
