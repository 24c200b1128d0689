"""The state port's contract, run against every engine (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from eventlake.backends import open_state_backend
from eventlake.backends.base import QueueRow, StateBackend
from eventlake.errors import ConfigError


@pytest.fixture
def backend(state_url: str) -> Iterator[StateBackend]:
    b = open_state_backend(state_url)
    yield b
    b.close()


def test_items_put_get_delete_and_range_order(backend: StateBackend) -> None:
    def fill(t):
        for sk in [b"b", b"a", b"c", b"\xff", b"\x00"]:
            t.item_put("tbl", b"p", sk, sk * 2)
        t.item_put("tbl", b"q", b"a", b"other")

    backend.transaction(fill)
    rows = backend.transaction(lambda t: t.item_range("tbl", b"p", after=None, forward=True, limit=10))
    assert [sk for sk, _ in rows] == [b"\x00", b"a", b"b", b"c", b"\xff"]  # byte order
    back = backend.transaction(lambda t: t.item_range("tbl", b"p", after=b"c", forward=False, limit=2))
    assert [sk for sk, _ in back] == [b"b", b"a"]
    assert backend.transaction(lambda t: t.item_get("tbl", b"q", b"a")) == b"other"
    backend.transaction(lambda t: t.item_delete("tbl", b"q", b"a"))
    assert backend.transaction(lambda t: t.item_get("tbl", b"q", b"a")) is None
    scan = backend.transaction(lambda t: t.item_scan("tbl", after=(b"p", b"b"), limit=10))
    assert [(pk, sk) for pk, sk, _ in scan] == [(b"p", b"c"), (b"p", b"\xff")]


def test_transaction_rolls_back_on_error(backend: StateBackend) -> None:
    def boom(t):
        t.kv_put("ns", "k", "v")
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        backend.transaction(boom)
    assert backend.transaction(lambda t: t.kv_get("ns", "k")) is None


def test_nested_transaction_joins_outer(backend: StateBackend) -> None:
    def outer(t):
        backend.transaction(lambda inner: inner.kv_put("ns", "a", "1"))
        assert t.kv_get("ns", "a") == "1"
        raise RuntimeError("abort all")

    with pytest.raises(RuntimeError):
        backend.transaction(outer)
    assert backend.transaction(lambda t: t.kv_get("ns", "a")) is None


def test_log_sequences_are_gapless_per_shard(backend: StateBackend) -> None:
    first = backend.transaction(lambda t: t.log_append("s", 0, [("k", b"1", 1.0), ("k", b"2", 2.0)]))
    second = backend.transaction(lambda t: t.log_append("s", 0, [("k", b"3", 3.0)]))
    other = backend.transaction(lambda t: t.log_append("s", 1, [("k", b"x", 1.0)]))
    assert (first, second, other) == (1, 3, 1)
    rows = backend.transaction(lambda t: t.log_read("s", 0, 1, 10))
    assert [(r.seq, r.data) for r in rows] == [(2, b"2"), (3, b"3")]
    assert backend.transaction(lambda t: t.log_last_seq("s", 0)) == 3
    assert backend.transaction(lambda t: t.log_first_seq_at("s", 0, 2.5)) == 3
    assert backend.transaction(lambda t: t.log_trim("s", 2.5)) == 3  # two of shard 0, one of shard 1


def _in_threads(target, args: list[tuple]) -> None:
    """Run ``target`` once per argument tuple, each on its own thread, and wait for all."""
    threads = [threading.Thread(target=target, args=a) for a in args]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def test_concurrent_appends_never_share_a_sequence_number(backend: StateBackend) -> None:
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(50):
                backend.transaction(lambda t: t.log_append("c", 0, [("k", b"x", 0.0)]))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    _in_threads(writer, [()] * 4)
    assert not errors
    rows = backend.transaction(lambda t: t.log_read("c", 0, 0, 1000))
    assert [r.seq for r in rows] == list(range(1, 201))


def test_many_appends_in_one_transaction_stay_gapless_across_concurrent_writers(
    backend: StateBackend,
) -> None:
    """A transaction appending record after record (an atomic batch's change records) takes
    its numbers from one counter read; concurrent transactions on the same shard - and ones
    that read the last number or fail midway - must still see one gapless sequence."""
    errors: list[BaseException] = []

    def batch(t, w: int, i: int) -> None:
        for j in range(10):
            t.log_add("m", 0, "k", f"{w}.{i}.{j}".encode(), 0.0)
            if j == 4:
                t.log_append("m", 0, [("k", f"{w}.{i}.a".encode(), 0.0), ("k", f"{w}.{i}.b".encode(), 0.0)])
        last = t.log_last_seq("m", 0)
        assert t.log_read("m", 0, last - 1, 10)[-1].seq == last  # its own rows, numbered
        if i % 5 == 4:
            raise RuntimeError("rolled back: its numbers are free again")

    def writer(w: int) -> None:
        for i in range(15):
            try:
                backend.transaction(lambda t, i=i: batch(t, w, i))
            except RuntimeError:
                pass
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

    _in_threads(writer, [(w,) for w in range(4)])
    assert not errors
    rows = backend.transaction(lambda t: t.log_read("m", 0, 0, 10_000))
    assert [r.seq for r in rows] == list(range(1, 4 * 12 * 12 + 1))  # 12 kept batches of 12 each
    assert backend.transaction(lambda t: t.log_last_seq("m", 0)) == len(rows)
    assert backend.transaction(lambda t: t.log_append("m", 0, [("k", b"next", 0.0)])) == len(rows) + 1


def test_kv_insert_only_once_and_prefix_list(backend: StateBackend) -> None:
    assert backend.transaction(lambda t: t.kv_insert("ns", "a%_", "1"))
    assert not backend.transaction(lambda t: t.kv_insert("ns", "a%_", "2"))
    backend.transaction(lambda t: t.kv_put("ns", "ab", "3"))
    backend.transaction(lambda t: t.kv_put("ns", "b", "4"))
    assert backend.transaction(lambda t: t.kv_list("ns", "a")) == [("a%_", "1"), ("ab", "3")]
    assert backend.transaction(lambda t: t.kv_list("ns", "a%")) == [("a%_", "1")]


def test_queue_rows_visibility_and_stats(backend: StateBackend) -> None:
    def row(i: int, visible: float, receives: int = 0, grp: str | None = None) -> QueueRow:
        return QueueRow(f"m{i}", i, b"b", None, 0.0, visible, receives, None, None, grp, None)

    backend.transaction(lambda t: t.q_insert("q", [row(1, 0), row(2, 50, 1, "g"), row(3, 100)]))
    vis = backend.transaction(lambda t: t.q_scan_visible("q", 10.0, 0, 10))
    assert [r.id for r in vis] == ["m1"]
    assert backend.transaction(lambda t: t.q_stats("q", 10.0)) == (1, 1, 1)
    assert backend.transaction(lambda t: t.q_inflight_groups("q", 10.0)) == {"g"}
    assert backend.transaction(lambda t: t.q_next_visible("q")) == 0
    assert backend.transaction(lambda t: t.q_delete("q", ["m1", "nope"])) == 1
    assert backend.transaction(lambda t: t.q_purge("q")) == 2


def test_counter_reserves_ranges(backend: StateBackend) -> None:
    assert backend.transaction(lambda t: t.counter_next("c", 5)) == 1
    assert backend.transaction(lambda t: t.counter_next("c", 1)) == 6


def test_unknown_scheme_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown scheme 'mysql'"):
        open_state_backend("mysql://x")
    with pytest.raises(ConfigError, match="in-memory"):
        open_state_backend("sqlite://:memory:")


def _child_writes(url: str, out: object) -> None:
    b = open_state_backend(url)
    b.transaction(lambda t: t.kv_put("ns", "child", "wrote"))
    out.put("ok")  # type: ignore[attr-defined]


def test_sqlite_fork_during_a_write_transaction_leaves_the_child_able_to_write(sqlite_url: str) -> None:
    """A worker forked while another thread of the parent is inside a transaction used to
    inherit SQLite's lock bookkeeping and hang on its first write; forks now wait for it."""
    import multiprocessing

    backend = open_state_backend(sqlite_url)
    inside = threading.Event()
    release = threading.Event()

    def hold(t: object) -> None:
        t.kv_put("ns", "parent", "x")  # type: ignore[attr-defined]
        inside.set()
        release.wait(10)

    holder = threading.Thread(target=lambda: backend.transaction(hold))
    holder.start()
    assert inside.wait(10)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child_writes, args=(sqlite_url, out))
    threading.Timer(0.2, release.set).start()  # the fork below waits for this commit
    child.start()
    child.join(20)
    alive = child.is_alive()
    if alive:
        child.kill()
    holder.join(10)
    assert not alive and child.exitcode == 0 and out.get(timeout=5) == "ok"
    assert backend.transaction(lambda t: t.kv_get("ns", "child")) == "wrote"
    backend.close()


def test_sqlite_checkpoints_run_off_the_committing_thread(sqlite_url: str) -> None:
    """Commits never reach SQLite's self-checkpoint limit here, yet the pages reach the main
    database file: the backend's checkpoint thread copied them."""
    import os
    import time

    from eventlake.backends.sqlite import WAL_SELF_CHECKPOINT_PAGES, path_from_url

    backend = open_state_backend(sqlite_url)
    path = path_from_url(sqlite_url)
    blob = os.urandom(2048)
    for i in range(600):  # ~1.2 MB: a few hundred pages, far below the self-checkpoint limit
        backend.transaction(lambda t, i=i: t.item_put("tbl", str(i).encode(), b"", blob))
    assert WAL_SELF_CHECKPOINT_PAGES > 600 * 2048 // 4096
    deadline = time.monotonic() + 10
    while os.path.getsize(path) < 600 * 2048 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.getsize(path) >= 600 * 2048
    assert backend.transaction(lambda t: t.item_get("tbl", b"599", b"")) == blob
    backend.close()


def test_a_transaction_reads_its_own_writes(backend: StateBackend) -> None:
    """Item writes and log appends may be kept behind and sent in batches (SQLite); every read
    inside the transaction still sees them, in order, and a rollback sends none of them."""

    def run(t):
        t.item_put("tbl", b"p", b"a", b"1")
        assert t.item_get("tbl", b"p", b"a") == b"1"
        t.item_put("tbl", b"p", b"a", b"2")
        t.item_put("tbl", b"p", b"b", b"3")
        assert t.item_get("tbl", b"p", b"a") == b"2"
        t.item_delete("tbl", b"p", b"b")
        assert t.item_get("tbl", b"p", b"b") is None
        assert t.item_get("tbl", b"p", b"c") is None
        assert [sk for sk, _ in t.item_range("tbl", b"p", after=None, forward=True, limit=10)] == [b"a"]
        first = t.log_append("s", 0, [("k", b"x", 1.0), ("k", b"y", 2.0)])
        assert t.log_append("s", 0, [("k", b"z", 3.0)]) == first + 2
        assert [r.data for r in t.log_read("s", 0, 0, 10)] == [b"x", b"y", b"z"]
        assert t.log_last_seq("s", 0) == first + 2
        t.item_put("tbl", b"p", b"d", b"4")  # kept behind until commit

    backend.transaction(run)
    assert backend.transaction(lambda t: t.item_get("tbl", b"p", b"a")) == b"2"
    assert backend.transaction(lambda t: t.item_get("tbl", b"p", b"d")) == b"4"
    assert backend.transaction(lambda t: t.item_get("tbl", b"p", b"b")) is None

    def fails(t):
        t.item_put("tbl", b"p", b"e", b"5")
        t.log_append("s", 0, [("k", b"w", 4.0)])
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        backend.transaction(fails)
    assert backend.transaction(lambda t: t.item_get("tbl", b"p", b"e")) is None
    assert [r.data for r in backend.transaction(lambda t: t.log_read("s", 0, 0, 10))] == [b"x", b"y", b"z"]


def test_sqlite_fork_from_inside_a_transaction_does_not_deadlock(sqlite_url: str) -> None:
    """A thread that forks inside its own transaction, while another thread waits for its
    write lock, must not wait for that thread (which waits for it)."""
    import multiprocessing

    backend = open_state_backend(sqlite_url)
    waiting = threading.Event()
    done = threading.Event()

    def other() -> None:
        waiting.set()
        backend.transaction(lambda t: t.kv_put("ns", "other", "x"))
        done.set()

    ctx = multiprocessing.get_context("fork")
    exit_codes: list[int | None] = []

    def fork_inside(t: object) -> None:
        t.kv_put("ns", "forker", "x")  # type: ignore[attr-defined]
        threading.Thread(target=other, daemon=True).start()
        assert waiting.wait(10)
        child = ctx.Process(target=int)  # touches no database
        child.start()
        child.join(20)
        exit_codes.append(child.exitcode)

    backend.transaction(fork_inside)
    assert exit_codes == [0]
    assert done.wait(20)
    assert backend.transaction(lambda t: t.kv_get("ns", "other")) == "x"
    backend.close()


def test_sqlite_items_live_in_a_rowid_table(tmp_path) -> None:
    """Items are keyed by a unique index over a rowid table (random keys are cheaper to insert
    there than into a WITHOUT ROWID table's B-tree)."""
    import sqlite3

    new = open_state_backend(f"sqlite:///{tmp_path}/new.db")
    new.close()
    with sqlite3.connect(tmp_path / "new.db") as c:
        ddl = c.execute("SELECT sql FROM sqlite_master WHERE name = 'el_items'").fetchone()[0]
    assert "UNIQUE (tbl, pk, sk)" in ddl and "WITHOUT ROWID" not in ddl


def test_change_records_are_read_back_in_order_and_rolled_back_with_their_transaction(
    backend: StateBackend,
) -> None:
    """Change records (log_add) may be written at commit; a read in the same transaction sees
    them, a rollback keeps none, and committed numbers never repeat."""

    def write(t):
        a = t.log_add("chg", 0, "k", b"first", 1.0)
        b = t.log_add("chg", 0, "k", b"second", 2.0)
        assert [r.data for r in t.log_read("chg", 0, 0, 10)] == [b"first", b"second"]
        assert t.log_last_seq("chg", 0) == b
        return a, b

    a, b = backend.transaction(write)
    assert b == a + 1

    def abandoned(t):
        t.log_add("chg", 0, "k", b"lost", 3.0)
        raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        backend.transaction(abandoned)
    c = backend.transaction(lambda t: t.log_add("chg", 0, "k", b"third", 4.0))
    assert c == b + 1
    rows = backend.transaction(lambda t: t.log_read("chg", 0, 0, 10))
    assert [(r.seq, r.data) for r in rows] == [(a, b"first"), (b, b"second"), (c, b"third")]


def test_sqlite_remembered_sequence_numbers_follow_other_writers(sqlite_url: str) -> None:
    """A process remembers each log shard's next number between its write transactions; a
    write by another connection in between (another process, another backend on the file)
    must not make it hand out a number twice, and a rolled-back append frees its number."""
    a = open_state_backend(sqlite_url)
    b = open_state_backend(sqlite_url)  # a second connection to the same file
    try:
        assert a.transaction(lambda t: t.log_append("s", 0, [("k", b"1", 1.0)])) == 1
        assert b.transaction(lambda t: t.log_append("s", 0, [("k", b"2", 1.0)])) == 2
        assert a.transaction(lambda t: t.log_add("s", 0, "k", b"3", 1.0)) == 3

        def abandoned(t):
            t.log_add("s", 0, "k", b"lost", 1.0)
            raise RuntimeError("roll back")

        with pytest.raises(RuntimeError):
            a.transaction(abandoned)
        assert a.transaction(lambda t: t.log_add("s", 0, "k", b"4", 1.0)) == 4
        rows = a.transaction(lambda t: t.log_read("s", 0, 0, 10))
        assert [(r.seq, r.data) for r in rows] == [(1, b"1"), (2, b"2"), (3, b"3"), (4, b"4")]
    finally:
        a.close()
        b.close()


def test_sqlite_a_failed_commit_rolls_back_and_leaves_the_writer_usable(sqlite_url: str) -> None:
    """A COMMIT that fails (here SQLite's own interrupt, as a full disk would) leaves the
    connection inside its transaction: the backend must roll it back, or every later write
    of the process fails with "cannot start a transaction within a transaction"."""
    import sqlite3

    backend = open_state_backend(sqlite_url)
    try:
        backend.transaction(lambda t: t.kv_put("k", "before", "1"))
        conn = backend._writer  # type: ignore[attr-defined]
        armed = [False]

        def trace(statement: str) -> None:
            armed[0] = statement.strip().upper() == "COMMIT"

        conn.set_trace_callback(trace)
        conn.set_progress_handler(lambda: 1 if armed[0] else 0, 1)
        with pytest.raises(sqlite3.OperationalError, match="interrupt"):
            backend.transaction(lambda t: t.kv_put("k", "lost", "2"))
        conn.set_progress_handler(None, 0)
        conn.set_trace_callback(None)
        backend.transaction(lambda t: t.kv_put("k", "after", "3"))
        got = backend.transaction(lambda t: tuple(t.kv_get("k", n) for n in ("before", "lost", "after")))
        assert got == ("1", None, "3")
    finally:
        backend.close()


def test_a_transaction_aborted_by_a_caught_error_is_reported_not_lost(backend: StateBackend) -> None:
    """A transaction function that catches a database error and returns: on PostgreSQL the
    engine has aborted the whole transaction (its COMMIT silently rolls back), so the caller
    must hear that nothing was committed; SQLite undoes only the failed statement and commits
    the rest. Either way nothing is half applied without a word."""
    from eventlake.backends.postgres import PostgresBackend
    from eventlake.errors import TransactionAborted

    def fn(t) -> str:
        t.kv_put("k", "written", "1")
        try:
            t.cur.execute("SELECT * FROM no_such_table")
        except Exception:  # a careless function
            pass
        return "done"

    if isinstance(backend, PostgresBackend):
        with pytest.raises(TransactionAborted, match="nothing was committed"):
            backend.transaction(fn)
        assert backend.transaction(lambda t: t.kv_get("k", "written")) is None
    else:
        assert backend.transaction(fn) == "done"
        assert backend.transaction(lambda t: t.kv_get("k", "written")) == "1"
    assert backend.transaction(lambda t: t.kv_put("k", "after", "2")) is None  # still usable
