"""The state port written once in SQL, for every engine that speaks it.

SQLite and PostgreSQL differ only in placeholders, column types, row locking and how a
transaction starts; those differences live in a small :class:`Dialect`, and the engine
modules (``sqlite.py``, ``postgres.py``) only open connections and begin transactions.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import TransactionConflict
from ..ports.log import LogRow
from ..ports.queues import QueueRow
from ..ports.state import RetryTransaction, StateBackend, StateTxn

T = TypeVar("T")

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS el_items (
        tbl TEXT NOT NULL, pk {blob} NOT NULL, sk {blob} NOT NULL, data {blob} NOT NULL,
        {items_key})""",
    """CREATE TABLE IF NOT EXISTS el_log (
        stream TEXT NOT NULL, shard {int} NOT NULL, seq {int} NOT NULL, pkey TEXT NOT NULL,
        data {blob} NOT NULL, ts {real} NOT NULL, PRIMARY KEY (stream, shard, seq))""",
    """CREATE TABLE IF NOT EXISTS el_kv (
        ns TEXT NOT NULL, k TEXT NOT NULL, v TEXT NOT NULL, PRIMARY KEY (ns, k)) {without_rowid}""",
    """CREATE TABLE IF NOT EXISTS el_counters (
        name TEXT PRIMARY KEY, value {int} NOT NULL) {without_rowid}""",
    """CREATE TABLE IF NOT EXISTS el_queue (
        queue TEXT NOT NULL, id TEXT NOT NULL, seq {int} NOT NULL, body {blob} NOT NULL,
        attrs TEXT, sent {real} NOT NULL, visible {real} NOT NULL,
        receives {int} NOT NULL DEFAULT 0, first_receive {real}, receipt TEXT, grp TEXT,
        dedup TEXT, PRIMARY KEY (queue, id))""",
    "CREATE INDEX IF NOT EXISTS el_queue_visible ON el_queue (queue, visible, seq)",
    "CREATE INDEX IF NOT EXISTS el_queue_seq ON el_queue (queue, seq)",
]


_HOT = {
    "item_get": "SELECT data FROM el_items WHERE tbl = ? AND pk = ? AND sk = ?",
    "item_put": "INSERT INTO el_items (tbl, pk, sk, data) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (tbl, pk, sk) DO UPDATE SET data = excluded.data",
    "item_insert": "INSERT INTO el_items (tbl, pk, sk, data) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (tbl, pk, sk) DO NOTHING",
    "log_append": "INSERT INTO el_log (stream, shard, seq, pkey, data, ts) VALUES (?, ?, ?, ?, ?, ?)",
    "log_read": "SELECT seq, pkey, data, ts FROM el_log WHERE stream = ? AND shard = ? AND seq > ? "
    "ORDER BY seq LIMIT ?",
}


@dataclass(frozen=True)
class Dialect:
    name: str
    placeholder: str  # "?" or "%s"
    blob: str
    int: str
    real: str
    without_rowid: str
    for_update: str  # appended to SELECTs that lock rows ("" where the engine locks the db)
    skip_locked: str
    # True where a write transaction excludes every other writer (SQLite): sequence numbers
    # can then come from max(seq) with no counter row to update on every append.
    serial_writes: bool = False
    # How el_items is keyed. SQLite stores a WITHOUT ROWID table inside its key's B-tree, so
    # items with random keys (UUIDs) would land on random pages together with their data: a
    # rowid table with a unique index writes the data in arrival order and only the small
    # index entry at a random place.
    items_key: str = "PRIMARY KEY (tbl, pk, sk)"
    # True where the driver returns BLOBs as bytes already (sqlite3): no copy per row.
    blobs_are_bytes: bool = False
    statements: dict[str, str] = field(init=False, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        # The hot statements in this dialect's spelling, made once rather than on every call.
        st = {k: v.replace("?", self.placeholder) for k, v in _HOT.items()}
        st["item_get_lock"] = st["item_get"] + self.for_update
        object.__setattr__(self, "statements", st)

    def ddl(self) -> list[str]:
        return [
            s.format(
                blob=self.blob,
                int=self.int,
                real=self.real,
                without_rowid=self.without_rowid,
                items_key=self.items_key,
            )
            for s in SCHEMA
        ]


_SPELT: dict[tuple[str, str], str] = {}  # statements in other placeholder styles, made once
_make_row = functools.partial(tuple.__new__, LogRow)  # LogRow._make is Python; this is C
_QCOLS = "id, seq, body, attrs, sent, visible, receives, first_receive, receipt, grp, dedup"

_active: contextvars.ContextVar[dict[int, SqlTxn] | None] = contextvars.ContextVar(
    "eventlake_active_txn", default=None
)
_active_reset = _active.reset


class SqlTxn:
    """Every port's operations over one DB-API cursor (a ``StateTxn``, checked by mypy where
    the engines pass it to transaction functions)."""

    def __init__(self, cur: Any, dialect: Dialect, locker: Callable[[str], None]) -> None:
        self.cur = cur
        self.d = dialect
        self._st = dialect.statements
        self._locker = locker
        # Next sequence number per (log, shard) learnt in this transaction: with serial writes
        # nobody else can append meanwhile, so only the first append of a shard asks SQLite.
        self._next_seq: dict[tuple[str, int], int] = {}
        # Engines with concurrent writers: counters of log shards whose row this transaction
        # has locked (by taking a number), the next free number, and the ones to write back.
        self._held: dict[tuple[str, int], int] = {}
        self._held_dirty: set[tuple[str, int]] = set()
        self._log_rows: list[tuple[Any, ...]] | None = None
        self.committed: dict[Any, Callable[[], None]] = {}

    def after_commit(self, key: Any, fn: Callable[[], None]) -> None:
        self.committed[key] = fn

    def _q(self, sql: str) -> str:
        mark = self.d.placeholder
        if mark == "?":
            return sql
        out = _SPELT.get((mark, sql))
        if out is None:
            out = _SPELT[(mark, sql)] = sql.replace("?", mark)
        return out

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self.cur.execute(self._q(sql), params)
        rows: list[Any] = self.cur.fetchall()
        return rows

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.cur.execute(self._q(sql), params)
        return self.cur.fetchone()

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.cur.execute(self._q(sql), params)
        count: int = self.cur.rowcount
        return count

    # -- items
    def item_get(self, table: str, pk: bytes, sk: bytes, *, lock: bool = False) -> bytes | None:
        cur = self.cur
        cur.execute(self._st["item_get_lock" if lock else "item_get"], (table, pk, sk))
        row = cur.fetchone()
        return bytes(row[0]) if row else None

    def item_put(self, table: str, pk: bytes, sk: bytes, data: bytes) -> None:
        self.cur.execute(self._st["item_put"], (table, pk, sk, data))

    def item_insert(self, table: str, pk: bytes, sk: bytes, data: bytes) -> bool:
        cur = self.cur
        cur.execute(self._st["item_insert"], (table, pk, sk, data))
        inserted: bool = cur.rowcount == 1
        return inserted

    def item_delete(self, table: str, pk: bytes, sk: bytes) -> None:
        self._exec("DELETE FROM el_items WHERE tbl = ? AND pk = ? AND sk = ?", (table, pk, sk))

    def item_range(
        self, table: str, pk: bytes, *, after: bytes | None, forward: bool, limit: int
    ) -> list[tuple[bytes, bytes]]:
        order = "ASC" if forward else "DESC"
        if after is None:
            rows = self._all(
                f"SELECT sk, data FROM el_items WHERE tbl = ? AND pk = ? ORDER BY sk {order} LIMIT ?",
                (table, pk, limit),
            )
        else:
            op = ">" if forward else "<"
            rows = self._all(
                f"SELECT sk, data FROM el_items WHERE tbl = ? AND pk = ? AND sk {op} ? "
                f"ORDER BY sk {order} LIMIT ?",
                (table, pk, after, limit),
            )
        return [(bytes(a), bytes(b)) for a, b in rows]

    def item_scan(
        self, table: str, *, after: tuple[bytes, bytes] | None, limit: int
    ) -> list[tuple[bytes, bytes, bytes]]:
        if after is None:
            rows = self._all(
                "SELECT pk, sk, data FROM el_items WHERE tbl = ? ORDER BY pk, sk LIMIT ?",
                (table, limit),
            )
        else:
            rows = self._all(
                "SELECT pk, sk, data FROM el_items WHERE tbl = ? AND "
                "(pk > ? OR (pk = ? AND sk > ?)) ORDER BY pk, sk LIMIT ?",
                (table, after[0], after[0], after[1], limit),
            )
        return [(bytes(a), bytes(b), bytes(c)) for a, b, c in rows]

    # -- log
    # Sequence numbers never go backwards, even after trimming empties a shard: the counter
    # row keeps the next number. Engines with serial writes update it only when trimming.
    def _log_next(self, stream: str, shard: int, n: int) -> int:
        key = (stream, shard)
        if not self.d.serial_writes:
            # The first number of a shard in this transaction comes from its counter row,
            # which stays locked until commit: nobody else can take one meanwhile, so the
            # next numbers are counted here and the row is written once, before the commit
            # (a batch of a hundred change records cost a hundred round trips on PostgreSQL).
            held = self._held.get(key)
            if held is None:
                first = self.counter_next(f"log:{stream}:{shard}", n)
                self._held[key] = first + n
                return first
            self._held[key] = held + n
            self._held_dirty.add(key)
            return held
        known = self._next_seq.get(key)
        if known is not None:
            self._next_seq[key] = known + n
            return known
        row = self._one("SELECT max(seq) FROM el_log WHERE stream = ? AND shard = ?", (stream, shard))
        top = int(row[0]) if row and row[0] is not None else 0
        c = self._one("SELECT value FROM el_counters WHERE name = ?", (f"log:{stream}:{shard}",))
        first = max(top + 1, int(c[0]) if c else 1)
        self._next_seq[key] = first + n
        return first

    def log_declare(self, stream: str, meta: str, *, replace: bool = False) -> str | None:
        old = self.kv_get("meta", stream)
        if old is None:
            if self.kv_insert("meta", stream, meta):
                return None
            old = self.kv_get("meta", stream)
        if replace:
            self.kv_put("meta", stream, meta)
        return old

    def log_store_id(self) -> str:
        self.kv_insert("meta", "store-id", uuid.uuid4().hex)
        return str(self.kv_get("meta", "store-id"))

    def log_append(self, stream: str, shard: int, rows: Sequence[tuple[str, bytes, float]]) -> int:
        if self._log_rows:
            self.flush()
        first = self._log_next(stream, shard, len(rows))
        sql = self._st["log_append"]
        if len(rows) == 1:
            pk, data, ts = rows[0]
            self.cur.execute(sql, (stream, shard, first, pk, data, ts))
        else:
            self.cur.executemany(
                sql,
                [(stream, shard, first + i, pk, data, ts) for i, (pk, data, ts) in enumerate(rows)],
            )
        return first

    def log_add(self, stream: str, shard: int, pkey: str, data: bytes, ts: float) -> int:
        # Held back and written together (executemany) before the next read of the log and
        # before the commit: a batch of a hundred change records is one call into the driver.
        key = (stream, shard)
        seq = self._next_seq.get(key) if self.d.serial_writes else None
        if seq is None:
            seq = self._log_next(stream, shard, 1)
        else:
            self._next_seq[key] = seq + 1
        rows = self._log_rows
        if rows is None:
            rows = self._log_rows = []
        rows.append((stream, shard, seq, pkey, data, ts))
        return seq

    def flush(self) -> None:
        """Write the change records held back by :meth:`log_add` (the engines call it before
        committing; log reads call it first), and the counters taken from in memory."""
        rows = self._log_rows
        if rows:
            self._log_rows = None
            self.cur.executemany(self._st["log_append"], rows)
        if self._held_dirty:
            self._sync_counters()

    def _sync_counters(self) -> None:
        dirty = self._held_dirty
        self._held_dirty = set()
        for stream, shard in sorted(dirty):
            self._exec(
                "UPDATE el_counters SET value = ? WHERE name = ?",
                (self._held[(stream, shard)], f"log:{stream}:{shard}"),
            )

    def log_read(self, stream: str, shard: int, after: int, limit: int) -> list[LogRow]:
        if self._log_rows:
            self.flush()
        cur = self.cur
        cur.execute(self._st["log_read"], (stream, shard, after, limit))
        rows = cur.fetchall()
        if self.d.blobs_are_bytes:
            return list(map(_make_row, rows))
        return [LogRow(seq, pkey, bytes(data), ts) for seq, pkey, data, ts in rows]

    def log_last_seq(self, stream: str, shard: int) -> int:
        if self._log_rows or self._held_dirty:
            self.flush()
        c = self._one("SELECT value FROM el_counters WHERE name = ?", (f"log:{stream}:{shard}",))
        counted = int(c[0]) - 1 if c else 0
        if not self.d.serial_writes:
            return counted
        row = self._one("SELECT max(seq) FROM el_log WHERE stream = ? AND shard = ?", (stream, shard))
        top = int(row[0]) if row and row[0] is not None else 0
        return max(top, counted)

    def log_first_seq_at(self, stream: str, shard: int, ts: float) -> int | None:
        # Walks the shard in sequence order (arrival times grow with it), so no index on ts
        # has to be maintained on every append for this rare question.
        if self._log_rows:
            self.flush()
        row = self._one(
            "SELECT seq FROM el_log WHERE stream = ? AND shard = ? AND ts >= ? ORDER BY seq LIMIT 1",
            (stream, shard, ts),
        )
        return int(row[0]) if row else None

    def log_trim(self, stream: str, before_ts: float) -> int:
        if self._log_rows:
            self.flush()
        shards = [r[0] for r in self._all("SELECT DISTINCT shard FROM el_log WHERE stream = ?", (stream,))]
        n = 0
        for shard in shards:
            first_kept = self.log_first_seq_at(stream, shard, before_ts)
            last = self.log_last_seq(stream, shard)
            upto = (first_kept - 1) if first_kept is not None else last
            if upto <= 0:
                continue
            self._exec(
                "INSERT INTO el_counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = "
                "CASE WHEN el_counters.value > excluded.value THEN el_counters.value ELSE excluded.value END",
                (f"log:{stream}:{shard}", last + 1),
            )
            n += self._exec(
                "DELETE FROM el_log WHERE stream = ? AND shard = ? AND seq <= ?", (stream, shard, upto)
            )
        return n

    # -- kv
    def kv_get(self, ns: str, key: str, *, lock: bool = False) -> str | None:
        row = self._one(
            "SELECT v FROM el_kv WHERE ns = ? AND k = ?" + (self.d.for_update if lock else ""),
            (ns, key),
        )
        return row[0] if row else None

    def kv_put(self, ns: str, key: str, value: str) -> None:
        self._exec(
            "INSERT INTO el_kv (ns, k, v) VALUES (?, ?, ?) ON CONFLICT (ns, k) DO UPDATE SET v = excluded.v",
            (ns, key, value),
        )

    def kv_insert(self, ns: str, key: str, value: str) -> bool:
        return (
            self._exec(
                "INSERT INTO el_kv (ns, k, v) VALUES (?, ?, ?) ON CONFLICT (ns, k) DO NOTHING",
                (ns, key, value),
            )
            == 1
        )

    def kv_delete(self, ns: str, key: str) -> None:
        self._exec("DELETE FROM el_kv WHERE ns = ? AND k = ?", (ns, key))

    def kv_list(self, ns: str, prefix: str = "") -> list[tuple[str, str]]:
        if not prefix:
            return [tuple(r) for r in self._all("SELECT k, v FROM el_kv WHERE ns = ? ORDER BY k", (ns,))]
        # Range instead of LIKE: no escaping of % and _ in user-chosen names.
        return [
            tuple(r)
            for r in self._all(
                "SELECT k, v FROM el_kv WHERE ns = ? AND k >= ? AND k < ? ORDER BY k",
                (ns, prefix, prefix + "\U0010ffff"),
            )
        ]

    # -- queue
    def q_insert(self, queue: str, rows: Iterable[QueueRow]) -> None:
        self.cur.executemany(
            self._q(f"INSERT INTO el_queue (queue, {_QCOLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            [
                (
                    queue,
                    r.id,
                    r.seq,
                    r.body,
                    r.attrs,
                    r.sent,
                    r.visible,
                    r.receives,
                    r.first_receive,
                    r.receipt,
                    r.grp,
                    r.dedup,
                )
                for r in rows
            ],
        )

    @staticmethod
    def _qrow(r: Any) -> QueueRow:
        return QueueRow(r[0], r[1], bytes(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10])

    def q_scan_visible(
        self, queue: str, now: float, after_seq: int, limit: int, *, lock: bool = True
    ) -> list[QueueRow]:
        suffix = (self.d.for_update + self.d.skip_locked) if lock else ""
        rows = self._all(
            f"SELECT {_QCOLS} FROM el_queue WHERE queue = ? AND visible <= ? AND seq > ? "
            f"ORDER BY seq LIMIT ?{suffix}",
            (queue, now, after_seq, limit),
        )
        return [self._qrow(r) for r in rows]

    def q_inflight_groups(self, queue: str, now: float) -> set[str]:
        rows = self._all(
            "SELECT DISTINCT grp FROM el_queue WHERE queue = ? AND visible > ? AND receives > 0",
            (queue, now),
        )
        return {r[0] for r in rows if r[0] is not None}

    def q_get(self, queue: str, msg_id: str, *, lock: bool = False) -> QueueRow | None:
        row = self._one(
            f"SELECT {_QCOLS} FROM el_queue WHERE queue = ? AND id = ?" + (self.d.for_update if lock else ""),
            (queue, msg_id),
        )
        return self._qrow(row) if row else None

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
        self._exec(
            "UPDATE el_queue SET visible = ?, receives = ?, first_receive = ?, receipt = ? "
            "WHERE queue = ? AND id = ?",
            (visible, receives, first_receive, receipt, queue, msg_id),
        )

    def q_delete(self, queue: str, msg_ids: Sequence[str]) -> int:
        n = 0
        for mid in msg_ids:
            n += self._exec("DELETE FROM el_queue WHERE queue = ? AND id = ?", (queue, mid))
        return n

    def q_purge(self, queue: str) -> int:
        return self._exec("DELETE FROM el_queue WHERE queue = ?", (queue,))

    def q_stats(self, queue: str, now: float) -> tuple[int, int, int]:
        row = self._one(
            "SELECT "
            "COALESCE(SUM(CASE WHEN visible <= ? THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN visible > ? AND receives > 0 THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN visible > ? AND receives = 0 THEN 1 ELSE 0 END), 0) "
            "FROM el_queue WHERE queue = ?",
            (now, now, now, queue),
        )
        return int(row[0]), int(row[1]), int(row[2])

    def q_next_visible(self, queue: str) -> float | None:
        row = self._one("SELECT min(visible) FROM el_queue WHERE queue = ?", (queue,))
        return float(row[0]) if row and row[0] is not None else None

    # -- misc
    def counter_next(self, name: str, n: int = 1) -> int:
        row = self._one(
            "INSERT INTO el_counters (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = el_counters.value + ? RETURNING value",
            (name, n + 1, n),
        )
        return int(row[0]) - n

    def lock(self, name: str) -> None:
        self._locker(name)


class SqlBackend(StateBackend):
    """Transaction running, joining and retrying, shared by the SQL engines."""

    dialect: Dialect
    max_attempts = 30

    def _run_once(self, fn: Callable[[StateTxn], T], readonly: bool) -> T:  # pragma: no cover
        raise NotImplementedError

    def _is_conflict(self, exc: BaseException) -> bool:  # pragma: no cover
        return False

    def in_transaction(self) -> bool:
        active = _active.get()
        return active is not None and id(self) in active

    def is_retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, RetryTransaction) or self._is_conflict(exc)

    def current(self) -> SqlTxn | None:
        active = _active.get()
        return active.get(id(self)) if active else None

    def transaction(self, fn: Callable[[StateTxn], T], *, readonly: bool = False) -> T:
        active = _active.get()
        if active and id(self) in active:
            return fn(active[id(self)])
        delay = 0.002
        for attempt in range(self.max_attempts):
            try:
                return self._run_once(fn, readonly)
            except (Exception, RetryTransaction) as e:
                conflict = isinstance(e, RetryTransaction) or self._is_conflict(e)
                if not conflict or attempt == self.max_attempts - 1:
                    if conflict:
                        raise TransactionConflict(
                            f"{self.url}: transaction still conflicting after "
                            f"{self.max_attempts} attempts: {e}"
                        ) from e
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.2)
        raise AssertionError("unreachable")

    def _enter(self, txn: SqlTxn) -> contextvars.Token[dict[int, SqlTxn] | None]:
        active = _active.get()
        return _active.set({**active, id(self): txn} if active else {id(self): txn})

    @staticmethod
    def _exit(token: contextvars.Token[dict[int, SqlTxn] | None]) -> None:
        _active.reset(token)

    @staticmethod
    def _after_commit(txn: SqlTxn) -> None:
        """Called by the engines once ``txn`` committed; a failing callback must not make a
        committed transaction look failed (it would be run again)."""
        for fn in txn.committed.values():
            try:
                fn()
            except Exception:  # pragma: no cover - callbacks are wake-ups
                logging.getLogger("eventlake.backends").exception("after-commit callback failed")
