"""Exceptions raised by the engine.

Every message says what is wrong, where (node, file, tag) and what to do about it, so that the
command line and the Slicer module can show it to a user as it is.
"""

from __future__ import annotations

import os
from pathlib import Path


class DicomRegSaveError(Exception):
    """Base class of all errors that the engine reports to a user."""


class InvalidRegistrationError(DicomRegSaveError, ValueError):
    """The registration (grid, matrices, references) cannot be encoded as the standard requires."""


class DicomInputError(DicomRegSaveError):
    """A DICOM image input is missing, unreadable or ambiguous."""


class TransformInputError(DicomRegSaveError):
    """A transform (file or MRML node) cannot be read or is of an unsupported kind."""


class OutputError(DicomRegSaveError):
    """The output file cannot be written (exists already, folder not writable, too large)."""


class OutputExistsError(OutputError):
    """The output file exists and replacing it was not allowed; `path` is the user's file, so that
    each front end can say how to allow replacing it (the command's --force, the panel's checkbox)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path} exists already. Choose another name, or allow replacing the existing file.")


class RegistrationChoiceError(DicomRegSaveError, LookupError):
    """No item, or several items, of a registration fit what was asked; the message lists every item."""


class MalformedDicomError(DicomRegSaveError, ValueError):
    """A DICOM file (a REG or an image) cannot be read, or one of its elements cannot be decoded.

    The message names the file, the element (tag and keyword) and the cause.
    """


class NotDicomError(MalformedDicomError):
    """The file is not DICOM at all (no DICM prefix and no recognisable data set)."""


class OperationCancelled(DicomRegSaveError):
    """Raised by a progress callback to cancel an operation (nothing is written)."""


class ManifestError(DicomRegSaveError):
    """A batch manifest cannot be read or has a column or value the export does not take."""


class SendError(DicomRegSaveError):
    """The files could not be sent: peer unreachable, association rejected or aborted, echo failed."""


class QualityInputError(DicomRegSaveError):
    """An input of the registration quality check (a landmark file or markups node, the volumes) is unusable."""


def require_type(name: str, value: object, *types: type) -> None:
    """Raise TypeError naming the argument `name` unless `value` is an instance of one of `types`.

    For the public functions' arguments: a wrong type is a programming error, not bad input.
    """
    if not isinstance(value, types):
        expected = " or ".join(t.__name__ for t in types)
        raise TypeError(f"argument {name!r} must be {expected}, not {type(value).__name__}")
