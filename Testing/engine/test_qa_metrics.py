"""The qa engine on analytic cases: affine fields, a folded block, a rigid matrix, landmarks with known offsets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from DicomRegSaveLib.errors import QualityInputError
from DicomRegSaveLib.model import DisplacementGrid, RegistrationItem, RegistrationMatrix
from DicomRegSaveLib.qa.evaluate import TRE_MAX_TOLERANCE_MM, TRE_MEAN_TOLERANCE_MM, evaluate_item
from DicomRegSaveLib.qa.jacobian import field_statistics
from DicomRegSaveLib.qa.landmarks import read_landmarks, target_registration_error
from DicomRegSaveLib.qa.linear import decompose, linear_matrix, rotation_from_angles
from DicomRegSaveLib.qa.volumes import Volume, sample

SOURCE = "1.2.826.0.1.3680043.8.498.77"
# An oblique, right-handed grid direction (columns = i, j, k axes in LPS).
OBLIQUE = rotation_from_angles((20.0, -35.0, 50.0))


def grid_positions(origin, direction, spacing, dims_ijk) -> np.ndarray:
    """LPS positions (n_k, n_j, n_i, 3) of every grid point."""
    n_i, n_j, n_k = dims_ijk
    k, j, i = np.meshgrid(np.arange(n_k), np.arange(n_j), np.arange(n_i), indexing="ij")
    index = np.stack([i, j, k], axis=-1).astype(np.float64)
    return index @ (np.asarray(direction) * spacing).T + origin


def homogeneous(linear, translation=(0.0, 0.0, 0.0)) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = linear
    matrix[:3, 3] = translation
    return matrix


def reference_determinant(phi_kji: np.ndarray, direction: np.ndarray, spacing) -> np.ndarray:
    """det of d phi / d x from numpy.gradient on phi sampled at the grid points (the issue's reference)."""
    along_k, along_j, along_i = np.gradient(phi_kji, spacing[2], spacing[1], spacing[0], axis=(0, 1, 2))
    along_grid = np.stack([along_i, along_j, along_k], axis=-1)  # [..., component, grid axis]
    with np.errstate(invalid="ignore"):
        return np.linalg.det(along_grid @ np.asarray(direction).T)


AFFINE_A = np.array([[0.05, -0.02, 0.01], [0.03, 0.08, -0.04], [-0.01, 0.02, -0.06]])


@pytest.mark.parametrize(
    ("pre", "post", "direction"),
    [
        (None, None, OBLIQUE),
        (None, None, OBLIQUE @ np.diag([1.0, 1.0, -1.0])),
        (
            homogeneous(rotation_from_angles((3.0, -4.0, 5.0)), (1.0, 2.0, 3.0)),
            homogeneous(np.diag([1.1, 0.9, 1.05])),
            OBLIQUE,
        ),
    ],
    ids=["grid only", "left-handed grid", "rigid pre, scaling post"],
)
def test_affine_field_every_determinant_is_the_analytic_one(pre, post, direction):
    origin, spacing, dims = np.array([-40.0, -30.0, -20.0]), np.array([2.0, 2.5, 3.0]), (17, 13, 9)
    points = grid_positions(origin, direction, spacing, dims)
    vectors = (points @ AFFINE_A.T + np.array([1.5, -2.0, 0.5])).astype(np.float32)
    item = RegistrationItem(
        SOURCE,
        grid=DisplacementGrid(origin, direction, spacing, vectors),
        pre_deformation_matrix=None if pre is None else RegistrationMatrix(pre),
        post_deformation_matrix=None if post is None else RegistrationMatrix(post),
    )
    jacobian, displacement = field_statistics(item)
    pre_linear = np.eye(3) if pre is None else pre[:3, :3]
    post_linear = np.eye(3) if post is None else post[:3, :3]
    expected = np.linalg.det(post_linear @ (pre_linear + AFFINE_A))
    assert jacobian.points == jacobian.grid_points == 17 * 13 * 9
    np.testing.assert_allclose(jacobian.determinant, expected, rtol=0, atol=2e-5)
    assert jacobian.folded_count == 0 and jacobian.folded_fraction == 0.0
    # |phi(x) - x| against numpy on every grid point
    mapped = item.map_points(points.reshape(-1, 3))
    magnitude = np.linalg.norm(mapped - points.reshape(-1, 3), axis=1)
    assert displacement.points == magnitude.size
    assert displacement.mean == pytest.approx(magnitude.mean(), abs=1e-4)
    assert displacement.p95 == pytest.approx(np.percentile(magnitude, 95), abs=1e-4)
    assert displacement.max == pytest.approx(magnitude.max(), abs=1e-4)


def test_folded_block_count_equals_numpy_gradient_on_the_same_samples():
    origin, spacing, dims = np.array([10.0, -5.0, 3.0]), np.array([1.5, 2.0, 2.5]), (20, 16, 12)
    points = grid_positions(origin, OBLIQUE, spacing, dims)
    rng = np.random.default_rng(3)
    vectors = rng.normal(0.0, 0.2, points.shape)
    # a block squeezed through itself along the grid's i axis: d(D.u_i)/d(u_i) = -3, so det = -2 there
    block = (slice(4, 8), slice(5, 10), slice(6, 13))
    local = (points[block] - points[block][0, 0, 0]) @ OBLIQUE[:, 0]
    vectors[block] += -3.0 * local[..., None] * OBLIQUE[:, 0]
    vectors = vectors.astype(np.float32)
    vectors[2, 3, 4] = np.nan  # one undefined grid point: its neighbours have no determinant
    item = RegistrationItem(SOURCE, grid=DisplacementGrid(origin, OBLIQUE, spacing, vectors))
    jacobian, _ = field_statistics(item)

    reference = reference_determinant(points + vectors.astype(np.float64), OBLIQUE, spacing)
    reference[2, 3, 4] = np.nan  # central differences skip the point itself
    defined = np.isfinite(reference)
    np.testing.assert_array_equal(np.isfinite(jacobian.determinant), defined)
    np.testing.assert_allclose(jacobian.determinant[defined], reference[defined], rtol=1e-5, atol=1e-5)
    assert jacobian.folded_count == int(np.count_nonzero(reference[defined] <= 0)) > 50
    assert jacobian.points == int(defined.sum()) == 20 * 16 * 12 - 7
    assert jacobian.folded_fraction == pytest.approx(jacobian.folded_count / jacobian.points)
    worst = np.unravel_index(np.nanargmin(reference), reference.shape)
    assert jacobian.worst_index_ijk == (worst[2], worst[1], worst[0])
    np.testing.assert_allclose(jacobian.worst_point_lps, points[worst], atol=1e-9)
    assert jacobian.min == pytest.approx(np.nanmin(reference), abs=1e-5)


def test_rigid_spatial_registration_gives_its_angles_and_translation():
    angles, translation = (7.5, -12.25, 33.0), (12.3, -4.56, 7.89)
    fixed_to_moving = homogeneous(rotation_from_angles(angles), translation)
    # a 66.1 stores moving -> fixed; the decomposition reports fixed -> moving, as to-transform writes it
    item = RegistrationItem(SOURCE, matrix_registration=RegistrationMatrix(np.linalg.inv(fixed_to_moving)))
    linear = decompose(linear_matrix(item))
    np.testing.assert_allclose(linear.rotation_deg, angles, atol=1e-4)
    np.testing.assert_allclose(linear.translation_mm, translation, atol=1e-4)
    assert linear.is_rigid and linear.matrix_type == "RIGID"
    np.testing.assert_allclose(linear.scale, 1.0, atol=1e-9)
    np.testing.assert_allclose(linear.shear, 0.0, atol=1e-9)
    assert linear.determinant == pytest.approx(1.0)


def test_scaled_matrix_is_not_rigid_and_gives_its_scale_and_shear():
    stretch = np.array([[1.2, 0.05, 0.0], [0.05, 0.9, 0.02], [0.0, 0.02, 1.0]])
    rotation = rotation_from_angles((10.0, 20.0, -30.0))
    linear = decompose(homogeneous(rotation @ stretch, (1.0, 2.0, 3.0)))
    assert not linear.is_rigid and linear.matrix_type == "AFFINE"
    np.testing.assert_allclose(linear.rotation_deg, (10.0, 20.0, -30.0), atol=1e-9)
    np.testing.assert_allclose(linear.scale, (1.2, 0.9, 1.0), atol=1e-12)
    np.testing.assert_allclose(linear.shear, (0.05, 0.0, 0.02), atol=1e-12)
    assert linear.determinant == pytest.approx(np.linalg.det(stretch))


def write_landmark_files(folder, fixed_lps, moving_lps, labels):
    """The same landmarks as CSV (LPS), .fcsv (RAS) and .mrk.json (RAS and LPS)."""
    ras = np.array([-1.0, -1.0, 1.0])
    files = {}
    for role, points in (("fixed", fixed_lps), ("moving", moving_lps)):
        csv_path = folder / f"{role}.csv"
        csv_path.write_text(
            "label,x,y,z\n" + "".join(f"{lab},{p[0]:.17g},{p[1]:.17g},{p[2]:.17g}\n" for lab, p in zip(labels, points))
        )
        fcsv_path = folder / f"{role}.fcsv"
        fcsv_path.write_text(
            "# Markups fiducial file version = 4.11\n# CoordinateSystem = RAS\n"
            "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n"
            + "".join(
                f"vtkMRMLMarkupsFiducialNode_{n},{q[0]:.17g},{q[1]:.17g},{q[2]:.17g},0,0,0,1,1,1,0,{lab},,\n"
                for n, (lab, q) in enumerate(zip(labels, points * ras))
            )
        )
        json_path = folder / f"{role}.mrk.json"
        json_path.write_text(
            json.dumps(
                {
                    "markups": [
                        {
                            "type": "Fiducial",
                            "coordinateSystem": "RAS",
                            "controlPoints": [
                                {"label": lab, "position": q.tolist()} for lab, q in zip(labels, points * ras)
                            ],
                        }
                    ]
                }
            )
        )
        lps_json = folder / f"{role}_lps.mrk.json"
        lps_json.write_text(
            json.dumps(
                {
                    "markups": [
                        {
                            "coordinateSystem": "LPS",
                            "controlPoints": [{"label": lab, "position": p.tolist()} for lab, p in zip(labels, points)],
                        }
                    ]
                }
            )
        )
        files[role] = (csv_path, fcsv_path, json_path, lps_json)
    return files


def test_landmarks_through_a_known_mapping_plus_known_offsets(tmp_path):
    origin, spacing, dims = np.array([-50.0, -50.0, -30.0]), np.array([4.0, 4.0, 5.0]), (26, 26, 13)
    points = grid_positions(origin, np.eye(3), spacing, dims)
    offset_b = np.array([2.0, -1.0, 0.5])
    vectors = (points @ AFFINE_A.T + offset_b).astype(np.float32)
    item = RegistrationItem(SOURCE, grid=DisplacementGrid(origin, np.eye(3), spacing, vectors))
    rng = np.random.default_rng(11)
    fixed = rng.uniform(-30.0, 30.0, (5, 3))
    lengths = np.array([0.5, 1.0, 2.0, 3.0, 4.5])
    directions = rng.normal(size=(5, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    # trilinear interpolation of an affine field is exact: phi(p) = p + A p + b
    moving = fixed + fixed @ AFFINE_A.T + offset_b + lengths[:, None] * directions
    labels = ["carina", "T4", "apex", "marker 1", "marker 2"]
    files = write_landmark_files(tmp_path, fixed, moving, labels)

    for fixed_file, moving_file in zip(files["fixed"], files["moving"]):
        pair = read_landmarks(fixed_file), read_landmarks(moving_file)
        np.testing.assert_allclose(pair[0].points_lps, fixed, atol=1e-9)
        assert pair[0].labels == tuple(labels)
        report, warnings = target_registration_error(item, *pair)
        assert warnings == [] and report["count"] == 5
        np.testing.assert_allclose([p["tre_mm"] for p in report["points"]], lengths, atol=1e-3)
        assert report["tre_mm"]["mean"] == pytest.approx(lengths.mean(), abs=1e-3)
        assert report["tre_mm"]["sd"] == pytest.approx(lengths.std(), abs=1e-3)
        assert report["tre_mm"]["max"] == pytest.approx(4.5, abs=1e-3)

    volume = Volume(np.zeros((13, 26, 26), dtype=np.float32), homogeneous(np.diag(spacing), origin))
    quality = evaluate_item(
        item, 1, volume, None, (read_landmarks(files["fixed"][0]), read_landmarks(files["moving"][0]))
    )
    verdicts = {v["check"]: v for v in quality.verdicts}
    assert verdicts["tre_mean"]["tolerance"] == TRE_MEAN_TOLERANCE_MM and not verdicts["tre_mean"]["ok"]  # 2.2 mm
    assert verdicts["tre_max"]["tolerance"] == TRE_MAX_TOLERANCE_MM and verdicts["tre_max"]["ok"]  # 4.5 mm
    assert verdicts["folding"]["ok"] and not quality.ok
    assert "tre_max_voxel" not in verdicts  # deformable: the TG-132 DIR tolerances only


def test_landmark_files_that_cannot_be_paired_or_read_are_refused(tmp_path):
    (tmp_path / "a.csv").write_text("x,y,z\n1,2,3\n4,5,6\n")
    (tmp_path / "b.csv").write_text("x,y,z\n1,2,3\n")
    (tmp_path / "c.csv").write_text("1,2,3\n")
    (tmp_path / "d.csv").write_text("x,y,z\n1,two,3\n")
    item = RegistrationItem(SOURCE, matrix_registration=RegistrationMatrix(np.eye(4)))
    with pytest.raises(QualityInputError, match="holds 2 landmarks .* 1"):
        target_registration_error(item, read_landmarks(tmp_path / "a.csv"), read_landmarks(tmp_path / "b.csv"))
    with pytest.raises(QualityInputError, match="header naming the columns x,y,z"):
        read_landmarks(tmp_path / "c.csv")
    with pytest.raises(QualityInputError, match="landmark 1: the coordinates"):
        read_landmarks(tmp_path / "d.csv")


def test_sampling_is_trilinear_inside_and_undefined_outside():
    rng = np.random.default_rng(2)
    voxels = rng.normal(size=(4, 5, 6)).astype(np.float32)
    ijk_to_lps = homogeneous(OBLIQUE * [1.0, 2.0, 3.0], (5.0, -3.0, 2.0))
    volume = Volume(voxels, ijk_to_lps)
    index = np.array([[1.25, 2.5, 0.75], [0.0, 0.0, 0.0], [5.0, 4.0, 3.0], [5.2, 1.0, 1.0], [-0.1, 0.0, 0.0]])
    points = index @ ijk_to_lps[:3, :3].T + ijk_to_lps[:3, 3]
    values = sample(volume, points)
    i, j, k = index[0]
    expected = 0.0
    for di in (0, 1):
        for dj in (0, 1):
            for dk in (0, 1):
                weight = (1 - abs(i - (1 + di))) * (1 - abs(j - (2 + dj))) * (1 - abs(k - (0 + dk)))
                expected += weight * voxels[0 + dk, 2 + dj, 1 + di]
    assert values[0] == pytest.approx(expected, abs=1e-6)
    assert values[1] == pytest.approx(voxels[0, 0, 0], abs=1e-6) and values[2] == pytest.approx(
        voxels[3, 4, 5], abs=1e-6
    )
    assert np.isnan(values[3]) and np.isnan(values[4])
    assert sample(volume, points[:1], "nearest")[0] == voxels[1, 3, 1]
