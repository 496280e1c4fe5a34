"""The Slicer export path keeps the engine's refusal of NaN vectors: the module panel, the export dialog
and the console build ExportOptions() without choosing what to do with them (issue 19)."""

from __future__ import annotations

import numpy as np
import pytest
import slicer

from DicomRegSaveLib.errors import InvalidRegistrationError
from DicomRegSaveLib.slicer import export as slicer_export
from DicomRegSaveLib.slicer.fields import options_from_tags


def test_a_grid_node_with_a_nan_vector_is_refused_with_default_options(world, dicom_case, tmp_path):
    transform = world.registration_transform(linear_parent=False)
    vectors_ras = slicer.util.arrayFromGridTransform(transform)
    vectors_ras[1, 2, 3] = np.nan
    slicer.util.arrayFromGridTransformModified(transform)
    with pytest.raises(InvalidRegistrationError, match="NaN"):
        slicer_export.export_from_nodes(transform, None, None, dicom_case["lookup"], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_panel_and_console_cannot_write_a_reg_into_another_patient(world, dicom_case, tmp_path):
    transform = world.registration_transform()
    for keyword, value in (("PatientID", "SOMEONE-ELSE"), ("PatientName", "Other^Patient")):
        options = options_from_tags({keyword: value})
        with pytest.raises(InvalidRegistrationError, match="fixed image's patient and study") as raised:
            slicer_export.export_from_nodes(transform, None, None, dicom_case["lookup"], tmp_path, options)
        assert value in str(raised.value)
    assert list(tmp_path.iterdir()) == []
