"""The 3D Slicer front end's logic (no Qt): export offers, tag fields, subject hierarchy, loading and linking."""

__all__ = [
    "attributes",
    "export",
    "fields",
    "hierarchy",
    "importing",
    "linking",
    "offer",
    "provenance",
    "quality",
]
