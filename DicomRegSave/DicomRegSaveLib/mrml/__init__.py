"""Slicer MRML nodes <-> the registration model (imports ``slicer``: the application's or slicer-core's)."""

__all__ = [
    "deformation",
    "nodes",
]
