"""Slicer's, VTK's and ITK's log text folded into the engine's messages: only what explains the failure,
without timestamps, file:line, object addresses or the lines that only say that reading failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from DicomRegSaveLib.errors import OutputError
from DicomRegSaveLib.native_log import summarize

#: What Slicer printed on stderr reading a garbage .nii (vtkLogger lines that only say that reading failed).
GARBAGE_NII = (
    "2026-12-02 18:27:09.155 (   1.499s) [    7F9392458B80] vtkMRMLStorageNode.cxx:1239   ERR| "
    "vtkMRMLTransformStorageNode (0x555c06c0e4e0): vtkMRMLStorageNode::ReadData: Failed to read node (null) "
    "((null)) from filename='bad.nii'\n"
    "2026-12-02 18:27:09.155 (   1.499s) [    7F9392458B80]vtkSlicerTransformLogic:156    ERR| "
    "vtkSlicerTransformLogic (0x555c06a78f50): vtkSlicerTransformLogic::AddTransform: Failed to read transform "
    "from file: bad.nii\n"
)

#: ... reading a truncated MetaImage header: MetaIO's own lines first.
TRUNCATED_MHA = (
    "ElementDataFile required and not defined.\nMetaObject: Read: MET_Read Failed\n"
    "MetaImage: M_Read: Error parsing file\nMetaImage: Read: Cannot parse file\n" + GARBAGE_NII
)

#: ... reading an ITK text transform with too few parameters (one ITK exception, dumped twice).
_ITK_EXCEPTION = (
    'ITK exception:\n\nitk::ExceptionObject (0x5624e0038de0)\nLocation: "unknown" \n'
    "File: /project/Slicer/wheelbuild/deps-install/include/ITK-5.4/itkMatrixOffsetTransformBase.hxx\nLine: 535\n"
    "Description: ITK ERROR: AffineTransform(0x5624e00344c0): Error setting parameters: parameters array size (3) "
    "is less than expected  (VInputDimension * VOutputDimension + VOutputDimension)  (3 * 3 + 3 = 12)\n\n\n"
)
SHORT_TFM = (
    "2026-12-02 18:27:11.542 (   0.952s) [    7F65D3628B80]vtkMRMLTransformStorage:158    ERR| "
    "vtkMRMLTransformStorageNode (0x5624e00a64e0): vtkMRMLTransformStorageNode::ReadFromITKv3BSplineTransformFile: "
    "Error while reading transform file '/tmp/msg/bad.tfm'. "
    + _ITK_EXCEPTION
    + "2026-12-02 18:27:11.542 (   0.952s) [    7F65D3628B80]vtkMRMLTransformStorage:374    ERR| "
    "vtkMRMLTransformStorageNode (0x5624e00a64e0): vtkMRMLTransformStorageNode::ReadFromTransformFile: Error while "
    "reading transform file '/tmp/msg/bad.tfm'. " + _ITK_EXCEPTION + GARBAGE_NII
)

#: A storage node's message collection for the same file: "- Error: " entries.
SHORT_TFM_MESSAGES = (
    "- Error: Error while reading transform file '/tmp/msg/bad.tfm'. "
    + _ITK_EXCEPTION
    + "- Error: Failed to read transform from file: '/tmp/msg/bad.tfm'\n"
    "- Error: Failed to read node (null) ((null)) from filename='bad.tfm'\n"
)

#: ... reading a .h5 that is no HDF5 file: ITK lists the IO classes it tried and advises programmers.
_NO_TRANSFORM_IO = (
    'ITK exception:\n\nitk::ExceptionObject (0x55a2d896ba20)\nLocation: "unknown" \n'
    "File: /project/Slicer/wheelbuild/ITK/Modules/IO/TransformBase/src/itkTransformFileReader.cxx\nLine: 128\n"
    "Description: ITK ERROR: TransformFileReaderTemplate(0x55a2d8c5c180): Could not create Transform IO object "
    "for reading file /tmp/r2/bad.h5\n  Tried to create one of the following:\n    HDF5TransformIOTemplate\n"
    "    HDF5TransformIOTemplate\n    MatlabTransformIOTemplate\n    MatlabTransformIOTemplate\n"
    "    TxtTransformIOTemplate\n    TxtTransformIOTemplate\n  You probably failed to set a file suffix, or\n"
    "    set the suffix to an unsupported type.\n\n\n\n"
)
NOT_HDF5_MESSAGES = (
    "- Error: Error while reading transform file '/tmp/r2/bad.h5'. "
    + _NO_TRANSFORM_IO
    + "- Error: Error while reading transform file '/tmp/r2/bad.h5'. "
    + _NO_TRANSFORM_IO
    + "- Error: Failed to read transform from file: '/tmp/r2/bad.h5'\n"
    "- Error: Failed to read node (null) ((null)) from filename='bad.h5'\n"
    "- Error: Failed to read transform from file: bad.h5\n"
)

ITK_DESCRIPTION = (
    "Error setting parameters: parameters array size (3) is less than expected "
    "(VInputDimension * VOutputDimension + VOutputDimension) (3 * 3 + 3 = 12)"
)


@pytest.mark.parametrize(
    ("text", "summary"),
    [
        (GARBAGE_NII, ""),
        (
            TRUNCATED_MHA,
            "ElementDataFile required and not defined; MET_Read Failed; Error parsing file; Cannot parse file",
        ),
        (SHORT_TFM, ITK_DESCRIPTION),
        (SHORT_TFM_MESSAGES, ITK_DESCRIPTION),
        (NOT_HDF5_MESSAGES, "Could not create Transform IO object for reading file /tmp/r2/bad.h5"),
        ("\x1b[31mvtkObject (0x55d0): Something specific went wrong.\x1b[0m\n", "Something specific went wrong"),
    ],
    ids=["restated-failure-only", "metaio", "itk-exception", "message-collection", "itk-io-advice", "colours"],
)
def test_summary_keeps_only_the_explanation(text, summary):
    assert summarize(text) == summary


def test_a_warning_before_the_failure_is_dropped():
    text = (
        "WARNING: In /project/Slicer/wheelbuild/ITK/Modules/IO/Meta/src/itkMetaImageIO.cxx, line 658\n"
        "MetaImageIO (0x55af0950dd10): Unsupported or empty metaData item NRRD_measurement frame of type "
        "St6vectorIS_IdSaIdEESaIS1_EEfound, won't be written to image file\n\n"
        "2026-12-02 18:32:01.764 (   2.735s) [    7FF9A87D9B80]vtkMRMLTransformStorage:749    ERR| "
        "vtkMRMLTransformStorageNode (0x55af0950c7c0): vtkMRMLTransformStorageNode::WriteToImageFile: Failed to "
        "save grid transform to file: '/out/.t.mha.dicomregsave-vm-1-abcdef12.partial.mha'. " + _ITK_EXCEPTION
    ).replace(
        "Description: ITK ERROR: AffineTransform(0x5624e00344c0): Error setting parameters: parameters array size "
        "(3) is less than expected  (VInputDimension * VOutputDimension + VOutputDimension)  (3 * 3 + 3 = 12)",
        "Description: ITK ERROR: MetaImageIO(0x55af0950dd10): File cannot be written: /out/x.mha\nReason: No such "
        "file or directory",
    )
    assert summarize(text) == "File cannot be written: /out/x.mha; No such file or directory"


def test_a_failed_slicer_write_names_the_users_file_not_the_temporary_one(tmp_path):
    import slicer
    import vtk

    from DicomRegSaveLib.mrml.nodes import write_with_storage_node

    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "t")
    image = vtk.vtkImageData()
    image.SetDimensions(2, 2, 2)
    image.AllocateScalars(vtk.VTK_DOUBLE, 3)
    grid = slicer.vtkOrientedGridTransform()
    grid.SetDisplacementGridData(image)
    node.SetAndObserveTransformFromParent(grid)
    storage = slicer.vtkMRMLTransformStorageNode()
    scene.AddNode(storage)
    missing = tmp_path / "missing"
    storage.SetFileName(str(missing / ".t.mha.dicomregsave-host-1-abcdef12.partial.mha"))
    target = missing / "t.mha"
    with pytest.raises(OutputError) as refused:
        write_with_storage_node(storage, node, target, "transform")
    assert str(refused.value) == (
        f"Slicer could not write the transform to {target}: File cannot be written: {target}; "
        "No such file or directory."
    )
    assert not Path(missing).exists()
