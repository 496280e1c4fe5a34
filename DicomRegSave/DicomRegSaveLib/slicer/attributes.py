"""Names of the MRML node attributes and references DicomRegSave writes, in a module that imports nothing.

The DICOM plugin's hook module reads them at Slicer start-up, before (and without) the rest of the
engine, to notice a scene that holds a loaded registration.
"""

#: Leaf-node attributes recording what a loaded registration item applies to.
MOVING_INSTANCES_ATTRIBUTE = "DicomRegSave.movingInstanceUIDs"
FIXED_INSTANCES_ATTRIBUTE = "DicomRegSave.fixedInstanceUIDs"
REGISTERED_FRAME_ATTRIBUTE = "DicomRegSave.registeredFrameOfReferenceUID"
APPLY_ATTRIBUTE = "DicomRegSave.applyToMoving"
#: Attribute of the grid transform nodes DicomRegSave makes from a REG: how their displacement grid is
#: interpolated (``"linear"``, as DICOM defines it). A saved scene does not keep a grid's interpolation
#: mode, and Slicer reads a grid back with cubic interpolation, so the mode is restored after a scene load.
GRID_INTERPOLATION_ATTRIBUTE = "DicomRegSave.gridInterpolation"
#: Node reference role from a leaf to the volume DicomRegSave placed under it (a reference, not an
#: attribute, so that scene import remaps it with the node IDs).
APPLIED_TO_REFERENCE_ROLE = "dicomRegSaveAppliedTo"
