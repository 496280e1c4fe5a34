"""Fixtures shared by the engine, command-line and Slicer tests (helpers live in Testing/support/)."""

from __future__ import annotations

import pytest

from DicomRegSaveLib.inputs.sampledata import DemoCase, make_demo_case


@pytest.fixture(scope="module")
def case(tmp_path_factory, request) -> DemoCase:
    """The demo's phantom: fixed and moving CT series and a known displacement field, one per test module."""
    return make_demo_case(tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2]) / "case")
