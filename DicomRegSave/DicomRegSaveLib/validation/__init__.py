"""Checks of a REG against the standard: the IOD's own rules, references across files, and dicom3tools."""
