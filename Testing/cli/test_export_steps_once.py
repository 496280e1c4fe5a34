"""Each step of a command-line export is done once, by one function: the tag values become overrides
keyed by their keywords once, the output is decided (UID and checked path) once before the inputs
are read, and only the atomic write checks it again as it takes its name."""

from __future__ import annotations

import sys
from pathlib import Path

import pydicom

from DicomRegSaveLib.cli.main import main
from DicomRegSaveLib.export import pipeline


def spy_everywhere(monkeypatch, module, name: str) -> list[tuple]:
    """Record the arguments of every call of `module.name`, under whichever name an engine module
    imported it; the function still runs."""
    original = getattr(module, name)
    calls: list[tuple] = []

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    for loaded in list(sys.modules.values()):
        if getattr(loaded, "__name__", "").startswith("DicomRegSaveLib") and getattr(loaded, name, None) is original:
            monkeypatch.setattr(loaded, name, spy)
    return calls


def export(case, output: Path, *options: str) -> int:
    arguments = ["--transform", case.field_path, "--fixed", case.fixed_dir, "--moving", case.moving_dir]
    return main(["export", *map(str, arguments), "--output", str(output), *options])


def test_a_tag_given_by_number_becomes_one_override_keyed_by_its_keyword(case, tmp_path, monkeypatch):
    built = spy_everywhere(monkeypatch, pipeline, "create_dataset")
    status = export(case, tmp_path / "reg.dcm", "--tag", "0008,1010=LINAC 2", "--tag", "InstitutionName=Clinic")
    assert status == 0
    [(registration, fixed_image, options)] = built
    assert dict(options.overrides) == {"StationName": "LINAC 2", "InstitutionName": "Clinic"}
    dataset = pydicom.dcmread(tmp_path / "reg.dcm", stop_before_pixels=True)
    assert (dataset.StationName, dataset.InstitutionName) == ("LINAC 2", "Clinic")


def test_the_output_is_decided_once_and_checked_again_only_by_the_write(case, tmp_path, monkeypatch):
    from DicomRegSaveLib import output

    checks = spy_everywhere(monkeypatch, output, "check_output_path")
    uids = spy_everywhere(monkeypatch, pipeline, "new_uid")
    assert export(case, tmp_path) == 0
    [written] = list(tmp_path.iterdir())
    dataset = pydicom.dcmread(written, stop_before_pixels=True)
    assert written.name == f"{dataset.SOPInstanceUID}.dcm"
    assert [Path(args[0]) for args in checks] == [written, written]
    assert len(uids) == 2  # the Series and the SOP Instance UID, one each


def test_an_overridden_sop_instance_uid_names_the_file(case, tmp_path):
    uid = "1.2.826.0.1.3680043.10.99.1.2.3"
    assert export(case, tmp_path, "--tag", f"SOPInstanceUID={uid}") == 0
    assert [p.name for p in tmp_path.iterdir()] == [f"{uid}.dcm"]
    assert pydicom.dcmread(tmp_path / f"{uid}.dcm", stop_before_pixels=True).SOPInstanceUID == uid
