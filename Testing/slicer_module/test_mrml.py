"""mrml.py: Slicer transform nodes <-> Deformation / RegistrationItem, proven against VTK's own evaluation.

Every mapping test compares ``RegistrationItem.map_points`` (the standard's equation, LPS) with the
node's ``GetTransformFromWorld`` evaluated by VTK (RAS converted to LPS) at >= 1000 points.
"""

import numpy as np
import pytest
import slicer
import vtk

from DicomRegSaveLib import geometry
from DicomRegSaveLib.errors import TransformInputError
from DicomRegSaveLib.model import DisplacementGrid, RegistrationItem, RegistrationMatrix, axis_aligned_grid
from DicomRegSaveLib.mrml.deformation import deformation_from_transform_node
from DicomRegSaveLib.mrml.nodes import (
    from_parent_components,
    nodes_from_registration,
    resolve_fixed_and_moving,
    volume_geometry,
)
from mrml_helpers import (
    LEFT_HANDED,
    OBLIQUE,
    UID,
    apply_vtk_transform_lps,
    bspline_node,
    from_world_lps,
    grid_node,
    grid_points,
    homogeneous,
    linear_node,
    new_scene,
    oriented_grid,
    points_in_box,
    random_vectors,
    rotation,
    volume_node,
    vtk_matrix,
)

EXACT_MM = 1e-4
DIMS = (9, 8, 7)
SPACING = (4.0, 5.0, 6.0)
ORIGIN_RAS = (-20.0, 15.0, -30.0)
# A fixed image: oblique-ish axial CT, 40 x 36 x 20 voxels.
FIXED_IJK_TO_LPS = homogeneous(rotation([0, 0, 1], 0.1) * np.array([1.5, 1.5, 3.0]), (-30.0, -25.0, -35.0))
FIXED_DIMS = (40, 36, 20)


def assert_maps_like_vtk(node, item: RegistrationItem, points_lps, tolerance=EXACT_MM):
    expected = from_world_lps(node, points_lps)
    actual = item.map_points(points_lps)
    assert np.all(np.isfinite(actual)), "test points must lie inside the grid"
    error = np.max(np.linalg.norm(actual - expected, axis=1))
    assert error <= tolerance, f"max mapping error {error} mm > {tolerance} mm"
    return error


def deform(node, **kwargs):
    return deformation_from_transform_node(node, FIXED_IJK_TO_LPS, FIXED_DIMS, **kwargs)


def points_of(grid, n=2000, seed=1):
    return points_in_box(grid.index_to_lps, grid.dimensions, n=n, seed=seed)


@pytest.mark.parametrize("direction_ras", [np.eye(3), OBLIQUE, LEFT_HANDED], ids=["identity", "oblique", "left"])
def test_single_from_parent_grid_is_copied_exactly(direction_ras):
    scene = new_scene()
    vectors_ras = random_vectors(DIMS)
    node = grid_node(scene, ORIGIN_RAS, direction_ras, SPACING, vectors_ras)
    deformation = deform(node)
    grid = deformation.grid
    assert deformation.exact and deformation.pre_deformation_matrix is None
    assert deformation.post_deformation_matrix is None
    assert grid.dimensions == DIMS
    np.testing.assert_allclose(grid.origin_lps, geometry.ras_to_lps_points(ORIGIN_RAS), atol=1e-12)
    np.testing.assert_allclose(grid.direction_lps, geometry.ras_to_lps_direction(direction_ras), atol=1e-12)
    np.testing.assert_allclose(grid.spacing_mm, SPACING, atol=1e-12)
    assert grid.vectors_lps.dtype == np.float32
    expected_lps = vectors_ras * np.array([-1, -1, 1], dtype=np.float32)
    assert np.array_equal(grid.vectors_lps, expected_lps)
    assert_maps_like_vtk(node, deformation.item(UID), points_of(grid))


def test_float64_grid_holding_float32_values_is_bit_exact():
    scene = new_scene()
    vectors_ras = random_vectors(DIMS, dtype=np.float64)
    node = grid_node(scene, ORIGIN_RAS, OBLIQUE, SPACING, vectors_ras)
    deformation = deform(node)
    assert deformation.exact
    assert np.array_equal(deformation.grid.vectors_lps, (vectors_ras * [-1, -1, 1]).astype(np.float32))


def test_displacement_scale_and_shift_are_applied():
    scene = new_scene()
    node = grid_node(scene, ORIGIN_RAS, OBLIQUE, SPACING, random_vectors(DIMS))
    node.GetTransformFromParent().SetDisplacementScale(2.5)
    node.GetTransformFromParent().SetDisplacementShift(0.75)
    deformation = deform(node)
    assert deformation.exact
    assert_maps_like_vtk(node, deformation.item(UID), points_of(deformation.grid))


def test_rigid_parent_and_affine_child_become_pre_and_post_matrices():
    """world -> rigid R (root) -> grid -> affine B (leaf): source = B(R x + D_G(R x))."""
    scene = new_scene()
    rigid_to_parent = homogeneous(rotation([0.3, -1, 0.5], 0.35), (12.0, -7.0, 4.0))
    root = linear_node(scene, rigid_to_parent)
    grid = grid_node(scene, ORIGIN_RAS, OBLIQUE, SPACING, random_vectors(DIMS), parent=root)
    affine = homogeneous(np.array([[1.1, 0.05, 0.0], [0.02, 0.95, 0.1], [0.0, -0.03, 1.2]]), (3.0, 2.0, -5.0))
    leaf = linear_node(scene, affine, parent=grid)
    deformation = deform(leaf)
    assert deformation.exact
    pre, post = deformation.pre_deformation_matrix, deformation.post_deformation_matrix
    assert pre.matrix_type == "RIGID" and post.matrix_type == "AFFINE"
    np.testing.assert_allclose(pre.matrix_lps, geometry.ras_to_lps_matrix(np.linalg.inv(rigid_to_parent)), atol=1e-12)
    np.testing.assert_allclose(post.matrix_lps, geometry.ras_to_lps_matrix(np.linalg.inv(affine)), atol=1e-12)
    # the grid moved by inv(pre): D is indexed at x, the node's grid at pre(x)
    node_grid_lps = geometry.ras_to_lps_points(ORIGIN_RAS)
    moved_back = pre.matrix_lps[:3, :3] @ deformation.grid.origin_lps + pre.matrix_lps[:3, 3]
    np.testing.assert_allclose(moved_back, node_grid_lps, atol=1e-9)
    assert np.array_equal(deformation.grid.vectors_lps, grid_node_vectors_lps(grid))
    assert_maps_like_vtk(leaf, deformation.item(UID), points_of(deformation.grid))


def test_uniform_scale_before_the_grid_stays_exact():
    scene = new_scene()
    root = linear_node(scene, homogeneous(1.3 * rotation([1, 0, 0], 0.2), (5.0, 0.0, 0.0)))
    grid = grid_node(scene, ORIGIN_RAS, LEFT_HANDED, SPACING, random_vectors(DIMS), parent=root)
    deformation = deform(grid)
    assert deformation.exact and deformation.pre_deformation_matrix.matrix_type == "RIGID_SCALE"
    assert_maps_like_vtk(grid, deformation.item(UID), points_of(deformation.grid))


def test_concatenation_inside_one_node_is_flattened():
    """A general node whose from-parent transform is itself [linear, grid, linear]."""
    scene = new_scene()
    first = vtk.vtkTransform()
    first.SetMatrix(vtk_matrix(homogeneous(rotation([0, 1, 1], -0.3), (1.0, 2.0, 3.0))))
    last = vtk.vtkTransform()
    last.Translate(-4.0, 8.0, 1.5)
    last.Scale(1.0, 1.2, 0.9)
    composite = vtk.vtkGeneralTransform()
    composite.PostMultiply()
    composite.Concatenate(first)
    composite.Concatenate(oriented_grid(ORIGIN_RAS, OBLIQUE, SPACING, random_vectors(DIMS)))
    composite.Concatenate(last)
    node = scene.AddNewNodeByClass("vtkMRMLTransformNode")
    node.SetAndObserveTransformFromParent(composite)
    parent = linear_node(scene, homogeneous(np.eye(3), (0.0, 10.0, 0.0)))
    node.SetAndObserveTransformNodeID(parent.GetID())
    deformation = deform(node)
    assert deformation.exact
    assert deformation.pre_deformation_matrix is not None and deformation.post_deformation_matrix is not None
    assert_maps_like_vtk(node, deformation.item(UID), points_of(deformation.grid))


def test_linear_only_chain_gives_zero_grid_over_fixed_image_and_post_matrix():
    scene = new_scene()
    root = linear_node(scene, homogeneous(rotation([1, 1, 0], 0.2), (3.0, 4.0, 5.0)))
    leaf = linear_node(scene, homogeneous(np.diag([1.1, 0.9, 1.0]), (1.0, 0.0, -2.0)), parent=root)
    deformation = deform(leaf)
    grid = deformation.grid
    assert deformation.exact and deformation.pre_deformation_matrix is None
    assert grid.dimensions == (2, 2, 2) and not np.any(grid.vectors_lps)
    np.testing.assert_allclose(grid.origin_lps, FIXED_IJK_TO_LPS[:3, 3], atol=1e-9)
    last_voxel = FIXED_IJK_TO_LPS @ np.array([*(np.array(FIXED_DIMS) - 1), 1.0])
    np.testing.assert_allclose(grid.index_to_lps @ [1, 1, 1, 1], last_voxel, atol=1e-9)
    assert_maps_like_vtk(leaf, deformation.item(UID), points_in_box(FIXED_IJK_TO_LPS, FIXED_DIMS))


def test_identity_node_gives_zero_grid_without_matrices():
    scene = new_scene()
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    deformation = deform(node)
    assert deformation.exact and deformation.post_deformation_matrix is None
    assert not np.any(deformation.grid.vectors_lps)


def grid_node_vectors_lps(node) -> np.ndarray:
    return (slicer.util.arrayFromGridTransform(node) * np.array([-1, -1, 1])).astype(np.float32)


# ------------------------------------------------------------------ resampled chains


def assert_sampled_like_vtk(node, deformation, smooth_tolerance=None):
    """At the sampled grid points the item reproduces VTK to float32 precision; between them
    within `smooth_tolerance` (the interpolation error of a smooth transform)."""
    assert not deformation.exact
    item = deformation.item(UID)
    all_points = grid_points(deformation.grid)
    rng = np.random.default_rng(3)
    at_nodes = all_points[rng.choice(len(all_points), size=min(len(all_points), 2000), replace=False)]
    assert_maps_like_vtk(node, item, at_nodes, EXACT_MM)
    if smooth_tolerance is not None:
        inner = points_in_box(deformation.grid.index_to_lps, deformation.grid.dimensions, margin=0.0)
        assert_maps_like_vtk(node, item, inner, smooth_tolerance)


def smooth_grid_vectors(dims, spacing, amplitude=3.0):
    n_i, n_j, n_k = dims
    k, j, i = np.meshgrid(np.arange(n_k), np.arange(n_j), np.arange(n_i), indexing="ij")
    x, y, z = i * spacing[0], j * spacing[1], k * spacing[2]
    field = np.stack([np.sin(x / 30.0), np.cos(y / 25.0), np.sin((x + z) / 40.0)], axis=-1)
    return (amplitude * field).astype(np.float32)


def test_to_parent_stored_grid_is_resampled_as_from_parent():
    scene = new_scene()
    vectors_ras = smooth_grid_vectors(DIMS, SPACING)
    node = grid_node(scene, ORIGIN_RAS, OBLIQUE, SPACING, vectors_ras, to_parent=True)
    deformation = deform(node)
    grid = deformation.grid
    # sampled on the grid's own geometry, with the inverse (from-parent) vectors
    assert grid.dimensions == DIMS
    np.testing.assert_allclose(grid.origin_lps, geometry.ras_to_lps_points(ORIGIN_RAS), atol=1e-9)
    assert not np.allclose(grid.vectors_lps, vectors_ras * [-1, -1, 1], atol=0.5)
    assert any("to-parent" in w for w in deformation.warnings)
    assert_sampled_like_vtk(node, deformation)


def test_resampled_grid_under_a_rigid_parent_is_sampled_where_the_grid_lies_in_the_fixed_frame():
    scene = new_scene()
    rigid_to_parent = homogeneous(rotation([0, 1, 0], 0.5), (30.0, -10.0, 5.0))
    root = linear_node(scene, rigid_to_parent)
    node = grid_node(
        scene, ORIGIN_RAS, OBLIQUE, SPACING, smooth_grid_vectors(DIMS, SPACING), to_parent=True, parent=root
    )
    deformation = deform(node)
    node_grid_ras = homogeneous(OBLIQUE * np.array(SPACING), ORIGIN_RAS)
    np.testing.assert_allclose(
        deformation.grid.index_to_lps, np.diag([-1, -1, 1, 1]) @ rigid_to_parent @ node_grid_ras, atol=1e-9
    )
    assert_sampled_like_vtk(node, deformation)


def test_cubic_grid_is_copied_with_a_note():
    scene = new_scene()
    vectors_ras = random_vectors(DIMS)
    node = grid_node(scene, ORIGIN_RAS, OBLIQUE, SPACING, vectors_ras)
    node.GetTransformFromParent().SetInterpolationModeToCubic()
    deformation = deform(node)
    assert deformation.exact
    assert np.array_equal(deformation.grid.vectors_lps, vectors_ras * np.array([-1, -1, 1], dtype=np.float32))
    assert deformation.warnings == [
        "Slicer interpolates the grid of 'GridTransform' with cubic interpolation, receivers of the REG (like ITK) "
        "trilinearly: between grid points Slicer's display of this transform may differ slightly from the REG, "
        "whose grid values are the transform's own."
    ]


def test_a_linear_grid_is_copied_without_a_note():
    scene = new_scene()
    node = grid_node(scene, ORIGIN_RAS, OBLIQUE, SPACING, random_vectors(DIMS))
    assert deform(node).warnings == []


def test_shearing_pre_matrix_is_resampled():
    scene = new_scene()
    shear = homogeneous(np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    root = linear_node(scene, shear)
    node = grid_node(scene, ORIGIN_RAS, np.eye(3), SPACING, smooth_grid_vectors(DIMS, SPACING), parent=root)
    deformation = deform(node)
    assert any("shear" in w for w in deformation.warnings)
    assert_sampled_like_vtk(node, deformation)


def test_two_grids_are_resampled_on_the_fixed_image_at_twice_its_spacing():
    scene = new_scene()
    first = grid_node(
        scene, (-60.0, -60.0, -60.0), np.eye(3), (20.0, 20.0, 20.0), smooth_grid_vectors((7, 7, 7), (20.0, 20.0, 20.0))
    )
    second = grid_node(
        scene,
        (-60.0, -60.0, -60.0),
        OBLIQUE,
        (20.0, 20.0, 20.0),
        smooth_grid_vectors((7, 7, 7), (20.0, 20.0, 20.0), 2.0),
        parent=first,
    )
    deformation = deform(second)
    grid = deformation.grid
    np.testing.assert_allclose(grid.spacing_mm, [3.0, 3.0, 6.0])
    np.testing.assert_allclose(grid.direction_lps, FIXED_IJK_TO_LPS[:3, :3] / [1.5, 1.5, 3.0], atol=1e-12)
    np.testing.assert_allclose(grid.origin_lps, FIXED_IJK_TO_LPS[:3, 3])
    assert grid.dimensions == (21, 19, 11)
    assert_sampled_like_vtk(second, deformation)


def test_bspline_is_resampled():
    scene = new_scene()
    node = bspline_node(scene, (6, 6, 6), (-80.0, -80.0, -80.0), 40.0, amplitude=3.0, seed=5)
    deformation = deform(node)
    assert "vtkOrientedBSplineTransform" in deformation.warnings[-1]
    assert_sampled_like_vtk(node, deformation, smooth_tolerance=0.05)


def test_thin_plate_spline_with_grid_spacing_request():
    scene = new_scene()
    source, target = vtk.vtkPoints(), vtk.vtkPoints()
    rng = np.random.default_rng(7)
    for _ in range(8):
        p = rng.uniform(-40, 40, 3)
        source.InsertNextPoint(*p)
        target.InsertNextPoint(*(p + rng.uniform(-2, 2, 3)))
    tps = vtk.vtkThinPlateSplineTransform()
    tps.SetSourceLandmarks(source)
    tps.SetTargetLandmarks(target)
    tps.SetBasisToR()
    node = scene.AddNewNodeByClass("vtkMRMLTransformNode")
    node.SetAndObserveTransformFromParent(tps)
    deformation = deform(node, grid_spacing_mm=4.0)
    np.testing.assert_allclose(deformation.grid.spacing_mm, [4.0, 4.0, 4.0])
    assert_sampled_like_vtk(node, deformation, smooth_tolerance=0.25)


def test_grid_spacing_finer_than_the_image_is_clamped_with_a_warning():
    scene = new_scene()
    node = grid_node(scene, ORIGIN_RAS, OBLIQUE, SPACING, random_vectors(DIMS))
    deformation = deform(node, grid_spacing_mm=(1.0, 2.0, 1.0))
    np.testing.assert_allclose(deformation.grid.spacing_mm, [1.5, 2.0, 3.0])
    # the fixed image's axes run (nearly) along x, y and z
    assert deformation.warnings[0] == (
        "The requested grid spacing 1 × 2 × 1 mm is finer than the fixed image in x (1.5 mm) and z (3 mm); "
        "written: 1.5 × 2 × 3 mm."
    )
    assert not any("was resampled" in w for w in deformation.warnings)
    assert not deformation.exact


def test_axis_aligned_reindexes_a_grid_along_patient_axes_exactly():
    scene = new_scene()
    # RAS identity = LPS diag(-1, -1, 1): along the patient axes, but reversed i and j
    node = grid_node(scene, ORIGIN_RAS, np.diag([1.0, 1.0, -1.0]), SPACING, random_vectors(DIMS))
    deformation = deform(node, axis_aligned=True)
    grid = deformation.grid
    assert deformation.exact
    np.testing.assert_array_equal(grid.direction_lps, np.eye(3))
    assert grid.vectors_lps.flags.c_contiguous
    assert_maps_like_vtk(node, deformation.item(UID), points_of(grid))


def test_axis_aligned_resamples_an_oblique_grid_on_a_patient_axis_box():
    scene = new_scene()
    node = grid_node(scene, ORIGIN_RAS, OBLIQUE, SPACING, smooth_grid_vectors(DIMS, SPACING))
    deformation = deform(node, axis_aligned=True)
    np.testing.assert_array_equal(deformation.grid.direction_lps, np.eye(3))
    corners = np.array([[i, j, k, 1] for i in (0, 39) for j in (0, 35) for k in (0, 19)]) @ FIXED_IJK_TO_LPS.T
    index = (corners @ np.linalg.inv(deformation.grid.index_to_lps).T)[:, :3]
    assert index.min() >= -1e-9 and np.all(index.max(axis=0) <= np.array(deformation.grid.dimensions) - 1 + 1e-9)
    assert_sampled_like_vtk(node, deformation)


def test_axis_aligned_grid_returns_none_for_oblique_and_same_grid_for_lps():
    vectors = random_vectors((3, 4, 5))
    oblique = DisplacementGrid((0, 0, 0), OBLIQUE, (1, 1, 1), vectors)
    assert axis_aligned_grid(oblique) is None
    straight = DisplacementGrid((0, 0, 0), np.eye(3), (1, 1, 1), vectors)
    assert axis_aligned_grid(straight) is straight


def test_bad_reference_and_node_raise_transform_input_error():
    scene = new_scene()
    node = grid_node(scene, ORIGIN_RAS, OBLIQUE, SPACING, random_vectors(DIMS))
    with pytest.raises(TransformInputError, match="4x4"):
        deformation_from_transform_node(node, np.eye(3), FIXED_DIMS)
    with pytest.raises(TransformInputError, match="skewed"):
        deformation_from_transform_node(node, homogeneous([[1, 0.5, 0], [0, 1, 0], [0, 0, 1]]), FIXED_DIMS)
    with pytest.raises(TransformInputError, match="transform node"):
        deformation_from_transform_node(None, FIXED_IJK_TO_LPS, FIXED_DIMS)


# ------------------------------------------------------------------ import side


def grid_lps(direction_lps, dims=DIMS, seed=0):
    return DisplacementGrid((10.0, -20.0, 30.0), direction_lps, SPACING, random_vectors(dims, seed=seed))


RIGID_PRE = RegistrationMatrix(homogeneous(rotation([1, -2, 0.5], 0.3), (4.0, -6.0, 2.0)))
AFFINE_POST = RegistrationMatrix(homogeneous([[1.05, 0.1, 0.0], [0.0, 0.9, 0.05], [0.02, 0.0, 1.1]], (1.0, 2.0, 3.0)))
SHEAR_PRE = RegistrationMatrix(homogeneous([[1.0, 0.25, 0.0], [0.0, 1.2, 0.0], [0.0, 0.1, 0.8]], (-3.0, 0.0, 5.0)))


@pytest.mark.parametrize(
    "direction_lps, pre, post, n_nodes",
    [
        (np.eye(3), None, None, 1),
        (np.eye(3), RegistrationMatrix.identity(), RegistrationMatrix.identity(), 1),
        (OBLIQUE, None, AFFINE_POST, 2),
        (OBLIQUE, RIGID_PRE, AFFINE_POST, 3),
        (LEFT_HANDED, RIGID_PRE, None, 2),
        (LEFT_HANDED, SHEAR_PRE, AFFINE_POST, 3),
    ],
    ids=["identity", "identity-matrices", "post", "rigid-pre-post", "left-rigid-pre", "shear-pre-post"],
)
def test_nodes_from_registration_reproduce_the_standard_mapping(direction_lps, pre, post, n_nodes):
    scene = new_scene()
    item = RegistrationItem(UID, grid=grid_lps(direction_lps), pre_deformation_matrix=pre, post_deformation_matrix=post)
    nodes = nodes_from_registration(item, scene, "REG")
    assert len(nodes) == n_nodes
    assert sum(node.IsA("vtkMRMLGridTransformNode") for node in nodes) == 1
    for parent, child in zip(nodes, nodes[1:]):
        assert child.GetParentTransformNode() is parent
    assert_maps_like_vtk(nodes[-1], item, points_of(item.grid))
    if pre is None or pre.matrix_type == "RIGID":
        grid = next(node for node in nodes if node.IsA("vtkMRMLGridTransformNode"))
        assert np.array_equal(grid_node_vectors_lps(grid), item.grid.vectors_lps)


def test_node_round_trip_is_exact():
    scene = new_scene()
    root = linear_node(scene, homogeneous(rotation([2, 1, 0], 0.5), (7.0, 1.0, -3.0)))
    grid = grid_node(scene, ORIGIN_RAS, LEFT_HANDED, SPACING, random_vectors(DIMS), parent=root)
    leaf = linear_node(scene, homogeneous(np.diag([1.2, 1.0, 0.8]), (0.0, 5.0, 0.0)), parent=grid)
    deformation = deform(leaf)
    item = deformation.item(UID)
    again = deform(nodes_from_registration(item, new_scene())[-1])
    assert again.exact
    assert np.array_equal(again.grid.vectors_lps, deformation.grid.vectors_lps)
    np.testing.assert_allclose(again.grid.index_to_lps, deformation.grid.index_to_lps, atol=1e-9)
    np.testing.assert_allclose(
        again.pre_deformation_matrix.matrix_lps, item.pre_deformation_matrix.matrix_lps, atol=1e-12
    )
    np.testing.assert_allclose(
        again.post_deformation_matrix.matrix_lps, item.post_deformation_matrix.matrix_lps, atol=1e-12
    )


def test_nodes_from_vtk_composite_are_equivalent_to_vtk_general_transform():
    item = RegistrationItem(
        UID, grid=grid_lps(OBLIQUE), pre_deformation_matrix=SHEAR_PRE, post_deformation_matrix=AFFINE_POST
    )
    composite = vtk.vtkGeneralTransform()
    composite.PostMultiply()
    for _, transform in from_parent_components(item):
        composite.Concatenate(transform)
    points = points_of(item.grid)
    np.testing.assert_allclose(apply_vtk_transform_lps(composite, points), item.map_points(points), atol=EXACT_MM)


# ------------------------------------------------------------------ scene helpers


def test_volume_geometry_is_ijk_to_lps():
    scene = new_scene()
    ijk_to_ras = homogeneous(np.diag([-0.8, -0.8, 2.5]) @ rotation([0, 0, 1], 0.0), (100.0, 120.0, -50.0))
    volume = volume_node(scene, ijk_to_ras, (10, 11, 12))
    ijk_to_lps, dims = volume_geometry(volume)
    assert dims == (10, 11, 12)
    np.testing.assert_allclose(ijk_to_lps, np.diag([-1, -1, 1, 1]) @ ijk_to_ras)


def test_resolve_fixed_and_moving_by_references_and_by_observation():
    scene = new_scene()
    fixed = volume_node(scene, np.eye(4), (4, 4, 4), "fixed")
    moving = volume_node(scene, np.eye(4), (4, 4, 4), "moving")
    other = volume_node(scene, np.eye(4), (4, 4, 4), "other")
    transform = linear_node(scene, np.eye(4))
    with pytest.raises(TransformInputError, match="fixed volume .* unknown"):
        resolve_fixed_and_moving(transform)
    transform.SetNodeReferenceID(transform.GetFixedNodeReferenceRole(), fixed.GetID())
    with pytest.raises(TransformInputError, match="moving volume .* unknown"):
        resolve_fixed_and_moving(transform)
    moving.SetAndObserveTransformNodeID(transform.GetID())
    assert resolve_fixed_and_moving(transform) == (fixed, moving)
    other.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(TransformInputError, match="Several volumes"):
        resolve_fixed_and_moving(transform)
    transform.SetNodeReferenceID(transform.GetMovingNodeReferenceRole(), other.GetID())
    assert resolve_fixed_and_moving(transform) == (fixed, other)
    assert resolve_fixed_and_moving(transform, moving_node=moving) == (fixed, moving)
    moving.SetAndObserveTransformNodeID(None)
    assert resolve_fixed_and_moving(transform, fixed_node=moving, moving_node=other) == (moving, other)
    with pytest.raises(TransformInputError, match="same node"):
        resolve_fixed_and_moving(transform, fixed_node=other)
    fixed.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(TransformInputError, match="Take the fixed volume out from under the transform"):
        resolve_fixed_and_moving(transform)
