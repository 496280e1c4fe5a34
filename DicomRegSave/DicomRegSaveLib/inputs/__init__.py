"""What an export reads.

series (one image series stacked into a voxel grid, its instances found by the ground's
file_walker), lookup (a series found by SOP Instance UIDs, as Slicer knows a volume),
transform_files (a transform file -> Deformation: ITK files read by itk_transforms without VTK,
displacement field headers by field_headers, the rest through Slicer's reader), transform_writer and
field_writer (a registration item back to a transform or displacement field file), sampledata (the
demo's phantom).
"""

__all__ = [
    "field_headers",
    "field_writer",
    "itk_transforms",
    "lookup",
    "sampledata",
    "series",
    "transform_files",
    "transform_writer",
]
