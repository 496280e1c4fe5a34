"""The package's layering, read from the source (every import, also those inside functions and under
TYPE_CHECKING): no import circle between modules, packages import only downward, and the engine
never imports the Qt side of Slicer.

The layers, lowest first (a package may import its own modules and those of lower layers only):

0. ground: the flat modules (errors, values, geometry, dicom_file, model, output, progress, ...)
1. reg (the two IODs), mrml (MRML nodes <-> model)
2. validation (conformance checks), inputs (image series, transform and field files)
3. export (options, pipeline, request), qa (registration quality: metrics, pictures, report)
4. cli (the command), slicer (the Slicer front end's logic)
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import DicomRegSaveLib

PACKAGE = "DicomRegSaveLib"
ROOT = Path(DicomRegSaveLib.__file__).parent

#: Package -> layer (see the module docstring).
LAYERS = {
    "ground": 0,
    "reg": 1,
    "mrml": 1,
    "validation": 2,
    "inputs": 2,
    "export": 3,
    "qa": 3,
    "cli": 4,
    "slicer": 4,
}

#: Modules of Slicer's application and Qt side: the engine must run without them (and be tested so).
FORBIDDEN = ("qt", "ctk", "DICOMLib", "slicer.app")


def module_files() -> dict[str, Path]:
    """Module name -> file, for every module of the package."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = module_files()


def imported_names(module: str) -> Iterator[str]:
    """Every name `module` imports, absolute (``from A import b`` gives ``A.b``), wherever the import is."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def owning_module(name: str) -> str | None:
    """The package's module that `name` is or lies in (``A.b`` -> ``A.b`` if a module, else ``A``)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def dependencies(module: str) -> set[str]:
    """The package's modules that `module` imports (Python imports a module's packages with it)."""
    return {owning_module(name) for name in imported_names(module) if name.split(".")[0] == PACKAGE} - {module, None}


GRAPH = {module: dependencies(module) for module in MODULES}


def package_of(module: str) -> str:
    """The subpackage `module` belongs to, or ``ground`` for the flat modules and the package itself."""
    parts = module.split(".")
    is_subpackage = len(parts) == 2 and MODULES[module].name == "__init__.py"
    return parts[1] if len(parts) > 2 or is_subpackage else "ground"


def test_every_package_has_a_layer():
    assert {package_of(module) for module in MODULES} == set(LAYERS)


def test_no_module_imports_itself_back_through_others():
    circles = []
    for start in GRAPH:
        stack = [(start, [start])]
        seen = set()
        while stack:
            module, path = stack.pop()
            for target in GRAPH[module]:
                if target == start:
                    circles.append(" -> ".join([*path, start]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, [*path, target]))
    assert circles == []


def test_packages_import_only_downward():
    upward = [
        f"{module} ({package_of(module)}) imports {target} ({package_of(target)})"
        for module, targets in GRAPH.items()
        for target in sorted(targets)
        if package_of(target) != package_of(module) and LAYERS[package_of(target)] >= LAYERS[package_of(module)]
    ]
    assert upward == []


def slicer_app_uses(module: str) -> Iterator[str]:
    """``slicer.app`` written as an attribute (``import slicer`` then ``slicer.app``)."""
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) == ("slicer", "app"):
                yield "slicer.app"


def test_the_engine_never_imports_qt_ctk_dicomlib_or_the_slicer_application():
    used = [
        f"{module}: {name}"
        for module in MODULES
        for name in [*imported_names(module), *slicer_app_uses(module)]
        if any(name == forbidden or name.startswith(forbidden + ".") for forbidden in FORBIDDEN)
    ]
    assert used == []


def test_the_option_table_imports_only_the_standard_library():
    """The parser and Slicer's parameter node read it before numpy, pydicom and highdicom are loaded; of
    the package it imports only the table of transform file types, which imports the standard library."""
    module = f"{PACKAGE}.export.option_table"
    assert GRAPH[module] == {f"{PACKAGE}.transform_file_types"}
    assert {name.split(".")[0] for name in imported_names(module)} <= {"__future__", "dataclasses", PACKAGE}
    assert {name.split(".")[0] for name in imported_names(f"{PACKAGE}.transform_file_types")} <= {
        "__future__",
        "collections",
    }


def test_the_checks_see_the_imports_they_are_about():
    """The reading of imports itself: lazy imports inside functions and ``from package import module``."""
    assert f"{PACKAGE}.cli.reports" in GRAPH[f"{PACKAGE}.cli.export_send"]  # imported inside command_export
    assert f"{PACKAGE}.cli.export_send" in GRAPH[f"{PACKAGE}.cli.main"]  # from DicomRegSaveLib.cli import ...
    assert GRAPH[f"{PACKAGE}.errors"] == set()
