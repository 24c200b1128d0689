"""Backends found by URL scheme, so that core code never branches on an engine's name.

A third-party engine registers itself with :func:`register_state_backend`; drivers are
imported only when their scheme is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from urllib.parse import urlparse

from ..errors import ConfigError
from .base import StateBackend, Txn

_STATE: dict[str, str | Callable[[str], StateBackend]] = {
    "sqlite": "eventlake.backends.sqlite:SqliteBackend",
    "postgresql": "eventlake.backends.postgres:PostgresBackend",
    "postgres": "eventlake.backends.postgres:PostgresBackend",
}


def register_state_backend(scheme: str, factory: str | Callable[[str], StateBackend]) -> None:
    _STATE[scheme] = factory


def _resolve(ref: str | Callable[[str], StateBackend]) -> Callable[[str], StateBackend]:
    if callable(ref):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def open_state_backend(url_or_backend: str | StateBackend, *, setting: str = "state_url") -> StateBackend:
    """The backend a URL names; ``setting`` is the configuration key an error names."""
    if isinstance(url_or_backend, StateBackend):
        return url_or_backend
    scheme = urlparse(url_or_backend).scheme
    if scheme not in _STATE:
        raise ConfigError(
            f"{setting} {url_or_backend!r}: unknown scheme {scheme!r}; "
            f"use one of {', '.join(sorted(_STATE))}://..."
        )
    return _resolve(_STATE[scheme])(url_or_backend)


# Engines whose URLs can name one store in several ways say how to tell (``module:function``).
_STORE_KEYS: dict[str, str] = {"sqlite": "eventlake.backends.sqlite:store_key"}


def same_store(a: str, b: str) -> bool:
    """Whether two URLs name one store: opened as two backends, a transaction on one would
    wait for its own lock on the other."""
    if a == b:
        return True

    def key(url: str) -> str:
        ref = _STORE_KEYS.get(urlparse(url).scheme)
        return url if ref is None else _resolve(ref)(url)  # type: ignore[return-value]

    return key(a) == key(b)


__all__ = ["StateBackend", "Txn", "open_state_backend", "register_state_backend", "same_store"]
