"""Giving back the memory-mapped pages of a DICOM file that a consumer has finished with.

:mod:`.dicom_file` parses files from a read-only memory map, so Vector Grid Data is a view of the
page cache. Every page of it that is read becomes part of the process's resident memory and stays
there while the dataset lives, a second copy of the field beside whatever the consumer made of it
(a transform node's grid, say). A consumer that goes through the field in order tells the
operating system, part by part, that it no longer needs what it has read; the pages leave the
process's resident memory, and reading them again fetches them from the page cache (the file is
mapped read-only, so the values cannot change).
"""

from __future__ import annotations

import mmap

import numpy as np


def release_mapped_pages(view: np.ndarray) -> None:
    """Drop the whole pages inside `view` from this process's resident memory, if `view` is a
    C-contiguous view of a file memory-mapped read-only (as Vector Grid Data read by
    :mod:`.dicom_file` is).

    Anything else (an array of its own, bytes inflated from a deflated file, big-endian vectors
    converted to native order, a writable or copy-on-write mapping, whose pages may hold changes)
    is left alone, as everything is where the operating system has no ``madvise`` (Windows).
    """
    mapping = _read_only_mapping(view)
    if mapping is None or not hasattr(mapping, "madvise") or not view.flags.c_contiguous:
        return
    start = view.__array_interface__["data"][0] - np.frombuffer(mapping, dtype=np.uint8).__array_interface__["data"][0]
    first_page = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE
    end_page = (start + view.nbytes) // mmap.PAGESIZE * mmap.PAGESIZE
    if 0 <= first_page < end_page <= len(mapping):
        mapping.madvise(mmap.MADV_DONTNEED, first_page, end_page - first_page)


def _read_only_mapping(view: np.ndarray) -> mmap.mmap | None:
    """The read-only memory map that `view`'s memory belongs to, found through its chain of bases."""
    base: object = view
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    if not isinstance(base, mmap.mmap) or base.closed or not hasattr(mmap, "MADV_DONTNEED"):
        return None
    with memoryview(base) as exported:
        return base if exported.readonly else None
