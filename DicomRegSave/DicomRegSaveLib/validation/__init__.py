"""Checks of a REG against the standard.

report (the findings), iod_rules (the IOD's own rules that dciodvfy does not check), cross_file
(the REG against the image headers it references), dicom3tools (dciodvfy and dcentvfy), validate
(everything for one file and its images, found by file_walker).
"""

__all__ = [
    "cross_file",
    "dicom3tools",
    "iod_rules",
    "report",
    "validate",
]
