"""One URL registry for every port: which engine opens a URL, found by its scheme.

A URL is opened for one *kind* of use, because one scheme may name different engines for
different ports (``memory://`` is a state backend for ``state_url`` and an object store for
``lake_url``):

* ``state``   -- a transactional state backend (items, log, queues, kv on one transaction)
* ``log``     -- a stream store (a ``LogStore``), what ``stream_url`` names
* ``objects`` -- an object store, what ``lake_url`` names

Engines shipped with eventlake are listed here by ``module:attribute`` and imported only when
their scheme is used, so a missing driver costs nothing until it is asked for. Other packages
add schemes without editing eventlake, through the entry-point group ``eventlake.backends``,
one entry per kind and scheme named ``<kind>.<scheme>``::

    [project.entry-points."eventlake.backends"]
    "log.kafka" = "eventlake_kafka:KafkaLog"

The entry points are read when a scheme is not found among the known ones, so a package
installed while the process runs is found too, and an application that names only built-in
schemes never scans the installed distributions.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import urlparse

from ..errors import ConfigError

ENTRY_POINT_GROUP = "eventlake.backends"
KINDS = ("state", "log", "objects")

Factory = Callable[[str], Any]
_Ref = str | Factory

_SQLITE = "eventlake.backends.sqlite:SqliteBackend"
_POSTGRES = "eventlake.backends.postgres:PostgresBackend"
_MEMORY = "eventlake.backends.memory:open_memory"

_FACTORIES: dict[tuple[str, str], _Ref] = {
    ("state", "sqlite"): _SQLITE,
    ("state", "postgresql"): _POSTGRES,
    ("state", "postgres"): _POSTGRES,
    ("state", "memory"): _MEMORY,
    ("log", "sqlite"): _SQLITE,
    ("log", "postgresql"): _POSTGRES,
    ("log", "postgres"): _POSTGRES,
    ("log", "memory"): _MEMORY,
    ("objects", "file"): "eventlake.backends.objects:FileStore",
    ("objects", "memory"): "eventlake.backends.objects:MemoryStore",
}

# Engines whose URLs can spell one store in several ways say how to tell (see same_store).
_STORE_KEYS: dict[str, str | Callable[[str], str]] = {
    "sqlite": "eventlake.backends.sqlite:store_key",
}


def register(
    kind: str, scheme: str, factory: _Ref, *, store_key: str | Callable[[str], str] | None = None
) -> None:
    """Make ``scheme://`` URLs of ``kind`` open with ``factory(url)`` (a callable, or a
    ``"module:attribute"`` string imported on first use). ``store_key(url)``, if given, maps
    every spelling of one store's URL to one string (see :func:`same_store`)."""
    _check_kind(kind)
    _FACTORIES[(kind, scheme)] = factory
    if store_key is not None:
        _STORE_KEYS[scheme] = store_key


def schemes(kind: str) -> list[str]:
    """The schemes known for ``kind``: built-in, registered, and from installed packages."""
    _check_kind(kind)
    _load_entry_points()
    return sorted(s for k, s in _FACTORIES if k == kind)


def open_url(kind: str, url: str, *, setting: str) -> Any:
    """The engine ``url`` names for ``kind``; ``setting`` is the configuration key an error names."""
    _check_kind(kind)
    if not isinstance(url, str):
        raise ConfigError(f"{setting} must be a URL string, got {url!r}")
    scheme = urlparse(url).scheme
    ref = _FACTORIES.get((kind, scheme))
    if ref is None:
        _load_entry_points()
        ref = _FACTORIES.get((kind, scheme))
    if ref is None:
        other = sorted(k for k, s in _FACTORIES if s == scheme and k != kind)
        hint = f" ({scheme}:// provides only {', '.join(other)})" if other and scheme else ""
        raise ConfigError(
            f"{setting} {url!r}: unknown scheme {scheme!r}{hint}; use one of "
            f"{', '.join(s + '://...' for s in schemes(kind))}, or install the package that "
            f"provides it (entry point group {ENTRY_POINT_GROUP!r}, name '{kind}.{scheme or '<scheme>'}')"
        )
    return _resolve(ref)(url)


def same_store(a: str, b: str) -> bool:
    """Whether two URLs name one store: opened as two backends, a transaction on one would
    wait for its own lock on the other, and a handler's effects could not commit with its
    checkpoint although both live in one database."""
    if a == b:
        return True

    def key(url: str) -> str:
        ref = _STORE_KEYS.get(urlparse(url).scheme)
        return url if ref is None else str(_resolve(ref)(url))

    return key(a) == key(b)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown backend kind {kind!r}; one of {', '.join(KINDS)}")


def _resolve(ref: Any) -> Any:
    if callable(ref):
        return ref
    module, _, attrs = ref.partition(":")
    try:
        obj = importlib.import_module(module.strip())
        for attr in attrs.strip().split("."):
            obj = getattr(obj, attr)
        return obj
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"backend {ref!r} cannot be loaded: {e}") from e


def _load_entry_points() -> None:
    """Add the schemes other packages declare; the ones registered in code take precedence."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        kind, dot, scheme = ep.name.partition(".")
        if not dot or kind not in KINDS or not scheme:
            raise ConfigError(
                f"entry point {ep.name!r} = {ep.value!r} in group {ENTRY_POINT_GROUP!r}: the name "
                f"must be '<kind>.<scheme>' with kind one of {', '.join(KINDS)}"
            )
        _FACTORIES.setdefault((kind, scheme), ep.value)
