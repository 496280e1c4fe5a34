"""What an export reads.

series (one image series stacked into a voxel grid, its instances found by the ground's
file_walker), lookup (a series found by SOP Instance UIDs, as Slicer knows a volume),
transform_files and field_writer (transform and displacement field files), sampledata (the demo's
phantom).
"""
