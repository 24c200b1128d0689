"""The key-value port: small strings under ``(namespace, key)``.

Checkpoints, leases, the workers' metrics, idempotency tokens and resource metadata live
here, next to the items and queues of the same state backend, so that a handler's effects
and its checkpoint can commit together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class KvTxn(Protocol):
    """What a transaction of a key-value store offers."""

    def kv_get(self, ns: str, key: str, *, lock: bool = False) -> str | None: ...

    def kv_put(self, ns: str, key: str, value: str) -> None: ...

    def kv_insert(self, ns: str, key: str, value: str) -> bool:
        """Insert if absent; return whether this call inserted it."""
        ...

    def kv_delete(self, ns: str, key: str) -> None: ...

    def kv_list(self, ns: str, prefix: str = "") -> list[tuple[str, str]]:
        """``(key, value)`` pairs of the namespace whose key starts with ``prefix``, by key."""
        ...

    def lock(self, name: str) -> None:
        """Serialise with every other transaction that locks ``name`` until commit."""
        ...


class KvStore(Protocol):
    url: str

    def transaction(self, fn: Callable[[KvTxn], T], *, readonly: bool = False) -> T: ...
