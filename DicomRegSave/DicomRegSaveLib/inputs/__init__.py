"""What an export reads: DICOM image series (one file walker), transform and displacement field files."""
