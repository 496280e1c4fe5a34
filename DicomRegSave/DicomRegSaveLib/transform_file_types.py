"""The transform file types that the engine reads and writes, by extension (lower case).

One table for the readers (:mod:`inputs.transform_files`), the writers (:mod:`inputs.transform_writer`),
their messages and the command's help texts. It imports nothing, so that the command's parser can list
the types before numpy and the rest of the engine are loaded.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["FIELD_WRITE_TYPES", "ITK_TRANSFORM_TYPES", "READABLE_TYPES", "TRANSFORM_WRITE_TYPES", "listed"]

#: Transform file types that can be read: extension -> what the file holds.
READABLE_TYPES = {
    ".h5": "ITK transform (HDF5)",
    ".hdf5": "ITK transform (HDF5)",
    ".tfm": "ITK transform (text)",
    ".txt": "ITK transform (text)",
    ".mat": "ITK transform (MATLAB)",
    ".nrrd": "displacement field (NRRD)",
    ".nhdr": "displacement field (NRRD, detached header)",
    ".mha": "displacement field (MetaImage)",
    ".mhd": "displacement field (MetaImage, detached header)",
    ".nii": "displacement field (NIfTI)",
    ".nii.gz": "displacement field (NIfTI, compressed)",
}
#: ITK transform file types (the other readable types are displacement field images).
ITK_TRANSFORM_TYPES = (".h5", ".hdf5", ".tfm", ".txt", ".mat")
#: ITK transform file types that a registration item is written as (a composite transform).
TRANSFORM_WRITE_TYPES = (".h5", ".hdf5", ".tfm", ".txt")
#: Single-file displacement field types that a registration item is written as (float32).
FIELD_WRITE_TYPES = (".nrrd", ".mha", ".nii", ".nii.gz")


def listed(extensions: Iterable[str]) -> str:
    """Extensions as a help text lists them: ``.h5 .hdf5 .tfm``."""
    return " ".join(extensions)
