"""The written file means what the transform file means in 3D Slicer.

Whole pipeline: transform file -> ``dicomregsave export`` work (export_request.run_export_request) -> REG on disk ->
reader -> the standard's equation, compared with slicer-core reading the same transform file and
evaluating the from-world transform a moving volume placed under it gets (VTK, RAS converted to LPS).
"""

import numpy as np
import SimpleITK as sitk

from DicomRegSaveLib import geometry
from DicomRegSaveLib.export.request import ExportRequest, run_export_request
from DicomRegSaveLib.inputs.transform_files import read_transform_file
from DicomRegSaveLib.inputs.transform_writer import write_transform_file
from DicomRegSaveLib.model import DisplacementGrid, RegistrationItem, RegistrationMatrix
from DicomRegSaveLib.reg.reader import read_registration
from mrml_helpers import (
    OBLIQUE,
    bspline_node,
    from_world_lps,
    homogeneous,
    new_scene,
    points_in_box,
    random_vectors,
    rotation,
)

EXACT_MM = 1e-4
UID = "1.2.826.0.1.3680043.8.498.7"


def export_and_read(case, transform_path, tmp_path, **kwargs):
    outcome = run_export_request(
        ExportRequest(transform_path, [case.fixed_dir], [case.moving_dir], tmp_path / "reg.dcm", **kwargs)
    )
    return outcome.result, read_registration(outcome.result.path)


def slicer_mapping(transform_path, points_lps, *, trilinear=True):
    node = read_transform_file(transform_path, new_scene())
    return from_world_lps(node, points_lps, trilinear=trilinear)


def test_displacement_field_file_maps_exactly_as_slicer_applies_it(case, tmp_path):
    result, registration = export_and_read(case, case.field_path, tmp_path)
    assert result.registration.choose_item().pre_deformation_matrix is None
    grid = registration.choose_item().grid
    points = points_in_box(grid.index_to_lps, grid.dimensions, n=2000)
    mapped = registration.choose_item().map_points(points)
    assert np.abs(mapped - slicer_mapping(case.field_path, points)).max() < EXACT_MM
    # and it is the fixed -> moving direction of the known deformation, not its inverse
    assert np.abs(mapped - case.mapping_lps(points)).max() < 0.5
    assert np.abs(mapped - case.inverse_mapping_lps(points)).max() > 2.0


def composite_field_file(case, path):
    """An ITK composite (rigid pre, oblique field, affine post) covering the fixed image."""
    centre = case.field_ijk_to_lps[:3, :3] @ (np.array(case.field_dimensions) - 1) / 2 + case.field_ijk_to_lps[:3, 3]
    dims = (20, 18, 12)
    spacing = np.array([6.0, 6.0, 5.0])
    origin = centre - OBLIQUE @ ((np.array(dims) - 1) * spacing / 2)
    grid = DisplacementGrid(origin, OBLIQUE, spacing, random_vectors(dims, amplitude=1.0, seed=9))
    pre = RegistrationMatrix(homogeneous(rotation([0, 0, 1], 0.05), (1.0, -2.0, 0.5)))
    post = RegistrationMatrix(homogeneous([[1.02, 0.01, 0.0], [0.0, 0.98, 0.02], [0.0, 0.0, 1.01]], (3.0, 0.0, -1.0)))
    write_transform_file(
        RegistrationItem(UID, grid=grid, pre_deformation_matrix=pre, post_deformation_matrix=post), path
    )
    return grid, pre, post


def test_composite_transform_file_becomes_pre_grid_post_exactly(case, tmp_path):
    grid, pre, post = composite_field_file(case, tmp_path / "composite.h5")
    result, registration = export_and_read(case, tmp_path / "composite.h5", tmp_path)
    item = registration.choose_item()
    assert item.pre_deformation_matrix.matrix_type == "RIGID"
    assert item.post_deformation_matrix.matrix_type == "AFFINE"
    assert np.allclose(item.post_deformation_matrix.matrix_lps, post.matrix_lps, atol=1e-6)
    assert np.array_equal(item.grid.vectors_lps, grid.vectors_lps)
    points = points_in_box(item.grid.index_to_lps, item.grid.dimensions, n=2000, margin=0.5)
    assert (
        np.abs(registration.choose_item().map_points(points) - slicer_mapping(tmp_path / "composite.h5", points)).max()
        < EXACT_MM
    )


def test_bspline_file_is_sampled_on_the_fixed_image_within_a_stated_tolerance(case, tmp_path):
    scene = new_scene()
    node = bspline_node(scene, (8, 8, 6), (-140.0, -140.0, -80.0), 40.0, amplitude=3.0, seed=3)
    storage = node.CreateDefaultStorageNode()
    storage.SetFileName(str(tmp_path / "bspline.h5"))
    assert storage.WriteData(node)

    result, registration = export_and_read(case, tmp_path / "bspline.h5", tmp_path)
    grid = registration.choose_item().grid
    fixed_spacing = np.linalg.norm(case.field_ijk_to_lps[:3, :3], axis=0)
    assert np.allclose(np.sort(grid.spacing_mm), np.sort(2 * fixed_spacing))
    nodes = points_in_box(grid.index_to_lps, grid.dimensions, n=2000, margin=0.0)
    index = np.round(np.linalg.solve(grid.index_to_lps[:3, :3], (nodes - grid.index_to_lps[:3, 3]).T).T)
    on_grid = index @ grid.index_to_lps[:3, :3].T + grid.index_to_lps[:3, 3]
    # The file means what ITK makes of it, also where the fixed image leaves the B-spline's support
    # (zero displacement there, while Slicer's VTK evaluation fades out over two control spacings).
    itk = sitk.ReadTransform(str(tmp_path / "bspline.h5"))
    itk_on_grid = np.array([itk.TransformPoint(point.tolist()) for point in on_grid])
    assert np.abs(registration.choose_item().map_points(on_grid) - itk_on_grid).max() < 1e-5
    # Inside ITK's valid region ([1, n - 2) control spacings on every axis), a sampling cell (8 mm)
    # away from its edge, Slicer agrees.
    control_index = (geometry.lps_to_ras_points(nodes) - (-140.0, -140.0, -80.0)) / 40.0
    margin = 10.0 / 40.0
    inside = np.all((control_index >= 1.0 + margin) & (control_index < np.array([8, 8, 6]) - 2.0 - margin), axis=1)
    assert 500 < inside.sum() < len(nodes)
    between = np.abs(registration.choose_item().map_points(nodes[inside]) - from_world_lps(node, nodes[inside])).max()
    assert between < 0.05, f"sampling error between grid points {between:.4f} mm"
    assert any("resampled" in warning for warning in result.report.warnings)


def test_requested_grid_spacing_resamples_a_field(case, tmp_path):
    result, registration = export_and_read(case, case.field_path, tmp_path, grid_spacing_mm=(8.0, 8.0, 8.0))
    grid = registration.choose_item().grid
    assert np.allclose(grid.spacing_mm, 8.0)
    points = points_in_box(grid.index_to_lps, grid.dimensions, n=1000, margin=0.0)
    assert np.abs(registration.choose_item().map_points(points) - case.mapping_lps(points)).max() < 0.5


def test_to_transform_output_reads_back_in_slicer_as_the_files_mapping(case, tmp_path):
    composite_field_file(case, tmp_path / "composite.h5")
    _, registration = export_and_read(case, tmp_path / "composite.h5", tmp_path)
    item = registration.choose_item()
    points = points_in_box(item.grid.index_to_lps, item.grid.dimensions, n=1500, margin=0.5)
    for suffix in (".h5", ".tfm", ".nii.gz"):
        path = write_transform_file(registration.choose_item(), tmp_path / f"back{suffix}")
        assert np.abs(slicer_mapping(path, points) - registration.choose_item().map_points(points)).max() < EXACT_MM, (
            suffix
        )
