"""One error root: a caller catches ``EventlakeError`` and has everything eventlake raises."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import tomllib
from pathlib import Path

import pytest

import eventlake
from eventlake import App, EventlakeError
from eventlake.errors import ConfigError, MissingDependency

# A BaseException on purpose: a handler's ``except Exception`` must not swallow it.
NOT_ERRORS = {"eventlake.ports.state.RetryTransaction"}
# The reference apps are users of eventlake; their handlers' exceptions are their own.
APPS = "eventlake.apps."


def test_every_exception_eventlake_defines_derives_from_the_root() -> None:
    stray = []
    for info in pkgutil.walk_packages(eventlake.__path__, "eventlake."):
        if info.name.endswith("__main__") or info.name.startswith(APPS):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == info.name
                and not name.startswith("_")  # control flow that never leaves its module
                and f"{info.name}.{name}" not in NOT_ERRORS
                and not issubclass(obj, EventlakeError)
            ):
                stray.append(f"{info.name}.{name}")
    assert stray == []


def test_a_missing_driver_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "psycopg_pool", None)  # as if not installed
    with pytest.raises(MissingDependency) as caught:
        App("pg", state_url="postgresql://127.0.0.1:5432/test")
    message = str(caught.value)
    assert message.startswith("the PostgreSQL backend needs an optional dependency that is not installed (")
    assert "psycopg_pool" in message
    assert message.endswith("run: pip install 'eventlake[postgres]'")
    assert isinstance(caught.value, ConfigError)
    # The extra exists and brings both modules the backend imports.
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    postgres = pyproject["project"]["optional-dependencies"][caught.value.extra]
    assert any(req.startswith("psycopg[") and "pool" in req and "binary" in req for req in postgres)
