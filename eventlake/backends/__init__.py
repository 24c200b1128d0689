"""Backends found by URL scheme (see :mod:`eventlake.backends.registry`), so that core code
never branches on an engine's name."""

from __future__ import annotations

from .base import StateBackend, Txn
from .registry import open_url, register, same_store


def open_state_backend(url_or_backend: str | StateBackend, *, setting: str = "state_url") -> StateBackend:
    """The state backend a URL names; ``setting`` is the configuration key an error names."""
    if isinstance(url_or_backend, StateBackend):
        return url_or_backend
    backend: StateBackend = open_url("state", url_or_backend, setting=setting)
    return backend


__all__ = ["StateBackend", "Txn", "open_state_backend", "register", "same_store"]
