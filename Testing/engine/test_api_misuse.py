"""Wrong argument types at the engine's public functions raise TypeError/ValueError naming the argument."""

from __future__ import annotations

import numpy as np
import pytest

from DicomRegSaveLib.export.pipeline import export_registration
from DicomRegSaveLib.inputs.series import read_image_series
from DicomRegSaveLib.inputs.transform_files import deformation_from_file
from DicomRegSaveLib.reg.reader import read_registration
from DicomRegSaveLib.validation.iod_rules import check_dataset
from DicomRegSaveLib.validation.validate import validate_file


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: read_registration(42), TypeError, "source"),
        (lambda: validate_file(None), TypeError, "'path'"),
        (lambda: check_dataset({"SOPClassUID": "1.2"}), TypeError, "'dataset'"),
        (lambda: read_image_series(7, "fixed"), TypeError, "'paths'"),
        (lambda: read_image_series(["a", 3], "fixed"), TypeError, "'paths[...]'"),
        (lambda: deformation_from_file(3.5, np.eye(4), (1, 1, 1)), TypeError, "'path'"),
        (lambda: deformation_from_file("x.mha", np.eye(3), (1, 1, 1)), ValueError, "reference_ijk_to_lps"),
        (lambda: export_registration("field.mha", None, None, "out.dcm"), TypeError, "'deformation'"),
    ],
)
def test_wrong_arguments_are_named(call, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        call()
