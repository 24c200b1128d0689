"""The package as it is installed: every module ships, and the layers hold."""

from __future__ import annotations

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
