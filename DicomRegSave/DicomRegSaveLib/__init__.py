"""DicomRegSave engine: DICOM Spatial Registration (66.1) and Deformable Spatial Registration (66.3)
export, import, validation and quality checks.

No Qt: importable in plain Python and inside 3D Slicer's embedded Python. The flat modules are the
ground (errors, values, geometry, DICOM file access, the model, the file walker, transform chains and
B-splines); the packages build on them, lowest first: reg/ and mrml/ (MRML nodes <-> model),
validation/ and inputs/, export/ and qa/, then the front ends cli/ and slicer/
(Testing/engine/test_layering.py holds the rule). ``slicer`` (MRML classes: the application's, or
slicer-core's outside it) is imported only where nodes are made or read: mrml/, slicer/, and the
file readers and writers that go through Slicer's storage nodes.
"""

__version__ = "0.1.0"

#: Implementation Version Name (0002,0013) of the files and associations DicomRegSave makes: the
#: product and its version, within the 16 characters of SH (dots dropped if it would not fit).
IMPLEMENTATION_VERSION_NAME = (
    f"DicomRegSave{__version__}"
    if len(f"DicomRegSave{__version__}") <= 16
    else f"DicomRegSave{__version__.replace('.', '')}"[:16]
)
