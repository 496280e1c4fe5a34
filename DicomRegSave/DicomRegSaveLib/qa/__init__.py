"""Registration quality assurance (AAPM TG-132) for any registration item the reader gives.

* :mod:`.linear`: the linear part as rotations about the patient axes, translation, scale and shear.
* :mod:`.jacobian`: Jacobian determinant and displacement magnitude of a deformable item, plane by plane.
* :mod:`.landmarks`: landmark files (CSV in LPS, Slicer ``.fcsv`` / ``.mrk.json``) and target registration error.
* :mod:`.volumes`: image voxels, trilinear sampling, image agreement and resampling through an item.
* :mod:`.evaluate`: the per-item metrics, the verdicts and the JSON report.
* :mod:`.pictures`, :mod:`.html_report`: the PNG pictures and the self-contained HTML page.

Every item is evaluated as the mapping ``phi`` from the registered (fixed) frame to its source
(moving) frame, LPS mm, as :meth:`~DicomRegSaveLib.model.RegistrationItem.map_points` applies it.
"""

#: How ``resample`` samples the moving image (a light constant: the command's parser reads it).
INTERPOLATIONS = ("linear", "nearest")

__all__ = [
    "INTERPOLATIONS",
    "evaluate",
    "html_report",
    "jacobian",
    "landmarks",
    "linear",
    "pictures",
    "volume_files",
    "volumes",
]
