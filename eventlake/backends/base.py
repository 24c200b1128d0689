"""The state port: what every state backend must provide.

One port, four families of primitives, all inside one transaction object so that a
handler's table writes, a stream checkpoint, a queue delete and a lease check can commit
together (that is what makes exactly-once effects possible whatever engine carries the
stream). Semantics (conditions, update expressions, FIFO rules, leases) are written once
above this port, in ``eventlake.resources`` and ``eventlake.runtime``; backends only store
opaque bytes and strings.

* items  -- key-value rows ``(table, pk, sk) -> bytes``, ordered by ``sk`` within ``pk``
* log    -- append-only per ``(stream, shard)``, sequence numbers allocated by the backend
* kv     -- small strings under ``(namespace, key)``: checkpoints, leases, tokens, metadata
* queue  -- message rows with visibility times, scanned in send order

``transaction(fn)`` runs ``fn(txn)`` atomically and may call it again when the engine reports
a conflict, so ``fn`` must not have side effects outside the transaction other than ones it
is safe to repeat. A call made while a transaction of the same backend is active in the
current context joins it (this is how a handler's writes join its checkpoint).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class LogRow:
    seq: int
    pkey: str
    data: bytes
    ts: float


@dataclass(slots=True)
class QueueRow:
    id: str
    seq: int
    body: bytes
    attrs: str | None
    sent: float
    visible: float
    receives: int
    first_receive: float | None
    receipt: str | None
    grp: str | None
    dedup: str | None


class Txn(ABC):
    """Primitive operations inside one transaction."""

    # -- items
    @abstractmethod
    def item_get(self, table: str, pk: bytes, sk: bytes, *, lock: bool = False) -> bytes | None: ...

    @abstractmethod
    def item_put(self, table: str, pk: bytes, sk: bytes, data: bytes) -> None: ...

    @abstractmethod
    def item_delete(self, table: str, pk: bytes, sk: bytes) -> None: ...

    @abstractmethod
    def item_range(
        self, table: str, pk: bytes, *, after: bytes | None, forward: bool, limit: int
    ) -> list[tuple[bytes, bytes]]:
        """Rows of one partition as ``(sk, data)``, ordered by ``sk``, strictly after ``after``."""

    @abstractmethod
    def item_scan(
        self, table: str, *, after: tuple[bytes, bytes] | None, limit: int
    ) -> list[tuple[bytes, bytes, bytes]]:
        """All rows as ``(pk, sk, data)`` in storage order, strictly after ``after``."""

    @abstractmethod
    def item_drop_table(self, table: str) -> None: ...

    # -- log
    @abstractmethod
    def log_append(self, stream: str, shard: int, rows: Sequence[tuple[str, bytes, float]]) -> int:
        """Append ``(pkey, data, ts)`` rows; return the sequence number of the first one."""

    @abstractmethod
    def log_read(self, stream: str, shard: int, after: int, limit: int) -> list[LogRow]: ...

    @abstractmethod
    def log_last_seq(self, stream: str, shard: int) -> int:
        """The highest sequence number ever allocated in the shard (0 when empty)."""

    @abstractmethod
    def log_first_seq_at(self, stream: str, shard: int, ts: float) -> int | None:
        """The first sequence number whose timestamp is at or after ``ts``."""

    @abstractmethod
    def log_trim(self, stream: str, before_ts: float) -> int: ...

    # -- kv
    @abstractmethod
    def kv_get(self, ns: str, key: str, *, lock: bool = False) -> str | None: ...

    @abstractmethod
    def kv_put(self, ns: str, key: str, value: str) -> None: ...

    @abstractmethod
    def kv_delete(self, ns: str, key: str) -> None: ...

    @abstractmethod
    def kv_list(self, ns: str, prefix: str = "") -> list[tuple[str, str]]: ...

    @abstractmethod
    def kv_insert(self, ns: str, key: str, value: str) -> bool:
        """Insert if absent; return whether this call inserted it."""

    # -- queue
    @abstractmethod
    def q_insert(self, queue: str, rows: Iterable[QueueRow]) -> None: ...

    @abstractmethod
    def q_scan_visible(
        self, queue: str, now: float, after_seq: int, limit: int, *, lock: bool = True
    ) -> list[QueueRow]: ...

    @abstractmethod
    def q_inflight_groups(self, queue: str, now: float) -> set[str]: ...

    @abstractmethod
    def q_get(self, queue: str, msg_id: str, *, lock: bool = False) -> QueueRow | None: ...

    @abstractmethod
    def q_update(
        self,
        queue: str,
        msg_id: str,
        *,
        visible: float,
        receives: int,
        first_receive: float | None,
        receipt: str | None,
    ) -> None: ...

    @abstractmethod
    def q_delete(self, queue: str, msg_ids: Sequence[str]) -> int: ...

    @abstractmethod
    def q_purge(self, queue: str) -> int: ...

    @abstractmethod
    def q_stats(self, queue: str, now: float) -> tuple[int, int, int]:
        """``(visible, in_flight, delayed)`` message counts."""

    @abstractmethod
    def q_next_visible(self, queue: str) -> float | None:
        """The earliest visibility time of any message, to know how long to wait."""

    # -- misc
    @abstractmethod
    def counter_next(self, name: str, n: int = 1) -> int:
        """Reserve ``n`` consecutive integers; return the first."""

    @abstractmethod
    def lock(self, name: str) -> None:
        """Serialise with every other transaction that locks ``name`` until commit."""


class StateBackend(ABC):
    """A transactional store of items, logs, kv and queues (see module docstring)."""

    url: str

    @abstractmethod
    def transaction(self, fn: Callable[[Txn], T], *, readonly: bool = False) -> T: ...

    @abstractmethod
    def close(self) -> None: ...

    def reset_after_fork(self) -> None:  # noqa: B027 - an optional hook
        """Drop connections inherited from a parent process (they must not be shared)."""

    def in_transaction(self) -> bool:
        return False


def describe(obj: Any) -> str:
    return type(obj).__name__
