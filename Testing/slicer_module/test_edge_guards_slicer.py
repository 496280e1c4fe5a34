"""The Slicer export path keeps the engine's refusal of NaN vectors: the module panel, the export dialog
and the console build ExportOptions() without choosing what to do with them (issue 19)."""

from __future__ import annotations

import numpy as np
import pytest
import slicer

from DicomRegSaveLib.errors import InvalidRegistrationError
from DicomRegSaveLib.slicer import export as slicer_export


def test_a_grid_node_with_a_nan_vector_is_refused_with_default_options(world, dicom_case, tmp_path):
    transform = world.registration_transform(linear_parent=False)
    vectors_ras = slicer.util.arrayFromGridTransform(transform)
    vectors_ras[1, 2, 3] = np.nan
    slicer.util.arrayFromGridTransformModified(transform)
    with pytest.raises(InvalidRegistrationError, match="NaN"):
        slicer_export.export_from_nodes(transform, None, None, dicom_case["lookup"], tmp_path)
    assert list(tmp_path.iterdir()) == []
