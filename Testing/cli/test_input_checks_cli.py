"""``dicomregsave export`` names both series and warns when the fixed and moving inputs look swapped."""

from __future__ import annotations

import pydicom

from commands import run


def export(case, output, fixed, moving):
    return run(
        "export", "--transform", case.field_path, "--fixed", fixed, "--moving", moving, "--output", output
    )  # fmt: skip


def test_the_summary_names_each_series(case, tmp_path):
    result = export(case, tmp_path / "reg.dcm", case.fixed_dir, case.moving_dir)
    assert result.returncode == 0, result.stderr
    assert '  fixed:  CT series 2 "Fixed CT" of 2024-03-15,' in result.stdout
    assert '  moving: CT series 3 "Moving CT" of 2024-06-12,' in result.stdout
    assert "look swapped" not in result.stdout + result.stderr


def test_swapped_fixed_and_moving_folders_are_warned_about(case, tmp_path):
    result = export(case, tmp_path / "reg.dcm", case.moving_dir, case.fixed_dir)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "look swapped" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith("dicomregsave export: warning: The transform's displacement field lies")
    assert "look swapped" not in result.stdout
    assert '  fixed:  CT series 3 "Moving CT"' in result.stdout
    # the file is still what was asked for: the warning informs, it does not decide
    assert pydicom.dcmread(tmp_path / "reg.dcm").FrameOfReferenceUID == case.moving_frame_of_reference_uid
