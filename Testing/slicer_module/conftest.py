"""Fixtures of the Slicer front end's tests."""

from __future__ import annotations

import pytest

from slicer_cases import Scene, write_dicom_case


@pytest.fixture(scope="module")
def dicom_case(tmp_path_factory):
    """A fixed and a moving CT series of one patient in two studies and frames, and a folder lookup."""
    return write_dicom_case(tmp_path_factory.mktemp("slicer_case"))


@pytest.fixture
def world(dicom_case):
    return Scene(dicom_case)
