"""DicomRegSave engine: DICOM Deformable Spatial Registration export and import.

Slicer-free: importable in plain Python and inside 3D Slicer's embedded Python.
"""

__version__ = "0.1.0"
