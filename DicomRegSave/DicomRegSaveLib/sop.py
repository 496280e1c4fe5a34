"""The Deformable Spatial Registration IOD (PS3.3 A.39.2) as a highdicom SOP class."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pydicom.valuerep import format_number_as_ds

from . import tags
from .errors import InvalidRegistrationError
from .model import DEFORMABLE_SPATIAL_REGISTRATION_SOP_CLASS_UID, DisplacementGrid, Registration, RegistrationItem, RegistrationMatrix
from .references import common_instance_reference, referenced_image_item
from .values import problem_content_label, problem_person_name, problem_uid, require
from .vector_buffer import VECTOR_GRID_DATA_TAG, VectorGridBuffer



def _ds(values: Sequence[float] | np.ndarray) -> list[str]:
    """DS strings of at most 16 characters (the VR's limit), as precise as that allows."""
    return [format_number_as_ds(float(v)) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def _matrix_item(matrix: RegistrationMatrix) -> Dataset:
    item = Dataset()
    item.FrameOfReferenceTransformationMatrix = _ds(matrix.matrix_lps)
    item.FrameOfReferenceTransformationMatrixType = matrix.matrix_type
    return item


def _grid_item(grid: DisplacementGrid) -> Dataset:
    """The Deformable Registration Grid Sequence item; the grid is made right-handed first."""
    grid = grid.right_handed()
    item = Dataset()
    item.ImageOrientationPatient = _ds(np.concatenate([grid.direction_lps[:, 0], grid.direction_lps[:, 1]]))
    item.ImagePositionPatient = _ds(grid.origin_lps)
    item.GridDimensions = list(grid.dimensions)
    item.GridResolution = [float(s) for s in grid.spacing_mm]
    item[VECTOR_GRID_DATA_TAG] = DataElement(VECTOR_GRID_DATA_TAG, "OF", VectorGridBuffer(grid.vectors_lps, checked=grid.vectors_checked))
    return item


def _registration_item(item: RegistrationItem) -> Dataset:
    """One Deformable Registration Sequence item. Identity matrices are written explicitly on items
    with a grid, since receivers expect both matrix sequences there."""
    dataset = Dataset()
    dataset.SourceFrameOfReferenceUID = item.source_frame_of_reference_uid
    if item.referenced_images:
        dataset.ReferencedImageSequence = [referenced_image_item(r) for r in item.referenced_images]
    if item.comment:
        dataset.FrameOfReferenceTransformationComment = item.comment
    dataset.RegistrationTypeCodeSequence = (
        [hd.sr.CodedConcept.from_code(item.registration_type)] if item.registration_type is not None else []
    )
    pre, post = item.pre_deformation_matrix, item.post_deformation_matrix
    if item.grid is not None:
        pre = pre or RegistrationMatrix.identity()
        post = post or RegistrationMatrix.identity()
    if pre is not None:
        dataset.PreDeformationMatrixRegistrationSequence = [_matrix_item(pre)]
    if post is not None:
        dataset.PostDeformationMatrixRegistrationSequence = [_matrix_item(post)]
    if item.grid is not None:
        dataset.DeformableRegistrationGridSequence = [_grid_item(item.grid)]
    return dataset


class DeformableSpatialRegistration(hd.SOPClass):
    """SOP class for a Deformable Spatial Registration instance (modality REG).

    The REG joins the fixed image's study as a new series, in the fixed image's frame of
    reference (the Registered RCS), and inherits its patient and study attributes. The
    Enhanced General Equipment module describes the software that made the object.
    """

    def __init__(
        self,
        registration: Registration,
        fixed_image: Dataset,
        series_instance_uid: str,
        series_number: int,
        sop_instance_uid: str,
        instance_number: int,
        manufacturer: str,
        manufacturer_model_name: str,
        device_serial_number: str,
        software_versions: str | Sequence[str],
        content_label: str = "REGISTRATION",
        content_description: str | None = None,
        content_creator_name: str | None = None,
        series_description: str | None = None,
        study_instance_uid: str | None = None,
        content_datetime: datetime.datetime | None = None,
    ) -> None:
        """
        Parameters
        ----------
        registration:
            The registration; its frame of reference must be the fixed image's.
        fixed_image:
            Header of one fixed (registered) image: the source of patient, study and frame attributes.
        series_instance_uid, series_number, sop_instance_uid, instance_number:
            Identity of the new REG series and instance.
        manufacturer, manufacturer_model_name, device_serial_number, software_versions:
            Enhanced General Equipment (Type 1): the software that created this object. Non-empty.
        content_label:
            Content Label, a code string of 1-16 characters ``A-Z 0-9 _`` and space.
        content_description, content_creator_name:
            Content Description (written empty when ``None``); Content Creator's Name (PN).
        series_description:
            Series Description, optional.
        study_instance_uid:
            The study to place the REG in; default: the fixed image's study.
        content_datetime:
            Content Date/Time; default: now.

        Raises
        ------
        InvalidRegistrationError
            On an argument the standard does not allow, or a fixed image that does not belong to
            the registration's frame of reference.
        """
        if not isinstance(registration, Registration):
            raise TypeError("registration must be a Registration")
        fixed_frame = fixed_image.get("FrameOfReferenceUID")
        if fixed_frame != registration.frame_of_reference_uid:
            raise InvalidRegistrationError(
                f"The fixed image {fixed_image.get('SOPInstanceUID', '?')} is in frame of reference "
                f"{fixed_frame}, but the registration's registered frame is "
                f"{registration.frame_of_reference_uid}. Pass the image the registration was made on."
            )
        for keyword in ("StudyInstanceUID", "PatientID"):
            if keyword not in fixed_image:
                raise InvalidRegistrationError(
                    f"The fixed image {fixed_image.get('SOPInstanceUID', '?')} has no {keyword}; "
                    "a REG must join the fixed image's patient and study."
                )
        study_instance_uid = study_instance_uid or fixed_image.StudyInstanceUID
        for value, what in (
            (study_instance_uid, "Study Instance UID"),
            (series_instance_uid, "Series Instance UID"),
            (sop_instance_uid, "SOP Instance UID"),
        ):
            require(problem_uid, value, what)
        require(problem_content_label, content_label, "Content Label")
        if content_creator_name is not None:
            require(problem_person_name, content_creator_name, "Content Creator's Name")
        software_versions = [software_versions] if isinstance(software_versions, str) else list(software_versions)
        for value, what in (
            (manufacturer, "Manufacturer"),
            (manufacturer_model_name, "Manufacturer's Model Name"),
            (device_serial_number, "Device Serial Number"),
            ("".join(software_versions), "Software Versions"),
        ):
            if not value or not str(value).strip():
                raise InvalidRegistrationError(
                    f"{what} must not be empty: the Enhanced General Equipment module (Type 1) describes "
                    "the software that created the registration."
                )
        now = content_datetime or datetime.datetime.now()
        super().__init__(
            study_instance_uid=study_instance_uid,
            series_instance_uid=series_instance_uid,
            series_number=series_number,
            sop_instance_uid=sop_instance_uid,
            sop_class_uid=DEFORMABLE_SPATIAL_REGISTRATION_SOP_CLASS_UID,
            instance_number=instance_number,
            modality="REG",
            manufacturer=manufacturer,
            manufacturer_model_name=manufacturer_model_name,
            device_serial_number=device_serial_number,
            transfer_syntax_uid=ExplicitVRLittleEndian,
            series_description=series_description,
            content_date=now.date(),
            content_time=now.time(),
            series_date=now.date(),
            series_time=now.time(),
            patient_id=fixed_image.PatientID,
        )
        self.SoftwareVersions = software_versions
        tags.inherit_from_fixed(self, fixed_image)
        self.StudyInstanceUID = study_instance_uid

        self.FrameOfReferenceUID = registration.frame_of_reference_uid
        self.PositionReferenceIndicator = fixed_image.get("PositionReferenceIndicator", "")
        if "BodyPartExamined" not in self and "Laterality" not in self:
            self.Laterality = ""

        self.ContentLabel = content_label
        self.ContentDescription = content_description or ""
        self.ContentCreatorName = content_creator_name or ""
        self.DeformableRegistrationSequence = [_registration_item(item) for item in registration.items]

        referenced_series, other_studies = common_instance_reference(
            registration.referenced_images, study_instance_uid
        )
        if referenced_series:
            self.ReferencedSeriesSequence = referenced_series
        if other_studies:
            self.StudiesContainingOtherReferencedInstancesSequence = other_studies
        tags.ensure_character_set(self)
