"""The item port: key-value rows ``(table, pk, sk) -> bytes`` and the tables' change records.

Items are opaque bytes ordered by ``sk`` within ``pk``; conditions, update expressions and
the DynamoDB data model are written once above this port (``resources/table.py``). A
table's change records go into a log of the same store (``log_add``) so that they commit
with the write they describe.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Protocol, TypeVar

T = TypeVar("T")


class ItemTxn(Protocol):
    """What a transaction of an item store offers."""

    def item_get(self, table: str, pk: bytes, sk: bytes, *, lock: bool = False) -> bytes | None:
        """The item's bytes; ``lock`` keeps others from changing it until commit (engines
        whose write transactions exclude each other may ignore it)."""
        ...

    def item_put(self, table: str, pk: bytes, sk: bytes, data: bytes) -> None: ...

    def item_insert(self, table: str, pk: bytes, sk: bytes, data: bytes) -> bool:
        """Insert if absent; return whether this call inserted it. On engines with
        concurrent writers it waits for a competing insert of the same key instead of
        overwriting it."""
        ...

    def item_delete(self, table: str, pk: bytes, sk: bytes) -> None: ...

    def item_range(
        self, table: str, pk: bytes, *, after: bytes | None, forward: bool, limit: int
    ) -> list[tuple[bytes, bytes]]:
        """Rows of one partition as ``(sk, data)``, ordered by ``sk``, strictly after ``after``."""
        ...

    def item_scan(
        self, table: str, *, after: tuple[bytes, bytes] | None, limit: int
    ) -> list[tuple[bytes, bytes, bytes]]:
        """All rows as ``(pk, sk, data)`` ordered by ``(pk, sk)``, strictly after ``after``."""
        ...

    def log_add(self, stream: str, shard: int, pkey: str, data: bytes, ts: float) -> int:
        """Append one change record and return its sequence number. It may be written at
        commit, with the others of the transaction in one statement; reads of the log in the
        same transaction see it."""
        ...

    def after_commit(self, key: Hashable, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the outermost transaction has committed, once per ``key``: the
        wake-ups for what a transaction wrote are sent when the writes are visible, and a
        batch of a hundred writes sends one."""
        ...


class ItemStore(Protocol):
    url: str

    def transaction(self, fn: Callable[[ItemTxn], T], *, readonly: bool = False) -> T: ...
