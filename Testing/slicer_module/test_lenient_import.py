"""The Slicer loader reads what other systems write (issue 16 item 6): plastimatch's affine matrix
typed RIGID loads as stored, as the same matrix typed AFFINE does, with the reader's warning."""

from __future__ import annotations

import logging

import numpy as np
import vtk

from DicomRegSaveLib.slicer.importing import import_registration
from foreign_writers import write_plastimatch_style_sro
from mrml_helpers import new_scene

#: moving -> fixed (LPS mm): scaled and sheared.
AFFINE_LPS = np.array([[0.97, 0.0, 0.04, 6.0], [0.02, 1.03, 0.0, -3.5], [0.0, 0.01, 0.99, 2.0], [0.0, 0.0, 0.0, 1.0]])


def _loaded_matrix(path) -> np.ndarray:
    result = import_registration(path, new_scene(), None, apply_to_moving=False)
    [loaded] = result.items
    [node] = loaded.nodes
    matrix = vtk.vtkMatrix4x4()
    node.GetMatrixTransformToParent(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def test_affine_typed_rigid_loads_as_the_same_matrix_typed_affine(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="DicomRegSaveLib.reg.reader"):
        as_plastimatch = _loaded_matrix(write_plastimatch_style_sro(tmp_path / "rigid.dcm", AFFINE_LPS))
    assert any("declared RIGID but is AFFINE" in record.getMessage() for record in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="DicomRegSaveLib.reg.reader"):
        as_affine = _loaded_matrix(write_plastimatch_style_sro(tmp_path / "affine.dcm", AFFINE_LPS, "AFFINE"))
    assert caplog.records == []
    np.testing.assert_array_equal(as_plastimatch, as_affine)
    # the node moves the moving image onto the fixed one: the stored matrix, LPS -> RAS
    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    np.testing.assert_allclose(as_affine, lps_to_ras @ AFFINE_LPS @ lps_to_ras, atol=1e-12)
