"""SQLite state backend: one file in WAL mode, safe across threads and processes of one machine.

Write transactions start with ``BEGIN IMMEDIATE`` so that a read-then-write (a conditional
put) cannot be interleaved with another writer. Threads of one process take an in-process
lock before that, because SQLite's own busy handler sleeps in coarse steps and would add
milliseconds of latency between our own threads.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from ..errors import ConfigError
from .base import Txn
from .sql import Dialect, SqlBackend, SqlTxn

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


class SqliteBackend(SqlBackend):
    dialect = DIALECT

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = path_from_url(url)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._pid = os.getpid()
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for ddl in DIALECT.ddl():
                    conn.execute(ddl)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _conn(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:
            self.reset_after_fork()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True, timeout=30.0)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA foreign_keys=OFF")
            self._local.conn = conn
        return conn

    def _run_once(self, fn: Callable[[Txn], T], readonly: bool) -> T:
        conn = self._conn()
        lock = None if readonly else self._write_lock
        if lock is not None:
            lock.acquire()
        try:
            conn.execute("BEGIN" if readonly else "BEGIN IMMEDIATE")
            txn = SqlTxn(conn.cursor(), DIALECT, lambda name: None)
            token = self._enter(txn)
            try:
                result = fn(txn)
            except BaseException:
                self._exit(token)
                conn.execute("ROLLBACK")
                raise
            self._exit(token)
            conn.execute("COMMIT")
            return result
        finally:
            if lock is not None:
                lock.release()

    def _is_conflict(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)

    def reset_after_fork(self) -> None:
        # A connection opened by the parent must never be used, nor closed, by the child:
        # keep the old objects referenced so the child's garbage collector never finalises them.
        _INHERITED.append(self._local)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._pid = os.getpid()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
