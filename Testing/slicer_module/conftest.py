"""Fixtures of the Slicer front end's tests."""

from __future__ import annotations

import pytest

from DicomRegSaveLib.slicer import export as slicer_export, fields as slicer_fields
from mrml_helpers import from_world_lps
from slicer_app_standins import Application, Database
from slicer_cases import Scene, fixed_points, write_dicom_case


@pytest.fixture(scope="module")
def dicom_case(tmp_path_factory):
    """A fixed and a moving CT series of one patient in two studies and frames, and the header lookup Slicer uses (the database stand-in)."""
    return write_dicom_case(tmp_path_factory.mktemp("slicer_case"))


@pytest.fixture
def world(dicom_case):
    return Scene(dicom_case)


@pytest.fixture(scope="module")
def reg_case(dicom_case, tmp_path_factory):
    """dicom_case plus a REG of a grid-under-rigid transform exported from another scene, and its oracle:
    1000 fixed-image points and where the exported transform maps them (LPS)."""
    world = Scene(dicom_case)
    transform = world.registration_transform()
    folder = tmp_path_factory.mktemp("reg")
    result = slicer_export.export_from_nodes(
        transform,
        None,
        None,
        dicom_case["lookup"],
        folder,
        slicer_fields.options_from_tags({"SeriesDescription": "DIR result"}),
    )
    points = fixed_points(dicom_case)
    return dict(dicom_case, reg=result.path, points=points, expected=from_world_lps(transform, points))


@pytest.fixture
def app(monkeypatch, reg_case):
    """The real DicomRegSavePlugin.py in a stand-in Slicer whose DICOM database holds the case and the REG."""
    application = Application(monkeypatch, Database([reg_case["folder"], reg_case["reg"].parent]))
    yield application
    application.close()
