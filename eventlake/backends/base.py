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
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")


class RetryTransaction(BaseException):  # a signal, like GeneratorExit
    """Raised inside a transaction function when a row it read as missing was created by a
    concurrent writer meanwhile (engines with concurrent writers lock nothing on a missing
    row): the backend runs the whole function again, as after a serialisation failure.

    A ``BaseException``, like ``KeyboardInterrupt``: a handler's ``except Exception`` must not
    swallow it, or the transaction would commit without the write it was retried for."""


class LogRow(NamedTuple):
    """One log row. A tuple, so that a read of thousands of rows builds them in C
    (``LogRow._make``) rather than through an ``__init__`` per row."""

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

    def after_commit(self, key: Any, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the outermost transaction has committed (once per ``key``, however
        often it is asked for): wake-ups for what a transaction wrote are sent when the
        writes are visible, and a batch of a hundred writes sends one. Backends that cannot
        defer call it at once."""
        fn()

    # -- items
    @abstractmethod
    def item_get(self, table: str, pk: bytes, sk: bytes, *, lock: bool = False) -> bytes | None: ...

    @abstractmethod
    def item_put(self, table: str, pk: bytes, sk: bytes, data: bytes) -> None: ...

    def item_insert(self, table: str, pk: bytes, sk: bytes, data: bytes) -> bool:
        """Insert if absent; return whether this call inserted it. A put of a new item needs
        no read first: the insert itself tells whether there was an old item, and on
        engines with concurrent writers it waits for a competing insert of the same key
        instead of overwriting it. This default is the read-then-write it replaces."""
        if self.item_get(table, pk, sk, lock=True) is not None:
            return False
        self.item_put(table, pk, sk, data)
        return True

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
    def log_reserve(self, stream: str, shard: int) -> int:
        """Allocate the shard's next sequence number, for :meth:`log_append_at`."""

    def log_add(self, stream: str, shard: int, pkey: str, data: bytes, ts: float) -> int:
        """Append one row (a change record, the commonest append) and return its number;
        like log_append_at, it may be written at commit."""
        seq = self.log_reserve(stream, shard)
        self.log_append_at(stream, shard, seq, pkey, data, ts)
        return seq

    @abstractmethod
    def log_append_at(self, stream: str, shard: int, seq: int, pkey: str, data: bytes, ts: float) -> None:
        """Append one row under a number from :meth:`log_reserve`: a change record names its
        own sequence number and event id, so its number must be known before its bytes. The
        row may be written at commit (with the others, in one statement); reads of the log in
        the same transaction see it."""

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

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised inside a transaction function, means "run it again" (a
        serialisation failure, a deadlock, a lost insert race): an atomic handler's writes
        raise these through the handler, and they must reach the transaction unwrapped."""
        return isinstance(exc, RetryTransaction)

    def aborted(self) -> bool:
        """Whether the transaction the calling context is inside can no longer commit: the
        engine aborted it at a failed statement whose error someone caught (PostgreSQL does
        this; SQLite undoes only the statement)."""
        return False

    def current(self) -> Txn | None:
        """The transaction of this backend that the calling context is inside, if any: a
        write there joins it directly (the same as ``transaction(fn)`` would)."""
        return None


def describe(obj: Any) -> str:
    return type(obj).__name__
