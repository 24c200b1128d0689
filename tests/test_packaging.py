"""The package as it is installed: every module ships, and the layers hold."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parent.parent


def test_every_directory_of_modules_is_a_package() -> None:
    # setuptools packages (and import-linter sees) only directories with an __init__.py; a
    # namespace directory would be missing from the wheel while an editable install still works.
    found = set(find_packages(str(ROOT), include=["eventlake*"]))
    dirs = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "eventlake").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert sorted(dirs - found) == []


# What a user may import: the package's front and the public modules, each through __all__.
# The reference apps are held to the same by the import-linter contract in pyproject.toml.
PUBLIC_MODULES = {"eventlake", "eventlake.errors", "eventlake.workers", "eventlake.local"}


def _imports(path: Path) -> list[tuple[str, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "eventlake":
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names if alias.name.split(".")[0] == "eventlake"]
    return found


def test_the_benchmarks_use_the_public_api_only() -> None:
    bad = []
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        for module, name in _imports(path):
            parts = module.split(".")
            app_front = len(parts) == 3 and parts[1] == "apps"  # an app's own front: eventlake.apps.leda
            if module not in PUBLIC_MODULES and not app_front:
                bad.append(f"{path.name}: {module}")
            elif name and name not in getattr(importlib.import_module(module), "__all__", ()):
                bad.append(f"{path.name}: {module}.{name} is not in __all__")
    assert bad == []


def test_the_public_modules_export_what_they_name() -> None:
    for module in sorted(PUBLIC_MODULES - {"eventlake.errors"}):
        exported = importlib.import_module(module)
        assert exported.__all__ and all(hasattr(exported, n) for n in exported.__all__), module
