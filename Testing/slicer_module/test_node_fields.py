"""A Slicer grid node's field to Vector Grid Data and back (headless, slicer-core): bit for bit,
converted between RAS and LPS plane by plane on the way out, the file's pages given back on the way in.

The written vectors are compared with the node's at the same physical point (grid index -> LPS from
the written Image Position / Orientation, back to the node's index), so a grid that the writer
re-indexes (left-handed, axis-aligned) is checked against the node point by point.
"""

import mmap
import tracemalloc

import numpy as np
import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian, generate_uid
from vtk.util import numpy_support

import reg_builders as rb
from DicomRegSaveLib import geometry
from DicomRegSaveLib.export.pipeline import ExportOptions, create_dataset, write_dataset
from DicomRegSaveLib.mapped_pages import release_mapped_pages
from DicomRegSaveLib.model import ImageReference, Registration
from DicomRegSaveLib.mrml.deformation import deformation_from_transform_node
from DicomRegSaveLib.reg import tags
from DicomRegSaveLib.reg.reader import read_registration
from DicomRegSaveLib.slicer.importing import import_registration
from mrml_helpers import LEFT_HANDED, OBLIQUE, grid_node, homogeneous, new_scene, random_vectors

CT = "1.2.840.10008.5.1.4.1.1.2"
DIMS = (9, 8, 7)
SPACING = (4.0, 5.0, 6.0)
ORIGIN_RAS = (-20.0, 15.0, -30.0)
FLIPPED_K = np.diag([1.0, 1.0, -1.0])
LPS_FROM_RAS = np.array([-1.0, -1.0, 1.0], dtype=np.float32)


def node_vectors_ras(dims, seed=0, dtype=np.float32) -> np.ndarray:
    """Random vectors with the values whose bits a careless conversion changes: signed zeros, subnormals."""
    vectors = random_vectors(dims, seed=seed)
    vectors[0, 0, 0] = [-0.0, 0.0, np.float32(1e-40)]
    vectors[-1, -1, -1] = [np.float32(-1e-40), -0.0, 0.0]
    return vectors.astype(dtype)


def write_reg_from_node(node, path, **options):
    """The Slicer export's engine steps: node -> Deformation -> REG file."""
    fixed = rb.make_ct_series(1)[0]
    ijk_to_lps = homogeneous(np.diag([1.5, 1.5, 3.0]), (-30.0, -25.0, -35.0))
    deformation = deformation_from_transform_node(node, ijk_to_lps, (40, 36, 20), **options)
    assert deformation.exact
    moving_frame = generate_uid()
    reference = ImageReference(CT, generate_uid(), generate_uid(), generate_uid(), moving_frame)
    item = deformation.item(moving_frame, referenced_images=[reference])
    registration = Registration(fixed.FrameOfReferenceUID, [item])
    return write_dataset(create_dataset(registration, fixed, ExportOptions()), path)


def node_index_to_lps(direction_ras) -> np.ndarray:
    return geometry.ras_to_lps_index_matrix(homogeneous(np.asarray(direction_ras) * SPACING, ORIGIN_RAS))


def assert_written_like_node(path, index_to_lps_of_node, expected_lps_kji):
    """Every written vector has the bits of the node's vector (LPS) at the same physical point."""
    grid_item = pydicom.dcmread(path).DeformableRegistrationSequence[-1].DeformableRegistrationGridSequence[0]
    n_i, n_j, n_k = (int(n) for n in grid_item.GridDimensions)
    written = np.frombuffer(grid_item.VectorGridData, dtype="<u4").reshape(n_k, n_j, n_i, 3)
    orientation = np.array(grid_item.ImageOrientationPatient, dtype=float)
    row, column = orientation[:3], orientation[3:]
    written_index_to_lps = homogeneous(
        np.column_stack([row, column, np.cross(row, column)]) * np.array(grid_item.GridResolution, dtype=float),
        np.array(grid_item.ImagePositionPatient, dtype=float),
    )
    assert np.linalg.det(written_index_to_lps[:3, :3]) > 0, "DICOM grids are right-handed"
    k, j, i = np.meshgrid(np.arange(n_k), np.arange(n_j), np.arange(n_i), indexing="ij")
    written_to_node_index = np.linalg.inv(index_to_lps_of_node) @ written_index_to_lps
    index = np.stack([i, j, k, np.ones_like(i)], axis=-1) @ written_to_node_index.T
    node_index = np.rint(index[..., :3]).astype(int)
    np.testing.assert_allclose(index[..., :3], node_index, atol=1e-6)
    node_kji = (node_index[..., 2], node_index[..., 1], node_index[..., 0])
    flat = np.ravel_multi_index(node_kji, expected_lps_kji.shape[:3])
    assert np.unique(flat).size == flat.size == expected_lps_kji.size // 3
    expected = np.ascontiguousarray(expected_lps_kji, dtype=np.float32).view("<u4")
    assert np.array_equal(written, expected[node_kji])


@pytest.mark.parametrize(
    "direction_ras, axis_aligned",
    [(np.eye(3), False), (OBLIQUE, False), (LEFT_HANDED, False), (FLIPPED_K, True)],
    ids=["identity", "oblique", "left-handed", "axis-aligned-reversed"],
)
def test_reg_written_from_a_node_holds_its_vectors_in_lps_bit_for_bit(tmp_path, direction_ras, axis_aligned):
    vectors_ras = node_vectors_ras(DIMS)
    node = grid_node(new_scene(), ORIGIN_RAS, direction_ras, SPACING, vectors_ras)
    path = write_reg_from_node(node, tmp_path / "reg.dcm", axis_aligned=axis_aligned)
    assert_written_like_node(path, node_index_to_lps(direction_ras), vectors_ras * LPS_FROM_RAS)


def test_reg_from_a_float64_node_with_displacement_scale_and_shift_holds_them_rounded_once(tmp_path):
    vectors_ras = node_vectors_ras(DIMS, dtype=np.float64) * 1.1
    node = grid_node(new_scene(), ORIGIN_RAS, OBLIQUE, SPACING, vectors_ras)
    node.GetTransformFromParent().SetDisplacementScale(2.5)
    node.GetTransformFromParent().SetDisplacementShift(0.75)
    path = write_reg_from_node(node, tmp_path / "reg.dcm")
    expected = (vectors_ras * 2.5 + 0.75).astype(np.float32) * LPS_FROM_RAS
    assert_written_like_node(path, node_index_to_lps(OBLIQUE), expected)


def test_writing_a_node_field_makes_no_copy_of_it(tmp_path):
    dims = (128, 128, 128)
    field_bytes = 12 * 128**3
    vectors_ras = node_vectors_ras(dims)
    node = grid_node(new_scene(), ORIGIN_RAS, LEFT_HANDED, SPACING, vectors_ras)
    # highdicom's tables are loaded once per process (tens of MB of Python objects), not per export
    tags.standard_tables()
    tracemalloc.start()
    try:
        path = write_reg_from_node(node, tmp_path / "reg.dcm")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.5 * field_bytes, f"{peak / 2**20:.1f} MiB allocated writing a {field_bytes / 2**20:.0f} MiB field"
    assert_written_like_node(path, node_index_to_lps(LEFT_HANDED), vectors_ras * LPS_FROM_RAS)


def oblique_grid(seed: int) -> rb.GridSpec:
    vectors_lps = node_vectors_ras((5, 6, 7), seed=seed)
    row, column = OBLIQUE[:, 0], OBLIQUE[:, 1]
    return rb.GridSpec(
        origin_lps=(10.0, -20.0, 30.0), vectors_lps=vectors_lps, spacing_mm=(2.0, 2.5, 3.0), iop=(*row, *column)
    )


def grid_nodes(nodes):
    return [node for node in nodes if node.IsA("vtkMRMLGridTransformNode")]


def assert_node_holds_grid_in_ras(node, grid_lps):
    """The node's grid: the item's vectors in RAS bit for bit, on the item's grid geometry."""
    transform = node.GetTransformFromParent()
    image = transform.GetDisplacementGrid()
    vectors_ras = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    assert vectors_ras.dtype == np.float32
    expected = np.ascontiguousarray(grid_lps.vectors_lps * LPS_FROM_RAS).reshape(-1, 3)
    assert np.array_equal(vectors_ras.view("<u4"), expected.view("<u4"))
    direction = np.array([[transform.GetGridDirectionMatrix().GetElement(r, c) for c in range(3)] for r in range(3)])
    index_to_ras = homogeneous(direction * np.array(image.GetSpacing()), image.GetOrigin())
    np.testing.assert_allclose(index_to_ras, geometry.lps_to_ras_index_matrix(grid_lps.index_to_lps), atol=1e-12)


@pytest.mark.parametrize(
    "transfer_syntax",
    [ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian],
    ids=["little-endian", "big-endian", "deflated"],
)
def test_import_gives_the_node_the_file_vectors_in_ras_bit_for_bit(tmp_path, transfer_syntax):
    grid = oblique_grid(seed=4)
    case = rb.make_case(grid=grid, identity_item=True)
    if transfer_syntax == ExplicitVRBigEndian:
        # OF is not byte-swapped by pydicom; a big endian file carries big endian floats.
        case.item.DeformableRegistrationGridSequence[0].VectorGridData = grid.vectors_lps.astype(">f4").tobytes()
    case.dataset.file_meta.TransferSyntaxUID = transfer_syntax
    path = rb.write(case.dataset, tmp_path / "reg.dcm")

    result = import_registration(path, new_scene(), None, apply_to_moving=False)

    [node] = grid_nodes(result.nodes)
    item_grid = result.registration.choose_item().grid
    assert np.array_equal(item_grid.vectors_lps.view("<u4"), grid.vectors_lps.view("<u4"))
    assert_node_holds_grid_in_ras(node, item_grid)
    # The file's pages were given back while the node was filled; the item still reads the file's values.
    from_file = read_registration(path).choose_item().grid.vectors_lps
    assert np.array_equal(item_grid.vectors_lps.view("<u4"), from_file.view("<u4"))


def test_import_of_several_items_gives_each_chain_its_own_vectors(tmp_path):
    fixed = rb.make_ct_series(3)
    moving_items = []
    grids = [oblique_grid(seed=5), oblique_grid(seed=6)]
    for number, grid in enumerate(grids, start=2):
        moving = rb.make_ct_series(2, series_number=number, study_id=f"S{number}")
        moving_items.append(rb.ItemSpec(moving[0].FrameOfReferenceUID, moving, grid=grid))
    identity = rb.ItemSpec(
        fixed[0].FrameOfReferenceUID, fixed, registration_type=("125021", "DCM", "Frame of Reference Identity")
    )
    path = rb.write(rb.build_reg(fixed, [identity, *moving_items]), tmp_path / "reg.dcm")

    result = import_registration(path, new_scene(), None, apply_to_moving=False)

    assert len(result.items) == 2
    for loaded, grid in zip(result.items, grids):
        [node] = grid_nodes(loaded.nodes)
        assert np.array_equal(loaded.item.grid.vectors_lps.view("<u4"), grid.vectors_lps.view("<u4"))
        assert_node_holds_grid_in_ras(node, loaded.item.grid)


def test_pages_are_given_back_only_from_read_only_mappings(tmp_path):
    path = tmp_path / "pages.bin"
    path.write_bytes(np.arange(4 * mmap.PAGESIZE, dtype=np.uint8).tobytes())
    with open(path, "rb") as stream:
        read_only = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
    view = np.frombuffer(read_only, dtype=np.uint8)[100:]
    release_mapped_pages(view)
    assert np.array_equal(view, np.arange(100, 4 * mmap.PAGESIZE, dtype=np.uint8))
    with open(path, "r+b") as stream:
        copy_on_write = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_COPY)
    changed = np.frombuffer(copy_on_write, dtype=np.uint8)
    changed[:] = 7
    release_mapped_pages(changed)
    assert np.all(changed == 7), "changes held only in the process's pages must survive"
    own = np.full(4 * mmap.PAGESIZE, 9, dtype=np.uint8)
    release_mapped_pages(own)
    assert np.all(own == 9)
    del view, changed
    read_only.close()
    copy_on_write.close()
