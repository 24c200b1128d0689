"""PostgreSQL state backend (psycopg 3 with a connection pool).

Transactions run at READ COMMITTED with explicit row locks (``SELECT ... FOR UPDATE``) where
the port asks for them, ``SKIP LOCKED`` for queue receives so that consumers do not wait on
each other, and advisory locks for the few whole-resource critical sections (FIFO group
selection). A lost race on an insert (unique violation), a deadlock or a serialisation
failure makes the whole transaction run again, which is why port transactions are functions.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import MissingDependency, TransactionAborted
from ..ports.state import StateTxn
from .sql import Dialect, SqlBackend, SqlTxn

T = TypeVar("T")

DIALECT = Dialect(
    name="postgresql",
    placeholder="%s",
    blob="BYTEA",
    int="BIGINT",
    real="DOUBLE PRECISION",
    without_rowid="",
    for_update=" FOR UPDATE",
    skip_locked=" SKIP LOCKED",
)


_INHERITED: list[object] = []


class PostgresBackend(SqlBackend):
    dialect = DIALECT

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 16) -> None:
        try:
            import psycopg
            import psycopg_pool
        except ImportError as e:  # pragma: no cover - depends on the install
            raise MissingDependency("the PostgreSQL backend", "postgres", e) from e
        self._psycopg = psycopg
        self.url = url
        self._dsn = url.replace("postgres://", "postgresql://", 1)
        self._pool_args: dict[str, Any] = {"min_size": min_size, "max_size": max_size}
        self._pid = os.getpid()
        self._pool = self._make_pool(psycopg_pool)
        with self._pool.connection() as conn:
            # Serialise schema creation between processes starting at the same moment.
            conn.execute("SELECT pg_advisory_xact_lock(7243117)")
            for ddl in DIALECT.ddl():
                conn.execute(ddl)
        self._conflicts = (
            psycopg.errors.SerializationFailure,
            psycopg.errors.DeadlockDetected,
            psycopg.errors.UniqueViolation,
            psycopg.errors.LockNotAvailable,
        )

    def _make_pool(self, psycopg_pool: Any) -> Any:
        pool = psycopg_pool.ConnectionPool(
            self._dsn, open=True, kwargs={"autocommit": False}, **self._pool_args
        )
        pool.wait(timeout=30)
        return pool

    def _run_once(self, fn: Callable[[StateTxn], T], readonly: bool) -> T:
        if os.getpid() != self._pid:
            self.reset_after_fork()
        # The callbacks run after the block, that is after the commit.
        with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor()

            def advisory(name: str) -> None:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(name.encode()),))

            txn = SqlTxn(cur, DIALECT, advisory)
            token = self._enter(txn)
            try:
                result = fn(txn)
                if self._in_error(conn):
                    # PostgreSQL's COMMIT of an aborted transaction rolls back without an error.
                    raise TransactionAborted(
                        "a statement of this transaction failed and PostgreSQL aborted the "
                        "whole transaction, but the transaction function caught the error and "
                        "returned: nothing was committed. Let database errors propagate out "
                        "of the function (or catch them outside the transaction)"
                    )
                txn.flush()
            finally:
                self._exit(token)
        if txn.committed:
            self._after_commit(txn)
        return result

    def aborted(self) -> bool:
        txn = self.current()
        return txn is not None and self._in_error(txn.cur.connection)

    def _in_error(self, conn: Any) -> bool:
        return bool(conn.info.transaction_status == self._psycopg.pq.TransactionStatus.INERROR)

    def _is_conflict(self, exc: BaseException) -> bool:
        return isinstance(exc, self._conflicts)

    def reset_after_fork(self) -> None:
        import psycopg_pool

        # The parent's sockets belong to the parent: open a fresh pool, and keep the inherited
        # one referenced so that it is never finalised (which would close the parent's sessions).
        _INHERITED.append(self._pool)
        self._pid = os.getpid()
        self._pool = self._make_pool(psycopg_pool)

    def close(self) -> None:
        self._pool.close()
