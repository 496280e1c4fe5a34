"""DicomRegSave engine: DICOM Deformable Spatial Registration export and import.

Slicer-free: importable in plain Python and inside 3D Slicer's embedded Python.
"""

__version__ = "0.1.0"

#: Implementation Version Name (0002,0013) of the files and associations DicomRegSave makes: the
#: product and its version, within the 16 characters of SH (dots dropped if it would not fit).
IMPLEMENTATION_VERSION_NAME = (
    f"DicomRegSave{__version__}"
    if len(f"DicomRegSave{__version__}") <= 16
    else f"DicomRegSave{__version__.replace('.', '')}"[:16]
)
