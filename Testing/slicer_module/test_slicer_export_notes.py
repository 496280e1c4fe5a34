"""Each note of a node-level export is reported once: the deformation's notes by the pipeline, the
volumes' notes by the Slicer front end; a requested resampling is no note."""

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
        transform, None, None, dicom_case["lookup"], tmp_path, grid_spacing_mm=(12.0, 12.0, 4.0)
    )
    warnings = result.report.warnings
    # resampling at the requested spacing is what was asked for: no warning; raising it is one
    assert not any("was resampled onto a" in w for w in warnings), warnings
    clamped = [w for w in warnings if "finer than the fixed image" in w]
    assert clamped == [
        "The requested grid spacing 12 × 12 × 4 mm is finer than the fixed image in z (6 mm); written: 12 × 12 × 6 mm."
    ]
    assert len([w for w in warnings if "under transform 'Manual nudge'" in w]) == 1
    assert len(warnings) == len(set(warnings)), warnings
