"""The two registration IODs: Spatial Registration (66.1) and Deformable Spatial Registration (66.3).

Their SOP classes, the attribute tables and inheritance rules, references, Vector Grid Data, the
reader (file -> :class:`~DicomRegSaveLib.model.Registration`) and the text dump.
"""

__all__ = [
    "dump",
    "reader",
    "references",
    "sop",
    "tags",
    "vector_grid_data",
]
