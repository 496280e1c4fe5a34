"""slicer/quality.py headless (slicer-core): the qa dictionary of a scene transform and the nodes it adds."""

from __future__ import annotations

import numpy as np
import pytest
import vtk
from vtk.util import numpy_support

from DicomRegSaveLib import geometry
from DicomRegSaveLib.inputs.series import read_image_series
from DicomRegSaveLib.inputs.transform_files import read_transform_file
from DicomRegSaveLib.qa.linear import rotation_from_angles
from DicomRegSaveLib.qa.volume_files import volume_node
from DicomRegSaveLib.qa.volumes import read_series_volume, sample
from DicomRegSaveLib.slicer.quality import registration_quality, save_report, volume_from_node
from mrml_helpers import homogeneous, linear_node, new_scene


@pytest.fixture(scope="module")
def volumes(case):
    fixed = read_series_volume(read_image_series(case.fixed_dir, "fixed"))
    moving = read_series_volume(read_image_series(case.moving_dir, "moving"))
    return fixed, moving


def scene_with_volumes(volumes):
    scene = new_scene()
    fixed, moving = volumes
    return scene, volume_node(scene, "fixed CT", fixed), volume_node(scene, "moving CT", moving)


def node_array(node) -> np.ndarray:
    n_i, n_j, n_k = node.GetImageData().GetDimensions()
    return numpy_support.vtk_to_numpy(node.GetImageData().GetPointData().GetScalars()).reshape(n_k, n_j, n_i)


def node_ijk_to_lps(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return geometry.ras_to_lps_index_matrix(np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)]))


def test_a_displacement_field_node_gives_the_qa_dictionary_and_two_new_volumes(case, volumes, tmp_path):
    scene, fixed_node, moving_node = scene_with_volumes(volumes)
    np.testing.assert_array_equal(volume_from_node(fixed_node).voxels, volumes[0].voxels)
    transform = read_transform_file(case.field_path, scene)
    before = scene.GetNumberOfNodes()
    result = registration_quality(transform, fixed_node, moving_node)
    report = result.report
    assert (report["report"], report["version"], report["path"]) == ("qa", 1, None)
    (item,) = report["items"]
    assert item["kind"] == "deformable" and item["source_frame_of_reference_uid"] is None
    assert item["similarity"]["after"]["mad"] < item["similarity"]["before"]["mad"] / 3
    assert item["jacobian"]["folded_count"] == 0 and report["ok"]

    # the field sits on the fixed voxel grid: the Jacobian equals numpy.gradient on x + D(x)
    n_i, n_j, n_k = case.field_dimensions
    k, j, i = np.meshgrid(np.arange(n_k), np.arange(n_j), np.arange(n_i), indexing="ij")
    points = np.stack([i, j, k], -1) @ case.field_ijk_to_lps[:3, :3].T + case.field_ijk_to_lps[:3, 3]
    displacement = case.displacement_lps(points).astype(np.float32).astype(np.float64)
    spacing = np.linalg.norm(case.field_ijk_to_lps[:3, :3], axis=0)
    along_k, along_j, along_i = np.gradient(points + displacement, spacing[2], spacing[1], spacing[0], axis=(0, 1, 2))
    reference = np.linalg.det(np.stack([along_i, along_j, along_k], axis=-1))
    assert scene.GetNumberOfNodes() == before + 2
    assert result.jacobian_node.GetName().endswith("Jacobian determinant")
    np.testing.assert_allclose(node_array(result.jacobian_node), reference, atol=2e-5)
    np.testing.assert_allclose(node_ijk_to_lps(result.jacobian_node), case.field_ijk_to_lps, atol=1e-9)
    assert item["jacobian"]["min"] == pytest.approx(reference.min(), abs=2e-5)

    # the warped moving volume: the moving image at x + D(x) for every fixed voxel x
    expected = sample(volumes[1], (points + displacement).reshape(-1, 3))
    warped = node_array(result.warped_node).reshape(-1)
    fill = volumes[1].voxels.min()
    defined = np.isfinite(expected)
    np.testing.assert_allclose(warped[defined], expected[defined], atol=1e-2)
    assert np.all(warped[~defined] == fill)
    np.testing.assert_allclose(node_ijk_to_lps(result.warped_node), volumes[0].ijk_to_lps, atol=1e-9)

    folder = save_report(result, tmp_path / "report")
    assert sorted(p.name for p in folder.iterdir()) == [
        "index.html",
        "item1_checkerboard.png",
        "item1_difference.png",
        "item1_displacement.png",
        "item1_jacobian.png",
    ]
    assert f"{item['jacobian']['folded_count']}</td>" in (folder / "index.html").read_text()


def test_a_linear_transform_node_gives_its_rotation_and_translation_and_no_jacobian_volume(volumes, tmp_path):
    scene, fixed_node, moving_node = scene_with_volumes(volumes)
    angles, translation = (3.0, -8.0, 12.5), (4.0, -2.5, 7.0)
    fixed_to_moving_lps = homogeneous(rotation_from_angles(angles), translation)
    # a from-parent transform maps world (fixed) to the moving volume; in RAS
    transform = linear_node(scene, geometry.lps_to_ras_matrix(fixed_to_moving_lps), from_parent=True)
    markups = []
    rng = np.random.default_rng(8)
    fixed_lps = rng.uniform(-30, 30, (4, 3))
    moving_lps = fixed_lps @ fixed_to_moving_lps[:3, :3].T + fixed_to_moving_lps[:3, 3] + [0.0, 0.0, 1.5]
    for points in (fixed_lps, moving_lps):
        node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
        for point in geometry.lps_to_ras_points(points):
            node.AddControlPoint(vtk.vtkVector3d(*point))
        markups.append(node)
    result = registration_quality(transform, fixed_node, moving_node, markups)
    (item,) = result.report["items"]
    assert item["kind"] == "linear" and item["jacobian"] is None and result.jacobian_node is None
    np.testing.assert_allclose(item["linear"]["rotation_deg"], angles, atol=1e-4)
    np.testing.assert_allclose(item["linear"]["translation_mm"], translation, atol=1e-4)
    np.testing.assert_allclose([p["tre_mm"] for p in item["landmarks"]["points"]], 1.5, atol=1e-3)
    verdicts = {v["check"]: v["ok"] for v in item["verdicts"]}
    assert verdicts == {"linear_determinant": True, "tre_mean": True, "tre_max": True, "tre_max_voxel": True}
    assert result.warped_node is not None
