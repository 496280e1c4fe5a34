"""Which DICOM series a Slicer volume node was loaded from, and whether the node is still where its images are.

Slicer's DICOM loaders leave the SOP Instance UIDs of a loaded series on the volume node
(``DICOM.instanceUIDs``); export and import both identify volumes by them. Coordinates: nodes are
RAS, DICOM is LPS (mm).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence

import numpy as np
import slicer
from pydicom.dataset import Dataset

from DicomRegSaveLib.dicom_file import SERIES_NUMBER_TAG, read_dicom_file
from DicomRegSaveLib.errors import DicomInputError, DicomRegSaveError
from DicomRegSaveLib.inputs.lookup import HeaderLookup, series_from_instance_uids
from DicomRegSaveLib.inputs.series import ImageSeries, read_image_series
from DicomRegSaveLib.mrml import nodes as mrml

#: Volume node attribute that Slicer's DICOM loaders fill with the SOP Instance UIDs, in slice order.
INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"

#: Largest distance (mm) between the voxel-grid corners of a volume node and of the DICOM series it
#: claims to come from, beyond which the node is not where the DICOM images are.
GEOMETRY_TOLERANCE_MM = 0.01


def no_dicom_origin_message(role: str, volume_node: slicer.vtkMRMLVolumeNode) -> str:
    """Why a volume without DICOM provenance cannot be referenced, and the two ways to proceed."""
    return (
        f"The {role} volume '{volume_node.GetName()}' was not loaded from DICOM (it has no "
        f"{INSTANCE_UIDS_ATTRIBUTE} attribute), so the registration cannot reference its images. Either choose "
        f"the DICOM file or folder of the {role} image in the DicomRegSave module, or first export the volume "
        "as a new DICOM series (right-click it in the Data module, 'Export to DICOM...', Scalar Volume), load "
        "that series and register with it."
    )


def instance_uids(volume_node: slicer.vtkMRMLVolumeNode) -> list[str]:
    """The SOP Instance UIDs a volume node was loaded from (empty if it has no DICOM origin)."""
    return (volume_node.GetAttribute(INSTANCE_UIDS_ATTRIBUTE) or "").split()


def scalar_volumes(scene: slicer.vtkMRMLScene) -> list[slicer.vtkMRMLVolumeNode]:
    """Every scalar volume node of the scene, in the order they were added."""
    collection = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]


def found(value: object) -> bool:
    """True if a header lookup answered with something (not ``None`` and not an empty path)."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def instance_header(
    header_lookup: HeaderLookup | None, uid: str, keywords: Sequence[str] | None = None
) -> Dataset | None:
    """The header of instance `uid` found by `header_lookup` (only `keywords` when it is read from a file).

    ``None`` when there is no lookup, the instance is unknown or its file cannot be read as DICOM.
    """
    header = None if header_lookup is None else header_lookup(uid)
    if not found(header):
        return None
    if isinstance(header, Dataset):
        return header
    try:
        return read_dicom_file(header, stop_before_pixels=True, specific_tags=list(keywords) if keywords else None)
    except DicomRegSaveError:
        return None


def image_series_for_volume(
    volume_node: slicer.vtkMRMLVolumeNode,
    role: str,
    header_lookup: HeaderLookup | None = None,
    files: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
) -> ImageSeries:
    """The DICOM image series of a volume: its chosen `files`/folder, else its ``DICOM.instanceUIDs``.

    Raises
    ------
    DicomInputError
        If the volume has no DICOM origin and no files were chosen (with how to proceed), if its
        instances cannot be found, or if the files are not one image series.
    """
    if files:
        return read_image_series(files, role)
    uids = instance_uids(volume_node)
    if not uids:
        raise DicomInputError(no_dicom_origin_message(role, volume_node))
    if header_lookup is None:
        raise DicomInputError(
            f"The {role} volume '{volume_node.GetName()}' was loaded from DICOM, but no DICOM database or folder "
            f"was given to find its {len(uids)} instances. Open the DICOM database, or choose the {role} image's "
            "DICOM folder."
        )
    return series_from_instance_uids(uids, header_lookup, role)


def geometry_mismatch_mm(volume_node: slicer.vtkMRMLVolumeNode, series: ImageSeries) -> float:
    """Largest distance (mm) from a corner voxel centre of the node to the nearest one of the series.

    Independent of index order (Slicer may order or flip axes differently), sensitive to any
    shift, rotation, crop or resampling of the node relative to where the DICOM images are.
    """
    ijk_to_lps, dimensions = mrml.volume_geometry(volume_node)
    node_corners = _corners(ijk_to_lps, dimensions)
    series_corners = _corners(series.ijk_to_lps, series.dimensions)
    distances = np.linalg.norm(node_corners[:, None, :] - series_corners[None, :, :], axis=2)
    return float(max(distances.min(axis=1).max(), distances.min(axis=0).max()))


def _corners(ijk_to_lps: np.ndarray, dimensions: Sequence[int]) -> np.ndarray:
    last = np.asarray(dimensions, dtype=np.float64) - 1
    index = np.array([[i, j, k] for i in (0, last[0]) for j in (0, last[1]) for k in (0, last[2])])
    return index @ ijk_to_lps[:3, :3].T + ijk_to_lps[:3, 3]


def database_series_numbers(
    study_instance_uid: str,
    series_for_study: Callable[[str], Sequence[str]],
    files_for_series: Callable[[str, int], Sequence[str]],
    file_value: Callable[[str, str], str],
) -> set[int]:
    """The Series Numbers of the series Slicer's DICOM database holds in a study (those it has taken).

    The callables are ``slicer.dicomDatabase``'s (ctkDICOMDatabase ``seriesForStudy``, ``filesForSeries``,
    ``fileValue``): one file of each series, as Slicer's DICOM browser reads a study's series
    (Modules/Scripted/DICOMLib/DICOMBrowser.py lines 398-399 at Slicer 583e9b37), its Series Number as the
    database decodes it. A series
    without a whole-number Series Number is passed over.
    """
    tag = f"{SERIES_NUMBER_TAG >> 16:04X},{SERIES_NUMBER_TAG & 0xFFFF:04X}"
    numbers = set()
    for series_uid in series_for_study(study_instance_uid):
        files = files_for_series(series_uid, 1)
        text = file_value(files[0], tag).strip() if files else ""
        if re.fullmatch(r"[+-]?\d+", text, re.ASCII):
            numbers.add(int(text))
    return numbers
