"""ITK transforms written by SimpleITK for the tests of the ITK file readers and B-spline sampling."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def bspline_transform(mesh=(4, 3, 5), seed=11, amplitude=4.0, direction=None) -> sitk.BSplineTransform:
    """A cubic B-spline over a 100 x 80 x 60 mm domain with random coefficients (mm)."""
    domain = sitk.Image([50, 40, 30], sitk.sitkUInt8)
    domain.SetSpacing((2.0, 2.0, 2.0))
    domain.SetOrigin((-50.0, -40.0, -30.0))
    if direction is not None:
        domain.SetDirection(np.asarray(direction).ravel().tolist())
    transform = sitk.BSplineTransformInitializer(domain, list(mesh))
    rng = np.random.default_rng(seed)
    transform.SetParameters(rng.uniform(-amplitude, amplitude, transform.GetNumberOfParameters()).tolist())
    return transform
