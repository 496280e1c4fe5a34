"""The real-Slicer check script (Testing/real_slicer/run_real_slicer_checks.py) cannot run here; its plain
Python parts can: it imports without Slicer, writes the gantry-tilt case it needs, and counts results."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "real_slicer" / "run_real_slicer_checks.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("run_real_slicer_checks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_the_moving_series_is_written_with_a_gantry_tilt_and_its_uids_kept(script, tmp_path):
    case = script.write_case(tmp_path)
    headers = sorted(
        (pydicom.dcmread(path, stop_before_pixels=True) for path in case.moving_paths),
        key=lambda header: float(header.ImagePositionPatient[2]),
    )
    assert {str(h.SeriesInstanceUID) for h in headers} == {case.moving_series_instance_uid}
    positions = np.array([h.ImagePositionPatient for h in headers], dtype=float)
    steps = np.diff(positions, axis=0)
    column = np.array(headers[0].ImageOrientationPatient[3:], dtype=float)
    normal = np.cross(np.array(headers[0].ImageOrientationPatient[:3], dtype=float), column)
    tilt = np.degrees(np.arctan2(steps @ column, steps @ normal))
    assert np.allclose(tilt, script.GANTRY_TILT_DEGREES, atol=1e-3)


def test_results_give_the_exit_code(script, capsys):
    results = script.Results()
    assert results.exit_code == 1, "no check run is no success"
    results.run("passes", lambda: None)
    assert results.exit_code == 0
    results.run("fails", lambda: (_ for _ in ()).throw(AssertionError("why")))
    assert results.exit_code == 1
    assert capsys.readouterr().out.splitlines()[:2] == ["PASS passes", "FAIL fails: AssertionError: why"]
