"""Tests for reader.py: hand-built REG datasets (reg_builders) -> Registration, and the standard's
mapping checked against an independent numpy evaluation of PS3.3 C.20.3.1."""

from __future__ import annotations

import mmap
import tracemalloc

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

import reg_builders as rb
from DicomRegSaveLib.errors import InvalidRegistrationError, MalformedDicomError
from DicomRegSaveLib.reg.reader import read_registration

N_POINTS = 2000


# Independent evaluation of the standard's equation -----------------------------------------------


def _axes(grid: rb.GridSpec) -> np.ndarray:
    """Rows: unit i, j, k axes from Image Orientation (Patient); k = row x column."""
    row = np.asarray(grid.iop[:3], dtype=float)
    column = np.asarray(grid.iop[3:], dtype=float)
    return np.stack([row, column, np.cross(row, column)])


def _index_to_lps(grid: rb.GridSpec, index_ijk: np.ndarray) -> np.ndarray:
    return np.asarray(grid.origin_lps) + (index_ijk * np.asarray(grid.spacing_mm)) @ _axes(grid)


def _lps_to_index(grid: rb.GridSpec, points_lps: np.ndarray) -> np.ndarray:
    return ((points_lps - np.asarray(grid.origin_lps)) @ _axes(grid).T) / np.asarray(grid.spacing_mm)


def _trilinear_reference(vectors_kji: np.ndarray, index_ijk: np.ndarray) -> np.ndarray:
    """Textbook trilinear interpolation, axis by axis (points inside the grid)."""
    n_k, n_j, n_i, _ = vectors_kji.shape
    v = vectors_kji.astype(np.float64)
    i0 = np.clip(np.floor(index_ijk[:, 0]).astype(int), 0, max(n_i - 2, 0))
    j0 = np.clip(np.floor(index_ijk[:, 1]).astype(int), 0, max(n_j - 2, 0))
    k0 = np.clip(np.floor(index_ijk[:, 2]).astype(int), 0, max(n_k - 2, 0))
    fi = (index_ijk[:, 0] - i0)[:, None]
    fj = (index_ijk[:, 1] - j0)[:, None]
    fk = (index_ijk[:, 2] - k0)[:, None]
    i1, j1, k1 = np.minimum(i0 + 1, n_i - 1), np.minimum(j0 + 1, n_j - 1), np.minimum(k0 + 1, n_k - 1)

    def lerp(a, b, f):
        return a * (1 - f) + b * f

    c00 = lerp(v[k0, j0, i0], v[k0, j0, i1], fi)
    c10 = lerp(v[k0, j1, i0], v[k0, j1, i1], fi)
    c01 = lerp(v[k1, j0, i0], v[k1, j0, i1], fi)
    c11 = lerp(v[k1, j1, i0], v[k1, j1, i1], fi)
    return lerp(lerp(c00, c10, fj), lerp(c01, c11, fj), fk)


def _expected(grid: rb.GridSpec, points_lps: np.ndarray, pre=None, post=None) -> np.ndarray:
    pre = np.eye(4) if pre is None else pre
    post = np.eye(4) if post is None else post
    displacement = _trilinear_reference(grid.vectors_lps, _lps_to_index(grid, points_lps))
    homogeneous = np.c_[points_lps, np.ones(len(points_lps))]
    moved = (homogeneous @ pre.T)[:, :3] + displacement
    return (np.c_[moved, np.ones(len(moved))] @ post.T)[:, :3]


def _random_points(grid: rb.GridSpec, seed: int = 1, n: int = N_POINTS) -> np.ndarray:
    n_k, n_j, n_i, _ = grid.vectors_lps.shape
    index = np.random.default_rng(seed).uniform(0, 1, size=(n, 3)) * [n_i - 1, n_j - 1, n_k - 1]
    return _index_to_lps(grid, index)


def _linear_field(grid_shape_kji, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n_k, n_j, n_i = grid_shape_kji
    k, j, i = np.meshgrid(np.arange(n_k), np.arange(n_j), np.arange(n_i), indexing="ij")
    index = np.stack([i, j, k], axis=-1).astype(float)
    return (index @ a.T + b).astype(np.float32)


def _rotation(axis, angle_deg: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    angle = np.radians(angle_deg)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def _rigid(axis, angle_deg, translation) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = _rotation(axis, angle_deg)
    matrix[:3, 3] = translation
    return matrix


OBLIQUE_IOP = tuple(np.r_[_rotation((1, 2, 3), 25)[:, 0], _rotation((1, 2, 3), 25)[:, 1]])


# Structure -----------------------------------------------------------------------------------------


def test_reads_frames_references_grid_and_codes(tmp_path):
    case = rb.make_case(identity_item=True)
    path, _, _ = rb.write_case(case, tmp_path)

    registration = read_registration(path)

    fixed, moving = case.fixed, case.moving
    assert registration.frame_of_reference_uid == fixed[0].FrameOfReferenceUID
    identity, deformable = registration.items
    assert identity.source_frame_of_reference_uid == fixed[0].FrameOfReferenceUID
    assert identity.grid is None and identity.pre_deformation_matrix is None
    assert identity.registration_type.value == "125021"
    assert [r.sop_instance_uid for r in identity.referenced_images] == [d.SOPInstanceUID for d in fixed]
    assert {r.study_instance_uid for r in identity.referenced_images} == {fixed[0].StudyInstanceUID}
    assert {r.series_instance_uid for r in identity.referenced_images} == {fixed[0].SeriesInstanceUID}

    assert registration.choose_item() is deformable
    assert deformable.source_frame_of_reference_uid == moving[0].FrameOfReferenceUID
    references = deformable.referenced_images
    assert [r.sop_instance_uid for r in references] == [d.SOPInstanceUID for d in moving]
    assert all(r.sop_class_uid == rb.CT_IMAGE_SOP_CLASS for r in references)
    # The moving series lives in another study: found under Studies Containing Other Referenced Instances.
    assert {r.study_instance_uid for r in references} == {moving[0].StudyInstanceUID}
    assert {r.series_instance_uid for r in references} == {moving[0].SeriesInstanceUID}
    assert {r.frame_of_reference_uid for r in references} == {moving[0].FrameOfReferenceUID}
    assert deformable.registration_type.value == "125024"
    assert deformable.registration_type.scheme_designator == "DCM"
    assert deformable.comment == "test deformation"
    assert deformable.pre_deformation_matrix.is_identity
    assert deformable.pre_deformation_matrix.matrix_type == "RIGID"
    assert deformable.post_deformation_matrix.is_identity

    grid = deformable.grid
    assert grid.dimensions == (5, 4, 3)
    np.testing.assert_array_equal(grid.origin_lps, [-10, -12, -4])
    np.testing.assert_array_equal(grid.spacing_mm, [2.0, 2.5, 3.0])
    np.testing.assert_array_equal(grid.direction_lps, np.eye(3))
    assert grid.vectors_lps.dtype == np.float32 and grid.vectors_lps.shape == (3, 4, 5, 3)
    np.testing.assert_array_equal(grid.vectors_lps, case.grid.vectors_lps)


def test_dataset_in_memory_gives_the_same_registration(tmp_path):
    case = rb.make_case()
    from_memory = read_registration(case.dataset)
    from_file = read_registration(rb.write(case.dataset, tmp_path / "reg.dcm"))
    np.testing.assert_array_equal(from_memory.choose_item().grid.vectors_lps, from_file.choose_item().grid.vectors_lps)
    assert from_memory.referenced_images == from_file.referenced_images


def test_k_axis_is_row_cross_column():
    grid = rb.GridSpec((5.0, -3.0, 7.0), rb.smooth_vectors((3, 4, 5)), (1.5, 2.0, 2.5), iop=(0, 1, 0, 0, 0, 1))
    registration = read_registration(rb.make_case(grid=grid).dataset)
    np.testing.assert_allclose(registration.choose_item().grid.direction_lps, [[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_allclose(
        registration.choose_item().grid.index_to_lps @ [2, 3, 4, 1],
        [5.0 + 4 * 2.5, -3.0 + 2 * 1.5, 7.0 + 3 * 2.0, 1],
    )


def test_frame_and_segment_numbers_are_read():
    case = rb.make_case()
    references = case.item.ReferencedImageSequence
    references[0].ReferencedFrameNumber = [2, 3]
    references[1].ReferencedSegmentNumber = 4
    item = read_registration(case.dataset).choose_item()
    assert item.referenced_images[0].frame_numbers == (2, 3)
    assert item.referenced_images[1].segment_numbers == (4,)
    assert item.referenced_images[1].frame_numbers == ()


def test_absent_matrices_and_empty_registration_type():
    case = rb.make_case()
    del case.item.PreDeformationMatrixRegistrationSequence
    case.item.PostDeformationMatrixRegistrationSequence = []
    case.item.RegistrationTypeCodeSequence = []
    item = read_registration(case.dataset).choose_item()
    assert item.pre_deformation_matrix is None and item.post_deformation_matrix is None
    assert item.registration_type is None


def test_empty_registration_type_item_reads_as_no_code():
    case = rb.make_case()
    case.item.RegistrationTypeCodeSequence = [pydicom.Dataset()]
    assert read_registration(case.dataset).choose_item().registration_type is None


def test_missing_matrix_type_is_detected():
    case = rb.make_case(post_matrix=np.diag([2.0, 2.0, 2.0, 1.0]))
    del case.item.PostDeformationMatrixRegistrationSequence[0].FrameOfReferenceTransformationMatrixType
    assert read_registration(case.dataset).choose_item().post_deformation_matrix.matrix_type == "RIGID_SCALE"


@pytest.mark.parametrize("transfer_syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_other_transfer_syntaxes_give_the_same_vectors(tmp_path, transfer_syntax):
    case = rb.make_case()
    if transfer_syntax == ExplicitVRBigEndian:
        # OF is not byte-swapped by pydicom; a big endian file carries big endian floats.
        case.item.DeformableRegistrationGridSequence[0].VectorGridData = np.asarray(
            case.grid.vectors_lps, dtype=">f4"
        ).tobytes()
    case.dataset.file_meta.TransferSyntaxUID = transfer_syntax
    path = rb.write(case.dataset, tmp_path / "reg.dcm")
    grid = read_registration(path).choose_item().grid
    assert grid.vectors_lps.dtype == np.float32
    np.testing.assert_array_equal(grid.vectors_lps, case.grid.vectors_lps)


def test_large_vector_grid_data_is_a_view_of_the_memory_mapped_file(tmp_path):
    vectors = np.zeros((150, 200, 300, 3), dtype=np.float32)
    vectors[..., 0] = 1.25
    vectors[-1, -1, -1] = np.nan
    n_bytes = vectors.nbytes
    assert n_bytes >= 100e6
    case = rb.make_case(grid=rb.GridSpec((0.0, 0.0, 0.0), vectors))
    path = rb.write(case.dataset, tmp_path / "big.dcm")
    del case, vectors

    tracemalloc.start()
    try:
        registration = read_registration(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    grid = registration.choose_item().grid
    assert grid.dimensions == (300, 200, 150)
    assert not grid.vectors_lps.flags.owndata and not grid.vectors_lps.flags.writeable
    assert grid.vectors_lps[0, 0, 0].tolist() == [1.25, 0.0, 0.0]
    assert np.isnan(grid.vectors_lps[-1, -1, -1]).all()
    base = grid.vectors_lps
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)
    # No copy of the field in this process: only the finiteness check's temporaries, which are
    # bounded per chunk (about 45 MB when a chunk holds NaN).
    assert peak < 0.5 * n_bytes, f"peak {peak / 1e6:.0f} MB for a {n_bytes / 1e6:.0f} MB field"


# The standard's mapping ----------------------------------------------------------------------------


def test_identity_matrices_linear_field_exact():
    a = np.array([[0.3, -0.1, 0.2], [0.05, 0.4, -0.3], [-0.2, 0.1, 0.25]])
    b = np.array([1.0, -2.0, 0.5])
    grid = rb.GridSpec((-10.0, -12.0, -4.0), _linear_field((6, 7, 8), a, b), (2.0, 2.5, 3.0))
    registration = read_registration(rb.make_case(grid=grid).dataset)
    points = _random_points(grid)
    # Trilinear interpolation reproduces a field linear in the index exactly.
    analytic = points + _lps_to_index(grid, points) @ a.T + b
    np.testing.assert_allclose(registration.choose_item().map_points(points), analytic, atol=1e-4)
    np.testing.assert_allclose(registration.choose_item().map_points(points), _expected(grid, points), atol=1e-4)


def test_translation_post_matrix():
    grid = rb.GridSpec((-10.0, -12.0, -4.0), rb.smooth_vectors((6, 5, 4), seed=2), (2.0, 2.0, 2.0))
    post = np.eye(4)
    post[:3, 3] = [12.5, -7.0, 3.25]
    registration = read_registration(rb.make_case(grid=grid, post_matrix=post).dataset)
    assert registration.choose_item().post_deformation_matrix.matrix_type == "RIGID"
    points = _random_points(grid, seed=3)
    mapped = registration.choose_item().map_points(points)
    np.testing.assert_allclose(mapped, _expected(grid, points, post=post), atol=1e-4)
    np.testing.assert_allclose(mapped - [12.5, -7.0, 3.25], _expected(grid, points), atol=1e-4)


def test_rigid_pre_and_post_matrices():
    grid = rb.GridSpec((-20.0, 5.0, 30.0), rb.smooth_vectors((7, 6, 5), seed=4), (3.0, 2.0, 1.5))
    pre = _rigid((0.2, 1.0, -0.4), 17, (4.0, -3.0, 9.0))
    post = _rigid((1.0, -0.5, 0.3), -11, (-6.0, 2.0, 1.0))
    registration = read_registration(rb.make_case(grid=grid, pre_matrix=pre, post_matrix=post).dataset)
    item = registration.choose_item()
    np.testing.assert_allclose(item.pre_deformation_matrix.matrix_lps, pre, atol=1e-9)
    np.testing.assert_allclose(item.post_deformation_matrix.matrix_lps, post, atol=1e-9)
    points = _random_points(grid, seed=5)
    mapped = registration.choose_item().map_points(points)
    np.testing.assert_allclose(mapped, _expected(grid, points, pre, post), atol=1e-4)
    # D is indexed at x, not at M_pre x: evaluating it at M_pre x gives something else.
    wrong = (np.c_[points, np.ones(len(points))] @ pre.T)[:, :3]
    assert not np.allclose(mapped, _expected(grid, wrong, pre, post)[:, :3], atol=1e-2, equal_nan=True)


def test_oblique_grid_with_anisotropic_spacing():
    grid = rb.GridSpec(
        (3.0, -40.0, 12.0), rb.smooth_vectors((9, 6, 4), seed=6, scale_mm=5.0), (1.2, 3.7, 5.5), iop=OBLIQUE_IOP
    )
    registration = read_registration(rb.make_case(grid=grid).dataset)
    read_grid = registration.choose_item().grid
    np.testing.assert_allclose(read_grid.direction_lps.T, _axes(grid), atol=1e-6)
    points = _random_points(grid, seed=7)
    np.testing.assert_allclose(registration.choose_item().map_points(points), _expected(grid, points), atol=1e-4)
    # Grid points themselves carry exactly the stored vectors.
    corners = np.array([[0, 0, 0], [8, 5, 3], [4, 2, 1]])
    stored = grid.vectors_lps[corners[:, 2], corners[:, 1], corners[:, 0]]
    on_grid = _index_to_lps(grid, corners.astype(float))
    np.testing.assert_allclose(registration.choose_item().map_points(on_grid) - on_grid, stored, atol=1e-4)


def test_nan_triples_stay_undefined_only_where_they_contribute():
    vectors = rb.smooth_vectors((8, 7, 6), seed=8)
    undefined = [(2, 3, 4), (0, 0, 0), (5, 6, 7)]  # (k, j, i)
    for k, j, i in undefined:
        vectors[k, j, i] = np.nan
    grid = rb.GridSpec((0.0, 0.0, 0.0), vectors, (2.0, 1.5, 2.5), iop=OBLIQUE_IOP)
    registration = read_registration(rb.make_case(grid=grid).dataset)
    assert np.isnan(registration.choose_item().grid.vectors_lps[2, 3, 4]).all()

    points = _random_points(grid, seed=9, n=5000)
    index = _lps_to_index(grid, points)
    base = np.floor(index).astype(int)
    touches_nan = np.zeros(len(points), dtype=bool)
    for k, j, i in undefined:
        touches_nan |= np.all((base <= [i, j, k]) & ([i, j, k] <= base + 1), axis=1)
    mapped = registration.choose_item().map_points(points)
    assert touches_nan.sum() > 10 and (~touches_nan).sum() > 1000
    assert np.isnan(mapped[touches_nan]).all()
    np.testing.assert_allclose(mapped[~touches_nan], _expected(grid, points[~touches_nan]), atol=1e-4)


def test_several_items_each_map_with_their_own_grid():
    patient = rb.Patient()
    fixed = rb.make_ct_series(2, patient=patient)
    moving_a = rb.make_ct_series(2, patient=patient, series_number=2)
    moving_b = rb.make_ct_series(3, patient=patient, series_number=3, study_instance_uid=fixed[0].StudyInstanceUID)
    grid_a = rb.GridSpec((-5.0, -5.0, -5.0), rb.smooth_vectors((5, 5, 5), seed=10), (2.0, 2.0, 2.0))
    grid_b = rb.GridSpec((-8.0, -2.0, 1.0), rb.smooth_vectors((4, 6, 3), seed=11), (3.0, 1.0, 2.0), iop=OBLIQUE_IOP)
    post_b = _rigid((0, 0, 1), 30, (1.0, 2.0, 3.0))
    dataset = rb.build_reg(
        fixed,
        [
            rb.ItemSpec(
                fixed[0].FrameOfReferenceUID, fixed, registration_type=("125021", "DCM", "Frame of Reference Identity")
            ),
            rb.ItemSpec(moving_a[0].FrameOfReferenceUID, moving_a, grid=grid_a),
            rb.ItemSpec(moving_b[0].FrameOfReferenceUID, moving_b, grid=grid_b, post_matrix=post_b, post_type="RIGID"),
        ],
    )
    registration = read_registration(dataset)
    identity, item_a, item_b = registration.items
    assert identity.is_identity and not item_a.is_identity and not item_b.is_identity
    assert registration.choose_item(moving_a[0].FrameOfReferenceUID) is item_a
    assert registration.choose_item(moving_b[0].FrameOfReferenceUID) is item_b
    # moving_b shares the REG's study: its references come from the top-level Referenced Series Sequence.
    assert {r.study_instance_uid for r in item_b.referenced_images} == {fixed[0].StudyInstanceUID}
    assert {r.study_instance_uid for r in item_a.referenced_images} == {moving_a[0].StudyInstanceUID}

    points_a = _random_points(grid_a, seed=12)
    np.testing.assert_allclose(item_a.map_points(points_a), _expected(grid_a, points_a), atol=1e-4)
    points_b = _random_points(grid_b, seed=13)
    np.testing.assert_allclose(item_b.map_points(points_b), _expected(grid_b, points_b, post=post_b), atol=1e-4)
    np.testing.assert_array_equal(identity.map_points(points_b), points_b)


def test_points_outside_the_grid_are_nan():
    grid = rb.GridSpec((0.0, 0.0, 0.0), rb.smooth_vectors((4, 4, 4)), (1.0, 1.0, 1.0))
    registration = read_registration(rb.make_case(grid=grid).dataset)
    mapped = registration.choose_item().map_points(np.array([[-1.0, 0, 0], [1.0, 1.0, 1.0], [0, 0, 3.5]]))
    assert np.isnan(mapped[0]).all() and np.isfinite(mapped[1]).all() and np.isnan(mapped[2]).all()


# Errors ----------------------------------------------------------------------------------------------


def _read_error(dataset_or_path) -> str:
    with pytest.raises((InvalidRegistrationError, MalformedDicomError)) as info:
        read_registration(dataset_or_path)
    return str(info.value)


def test_spatial_registration_class_without_registration_sequence_names_it(tmp_path):
    # With a Deformable Registration Sequence instead, the file is read as a 66.3 (test_vendor_layouts.py).
    case = rb.make_case()
    case.dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.66.1"
    case.dataset.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.66.1"
    del case.dataset.DeformableRegistrationSequence
    path = rb.write(case.dataset, tmp_path / "rigid.dcm")
    message = _read_error(path)
    assert str(path) in message
    assert "Registration Sequence (0070,0308) is missing" in message


def test_image_is_named(tmp_path):
    path = rb.write(rb.make_ct_series(1)[0], tmp_path / "ct.dcm")
    message = _read_error(path)
    assert "CT Image Storage" in message and str(path) in message


def test_unreadable_and_missing_files(tmp_path):
    junk = tmp_path / "junk.dcm"
    junk.write_text("not dicom")
    assert "not a readable DICOM file" in _read_error(junk)
    assert "no such file" in _read_error(tmp_path / "absent.dcm")


def test_byte_length_must_match_grid_dimensions(tmp_path):
    case = rb.make_case()
    grid_item = case.item.DeformableRegistrationGridSequence[0]
    grid_item.VectorGridData = grid_item.VectorGridData[:-12]
    path = rb.write(case.dataset, tmp_path / "short.dcm")
    message = _read_error(path)
    assert str(path) in message and "(0064,0009)" in message and "(0064,0007)" in message
    assert f"has {12 * 60 - 12} bytes" in message and "exactly 12 x 60 = 720 bytes" in message


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda ds, item: delattr(ds, "FrameOfReferenceUID"), "Frame Of Reference UID (0020,0052) is missing"),
        (
            lambda ds, item: delattr(item, "SourceFrameOfReferenceUID"),
            "item 1: Source Frame Of Reference UID (0064,0003)",
        ),
        (lambda ds, item: setattr(ds, "DeformableRegistrationSequence", []), "(0064,0002) is empty"),
        (
            lambda ds, item: delattr(item, "DeformableRegistrationGridSequence"),
            "at least one item with a displacement grid",
        ),
        (
            lambda ds, item: item.DeformableRegistrationGridSequence.append(item.DeformableRegistrationGridSequence[0]),
            "(0064,0005) holds 2 items",
        ),
        (
            lambda ds, item: item.RegistrationTypeCodeSequence.append(item.RegistrationTypeCodeSequence[0]),
            "(0070,030D) holds 2 items",
        ),
        (
            lambda ds, item: setattr(item.DeformableRegistrationGridSequence[0], "GridDimensions", [5, 4]),
            "Grid Dimensions (0064,0007) must hold 3",
        ),
        (
            lambda ds, item: delattr(item.DeformableRegistrationGridSequence[0], "VectorGridData"),
            "Vector Grid Data (0064,0009) is missing",
        ),
        (
            lambda ds, item: setattr(
                item.DeformableRegistrationGridSequence[0], "ImageOrientationPatient", [1, 0, 0, 0.5, 1, 0]
            ),
            "not orthonormal",
        ),
        (
            lambda ds, item: setattr(
                item.PostDeformationMatrixRegistrationSequence[0], "FrameOfReferenceTransformationMatrix", ["1"] * 12
            ),
            "(3006,00C6) must hold 16",
        ),
    ],
)
def test_malformed_datasets_name_the_tag(mutate, expected):
    case = rb.make_case()
    mutate(case.dataset, case.item)
    message = _read_error(case.dataset)
    assert expected in message
    assert case.dataset.SOPInstanceUID in message


def test_partial_nan_triple_is_rejected_with_its_position():
    vectors = rb.smooth_vectors((5, 4, 3))
    vectors[1, 2, 3, 0] = np.nan
    case = rb.make_case(grid=rb.GridSpec((0.0, 0.0, 0.0), vectors))
    message = _read_error(case.dataset)
    assert "(i=3, j=2, k=1)" in message and "(0064,0005)" in message
