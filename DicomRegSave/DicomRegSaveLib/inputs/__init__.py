"""What an export reads.

walker (the one file walker: the DICOM instances in the files and folders a user names), series
(one image series stacked into a voxel grid), lookup (a series found by SOP Instance UIDs, as
Slicer knows a volume), transform_files and field_writer (transform and displacement field files),
sampledata (the demo's phantom).
"""
