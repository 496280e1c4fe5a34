"""bspline.py and B-spline chains: sampled B-splines equal ITK's evaluation (SimpleITK's
TransformToDisplacementFieldFilter, an independent oracle) within 1e-5 mm at every grid point, on
grids parallel to the control grid (tensor products) and oblique ones (point by point), coarser and
finer than it, reaching past its support, inside composites; Slicer B-spline nodes equal VTK's own
evaluation. Split over threads, the evaluation gives the single-threaded result bit for bit.
"""

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import vtk
from vtk.util import numpy_support

from DicomRegSaveLib import geometry
from DicomRegSaveLib.bspline import run_blocks, split_blocks
from DicomRegSaveLib.inputs.itk_transforms import read_parts
from DicomRegSaveLib.inputs.transform_files import deformation_from_file
from DicomRegSaveLib.mrml.deformation import deformation_from_transform_node
from DicomRegSaveLib.transform_chain import BSplinePart
from itk_files import bspline_transform
from mrml_helpers import OBLIQUE, grid_points, homogeneous, new_scene, rotation, vtk_matrix

EXACT_MM = 1e-5


def itk_field(transform: sitk.Transform, index_to_lps: np.ndarray, dims) -> np.ndarray:
    """ITK's displacement (n_k, n_j, n_i, 3) at every point of the grid."""
    axes = index_to_lps[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    field = sitk.TransformToDisplacementField(
        transform,
        sitk.sitkVectorFloat64,
        [int(n) for n in dims],
        index_to_lps[:3, 3].tolist(),
        spacing.tolist(),
        (axes / spacing).ravel().tolist(),
    )
    return sitk.GetArrayFromImage(field)


def bspline_grid(transform: sitk.Transform, path: Path):
    sitk.WriteTransform(transform, str(path))
    (part,) = read_parts(path, path.suffix)
    assert isinstance(part, BSplinePart)
    return part.bspline


# (origin, direction, spacing, dims) of sampling grids against the domain [-50, 50] x [-40, 40] x [-30, 30]
GRIDS = {
    "aligned-finer": ((-49.0, -39.0, -29.0), np.eye(3), (1.5, 2.5, 2.0), (66, 32, 30)),
    "aligned-coarser": ((-48.0, -38.0, -28.0), np.eye(3), (31.0, 27.0, 19.0), (4, 3, 4)),
    "permuted-flipped": (
        (45.0, -39.0, 25.0),
        np.array([[0.0, 0, -1], [0, 1, 0], [-1, 0, 0]]),
        (2.0, 3.0, 4.0),
        (14, 26, 23),
    ),
    "past-the-support": ((-80.0, -70.0, -50.0), np.eye(3), (3.0, 3.5, 4.0), (55, 40, 26)),
    "oblique": ((-40.0, -30.0, -25.0), OBLIQUE, (4.0, 4.0, 4.0), (18, 15, 12)),
}


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_bspline_equals_itk_at_every_grid_point(tmp_path, name):
    transform = bspline_transform()
    bspline = bspline_grid(transform, tmp_path / "bspline.tfm")
    origin, direction, spacing, dims = GRIDS[name]
    index_to_lps = geometry.index_to_patient_matrix(np.array(origin), direction, np.array(spacing))
    assert bspline.is_parallel(index_to_lps, dims) == (name != "oblique")
    sampled = bspline.sample(index_to_lps, dims)
    expected = itk_field(transform, index_to_lps, dims)
    assert np.abs(sampled - expected).max() < EXACT_MM
    if name == "past-the-support":
        # ITK's zero displacement outside the valid region, reproduced exactly
        assert (expected == 0).all(axis=-1).sum() > 1000
        assert np.array_equal(sampled == 0, expected == 0)


def test_oblique_control_grid_on_a_parallel_sampling_grid(tmp_path):
    transform = bspline_transform(direction=OBLIQUE, seed=4)
    bspline = bspline_grid(transform, tmp_path / "oblique.h5")
    index_to_lps = geometry.index_to_patient_matrix(np.array([-30.0, -20.0, -10.0]), OBLIQUE, np.array([3.0, 2.0, 2.5]))
    # ITK keeps the domain's direction to about 1e-8: parallel within the tolerance, not to the last bit
    assert bspline.is_parallel(index_to_lps, (20, 25, 16))
    sampled = bspline.sample(index_to_lps, (20, 25, 16))
    assert np.abs(sampled - itk_field(transform, index_to_lps, (20, 25, 16))).max() < EXACT_MM


@pytest.mark.parametrize("count", [1, 2, 3, 7, 13, 64, 65])
@pytest.mark.parametrize("number", [1, 2, 3, 8, 16])
def test_blocks_cover_every_plane_exactly_once_on_every_thread_count(count, number):
    blocks = split_blocks(count, number)
    assert [item for block in blocks for item in block] == list(range(count))
    assert len(blocks) == min(count, number) and min(map(len, blocks)) >= max(map(len, blocks)) - 1 >= 0
    filled = []  # list.append is atomic: the threads' records are all kept
    run_blocks(lambda block: filled.extend(block), blocks, number)
    assert sorted(filled) == list(range(count))


def test_an_error_in_a_thread_is_raised_by_the_caller():
    def fill(block):
        if 5 in block:
            raise ValueError("block with plane 5")

    with pytest.raises(ValueError, match="block with plane 5"):
        run_blocks(fill, split_blocks(9, 9), 3)


# (origin, direction, dims): odd plane counts, fewer planes than threads, both evaluations
THREADED_GRIDS = {
    "parallel, 13 planes": ((-49.0, -39.0, -29.0), np.eye(3), (37, 29, 13)),
    "parallel, 3 planes": ((-49.0, -39.0, -29.0), np.eye(3), (41, 30, 3)),
    "parallel, 1 plane": ((-49.0, -39.0, -29.0), np.eye(3), (41, 30, 1)),
    "oblique, 11 planes": ((-40.0, -30.0, -25.0), OBLIQUE, (23, 19, 11)),
    "oblique, 2 planes": ((-40.0, -30.0, -25.0), OBLIQUE, (23, 19, 2)),
}


@pytest.mark.parametrize("name", sorted(THREADED_GRIDS))
def test_threads_give_the_single_thread_result_bit_for_bit(tmp_path, name):
    bspline = bspline_grid(bspline_transform(), tmp_path / "bspline.h5")
    origin, direction, dims = THREADED_GRIDS[name]
    index_to_lps = geometry.index_to_patient_matrix(np.array(origin), direction, np.array([2.5, 3.0, 4.0]))
    assert bspline.is_parallel(index_to_lps, dims) == name.startswith("parallel")
    affine = np.array([[0.01, -0.02, 0.03, 1.5], [0.02, 0.01, 0.0, -2.0], [0.0, 0.03, 0.02, 0.5]])
    linear = rotation([1, 2, 3], 0.2) * 1.05
    single = bspline.sample(index_to_lps, dims, affine_lps=affine, linear_lps=linear, workers=1)
    index = np.stack([*np.meshgrid(*(np.arange(n) for n in dims[::-1]), indexing="ij")[::-1], np.ones(dims[::-1])], -1)
    expected = bspline.sample(index_to_lps, dims, workers=1).astype(np.float64) @ linear.T + index @ affine.T
    assert np.abs(single - expected).max() < EXACT_MM and np.abs(single).max() > 1.0
    for workers in (2, 3, 8):
        threaded = bspline.sample(index_to_lps, dims, affine_lps=affine, linear_lps=linear, workers=workers)
        assert np.array_equal(threaded, single), workers
        # a plane left unwritten in a later output reusing this memory must not hold the right values
        threaded[...] = np.nan


def test_no_warning_when_the_fixed_image_lies_inside_the_bspline_domain(tmp_path):
    path = tmp_path / "inside.h5"
    sitk.WriteTransform(bspline_transform(), str(path))
    inside = homogeneous(np.diag([2.0, 2.0, 2.0]), (-40.0, -30.0, -20.0))
    deformation = deformation_from_file(path, inside, (41, 31, 21), grid_spacing_mm=2.0)
    assert not any("B-spline's domain" in w for w in deformation.warnings)


FIXED_IJK_TO_LPS = homogeneous(np.diag([1.2, 1.2, 2.5]), (-60.0, -50.0, -40.0))
FIXED_DIMS = (100, 84, 32)


def composite(name: str) -> sitk.Transform:
    bspline = bspline_transform(seed=2)
    if name == "bspline":
        return bspline
    affine = sitk.AffineTransform(3)
    affine.SetMatrix([1.05, 0.02, 0.0, -0.01, 0.97, 0.03, 0.0, 0.01, 1.02])
    affine.SetTranslation((2.0, -1.0, 1.5))
    affine.SetCenter((5.0, 0.0, -3.0))
    rigid = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.05, -0.03, 0.08, (1.0, 2.0, -1.0))
    # ITK applies the last listed transform first
    if name == "bulk-affine-then-bspline":
        return sitk.CompositeTransform([bspline, affine])
    if name == "bspline-rigid":
        # nothing before the B-spline: the tensor product, with the rigid part's matrix applied to it
        return sitk.CompositeTransform([rigid, bspline])
    return sitk.CompositeTransform([rigid, bspline, affine if name == "affine-bspline-rigid" else rigid])


@pytest.mark.parametrize(
    "name", ["bspline", "bulk-affine-then-bspline", "bspline-rigid", "affine-bspline-rigid", "rigid-bspline-rigid"]
)
@pytest.mark.parametrize("extension", [".h5", ".tfm"])
def test_bspline_file_sampled_on_the_fixed_grid_equals_itk(tmp_path, name, extension):
    transform = composite(name)
    path = tmp_path / f"t{extension}"
    sitk.WriteTransform(transform, str(path))
    deformation = deformation_from_file(path, FIXED_IJK_TO_LPS, FIXED_DIMS, grid_spacing_mm=(1.2, 1.2, 2.5))
    grid = deformation.grid
    assert not deformation.exact and deformation.pre_deformation_matrix is None
    assert grid.dimensions == FIXED_DIMS
    np.testing.assert_allclose(grid.index_to_lps, FIXED_IJK_TO_LPS, rtol=0, atol=1e-12)
    expected = itk_field(transform, grid.index_to_lps, grid.dimensions)
    assert np.abs(grid.vectors_lps - expected).max() < EXACT_MM
    # the fixed image reaches past the B-spline's domain (x up to 58.8 mm against 50 mm)
    assert any("outside the B-spline's domain" in w and "zero" in w for w in deformation.warnings)


def bspline_node(scene, origin_ras, direction_ras, spacing, dims, *, bulk_ras=None, seed=0):
    """A from-parent vtkOrientedBSplineTransform node, zero border (Slicer's mode for B-splines from files)."""
    transform = slicer.vtkOrientedBSplineTransform()
    coefficients = vtk.vtkImageData()
    coefficients.SetDimensions(*dims)
    coefficients.SetOrigin(*origin_ras)
    coefficients.SetSpacing(*spacing)
    coefficients.AllocateScalars(vtk.VTK_DOUBLE, 3)
    values = numpy_support.vtk_to_numpy(coefficients.GetPointData().GetScalars())
    values[:] = np.random.default_rng(seed).uniform(-3.0, 3.0, values.shape)
    transform.SetCoefficientData(coefficients)
    transform.SetBorderModeToZero()
    direction = np.eye(4)
    direction[:3, :3] = direction_ras
    transform.SetGridDirectionMatrix(vtk_matrix(direction))
    if bulk_ras is not None:
        transform.SetBulkTransformMatrix(vtk_matrix(bulk_ras))
    node = scene.AddNewNodeByClass("vtkMRMLBSplineTransformNode")
    node.SetAndObserveTransformFromParent(transform)
    return node


def vtk_from_world_lps(node, points_lps):
    transform = vtk.vtkGeneralTransform()
    node.GetTransformFromWorld(transform)
    points_ras = geometry.lps_to_ras_points(points_lps)
    return geometry.ras_to_lps_points(np.array([transform.TransformDoublePoint(*p) for p in points_ras]))


NODES = {
    "aligned": (np.eye(3), None),
    "oblique-control-grid": (rotation([1, 0, 1], 0.3), None),
    "with-bulk": (np.eye(3), homogeneous(rotation([0, 0, 1], 0.1) * 1.03, (2.0, -3.0, 1.0))),
}


@pytest.mark.parametrize("name", sorted(NODES))
def test_slicer_bspline_node_equals_vtk_at_every_grid_point(name):
    direction_ras, bulk_ras = NODES[name]
    scene = new_scene()
    node = bspline_node(scene, (-90.0, -80.0, -70.0), direction_ras, (30.0, 35.0, 40.0), (7, 6, 5), bulk_ras=bulk_ras)
    deformation = deformation_from_transform_node(node, FIXED_IJK_TO_LPS, FIXED_DIMS)
    assert not deformation.exact
    points = grid_points(deformation.grid)
    mapped = deformation.item("1.2.3").map_points(points)
    assert np.abs(mapped - vtk_from_world_lps(node, points)).max() < EXACT_MM
