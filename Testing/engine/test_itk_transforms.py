"""itk_transforms.py: ITK transform files read without VTK, proven against Slicer's reader (slicer-core's
vtkMRMLTransformStorageNode) and ITK itself on files written by SimpleITK; exports that need neither
VTK nor Slicer never import them.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import vtk

from DicomRegSaveLib import geometry
from DicomRegSaveLib.inputs.itk_transforms import read_parts
from DicomRegSaveLib.inputs.transform_files import deformation_from_file, read_transform_file
from DicomRegSaveLib.mrml.deformation import deformation_from_transform_node
from DicomRegSaveLib.transform_chain import FieldPart, LinearPart
from itk_files import bspline_transform
from mrml_helpers import homogeneous, new_scene

FIXED_IJK_TO_LPS = homogeneous(np.diag([1.2, 1.2, 2.5]), (-40.0, -40.0, -30.0))
FIXED_DIMS = (60, 60, 30)
#: the unit quaternion (x, y, z, w) of a rotation by about 0.55 rad
VERSOR = (0.1, -0.2, 0.15, float(np.sqrt(1 - 0.0725)))


def euler(zyx: bool = False) -> sitk.Transform:
    transform = sitk.Euler3DTransform((10.0, -20.0, 30.0), 0.1, -0.2, 0.3, (4.0, 5.0, -6.0))
    transform.SetComputeZYX(zyx)
    return transform


def affine() -> sitk.Transform:
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([1.1, 0.1, 0.0, 0.0, 0.9, 0.05, 0.03, 0.0, 1.05])
    transform.SetTranslation((1.0, 2.0, 3.0))
    transform.SetCenter((5.0, 6.0, 7.0))
    return transform


def scale() -> sitk.Transform:
    transform = sitk.ScaleTransform(3, (1.1, 0.9, 1.3))
    transform.SetCenter((3.0, 4.0, 5.0))
    return transform


LINEAR = {
    "Euler3D": lambda: euler(),
    "Euler3D-ZYX": lambda: euler(zyx=True),
    "Versor": lambda: sitk.VersorTransform(VERSOR, (1.0, 2.0, 3.0)),
    "VersorRigid3D": lambda: sitk.VersorRigid3DTransform(VERSOR, (4.0, 5.0, 6.0), (1.0, 2.0, 3.0)),
    "Similarity3D": lambda: sitk.Similarity3DTransform(1.2, VERSOR, (4.0, 5.0, 6.0), (1.0, 2.0, 3.0)),
    "ScaleVersor3D": lambda: sitk.ScaleVersor3DTransform((1.1, 0.9, 1.2), VERSOR, (4.0, 5.0, 6.0), (1.0, 2.0, 3.0)),
    "Affine": affine,
    "Translation": lambda: sitk.TranslationTransform(3, (1.0, -2.0, 3.0)),
    "Scale": scale,
    "Composite": lambda: sitk.CompositeTransform([euler(), affine(), scale()]),
}


def write(transform: sitk.Transform, path: Path) -> Path:
    sitk.WriteTransform(transform, str(path))
    return path


def matrix_product(parts) -> np.ndarray:
    assert all(isinstance(part, LinearPart) for part in parts)
    matrix = np.eye(4)
    for part in parts:
        matrix = part.matrix_lps @ matrix
    return matrix


def slicer_from_world_lps(node, points_lps: np.ndarray) -> np.ndarray:
    """Slicer's from-world mapping of LPS points, evaluated in double precision."""
    transform = vtk.vtkGeneralTransform()
    node.GetTransformFromWorld(transform)
    points_ras = geometry.lps_to_ras_points(points_lps)
    return geometry.ras_to_lps_points(np.array([transform.TransformDoublePoint(*p) for p in points_ras]))


POINTS_LPS = np.random.default_rng(3).uniform(-200.0, 200.0, (200, 3))


@pytest.mark.parametrize(
    ("name", "extension"),
    # ITK's MATLAB writer stores no parts of a composite
    [(n, e) for n in sorted(LINEAR) for e in (".tfm", ".txt", ".mat", ".h5") if (n, e) != ("Composite", ".mat")],
)
def test_linear_files_read_as_slicer_and_itk_read_them(tmp_path, name, extension):
    transform = LINEAR[name]()
    path = write(transform, tmp_path / f"t{extension}")
    parts = read_parts(path, extension)
    matrix = matrix_product(parts)
    mapped = POINTS_LPS @ matrix[:3, :3].T + matrix[:3, 3]
    slicer_mapped = slicer_from_world_lps(read_transform_file(path, new_scene()), POINTS_LPS)
    itk_mapped = np.array([transform.TransformPoint(p.tolist()) for p in POINTS_LPS])
    assert np.abs(mapped - slicer_mapped).max() < 1e-9
    assert np.abs(mapped - itk_mapped).max() < 1e-9


def test_float_transforms_are_read_in_double_precision_as_slicer_reads_them(tmp_path):
    path = write(affine(), tmp_path / "double.tfm")
    text = path.read_text().replace("AffineTransform_double_3_3", "AffineTransform_float_3_3")
    float_path = tmp_path / "float.tfm"
    float_path.write_text(text)
    matrix = matrix_product(read_parts(float_path, ".tfm"))
    slicer_mapped = slicer_from_world_lps(read_transform_file(float_path, new_scene()), POINTS_LPS)
    assert np.abs(POINTS_LPS @ matrix[:3, :3].T + matrix[:3, 3] - slicer_mapped).max() < 1e-9


@pytest.mark.parametrize("extension", [".tfm", ".h5"])
def test_linear_file_gives_the_deformation_slicer_gives(tmp_path, extension):
    path = write(sitk.CompositeTransform([euler(), affine()]), tmp_path / f"t{extension}")
    mine = deformation_from_file(path, FIXED_IJK_TO_LPS, FIXED_DIMS)
    node = read_transform_file(path, new_scene())
    slicers = deformation_from_transform_node(node, FIXED_IJK_TO_LPS, FIXED_DIMS)
    assert mine.linear and slicers.linear and mine.exact
    assert mine.pre_deformation_matrix is None and slicers.pre_deformation_matrix is None
    np.testing.assert_allclose(
        mine.post_deformation_matrix.matrix_lps, slicers.post_deformation_matrix.matrix_lps, rtol=0, atol=1e-12
    )
    np.testing.assert_array_equal(mine.grid.index_to_lps, slicers.grid.index_to_lps)


def field_composite(path: Path) -> Path:
    """An HDF5 composite [rigid, field, affine]: ITK applies the affine, then the field, then the rigid."""
    rng = np.random.default_rng(7)
    image = sitk.GetImageFromArray(rng.uniform(-2.0, 2.0, (9, 10, 11, 3)), isVector=True)
    image.SetSpacing((4.0, 5.0, 6.0))
    image.SetOrigin((-30.0, -35.0, -25.0))
    image.SetDirection(geometry_rotation().ravel().tolist())
    rigid = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.02, -0.01, 0.03, (1.0, -1.0, 2.0))
    shift = sitk.TranslationTransform(3, (1.5, -0.5, 0.25))
    return write(sitk.CompositeTransform([rigid, sitk.DisplacementFieldTransform(image), shift]), path)


def geometry_rotation() -> np.ndarray:
    angle = 0.3
    return np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])


def test_composite_with_a_displacement_field_reads_as_slicer_reads_it(tmp_path):
    path = field_composite(tmp_path / "field.h5")
    parts = read_parts(path, ".h5")
    assert [type(part) for part in parts] == [LinearPart, FieldPart, LinearPart]
    mine = deformation_from_file(path, FIXED_IJK_TO_LPS, FIXED_DIMS)
    slicers = deformation_from_transform_node(read_transform_file(path, new_scene()), FIXED_IJK_TO_LPS, FIXED_DIMS)
    assert mine.exact and slicers.exact
    for ours, theirs in [
        (mine.pre_deformation_matrix, slicers.pre_deformation_matrix),
        (mine.post_deformation_matrix, slicers.post_deformation_matrix),
    ]:
        np.testing.assert_allclose(ours.matrix_lps, theirs.matrix_lps, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mine.grid.index_to_lps, slicers.grid.index_to_lps, rtol=0, atol=1e-9)
    assert np.array_equal(mine.grid.vectors_lps, slicers.grid.vectors_lps)
    assert [w for w in mine.warnings if "outside" in w] == [w for w in slicers.warnings if "outside" in w]


def test_inverse_flagged_and_unknown_transforms_are_left_to_slicer(tmp_path):
    forward = write(bspline_transform(), tmp_path / "forward.tfm")
    inverse = tmp_path / "inverse.tfm"
    inverse.write_text(forward.read_text().replace("BSplineTransform_double", "InverseBSplineTransform_double"))
    assert read_parts(forward, ".tfm") is not None
    assert read_parts(inverse, ".tfm") is None
    kernel = tmp_path / "kernel.tfm"
    kernel.write_text(
        "#Insight Transform File V1.0\n#Transform 0\nTransform: KernelTransform_double_3_3\nParameters: 0\n"
    )
    assert read_parts(kernel, ".tfm") is None
    # read by Slicer, which inverts the B-spline
    deformation = deformation_from_file(inverse, FIXED_IJK_TO_LPS, FIXED_DIMS, grid_spacing_mm=8.0)
    node = read_transform_file(inverse, new_scene())
    from_parent = node.GetTransformFromParent()
    from_parent.Update()
    assert from_parent.GetInverseFlag() == 1
    points = deformation.grid.index_to_lps[:3, :3] @ np.array([[3, 4, 2]]).T + deformation.grid.index_to_lps[:3, 3:]
    np.testing.assert_allclose(
        deformation.item("1.2.3").map_points(points.T), slicer_from_world_lps(node, points.T), atol=1e-3
    )


def test_exports_of_linear_files_and_raw_fields_never_import_vtk_or_slicer(case, tmp_path):
    write(euler(), tmp_path / "rigid.tfm")
    write(affine(), tmp_path / "affine.h5")
    for transform in (tmp_path / "rigid.tfm", tmp_path / "affine.h5", case.field_path):
        output = tmp_path / f"{transform.name}.dcm"
        arguments = ["export", "--transform", transform, "--fixed", case.fixed_dir, "--moving", case.moving_dir]
        arguments += ["--output", output]
        program = (
            "import sys\n"
            "from DicomRegSaveLib.cli.main import main\n"
            "try:\n"
            f"    main({[str(a) for a in arguments]!r})\n"
            "except SystemExit as end:\n"
            "    assert not end.code, end.code\n"
            "print(' '.join(sorted(sys.modules)))\n"
        )
        result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        modules = result.stdout.splitlines()[-1].split()
        assert output.is_file()
        assert "DicomRegSaveLib.inputs.transform_files" in modules
        imported = [m for m in modules if m.split(".")[0] in ("vtk", "vtkmodules", "slicer")]
        assert imported == [], f"{transform.name}: {imported[:5]}"
