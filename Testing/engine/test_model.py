"""The model and geometry rules: RAS/LPS, handedness, matrix types, grid validation, the standard's equation."""

import numpy as np
import pytest

from DicomRegSaveLib import geometry
from DicomRegSaveLib.errors import InvalidRegistrationError
from DicomRegSaveLib.model import (
    MAX_VECTOR_GRID_BYTES,
    DisplacementGrid,
    ImageReference,
    Registration,
    RegistrationItem,
    RegistrationMatrix,
)

FRAME_A = "1.2.3.4"
FRAME_B = "1.2.3.5"


def rotation_z(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])


def random_grid(shape_kji=(5, 6, 7), direction=None, seed=0) -> DisplacementGrid:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(0, 2, size=(*shape_kji, 3)).astype(np.float32)
    return DisplacementGrid([10.0, -20.0, 5.0], np.eye(3) if direction is None else direction, [2.0, 3.0, 4.0], vectors)


def test_ras_lps_conversions_negate_x_and_y_and_are_involutions():
    points_ras = np.array([[1.0, 2.0, 3.0], [-4.0, 5.0, -6.0]])
    assert np.array_equal(geometry.ras_to_lps_points(points_ras), [[-1, -2, 3], [4, -5, -6]])
    assert np.array_equal(geometry.lps_to_ras_points(geometry.ras_to_lps_points(points_ras)), points_ras)
    matrix_ras = np.eye(4)
    matrix_ras[:3, :3] = rotation_z(30)
    matrix_ras[:3, 3] = [1, 2, 3]
    matrix_lps = geometry.ras_to_lps_matrix(matrix_ras)
    point_ras = np.array([7.0, -8.0, 9.0, 1.0])
    expected_lps = geometry.ras_to_lps_points((matrix_ras @ point_ras)[:3])
    actual_lps = matrix_lps @ np.append(geometry.ras_to_lps_points(point_ras[:3]), 1.0)
    assert np.allclose(actual_lps[:3], expected_lps)


def test_slicer_identity_direction_becomes_iop_minus_one():
    direction_lps = geometry.ras_to_lps_direction(np.eye(3))
    assert np.array_equal(direction_lps[:, 0], [-1, 0, 0]) and np.array_equal(direction_lps[:, 1], [0, -1, 0])


@pytest.mark.parametrize(
    "linear, expected",
    [
        (np.eye(3), "RIGID"),
        (rotation_z(37), "RIGID"),
        (rotation_z(37) @ np.diag([1.0, 2.0, 0.5]), "RIGID_SCALE"),
        (np.array([[1, 0.3, 0], [0, 1, 0], [0, 0, 1.0]]), "AFFINE"),
        (np.diag([-1.0, 1.0, 1.0]), "AFFINE"),
    ],
)
def test_matrix_types_are_detected(linear, expected):
    matrix = np.eye(4)
    matrix[:3, :3] = linear
    matrix[:3, 3] = [5, -3, 2]
    assert geometry.classify_matrix(matrix) == expected
    assert RegistrationMatrix(matrix).matrix_type == expected


def test_rigid_matrix_with_scale_or_shear_is_rejected():
    sheared = np.eye(4)
    sheared[0, 1] = 0.2
    with pytest.raises(InvalidRegistrationError, match="declared RIGID but is AFFINE"):
        RegistrationMatrix(sheared, "RIGID")
    with pytest.raises(InvalidRegistrationError, match="declared RIGID but is RIGID_SCALE"):
        RegistrationMatrix(np.diag([1.0, 1.0, 1.1, 1.0]), "RIGID")
    with pytest.raises(InvalidRegistrationError, match="bottom row"):
        RegistrationMatrix(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0.1, 1.0]]))


def test_left_handed_grid_is_flipped_along_k_without_changing_the_field():
    direction = np.diag([1.0, 1.0, -1.0])
    grid = random_grid(direction=direction)
    flipped = grid.right_handed()
    assert flipped.is_right_handed and not grid.is_right_handed
    assert np.allclose(flipped.origin_lps, grid.origin_lps + [0, 0, -4.0 * 4])
    assert np.shares_memory(flipped.vectors_lps, grid.vectors_lps)
    rng = np.random.default_rng(1)
    index = rng.uniform(0, 1, size=(1000, 3)) * (np.array(grid.dimensions) - 1)
    points = index @ grid.index_to_lps[:3, :3].T + grid.index_to_lps[:3, 3]
    assert np.allclose(flipped.displacement_at(points), grid.displacement_at(points), atol=1e-9)


def test_grid_points_give_their_own_vector_and_midpoints_the_average():
    grid = random_grid()
    v = grid.vectors_lps
    node = grid.index_to_lps @ [3, 2, 1, 1]
    assert np.allclose(grid.displacement_at(node[:3]), v[1, 2, 3], atol=1e-6)
    middle = grid.index_to_lps @ [3.5, 2, 1, 1]
    assert np.allclose(grid.displacement_at(middle[:3]), (v[1, 2, 3] + v[1, 2, 4]) / 2, atol=1e-6)
    outside = grid.index_to_lps @ [-1, 0, 0, 1]
    assert np.all(np.isnan(grid.displacement_at(outside[:3])))


@pytest.mark.parametrize(
    "vectors_change, message",
    [
        (lambda v: v.__setitem__((1, 1, 1, 0), np.nan), r"\(i=1, j=1, k=1\).*all three components NaN"),
        (lambda v: v.__setitem__((0, 2, 3, 2), np.inf), r"\(i=3, j=2, k=0\).*finite"),
    ],
)
def test_invalid_vectors_are_rejected_with_the_grid_point(vectors_change, message):
    vectors = np.zeros((3, 4, 5, 3), np.float32)
    vectors_change(vectors)
    with pytest.raises(InvalidRegistrationError, match=message):
        DisplacementGrid([0, 0, 0], np.eye(3), [1, 1, 1], vectors)


def test_whole_nan_triples_mark_undefined_points():
    vectors = np.zeros((3, 4, 5, 3), np.float32)
    vectors[1, 1, 1] = np.nan
    grid = DisplacementGrid([0, 0, 0], np.eye(3), [1, 1, 1], vectors)
    assert np.all(np.isnan(grid.displacement_at([[1.0, 1.0, 1.0]])))
    assert np.allclose(grid.displacement_at([[3.0, 2.0, 2.0]]), 0)


@pytest.mark.parametrize("spacing", [[0, 1, 1], [1, -2, 1], [1, 1, np.nan]])
def test_zero_or_negative_spacing_is_rejected(spacing):
    with pytest.raises(InvalidRegistrationError, match="spacing must be 3 positive numbers"):
        DisplacementGrid([0, 0, 0], np.eye(3), spacing, np.zeros((2, 2, 2, 3), np.float32))


def test_non_orthogonal_direction_is_rejected():
    direction = np.array([[1, 0.1, 0], [0, 1, 0], [0, 0, 1.0]])
    with pytest.raises(InvalidRegistrationError, match="not orthonormal"):
        DisplacementGrid([0, 0, 0], direction, [1, 1, 1], np.zeros((2, 2, 2, 3), np.float32))


def test_field_larger_than_the_of_limit_is_rejected_before_touching_values():
    n_i = n_j = 1024
    n_k = MAX_VECTOR_GRID_BYTES // (12 * n_i * n_j) + 1
    huge = np.broadcast_to(np.float32(0), (n_k, n_j, n_i, 3))
    with pytest.raises(InvalidRegistrationError, match="more than Vector Grid Data"):
        DisplacementGrid([0, 0, 0], np.eye(3), [1, 1, 1], huge)


def test_from_ras_converts_geometry_and_vectors_to_lps():
    vectors_ras = np.zeros((2, 2, 2, 3), np.float32)
    vectors_ras[..., :] = [1.0, 2.0, 3.0]
    grid = DisplacementGrid.from_ras([10, 20, 30], np.eye(3), [1, 1, 1], vectors_ras)
    assert np.array_equal(grid.origin_lps, [-10, -20, 30])
    assert np.array_equal(grid.vectors_lps[0, 0, 0], [-1, -2, 3])
    assert np.array_equal(grid.direction_lps, np.diag([-1.0, -1.0, 1.0]))


def test_item_applies_pre_then_displacement_at_x_then_post():
    grid = random_grid()
    pre = np.eye(4)
    pre[:3, :3] = rotation_z(10)
    pre[:3, 3] = [1, 2, 3]
    post = np.eye(4)
    post[:3, 3] = [-5, 0, 7]
    item = RegistrationItem(
        FRAME_B,
        grid=grid,
        pre_deformation_matrix=RegistrationMatrix(pre),
        post_deformation_matrix=RegistrationMatrix(post),
    )
    rng = np.random.default_rng(2)
    index = rng.uniform(0, 1, size=(1000, 3)) * (np.array(grid.dimensions) - 1)
    x = index @ grid.index_to_lps[:3, :3].T + grid.index_to_lps[:3, 3]
    expected = (x @ pre[:3, :3].T + pre[:3, 3] + grid.displacement_at(x)) + post[:3, 3]
    assert np.allclose(item.map_points(x), expected, atol=1e-9)


def test_item_rejects_images_of_another_frame_and_registration_needs_an_item():
    reference = ImageReference("1.2.840.10008.5.1.4.1.1.2", "1.2.3.9", "1.2.3.8", "1.2.3.7", FRAME_A)
    with pytest.raises(InvalidRegistrationError, match="not in the item's source frame"):
        RegistrationItem(FRAME_B, [reference])
    with pytest.raises(InvalidRegistrationError, match="at least one item"):
        Registration(FRAME_A, [])
    with pytest.raises(InvalidRegistrationError, match="Source Frame of Reference UID"):
        RegistrationItem("1.02.3")


def test_choose_item_skips_identity_items_and_explains_what_it_cannot_choose():
    from DicomRegSaveLib.errors import RegistrationChoiceError

    near_identity = np.eye(4)
    near_identity[0, 3] = 1e-8  # decimal rounding in a file's identity matrix
    identity = RegistrationItem(FRAME_A, matrix_registration=RegistrationMatrix(near_identity))
    rigid = np.eye(4)
    rigid[:3, 3] = (1.0, 2.0, 3.0)
    moving = RegistrationItem(FRAME_B, matrix_registration=RegistrationMatrix(rigid))
    assert identity.is_identity and not moving.is_identity
    assert Registration(FRAME_A, [identity, moving]).choose_item() is moving
    # The 66.1 matrix maps source -> registered, so the item maps registered points by its inverse.
    np.testing.assert_allclose(moving.map_points([[0.0, 0.0, 0.0]]), [[-1.0, -2.0, -3.0]])
    # Fixed and moving images sharing one frame: the non-identity item of that frame is the moving one.
    same_frame = RegistrationItem(FRAME_A, matrix_registration=RegistrationMatrix(rigid))
    assert Registration(FRAME_A, [identity, same_frame]).choose_item() is same_frame
    with pytest.raises(RegistrationChoiceError, match="only identity items"):
        Registration(FRAME_A, [identity]).choose_item()
    with pytest.raises(RegistrationChoiceError, match=f"no item has the source Frame of Reference UID {FRAME_B}"):
        Registration(FRAME_A, [identity]).choose_item(FRAME_B)
    with pytest.raises(InvalidRegistrationError, match="not both"):
        RegistrationItem(FRAME_B, grid=random_grid(), matrix_registration=RegistrationMatrix(rigid))
