"""SQLite state backend: one file in WAL mode, safe across threads and processes of one machine.

Write transactions start with ``BEGIN IMMEDIATE`` so that a read-then-write (a conditional
put) cannot be interleaved with another writer. Threads of one process take an in-process
lock before that. Between processes, ``BEGIN IMMEDIATE`` is retried here with sleeps of 50 to
200 µs (2 ms after the first 50 ms): SQLite's own busy handler sleeps 1, 2, 5, 10... ms, so a
producer process waiting behind a worker's batch of a few milliseconds would lose several
more each time the lock came free while it slept.

Worker processes are forked. SQLite keeps per-process lock bookkeeping for each database file,
and a child forked while a parent thread is inside a transaction inherits bookkeeping that says
a lock is held which the child does not hold: its first write then waits forever. So every
fork of a process using this backend waits for running transactions to finish and holds new
ones back until the child exists (``os.register_at_fork``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from ..errors import ConfigError, TransactionConflict
from ..ports.state import StateTxn
from .sql import Dialect, SqlBackend, SqlTxn, _active_reset

log = logging.getLogger(__name__)

T = TypeVar("T")

DIALECT = Dialect(
    name="sqlite",
    placeholder="?",
    blob="BLOB",
    int="INTEGER",
    real="REAL",
    without_rowid="WITHOUT ROWID",
    for_update="",
    skip_locked="",
    serial_writes=True,
    items_key="UNIQUE (tbl, pk, sk)",
    blobs_are_bytes=True,
)


def path_from_url(url: str) -> str:
    """``sqlite:///rel/path.db`` (relative), ``sqlite:////abs/path.db``, ``sqlite://:memory:``."""
    parsed = urlparse(url)
    if parsed.scheme != "sqlite":
        raise ConfigError(f"not a sqlite URL: {url!r}")
    if parsed.netloc == ":memory:" or parsed.path in ("/:memory:", ":memory:"):
        raise ConfigError(
            f"{url!r}: in-memory SQLite cannot be shared between threads and workers; "
            "use a file path, e.g. sqlite:///.eventlake/state.db"
        )
    path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
    if not path:
        raise ConfigError(f"{url!r}: no database path; e.g. sqlite:///.eventlake/state.db")
    return path


def remove_files(url: str) -> None:
    """Delete a SQLite state database and its WAL companions (for runs that start fresh)."""
    db = path_from_url(url)
    for suffix in ("", "-wal", "-shm"):
        Path(db + suffix).unlink(missing_ok=True)


_INHERITED: list[object] = []

# Python 3.11's sqlite3 binds int, float, str and bytearray directly but sends every bytes
# parameter through its adaptation protocol, which fails to find an adapter only after two
# attribute lookups that format an AttributeError each time, for every parameter of every
# write. An identity adapter for bytes - bytes(b) is b - is found at the first step. Left
# alone if the application registered its own.
if (bytes, sqlite3.PrepareProtocol) not in sqlite3.adapters:
    sqlite3.register_adapter(bytes, bytes)


WRITE_WAIT_S = 30.0
WAL_SELF_CHECKPOINT_PAGES = 20_000
CHECKPOINT_EVERY_S = 0.1


class _Checkpointer(threading.Thread):
    """Copies committed WAL pages back into the database file, off the committing thread.

    With SQLite's default, every thousandth page makes some commit run the checkpoint itself,
    holding the write lock through it. Here a
    daemon thread runs a PASSIVE checkpoint (it never blocks readers or writers) a tenth of a
    second after writes, and SQLite's C code runs without the interpreter lock, so on a second
    core it costs the pipeline nothing."""

    def __init__(self, backend: SqliteBackend) -> None:
        super().__init__(name="el-sqlite-checkpoint", daemon=True)
        # A weak reference: a backend nobody closed must still be collectable, and its
        # thread then ends.
        self.backend = weakref.ref(backend)
        self.path = backend.path
        self.pid = os.getpid()

    def _writes(self) -> int | None:
        b = self.backend()
        if b is None or b._closed or os.getpid() != self.pid:
            return None
        return b._writes

    def run(self) -> None:
        _GUARD.enter()  # opening a connection touches the lock bookkeeping a fork copies
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True, timeout=0)
        finally:
            _GUARD.leave()
        seen = -1
        try:
            while True:
                time.sleep(CHECKPOINT_EVERY_S)
                writes = self._writes()
                if writes is None:
                    break
                if writes == seen:
                    continue
                seen = writes
                _GUARD.enter()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    pass  # busy or closing: the next round (or a commit) checkpoints
                finally:
                    _GUARD.leave()
        finally:
            if os.getpid() == self.pid:
                _GUARD.enter()
                try:
                    conn.close()
                finally:
                    _GUARD.leave()


def _abandon(conn: sqlite3.Connection) -> bool:
    """Roll back whatever ``conn`` has open after a failure anywhere in a transaction (the
    function, the change records, the commit itself: a full disk fails the COMMIT and leaves
    the transaction open). False when even that fails; the caller then drops the connection,
    as one left inside a transaction would refuse every later BEGIN."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return True
    except Exception:  # the original error is the one to report
        log.warning("rollback after a failed transaction failed too", exc_info=True)
        return False


def _close_quietly(conn: sqlite3.Connection) -> None:
    try:
        conn.close()
    except Exception:  # the error being raised is the one to report
        log.debug("closing a failed connection failed", exc_info=True)


def _begin_write(conn: sqlite3.Connection, path: str) -> None:
    _retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"), path)


def _retry_locked(statement: Callable[[], object], path: str) -> None:
    delay = 0.00005
    started = 0.0
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            now = time.monotonic()
            started = started or now
            if now - started > WRITE_WAIT_S:
                # Not an sqlite3 error: the transaction retry loop must not wait all over again.
                raise TransactionConflict(
                    f"{path}: another process held the database's write lock for more than "
                    f"{WRITE_WAIT_S:.0f}s; is a worker stuck inside a transaction?"
                ) from e
            time.sleep(delay)
            # Short sleeps while the wait is young: a worker's next transaction follows its
            # last one closely, and a writer that sleeps long misses every gap between them.
            delay = min(delay * 2, 0.0002 if now - started < 0.05 else 0.002)


class _ForkGuard:
    """Transactions share it; a fork takes it alone (see the module docstring).

    A thread that forks from inside its own transaction is not made to wait: the other
    threads' transactions may be waiting for it (for its write lock), and its own open
    transaction is already what SQLite warns against; such a fork is as unsafe as before."""

    def __init__(self) -> None:
        # Every transaction passes here twice, so the common path uses the bare lock (a C
        # call) and only a pending fork goes through the condition built on it.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._active = 0
        self._forking = False
        self._mine = threading.local()

    def enter(self) -> None:
        mine = self._mine
        depth = getattr(mine, "depth", 0)
        if depth:
            mine.depth = depth + 1
            return
        self._lock.acquire()
        try:
            while self._forking:
                self._cond.wait()
            self._active += 1
        finally:
            self._lock.release()
        mine.depth = 1

    def leave(self) -> None:
        mine = self._mine
        depth = mine.depth - 1
        mine.depth = depth
        if depth:
            return
        self._lock.acquire()
        try:
            self._active -= 1
            if self._forking:
                self._cond.notify_all()
        finally:
            self._lock.release()

    def before_fork(self) -> None:
        self._cond.acquire()
        self._forking = True
        if not getattr(self._mine, "depth", 0):
            while self._active:
                self._cond.wait()

    def after_fork_parent(self) -> None:
        self._forking = False
        self._cond.notify_all()
        self._cond.release()

    def after_fork_child(self) -> None:
        # Only the forking thread exists in the child; it keeps its own place in the guard.
        depth = getattr(self._mine, "depth", 0)
        self.__init__()  # type: ignore[misc]
        if depth:
            self._active = 1
            self._mine.depth = depth


_GUARD = _ForkGuard()
# This process's id, kept current across forks: every transaction asks whether it runs in
# the process that opened its connections, and os.getpid() is a system call each time.
_PID = [os.getpid()]


def _forked_child() -> None:
    _GUARD.after_fork_child()
    _PID[0] = os.getpid()


os.register_at_fork(
    before=_GUARD.before_fork,
    after_in_parent=_GUARD.after_fork_parent,
    after_in_child=_forked_child,
)


def _no_lock(name: str) -> None:
    """SQLite's write transactions exclude each other: a named lock has nothing to add."""


def store_key(url: str) -> str:
    """One key per database file, however its URL spells the path."""
    return "sqlite:" + os.path.realpath(path_from_url(url))


class SqliteBackend(SqlBackend):
    dialect = DIALECT
    # With no busy handler, a read that meets another process's recovery or closing checkpoint
    # is retried as a conflict (sleeps up to 0.2 s): this many attempts wait about 30 s, as
    # SQLite's own handler did.
    max_attempts = 160

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = path_from_url(url)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._writer: sqlite3.Connection | None = None
        self._write_lock = threading.Lock()
        self._next_seqs: dict[tuple[str, int], int] = {}  # see _run_once
        self._seq_version: int | None = None
        self._pid = os.getpid()
        self._writes = 0
        self._closed = False
        self._checkpointer: _Checkpointer | None = None
        _GUARD.enter()
        try:
            conn = self._conn()
            _retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"), self.path)
        finally:
            _GUARD.leave()

        def create(txn: StateTxn) -> None:
            for ddl in DIALECT.ddl():
                txn.cur.execute(ddl)  # type: ignore[attr-defined]  # an SqlTxn

        self._run_once(create, False)

    def _open(self, *, shared: bool = False) -> sqlite3.Connection:
        # No busy handler: write transactions wait in _begin_write, and the rare busy
        # read (WAL recovery) is retried by SqlBackend.transaction as a conflict.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=not shared, timeout=0)
        conn.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints run on a thread of their own (see _Checkpointer); this is the limit
        # at which a commit checkpoints itself, should that thread fall behind.
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_SELF_CHECKPOINT_PAGES}")
        conn.execute("PRAGMA foreign_keys=OFF")
        return conn

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, for read transactions."""
        if _PID[0] != self._pid:
            self.reset_after_fork()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._open()
        return conn

    def _writer_conn(self) -> sqlite3.Connection:
        """The process's one connection for write transactions (called under the write lock).

        SQLite discards a connection's page cache whenever another connection has written
        since its last transaction: with a connection per thread, every poller's write would
        empty every other poller's cache, and each lookup of a table write would read its
        B-tree pages again. Writers of one process are serialised by the write lock anyway,
        so they share one connection and its cache stays warm."""
        conn = self._writer
        if conn is None:
            conn = self._writer = self._open(shared=True)
        return conn

    def _run_once(self, fn: Callable[[StateTxn], T], readonly: bool) -> T:
        _GUARD.enter()
        try:
            if readonly:
                conn = self._conn()
                conn.execute("BEGIN")
                try:
                    read: T = self._body(conn, fn)
                    return read
                except BaseException:
                    if not _abandon(conn):
                        self._local.conn = None  # stuck in its transaction: a new one next time
                        _close_quietly(conn)
                    raise
            if _PID[0] != self._pid:
                self.reset_after_fork()
            lock = self._write_lock
            lock.acquire()
            try:
                conn = self._writer or self._writer_conn()
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError:
                    _begin_write(conn, self.path)
                try:
                    # The next sequence number of each log shard is remembered across this
                    # process's write transactions (a transaction of one put asked SQLite
                    # twice for it), for as long as no other connection has committed since.
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                    if version != self._seq_version:
                        self._next_seqs.clear()
                        self._seq_version = version
                    done: tuple[SqlTxn, T] = self._body(conn, fn, write=True)
                    txn, result = done
                except BaseException:
                    self._next_seqs.clear()  # numbers taken by the rolled-back writes are free
                    if not _abandon(conn):
                        self._writer = None  # it could not even roll back: a new one next time
                        _close_quietly(conn)  # and it must not keep holding the write lock
                    raise
            finally:
                lock.release()
            self._writes += 1
            if self._checkpointer is None or self._checkpointer.pid != _PID[0]:
                self._start_checkpointer()
            if txn.committed:
                self._after_commit(txn)
            return result
        finally:
            _GUARD.leave()

    def _body(self, conn: sqlite3.Connection, fn: Callable[[StateTxn], T], write: bool = False) -> Any:
        """Run ``fn`` in the transaction just begun on ``conn`` and commit; on any failure the
        caller rolls back (:func:`_abandon`), whatever step failed, the commit included."""
        txn = SqlTxn(conn.cursor(), DIALECT, _no_lock)
        if write:
            txn._next_seq = self._next_seqs
        token = self._enter(txn)
        try:
            result = fn(txn)
            if txn._log_rows:
                txn.flush()
        finally:
            _active_reset(token)
        conn.execute("COMMIT")
        return (txn, result) if write else result

    def _start_checkpointer(self) -> None:
        # After the commit, and never failing it: without the thread, commits checkpoint
        # themselves at WAL_SELF_CHECKPOINT_PAGES.
        try:
            checkpointer = _Checkpointer(self)
            checkpointer.start()
        except RuntimeError:  # no more threads, or the interpreter is shutting down
            return
        self._checkpointer = checkpointer

    def _is_conflict(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)

    def reset_after_fork(self) -> None:
        # A connection opened by the parent must never be used, nor closed, by the child:
        # keep the old objects referenced so the child's garbage collector never finalises them.
        _INHERITED.append((self._local, self._writer))
        self._local = threading.local()
        self._writer = None
        self._next_seqs = {}
        self._seq_version = None
        self._write_lock = threading.Lock()
        self._pid = os.getpid()

    def close(self) -> None:
        self._closed = True
        if os.getpid() != self._pid:
            return  # the connections are the parent's (see reset_after_fork)
        with self._write_lock:
            conns = [getattr(self._local, "conn", None), self._writer]
            self._local.conn = None
            self._writer = None
        for conn in conns:
            if conn is not None:
                _GUARD.enter()
                try:
                    conn.close()
                finally:
                    _GUARD.leave()
