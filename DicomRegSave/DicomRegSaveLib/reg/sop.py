"""The Spatial Registration (PS3.3 A.39.1) and Deformable Spatial Registration (A.39.2) IODs as highdicom SOP classes.

Both IODs share Patient, General Study, General Series, Spatial Registration Series, Frame of
Reference, General Equipment, Common Instance Reference and SOP Common: :class:`_RegistrationSOPClass`
writes those once. They differ in the registration module (Spatial Registration with its
Registration Sequence, or Deformable Spatial Registration with its Deformable Registration
Sequence) and in Enhanced General Equipment, which only the deformable IOD has.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import DeformableSpatialRegistrationStorage, ExplicitVRLittleEndian, SpatialRegistrationStorage
from pydicom.valuerep import format_number_as_ds

from DicomRegSaveLib.errors import InvalidRegistrationError
from DicomRegSaveLib.model import DisplacementGrid, Registration, RegistrationItem, RegistrationMatrix
from DicomRegSaveLib.reg import tags
from DicomRegSaveLib.reg.references import common_instance_reference, referenced_image_item
from DicomRegSaveLib.reg.vector_grid_data import VECTOR_GRID_DATA_TAG, VectorGridBuffer
from DicomRegSaveLib.values import problem_content_label, problem_person_name, problem_uid, require


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
    item[VECTOR_GRID_DATA_TAG] = DataElement(VECTOR_GRID_DATA_TAG, "OF", VectorGridBuffer(grid))
    return item


def _registration_type_codes(item: RegistrationItem) -> list[Dataset]:
    return [hd.sr.CodedConcept.from_code(item.registration_type)] if item.registration_type is not None else []


def _deformable_registration_item(item: RegistrationItem) -> Dataset:
    """One Deformable Registration Sequence item. Identity matrices are written explicitly on items
    with a grid, since receivers expect both matrix sequences there."""
    dataset = Dataset()
    dataset.SourceFrameOfReferenceUID = item.source_frame_of_reference_uid
    if item.referenced_images:
        dataset.ReferencedImageSequence = [referenced_image_item(r) for r in item.referenced_images]
    if item.comment:
        dataset.FrameOfReferenceTransformationComment = item.comment
    dataset.RegistrationTypeCodeSequence = _registration_type_codes(item)
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


def _spatial_registration_item(item: RegistrationItem) -> Dataset:
    """One Registration Sequence item of a 66.1 (C.20.2): the source frame, its images and one
    Matrix Registration item whose matrix maps the source frame to the registered frame."""
    dataset = Dataset()
    dataset.FrameOfReferenceUID = item.source_frame_of_reference_uid
    if item.referenced_images:
        dataset.ReferencedImageSequence = [referenced_image_item(r) for r in item.referenced_images]
    matrix_registration = Dataset()
    if item.comment:
        matrix_registration.FrameOfReferenceTransformationComment = item.comment
    matrix_registration.RegistrationTypeCodeSequence = _registration_type_codes(item)
    matrix_registration.MatrixSequence = [_matrix_item(item.matrix_registration or RegistrationMatrix.identity())]
    dataset.MatrixRegistrationSequence = [matrix_registration]
    return dataset


class _RegistrationSOPClass(hd.SOPClass):
    """What both registration IODs share: patient, study, series, frame, equipment, content, references.

    The REG joins the fixed image's study as a new series, in the fixed image's frame of
    reference (the Registered RCS), and inherits its patient and study attributes. The equipment
    attributes describe the software that made the object, never the scanner. A subclass names
    its SOP Class UID and builds (and checks the items of) its registration sequence.
    """

    SOP_CLASS_UID: str

    @classmethod
    def _registration_sequence(cls, registration: Registration) -> tuple[str, list[Dataset]]:
        """(keyword, items) of the IOD's registration sequence; raises for items it cannot hold."""
        raise NotImplementedError

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
            The software that created this object (General Equipment, and Enhanced General
            Equipment in a 66.3). Non-empty.
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
            On an argument the standard does not allow, a fixed image that does not belong to
            the registration's frame of reference, or items that the IOD cannot hold.
        """
        if not isinstance(registration, Registration):
            raise TypeError("registration must be a Registration")
        sequence_keyword, sequence_items = self._registration_sequence(registration)
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
                    f"{what} must not be empty: the equipment attributes describe the software that created the "
                    "registration (Type 1 in the Enhanced General Equipment module of a Deformable Spatial "
                    "Registration; a Spatial Registration carries the same values)."
                )
        now = content_datetime or datetime.datetime.now()
        super().__init__(
            study_instance_uid=study_instance_uid,
            series_instance_uid=series_instance_uid,
            series_number=series_number,
            sop_instance_uid=sop_instance_uid,
            sop_class_uid=self.SOP_CLASS_UID,
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
        setattr(self, sequence_keyword, sequence_items)

        referenced_series, other_studies = common_instance_reference(registration.referenced_images, study_instance_uid)
        if referenced_series:
            self.ReferencedSeriesSequence = referenced_series
        if other_studies:
            self.StudiesContainingOtherReferencedInstancesSequence = other_studies
        tags.ensure_character_set(self)


class DeformableSpatialRegistration(_RegistrationSOPClass):
    """SOP class for a Deformable Spatial Registration instance (66.3, modality REG).

    Items map the registered frame to their source frame by pre matrix, displacement grid and
    post matrix; at least one item has a grid.
    """

    SOP_CLASS_UID = DeformableSpatialRegistrationStorage

    @classmethod
    def _registration_sequence(cls, registration: Registration) -> tuple[str, list[Dataset]]:
        if any(item.matrix_registration is not None for item in registration.items):
            raise InvalidRegistrationError(
                "An item holds a Spatial Registration matrix (source -> registered); a Deformable Spatial "
                "Registration stores pre/post deformation matrices (registered -> source) instead. Write it "
                "as a Spatial Registration."
            )
        if not any(item.grid is not None for item in registration.items):
            raise InvalidRegistrationError(
                "A deformable registration needs at least one item with a displacement grid; none was given."
            )
        return "DeformableRegistrationSequence", [_deformable_registration_item(item) for item in registration.items]


class SpatialRegistration(_RegistrationSOPClass):
    """SOP class for a (rigid or affine) Spatial Registration instance (66.1, modality REG).

    Each item holds one matrix that maps its **source** frame to the registered frame
    (PS3.3 C.20.2.1.1): :attr:`RegistrationItem.matrix_registration`, identity when ``None``.
    The IOD has General Equipment only (no Enhanced General Equipment module).
    """

    SOP_CLASS_UID = SpatialRegistrationStorage

    @classmethod
    def _registration_sequence(cls, registration: Registration) -> tuple[str, list[Dataset]]:
        deformable = [number for number, item in enumerate(registration.items, start=1) if item.is_deformable]
        if deformable:
            raise InvalidRegistrationError(
                f"Item(s) {deformable} hold a displacement grid or pre/post deformation matrices; a Spatial "
                "Registration holds one matrix per item. Write it as a Deformable Spatial Registration."
            )
        return "RegistrationSequence", [_spatial_registration_item(item) for item in registration.items]
