"""``memory://``: every state port in the process's memory, for unit tests and notebooks.

The same semantics as SQLite: write transactions exclude each other, a transaction sees its
own writes, a failure rolls every write back (an undo log, replayed backwards), and sequence
numbers taken by a rolled-back append are free again. Reads take the same lock as writes, so
no reader ever sees half a transaction.

``memory://`` opens a new, empty store each time; ``memory://NAME`` opens the process's store
of that name, so that an App closed and opened again finds its data (until :func:`drop`).
Several processes cannot share it: ``--workers N`` refuses it.
"""

from __future__ import annotations

import bisect
import contextvars
import dataclasses
import logging
import threading
import uuid
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlparse

from ..ports.log import LogRow
from ..ports.queues import QueueRow
from ..ports.state import RetryTransaction, StateBackend, StateTxn

T = TypeVar("T")
_Undo = Callable[[], None]

_active: contextvars.ContextVar[dict[int, MemoryTxn] | None] = contextvars.ContextVar(
    "eventlake_memory_txn", default=None
)
_NAMED: dict[str, MemoryBackend] = {}
_NAMED_LOCK = threading.Lock()


def open_memory(url: str) -> MemoryBackend:
    """The registry's factory: a new store, or the process's store named by the URL."""
    name = urlparse(url).netloc + urlparse(url).path
    if not name:
        return MemoryBackend(url)
    with _NAMED_LOCK:
        backend = _NAMED.get(name)
        if backend is None:
            backend = _NAMED[name] = MemoryBackend(url)
        return backend


def drop(url: str) -> None:
    """Forget the named store ``url`` opened (its data goes with it)."""
    with _NAMED_LOCK:
        _NAMED.pop(urlparse(url).netloc + urlparse(url).path, None)


class _Data:
    def __init__(self) -> None:
        self.items: dict[str, dict[bytes, dict[bytes, bytes]]] = {}
        self.logs: dict[tuple[str, int], list[LogRow]] = {}
        self.log_next: dict[tuple[str, int], int] = {}
        self.log_meta: dict[str, str] = {}
        self.kv: dict[str, dict[str, str]] = {}
        self.counters: dict[str, int] = {}
        self.queues: dict[str, dict[str, QueueRow]] = {}
        self.store_id = uuid.uuid4().hex


def _set(d: dict[Any, Any], key: Any, value: Any, undo: list[_Undo]) -> None:
    if key in d:
        old = d[key]
        undo.append(lambda: d.__setitem__(key, old))
    else:
        undo.append(lambda: d.pop(key, None))
    d[key] = value


def _pop(d: dict[Any, Any], key: Any, undo: list[_Undo]) -> bool:
    if key not in d:
        return False
    old = d.pop(key)
    undo.append(lambda: d.__setitem__(key, old))
    return True


def _copy(row: QueueRow) -> QueueRow:
    return dataclasses.replace(row)


class MemoryTxn:
    """The port primitives over :class:`_Data`, recording how to undo each write."""

    def __init__(self, data: _Data) -> None:
        self.d = data
        self.undo: list[_Undo] = []
        self.committed: dict[Hashable, Callable[[], None]] = {}

    def after_commit(self, key: Hashable, fn: Callable[[], None]) -> None:
        self.committed[key] = fn

    # -- items
    def _part(self, table: str, pk: bytes) -> dict[bytes, bytes]:
        parts = self.d.items.setdefault(table, {})
        part = parts.get(pk)
        if part is None:
            part = parts[pk] = {}
        return part

    def item_get(self, table: str, pk: bytes, sk: bytes, *, lock: bool = False) -> bytes | None:
        part = self.d.items.get(table, {}).get(pk)
        return None if part is None else part.get(sk)

    def item_put(self, table: str, pk: bytes, sk: bytes, data: bytes) -> None:
        _set(self._part(table, pk), sk, bytes(data), self.undo)

    def item_insert(self, table: str, pk: bytes, sk: bytes, data: bytes) -> bool:
        part = self._part(table, pk)
        if sk in part:
            return False
        _set(part, sk, bytes(data), self.undo)
        return True

    def item_delete(self, table: str, pk: bytes, sk: bytes) -> None:
        part = self.d.items.get(table, {}).get(pk)
        if part is not None:
            _pop(part, sk, self.undo)

    def item_range(
        self, table: str, pk: bytes, *, after: bytes | None, forward: bool, limit: int
    ) -> list[tuple[bytes, bytes]]:
        part = self.d.items.get(table, {}).get(pk, {})
        keys = sorted(part, reverse=not forward)
        if after is not None:
            keys = [k for k in keys if (k > after if forward else k < after)]
        return [(k, part[k]) for k in keys[:limit]]

    def item_scan(
        self, table: str, *, after: tuple[bytes, bytes] | None, limit: int
    ) -> list[tuple[bytes, bytes, bytes]]:
        out: list[tuple[bytes, bytes, bytes]] = []
        parts = self.d.items.get(table, {})
        for pk in sorted(parts):
            if after is not None and pk < after[0]:
                continue
            part = parts[pk]
            for sk in sorted(part):
                if after is not None and (pk, sk) <= after:
                    continue
                out.append((pk, sk, part[sk]))
                if len(out) >= limit:
                    return out
        return out

    # -- log
    def log_declare(self, stream: str, meta: str, *, replace: bool = False) -> str | None:
        old = self.d.log_meta.get(stream)
        if old is None or replace:
            _set(self.d.log_meta, stream, meta, self.undo)
        return old

    def log_store_id(self) -> str:
        return self.d.store_id

    def _take(self, key: tuple[str, int], n: int) -> int:
        first = self.d.log_next.get(key, 1)
        _set(self.d.log_next, key, first + n, self.undo)
        return first

    def _rows(self, key: tuple[str, int]) -> list[LogRow]:
        rows = self.d.logs.get(key)
        if rows is None:
            rows = self.d.logs[key] = []
        return rows

    def log_append(self, stream: str, shard: int, rows: Sequence[tuple[str, bytes, float]]) -> int:
        key = (stream, shard)
        first = self._take(key, len(rows))
        log = self._rows(key)
        n = len(log)
        log.extend(LogRow(first + i, pk, bytes(data), ts) for i, (pk, data, ts) in enumerate(rows))
        self.undo.append(lambda: log.__delitem__(slice(n, None)))
        return first

    def log_add(self, stream: str, shard: int, pkey: str, data: bytes, ts: float) -> int:
        return self.log_append(stream, shard, [(pkey, data, ts)])

    def log_read(self, stream: str, shard: int, after: int, limit: int) -> list[LogRow]:
        log = self.d.logs.get((stream, shard), [])
        i = bisect.bisect_right(log, after, key=lambda r: r.seq)
        return log[i : i + limit]

    def log_last_seq(self, stream: str, shard: int) -> int:
        return self.d.log_next.get((stream, shard), 1) - 1

    def log_first_seq_at(self, stream: str, shard: int, ts: float) -> int | None:
        for row in self.d.logs.get((stream, shard), []):
            if row.ts >= ts:
                return row.seq
        return None

    def log_trim(self, stream: str, before_ts: float) -> int:
        n = 0
        for key, log in list(self.d.logs.items()):
            if key[0] != stream:
                continue
            first_kept = self.log_first_seq_at(stream, key[1], before_ts)
            kept = [] if first_kept is None else [r for r in log if r.seq >= first_kept]
            n += len(log) - len(kept)
            if len(kept) != len(log):
                _set(self.d.logs, key, kept, self.undo)
        return n

    # -- kv
    def kv_get(self, ns: str, key: str, *, lock: bool = False) -> str | None:
        return self.d.kv.get(ns, {}).get(key)

    def kv_put(self, ns: str, key: str, value: str) -> None:
        _set(self.d.kv.setdefault(ns, {}), key, value, self.undo)

    def kv_insert(self, ns: str, key: str, value: str) -> bool:
        space = self.d.kv.setdefault(ns, {})
        if key in space:
            return False
        _set(space, key, value, self.undo)
        return True

    def kv_delete(self, ns: str, key: str) -> None:
        _pop(self.d.kv.get(ns, {}), key, self.undo)

    def kv_list(self, ns: str, prefix: str = "") -> list[tuple[str, str]]:
        space = self.d.kv.get(ns, {})
        return [(k, space[k]) for k in sorted(space) if k.startswith(prefix)]

    # -- queue
    def q_insert(self, queue: str, rows: Iterable[QueueRow]) -> None:
        msgs = self.d.queues.setdefault(queue, {})
        for r in rows:
            if r.id in msgs:  # as the SQL engines' primary key would
                raise KeyError(f"queue {queue!r} already holds message {r.id!r}")
            _set(msgs, r.id, _copy(r), self.undo)

    def q_scan_visible(
        self, queue: str, now: float, after_seq: int, limit: int, *, lock: bool = True
    ) -> list[QueueRow]:
        msgs = self.d.queues.get(queue, {}).values()
        rows = sorted((r for r in msgs if r.visible <= now and r.seq > after_seq), key=lambda r: r.seq)
        return [_copy(r) for r in rows[:limit]]

    def q_inflight_groups(self, queue: str, now: float) -> set[str]:
        return {
            r.grp
            for r in self.d.queues.get(queue, {}).values()
            if r.grp is not None and r.visible > now and r.receives > 0
        }

    def q_get(self, queue: str, msg_id: str, *, lock: bool = False) -> QueueRow | None:
        row = self.d.queues.get(queue, {}).get(msg_id)
        return None if row is None else _copy(row)

    def q_update(
        self,
        queue: str,
        msg_id: str,
        *,
        visible: float,
        receives: int,
        first_receive: float | None,
        receipt: str | None,
    ) -> None:
        msgs = self.d.queues.get(queue, {})
        row = msgs.get(msg_id)
        if row is not None:
            new = dataclasses.replace(
                row, visible=visible, receives=receives, first_receive=first_receive, receipt=receipt
            )
            _set(msgs, msg_id, new, self.undo)

    def q_delete(self, queue: str, msg_ids: Sequence[str]) -> int:
        msgs = self.d.queues.get(queue, {})
        return sum(_pop(msgs, mid, self.undo) for mid in msg_ids)

    def q_purge(self, queue: str) -> int:
        msgs = self.d.queues.get(queue, {})
        return sum(_pop(msgs, mid, self.undo) for mid in list(msgs))

    def q_stats(self, queue: str, now: float) -> tuple[int, int, int]:
        visible = in_flight = delayed = 0
        for r in self.d.queues.get(queue, {}).values():
            if r.visible <= now:
                visible += 1
            elif r.receives > 0:
                in_flight += 1
            else:
                delayed += 1
        return visible, in_flight, delayed

    def q_next_visible(self, queue: str) -> float | None:
        return min((r.visible for r in self.d.queues.get(queue, {}).values()), default=None)

    # -- misc
    def counter_next(self, name: str, n: int = 1) -> int:
        first = self.d.counters.get(name, 0) + 1
        _set(self.d.counters, name, first + n - 1, self.undo)
        return first

    def lock(self, name: str) -> None:
        """Transactions exclude each other already."""


class MemoryBackend(StateBackend):
    """Every state port in memory (see the module docstring)."""

    shared_between_processes: ClassVar[bool] = False
    max_attempts = 30  # runs of a function that raises RetryTransaction

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._data = _Data()
        # Reentrant: a thread inside a transaction that opens another (not joined: it was
        # started outside this context) must not wait for itself forever.
        self._lock = threading.RLock()

    def transaction(self, fn: Callable[[StateTxn], T], *, readonly: bool = False) -> T:
        active = _active.get()
        if active and id(self) in active:
            return fn(active[id(self)])
        for attempt in range(self.max_attempts):
            with self._lock:
                txn = MemoryTxn(self._data)
                token = _active.set({**active, id(self): txn} if active else {id(self): txn})
                try:
                    result = fn(txn)
                    break
                except BaseException as e:
                    for undo in reversed(txn.undo):
                        undo()
                    if not isinstance(e, RetryTransaction) or attempt == self.max_attempts - 1:
                        raise
                finally:
                    _active.reset(token)
        else:  # pragma: no cover - the loop breaks or raises
            raise AssertionError("unreachable")
        for callback in txn.committed.values():
            try:
                callback()
            except Exception:  # callbacks are wake-ups: a committed transaction stays committed
                logging.getLogger("eventlake.backends").exception("after-commit callback failed")
        return result

    def current(self) -> MemoryTxn | None:
        active = _active.get()
        return active.get(id(self)) if active else None

    def in_transaction(self) -> bool:
        return self.current() is not None

    def close(self) -> None:
        """Nothing to release; a named store keeps its data for the next open."""
