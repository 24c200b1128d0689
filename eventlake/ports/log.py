"""The log port: append-only, numbered records per ``(stream, shard)``.

Sequence numbers are allocated by the store, start at 1, increase by one per record within
a shard and never go backwards, even after trimming empties a shard: a consumer's checkpoint
is one of these numbers, kept in the state backend, and a range read after it must never
return a record it has already seen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, NamedTuple, Protocol, TypeVar

T = TypeVar("T")


class LogRow(NamedTuple):
    """One log record. A tuple, so that a read of thousands of rows builds them in C
    rather than through an ``__init__`` per row."""

    seq: int
    pkey: str
    data: bytes
    ts: float


class LogTxn(Protocol):
    """What a transaction of a log store offers."""

    def log_declare(self, stream: str, meta: str, *, replace: bool = False) -> str | None:
        """Record ``stream``'s settings (a JSON document the Stream resource owns) if it is
        new, or over the old ones with ``replace``; return the settings stored before (None
        when new), so a redeclaration with another shard count can be refused."""
        ...

    def log_store_id(self) -> str:
        """A random id made when the store is first used and kept with its records: the
        state remembers which store its stream checkpoints count in, and a consumer pointed
        at another store (whose numbers mean other records) is refused."""
        ...

    def log_append(self, stream: str, shard: int, rows: Sequence[tuple[str, bytes, float]]) -> int:
        """Append ``(pkey, data, ts)`` rows; return the sequence number of the first one."""
        ...

    def log_read(self, stream: str, shard: int, after: int, limit: int) -> list[LogRow]:
        """Up to ``limit`` rows with sequence numbers above ``after``, in order."""
        ...

    def log_last_seq(self, stream: str, shard: int) -> int:
        """The highest sequence number ever allocated in the shard (0 when empty)."""
        ...

    def log_first_seq_at(self, stream: str, shard: int, ts: float) -> int | None:
        """The first sequence number whose timestamp is at or after ``ts``."""
        ...

    def log_trim(self, stream: str, before_ts: float) -> int:
        """Delete the records of every shard of ``stream`` older than ``before_ts``; return
        how many went."""
        ...


class LogStore(Protocol):
    """A store of stream records: what ``stream_url`` opens.

    ``transaction(fn)`` runs ``fn`` against the store. Engines with transactions run it
    atomically (a ``put_many`` over several shards commits together); engines without run
    it directly. Either way a handler's appends to a stream held here are their own commit,
    outside the state backend's transaction, unless this store *is* the state backend.
    """

    url: str

    #: Whether a consumer can read again, from a position it stored, the records it read
    #: before (until they are trimmed). ``atomic=True`` handlers depend on it: their
    #: checkpoint commits only with their effects, so after a rollback or a crash the batch
    #: is read again from the checkpoint. A store whose engine forgets records once they are
    #: delivered (a work-queue stream) sets it False, and ``atomic=True`` on its streams is
    #: refused with a ConfigError.
    replayable: ClassVar[bool]
    #: Whether several processes can use the store at once (``--workers N``); False for a
    #: store in one process's memory.
    shared_between_processes: ClassVar[bool]

    def transaction(self, fn: Callable[[LogTxn], T], *, readonly: bool = False) -> T: ...

    def close(self) -> None: ...

    def reset_after_fork(self) -> None:
        """Drop connections inherited from a parent process (they must not be shared)."""
        ...
