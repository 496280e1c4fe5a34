"""The 3D Slicer front end's logic (no Qt): export offers, tag fields, subject hierarchy, loading and linking."""
