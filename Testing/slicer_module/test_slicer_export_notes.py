"""Each note of a node-level export is reported once: the deformation's notes by the pipeline, the
volumes' notes by the Slicer front end."""

from __future__ import annotations

import numpy as np

from DicomRegSaveLib.slicer import export as slicer_export
from mrml_helpers import linear_node


def test_a_resampled_export_reports_each_note_once(world, dicom_case, tmp_path):
    transform = world.registration_transform()
    other = linear_node(world.scene, np.eye(4))
    other.SetName("Manual nudge")
    world.moving.SetAndObserveTransformNodeID(other.GetID())
    result = slicer_export.export_from_nodes(
        transform, None, None, dicom_case["lookup"], tmp_path, grid_spacing_mm=12.0
    )
    warnings = result.report.warnings
    resampled = [w for w in warnings if "was resampled onto a" in w]
    assert len(resampled) == 1, warnings
    assert "[12.0, 12.0, 12.0] mm" in resampled[0]
    assert len([w for w in warnings if "under transform 'Manual nudge'" in w]) == 1
    assert len(warnings) == len(set(warnings)), warnings
