"""transform_files.py, field_headers.py, transform_writer.py: reading transform files as Slicer does, the raw-field fast path, writing for to-transform.

The fast path is proven equal to the slicer-core path (geometry 1e-6 mm, float32 vectors bit for
bit) on fields written by slicer-core's own storage node; files written by write_transform_file are
read back by Slicer and compared with the standard's equation at >= 1000 points.
"""

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import slicer

from DicomRegSaveLib.errors import OutputError, TransformInputError
from DicomRegSaveLib.inputs.field_headers import raw_field_header
from DicomRegSaveLib.inputs.transform_files import deformation_from_file, read_transform_file
from DicomRegSaveLib.inputs.transform_writer import write_transform_file
from DicomRegSaveLib.model import DisplacementGrid, Registration, RegistrationItem, RegistrationMatrix
from DicomRegSaveLib.mrml.deformation import deformation_from_transform_node
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
    new_scene,
    points_in_box,
    random_vectors,
    rotation,
)

EXACT_MM = 1e-4
FIXED_IJK_TO_LPS = homogeneous(np.diag([1.2, 1.2, 2.5]), (-40.0, -40.0, -30.0))
FIXED_DIMS = (60, 60, 30)
ORIGIN_RAS = (-25.0, 30.0, -12.0)

GEOMETRIES = {
    "oblique": (OBLIQUE, (3.0, 3.0, 3.0)),
    "left-handed": (LEFT_HANDED, (2.0, 3.0, 4.0)),
    "anisotropic": (np.eye(3), (1.5, 2.5, 5.0)),
}


def slicer_write(node, path: Path) -> Path:
    storage = slicer.vtkMRMLTransformStorageNode()
    node.GetScene().AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.WriteData(node) == 1
    return path


def written_field(tmp_path, geometry_name, extension, dims=(11, 9, 7), seed=0, to_parent=False):
    direction, spacing = GEOMETRIES[geometry_name]
    scene = new_scene()
    node = grid_node(scene, ORIGIN_RAS, direction, spacing, random_vectors(dims, seed=seed), to_parent=to_parent)
    return node, slicer_write(node, tmp_path / f"field-{geometry_name}{extension}")


def slow_path(path):
    scene = slicer.vtkMRMLScene()
    node = read_transform_file(path, scene)
    return deformation_from_transform_node(node, FIXED_IJK_TO_LPS, FIXED_DIMS)


def assert_same_grid(fast: DisplacementGrid, slow: DisplacementGrid):
    assert fast.dimensions == slow.dimensions
    np.testing.assert_allclose(fast.index_to_lps, slow.index_to_lps, rtol=0, atol=1e-6)
    assert fast.vectors_lps.dtype == slow.vectors_lps.dtype == np.float32
    assert np.array_equal(fast.vectors_lps, slow.vectors_lps)


def to_float32_file(path: Path) -> Path:
    """Rewrite a float64 field written by Slicer as float32 with the same header otherwise."""
    data = path.read_bytes()
    n_values = int(np.prod(raw_field_header(path).dimensions)) * 3
    header, values = data[: len(data) - 8 * n_values], np.frombuffer(data[len(data) - 8 * n_values :], "<f8")
    header = header.replace(b"MET_DOUBLE", b"MET_FLOAT").replace(b"type: double", b"type: float")
    target = path.with_name("f32-" + path.name)
    target.write_bytes(header + values.astype("<f4").tobytes())
    return target


@pytest.mark.parametrize("extension", [".mha", ".nrrd", ".mhd", ".nhdr"])
@pytest.mark.parametrize("geometry_name", sorted(GEOMETRIES))
def test_fast_path_equals_slicer_path_on_slicer_written_fields(tmp_path, geometry_name, extension):
    node, path = written_field(tmp_path, geometry_name, extension)
    header = raw_field_header(path)
    assert header is not None, "the fast path must take raw fields written by Slicer"
    fast = deformation_from_file(path, FIXED_IJK_TO_LPS, FIXED_DIMS)
    slow = slow_path(path)
    assert fast.exact and slow.exact
    assert fast.pre_deformation_matrix is None and fast.post_deformation_matrix is None
    assert_same_grid(fast.grid, slow.grid)
    points = points_in_box(fast.grid.index_to_lps, fast.grid.dimensions)
    error = np.abs(RegistrationItem(UID, grid=fast.grid).map_points(points) - from_world_lps(node, points)).max()
    assert error < EXACT_MM


@pytest.mark.parametrize("extension", [".mha", ".nrrd"])
def test_fast_path_equals_slicer_path_on_float32_fields(tmp_path, extension):
    _, path = written_field(tmp_path, "oblique", extension)
    float32_path = to_float32_file(path)
    assert raw_field_header(float32_path).dtype == np.dtype("<f4")
    fast = deformation_from_file(float32_path, FIXED_IJK_TO_LPS, FIXED_DIMS)
    assert_same_grid(fast.grid, slow_path(float32_path).grid)
    assert_same_grid(fast.grid, slow_path(path).grid)


def test_fast_path_keeps_one_float32_copy(tmp_path):
    _, path = written_field(tmp_path, "anisotropic", ".mha", dims=(64, 64, 48))
    float32_path = to_float32_file(path)
    field_bytes = 64 * 64 * 48 * 12
    tracemalloc.start()
    try:
        deformation = deformation_from_file(float32_path, FIXED_IJK_TO_LPS, FIXED_DIMS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert deformation.grid.vectors_lps.nbytes == field_bytes
    assert peak < 1.3 * field_bytes + (1 << 20), f"peak {peak} bytes for a {field_bytes}-byte field"


def test_modeling_nrrd_is_resampled_as_from_parent(tmp_path):
    node, path = written_field(tmp_path, "oblique", ".nrrd", to_parent=True)
    assert b"displacement field type:=modeling" in path.read_bytes()[:2000]
    assert raw_field_header(path) is None
    deformation = deformation_from_file(path, FIXED_IJK_TO_LPS, FIXED_DIMS)
    assert not deformation.exact
    # the from-parent transform as Slicer computes it from the file (trilinear grid, iterative inverse)
    read_node = read_transform_file(path, new_scene())
    from_parent = read_node.GetTransformFromParent()
    from_parent.Update()
    assert from_parent.GetInverseFlag() == 1
    n_i, n_j, n_k = deformation.grid.dimensions
    index = np.stack(np.meshgrid(np.arange(n_i), np.arange(n_j), np.arange(n_k), indexing="ij"), -1).reshape(-1, 3)
    grid_positions = index @ deformation.grid.index_to_lps[:3, :3].T + deformation.grid.index_to_lps[:3, 3]
    mapped = RegistrationItem(UID, grid=deformation.grid).map_points(grid_positions)
    assert np.abs(mapped - from_world_lps(read_node, grid_positions)).max() < EXACT_MM
    # it inverts the stored modeling field: the to-parent transform brings the points back (within
    # VTK's iterative inversion tolerance; copying the field as it is would be off by ~2 x |D| ~ 1 mm)
    back = apply_vtk_transform_lps(read_node.GetTransformToParent(), mapped)
    assert np.abs(back - grid_positions).max() < 0.05


def test_grid_spacing_request_and_axis_alignment_use_the_right_paths(tmp_path):
    _, path = written_field(tmp_path, "anisotropic", ".mha")
    resampled = deformation_from_file(path, FIXED_IJK_TO_LPS, FIXED_DIMS, grid_spacing_mm=4.0)
    assert not resampled.exact
    np.testing.assert_allclose(resampled.grid.spacing_mm, [4.0, 4.0, 4.0])
    aligned = deformation_from_file(path, FIXED_IJK_TO_LPS, FIXED_DIMS, axis_aligned=True)
    assert aligned.exact
    np.testing.assert_array_equal(aligned.grid.direction_lps, np.eye(3))
    points = points_in_box(aligned.grid.index_to_lps, aligned.grid.dimensions)
    plain = deformation_from_file(path, FIXED_IJK_TO_LPS, FIXED_DIMS)
    np.testing.assert_allclose(
        RegistrationItem(UID, grid=aligned.grid).map_points(points),
        RegistrationItem(UID, grid=plain.grid).map_points(points),
        atol=1e-9,
    )


def test_truncated_field_raises(tmp_path):
    _, path = written_field(tmp_path, "oblique", ".mha")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(TransformInputError, match="too short"):
        deformation_from_file(path, FIXED_IJK_TO_LPS, FIXED_DIMS)


def test_read_errors_name_the_file_and_the_supported_types(tmp_path):
    scene = new_scene()
    with pytest.raises(TransformInputError, match=r"unsupported type '\.dcm'.*\.h5"):
        read_transform_file(tmp_path / "x.dcm", scene)
    with pytest.raises(TransformInputError, match="does not exist"):
        read_transform_file(tmp_path / "missing.h5", scene)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not a transform")
    with pytest.raises(TransformInputError, match="(?s)garbage.h5 could not be read.*supported: .*nii.gz"):
        read_transform_file(garbage, scene)
    garbage_field = tmp_path / "garbage.mha"
    garbage_field.write_bytes(b"ObjectType = Image\nNDims = 3\n")
    with pytest.raises(TransformInputError, match="garbage.mha could not be read"):
        deformation_from_file(garbage_field, FIXED_IJK_TO_LPS, FIXED_DIMS)


def test_bspline_transform_file_is_resampled(tmp_path):
    scene = new_scene()
    node = bspline_node(scene, (7, 7, 7), (-60.0, -60.0, -60.0), 25.0, amplitude=2.0, seed=2)
    path = slicer_write(node, tmp_path / "bspline.tfm")
    deformation = deformation_from_file(path, FIXED_IJK_TO_LPS, FIXED_DIMS)
    assert not deformation.exact
    np.testing.assert_allclose(deformation.grid.spacing_mm, [2.4, 2.4, 5.0])
    points = points_in_box(FIXED_IJK_TO_LPS, FIXED_DIMS, n=1500)
    error = np.abs(deformation.item(UID).map_points(points) - from_world_lps(node, points)).max()
    assert error < 0.05


# ------------------------------------------------------------------ writing (to-transform)


def registration(direction_lps, pre=None, post=None, dims=(10, 9, 8)):
    grid = DisplacementGrid((12.0, -30.0, 5.0), direction_lps, (3.0, 4.0, 5.0), random_vectors(dims, seed=4))
    return Registration(
        UID, [RegistrationItem(UID, grid=grid, pre_deformation_matrix=pre, post_deformation_matrix=post)]
    )


RIGID = RegistrationMatrix(homogeneous(rotation([1, 1, -1], 0.25), (6.0, -3.0, 9.0)))
AFFINE = RegistrationMatrix(homogeneous([[1.1, 0.1, 0.0], [0.0, 0.9, 0.05], [0.03, 0.0, 1.05]], (2.0, 1.0, -4.0)))
SHEAR = RegistrationMatrix(homogeneous([[1.0, 0.2, 0.0], [0.0, 1.1, 0.0], [0.1, 0.0, 0.95]], (-1.0, 0.0, 3.0)))

CASES = {
    "grid-only": (OBLIQUE, None, None),
    "rigid-pre-affine-post": (OBLIQUE, RIGID, AFFINE),
    "left-shear-pre": (LEFT_HANDED, SHEAR, None),
}


@pytest.mark.parametrize("extension", [".h5", ".tfm", ".txt", ".nrrd", ".mha", ".nii.gz"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_written_file_read_back_by_slicer_maps_like_the_registration(tmp_path, extension, case):
    reg = registration(*CASES[case])
    path = write_transform_file(reg.choose_item(), tmp_path / f"out{extension}")
    scene = new_scene()
    node = read_transform_file(path, scene)
    grid = reg.choose_item().grid
    points = points_in_box(grid.index_to_lps, grid.dimensions, n=1500)
    error = np.linalg.norm(
        from_world_lps(node, points, trilinear=True) - reg.choose_item().map_points(points), axis=1
    ).max()
    assert error < EXACT_MM, f"{extension} {case}: {error} mm"


def test_written_composite_reads_back_as_exact_deformation(tmp_path):
    reg = registration(OBLIQUE, RIGID, AFFINE)
    path = write_transform_file(reg.choose_item(), tmp_path / "composite.h5")
    deformation = deformation_from_file(path, FIXED_IJK_TO_LPS, FIXED_DIMS)
    item = reg.choose_item()
    assert deformation.exact
    np.testing.assert_allclose(deformation.pre_deformation_matrix.matrix_lps, RIGID.matrix_lps, atol=1e-9)
    np.testing.assert_allclose(deformation.post_deformation_matrix.matrix_lps, AFFINE.matrix_lps, atol=1e-9)
    np.testing.assert_allclose(deformation.grid.index_to_lps, item.grid.index_to_lps, atol=1e-6)
    assert np.array_equal(deformation.grid.vectors_lps, item.grid.vectors_lps)


def test_written_field_round_trips_through_the_fast_path(tmp_path):
    reg = registration(LEFT_HANDED)
    path = write_transform_file(reg.choose_item(), tmp_path / "field.mha")
    assert raw_field_header(path) is not None
    grid = deformation_from_file(path, FIXED_IJK_TO_LPS, FIXED_DIMS).grid
    assert np.array_equal(grid.vectors_lps, reg.choose_item().grid.vectors_lps)
    np.testing.assert_allclose(grid.index_to_lps, reg.choose_item().grid.index_to_lps, atol=1e-9)


@pytest.mark.parametrize("extension", [".mha", ".nrrd"])
def test_field_files_hold_the_float32_vectors_bit_for_bit(tmp_path, extension):
    """A REG's items carry explicit identity matrices; they must not send the vectors through arithmetic."""
    item = registration(OBLIQUE, RegistrationMatrix.identity(), RegistrationMatrix.identity()).choose_item()
    vectors = item.grid.vectors_lps
    seen = []
    path = write_transform_file(item, tmp_path / f"field{extension}", lambda fraction, _: seen.append(fraction))
    header = raw_field_header(path)
    assert header.dtype == np.dtype("<f4") and path.stat().st_size == header.data_offset + vectors.nbytes
    assert path.read_bytes()[header.data_offset :] == vectors.astype("<f4").tobytes()
    np.testing.assert_allclose(header.read_grid().index_to_lps, item.grid.index_to_lps, atol=1e-12)
    # the step's label at its start, then one report per plane written
    assert seen == [0.0, *((k + 1) / vectors.shape[0] for k in range(vectors.shape[0]))]


def test_write_refuses_unknown_and_detached_formats(tmp_path):
    reg = registration(np.eye(3))
    for name in ("out.dcm", "out.mhd", "out.nhdr"):
        with pytest.raises(OutputError, match="use one of"):
            write_transform_file(reg.choose_item(), tmp_path / name)


@pytest.mark.parametrize("extension", [".nrrd", ".mha", ".nii", ".nii.gz"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_written_field_is_float32_and_simpleitk_maps_it_like_the_registration(tmp_path, extension, case):
    import SimpleITK as sitk

    item = registration(*CASES[case]).choose_item()
    path = write_transform_file(item, tmp_path / f"field{extension}")
    image = sitk.ReadImage(str(path))
    # The REG's own precision: float32 vectors, not widened to float64.
    assert image.GetPixelID() == sitk.sitkVectorFloat32
    assert image.GetNumberOfComponentsPerPixel() == 3
    if extension != ".nii.gz":
        assert path.stat().st_size < 4 * 3 * np.prod(item.grid.dimensions) + 1024
    field = sitk.DisplacementFieldTransform(sitk.Cast(image, sitk.sitkVectorFloat64))
    points = points_in_box(item.grid.index_to_lps, item.grid.dimensions, n=500)
    mapped = np.array([field.TransformPoint(p.tolist()) for p in points])
    assert np.abs(mapped - item.map_points(points)).max() < EXACT_MM


# ------------------------------------------------------------------ outside the field's grid


def field_then_affine_file(path: Path, shift_lps) -> None:
    """An ITK composite written by SimpleITK listing [field, translation]: ITK applies the translation first."""
    import SimpleITK as sitk

    size, spacing, origin = (14, 14, 14), 6.0, (-42.0, -42.0, -32.0)
    n_i, n_j, n_k = size
    k, j, i = np.meshgrid(np.arange(n_k), np.arange(n_j), np.arange(n_i), indexing="ij")
    vectors = np.stack([3.0 + np.sin(0.3 * i), 2.0 + np.cos(0.2 * j), 1.5 + 0.1 * k], axis=-1)
    image = sitk.GetImageFromArray(vectors, isVector=True)
    image.SetSpacing((spacing,) * 3)
    image.SetOrigin(origin)
    composite = sitk.CompositeTransform(
        [sitk.DisplacementFieldTransform(image), sitk.TranslationTransform(3, shift_lps)]
    )
    sitk.WriteTransform(composite, str(path))


def test_linear_part_before_the_field_that_leaves_its_grid_is_warned_about(tmp_path):
    import SimpleITK as sitk

    path = tmp_path / "field_then_affine.h5"
    field_then_affine_file(path, (20.0, 0.0, 0.0))
    # A fixed point whose translated position lies beyond the field's grid (x > 36 mm):
    point = np.array([[30.0, 0.0, 0.0]])
    itk = np.array([sitk.ReadTransform(str(path)).TransformPoint(point[0].tolist())])
    vtk_slicer = from_world_lps(read_transform_file(path, new_scene()), point, trilinear=True)
    np.testing.assert_allclose(itk, [[50.0, 0.0, 0.0]], atol=1e-9)  # ITK: zero displacement outside
    assert np.linalg.norm(vtk_slicer - itk) > 3.0  # Slicer: the edge displacement, held

    exact = deformation_from_file(path, FIXED_IJK_TO_LPS, FIXED_DIMS)
    assert exact.exact
    (warning,) = [w for w in exact.warnings if "outside the displacement field's grid" in w]
    assert "14.8 mm" in warning and "[field, affine]" in warning and "own convention" in warning

    sampled = deformation_from_file(path, FIXED_IJK_TO_LPS, FIXED_DIMS, grid_spacing_mm=6.0)
    (warning,) = [w for w in sampled.warnings if "outside the displacement field's grid" in w]
    assert "follows Slicer's convention" in warning
    assert np.linalg.norm(sampled.item(UID).map_points(point) - vtk_slicer) < 0.5


def test_linear_part_before_the_field_that_stays_on_its_grid_gives_no_warning(tmp_path):
    path = tmp_path / "field_then_affine.h5"
    field_then_affine_file(path, (1.0, 0.0, 0.0))
    deformation = deformation_from_file(path, FIXED_IJK_TO_LPS, FIXED_DIMS)
    assert deformation.exact and deformation.pre_deformation_matrix is not None
    assert not any("outside the displacement field's grid" in w for w in deformation.warnings)


@pytest.mark.parametrize(
    ("extension", "options"),
    [(".mha", {"grid_spacing_mm": 2.7}), (".nrrd", {"axis_aligned": True})],
    ids=["grid-spacing", "axis-aligned-oblique"],
)
def test_a_field_file_resampled_through_slicer_keeps_its_trilinear_meaning(tmp_path, extension, options):
    # Slicer reads a field file with cubic interpolation; resampled with it, a rough field's REG differed
    # from the file (as ITK and the REG's receivers interpolate it) by millimetres between its grid points.
    _, path = written_field(tmp_path, "oblique", extension, dims=(14, 12, 10), seed=3)
    exact = deformation_from_file(path, FIXED_IJK_TO_LPS, FIXED_DIMS)
    assert exact.exact
    sampled = deformation_from_file(path, FIXED_IJK_TO_LPS, FIXED_DIMS, **options)
    assert not sampled.exact
    file_grid = exact.grid
    points = grid_points(sampled.grid)
    index = points @ np.linalg.inv(file_grid.index_to_lps)[:3, :3].T + np.linalg.inv(file_grid.index_to_lps)[:3, 3]
    inside = np.all((index >= 0) & (index <= np.array(file_grid.dimensions) - 1), axis=1)
    assert inside.sum() > 100
    trilinear = exact.item(UID).map_points(points[inside]) - points[inside]
    written = np.asarray(sampled.grid.vectors_lps, dtype=np.float64).reshape(-1, 3)[inside]
    assert np.abs(written - trilinear).max() < EXACT_MM
