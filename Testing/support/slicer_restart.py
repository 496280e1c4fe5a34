"""A restarted 3D Slicer for the scene tests: a fresh Python process that creates the stand-in application
(hook modules created anew, nothing of the previous session left), opens a saved scene bundle as File >
Load scene does and, for some scripts, loads the moving series from the DICOM browser.

Usage: ``python slicer_restart.py <script> <JSON arguments>``; prints one JSON line with what it found.
"""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pytest

from slicer_app_standins import Application, Database, load_scene_bundle

#: Engine modules the hook module imports at start-up (they import nothing themselves).
START_UP_MODULES = {
    "DicomRegSaveLib",
    "DicomRegSaveLib.requirements",
    "DicomRegSaveLib.slicer",
    "DicomRegSaveLib.slicer.attributes",
}


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def main(script, arguments):
    errors = Collect()
    logging.getLogger().addHandler(errors)
    with pytest.MonkeyPatch.context() as monkeypatch:
        app = Application(monkeypatch, Database([arguments["database"]]))
        load_scene_bundle(app.scene, arguments["bundle"])
        app.process_events()
        result = {"errors": errors.messages, "popups": app.popups}
        if script == "open_only":
            result["engine_modules"] = sorted(
                name for name in sys.modules if name.startswith("DicomRegSaveLib") and name not in START_UP_MODULES
            )
        elif script == "open_then_load_moving":
            from DicomRegSaveLib.slicer.linking import acquisition_transform, registration_leaves
            from mrml_helpers import from_world_lps

            if arguments["load_moving"] == "True":
                app.load_series(json.loads(arguments["moving"]))
            leaves = registration_leaves(app.scene)
            collection = app.scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
            volumes = [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]
            under = [v for v in volumes if (acquisition_transform(v) or v).GetParentTransformNode() is leaves[0]]
            points = np.array(json.loads(arguments["points"]))
            grids = app.scene.GetNodesByClass("vtkMRMLGridTransformNode")
            result.update(
                leaves=len(leaves),
                volumes_under_leaf=len(under),
                mapped=from_world_lps(leaves[0], points).tolist(),
                grid_interpolation={
                    grid.GetName(): grid.GetTransformFromParent().GetInterpolationMode()
                    for grid in (grids.GetItemAsObject(i) for i in range(grids.GetNumberOfItems()))
                },
            )
        app.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
