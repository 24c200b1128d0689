"""The LogStore port's contract, run on every engine that claims it, and what a LogStore-only
engine (one without items, queues or kv: defined here, as a third party would) can do in an
app: carry its streams, with checkpoints and effects in the state backend."""

from __future__ import annotations

import threading
import uuid
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from eventlake import App
from eventlake.backends import registry
from eventlake.errors import ConfigError
from eventlake.ports import LogRow, LogStore, LogTxn

T = TypeVar("T")


class ListLog:
    """A LogStore and nothing else: stream records in lists, in this process."""

    replayable = True
    shared_between_processes = False

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, int], list[LogRow]] = {}
        self._last: dict[tuple[str, int], int] = {}
        self._meta: dict[str, str] = {}
        self._id = uuid.uuid4().hex

    def transaction(self, fn: Callable[[LogTxn], T], *, readonly: bool = False) -> T:
        with self._lock:
            return fn(self)

    def log_declare(self, stream: str, meta: str, *, replace: bool = False) -> str | None:
        old = self._meta.get(stream)
        if old is None or replace:
            self._meta[stream] = meta
        return old

    def log_store_id(self) -> str:
        return self._id

    def log_append(self, stream: str, shard: int, rows: Sequence[tuple[str, bytes, float]]) -> int:
        first = self._last.get((stream, shard), 0) + 1
        self._last[(stream, shard)] = first + len(rows) - 1
        log = self._rows.setdefault((stream, shard), [])
        log.extend(LogRow(first + i, pk, data, ts) for i, (pk, data, ts) in enumerate(rows))
        return first

    def log_read(self, stream: str, shard: int, after: int, limit: int) -> list[LogRow]:
        log = self._rows.get((stream, shard), [])
        i = bisect_right(log, after, key=lambda r: r.seq)
        return log[i : i + limit]

    def log_last_seq(self, stream: str, shard: int) -> int:
        return self._last.get((stream, shard), 0)

    def log_first_seq_at(self, stream: str, shard: int, ts: float) -> int | None:
        return next((r.seq for r in self._rows.get((stream, shard), []) if r.ts >= ts), None)

    def log_trim(self, stream: str, before_ts: float) -> int:
        trimmed = 0
        for (name, _), log in self._rows.items():
            if name == stream:
                keep = [r for r in log if r.ts >= before_ts]
                trimmed += len(log) - len(keep)
                log[:] = keep
        return trimmed

    def close(self) -> None:
        pass

    def reset_after_fork(self) -> None:
        pass


class ForgetfulLog(ListLog):
    """An engine that cannot read a delivered record again (a work-queue stream)."""

    replayable = False


_conforms: LogStore = ListLog("listlog://typed")  # mypy: the test engine is a LogStore


@pytest.fixture(autouse=True)
def _test_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    registry.register("log", "listlog", ListLog)
    registry.register("log", "forgetful", ForgetfulLog)


@pytest.fixture(params=["sqlite", "postgres", "memory", "listlog"])
def log_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/log.db"
    elif request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"{request.param}://"
    store: LogStore = registry.open_url("log", url, setting="stream_url")
    yield store
    store.close()


def _append(store: LogStore, shard: int, *rows: tuple[str, bytes, float]) -> int:
    return store.transaction(lambda t: t.log_append("s", shard, list(rows)))


# -- the contract


def test_numbers_start_at_one_and_grow_by_one_per_record_and_shard(log_store: LogStore) -> None:
    assert log_store.transaction(lambda t: t.log_last_seq("s", 0)) == 0
    assert _append(log_store, 0, ("a", b"1", 1.0), ("b", b"2", 2.0)) == 1
    assert _append(log_store, 0, ("c", b"3", 3.0)) == 3
    assert _append(log_store, 1, ("d", b"x", 1.0)) == 1
    rows = log_store.transaction(lambda t: t.log_read("s", 0, 0, 10))
    assert [(r.seq, r.pkey, r.data, r.ts) for r in rows] == [
        (1, "a", b"1", 1.0),
        (2, "b", b"2", 2.0),
        (3, "c", b"3", 3.0),
    ]
    assert [r.seq for r in log_store.transaction(lambda t: t.log_read("s", 0, 1, 1))] == [2]
    assert log_store.transaction(lambda t: t.log_read("s", 0, 3, 10)) == []
    assert log_store.transaction(lambda t: t.log_last_seq("s", 0)) == 3
    assert log_store.transaction(lambda t: t.log_last_seq("s", 1)) == 1


def test_first_number_at_a_time(log_store: LogStore) -> None:
    _append(log_store, 0, ("a", b"1", 1.0), ("a", b"2", 2.0), ("a", b"3", 3.0))
    assert log_store.transaction(lambda t: t.log_first_seq_at("s", 0, 1.5)) == 2
    assert log_store.transaction(lambda t: t.log_first_seq_at("s", 0, 2.0)) == 2
    assert log_store.transaction(lambda t: t.log_first_seq_at("s", 0, 9.0)) is None


def test_numbers_never_go_backwards_after_trimming_empties_a_shard(log_store: LogStore) -> None:
    _append(log_store, 0, ("a", b"1", 1.0), ("a", b"2", 2.0))
    _append(log_store, 1, ("a", b"x", 5.0))
    assert log_store.transaction(lambda t: t.log_trim("s", 1.5)) == 1
    assert [r.seq for r in log_store.transaction(lambda t: t.log_read("s", 0, 0, 10))] == [2]
    assert log_store.transaction(lambda t: t.log_trim("s", 10.0)) == 2
    assert log_store.transaction(lambda t: t.log_read("s", 0, 0, 10)) == []
    assert log_store.transaction(lambda t: t.log_last_seq("s", 0)) == 2
    assert _append(log_store, 0, ("a", b"3", 11.0)) == 3


def test_a_stream_is_declared_once_and_its_settings_replaced_on_request(log_store: LogStore) -> None:
    assert log_store.transaction(lambda t: t.log_declare("s", '{"shards": 2}')) is None
    assert log_store.transaction(lambda t: t.log_declare("s", '{"shards": 3}')) == '{"shards": 2}'
    assert (
        log_store.transaction(lambda t: t.log_declare("s", '{"shards": 4}', replace=True)) == '{"shards": 2}'
    )
    assert log_store.transaction(lambda t: t.log_declare("s", "{}")) == '{"shards": 4}'


def test_a_store_keeps_one_identity(log_store: LogStore) -> None:
    sid = log_store.transaction(lambda t: t.log_store_id())
    assert sid and log_store.transaction(lambda t: t.log_store_id()) == sid
    other: LogStore = registry.open_url("log", "memory://", setting="stream_url")
    assert other.transaction(lambda t: t.log_store_id()) != sid


# -- a LogStore-only engine in an app


def test_a_log_only_engine_carries_streams_and_atomic_handlers_commit_with_their_checkpoint(
    sqlite_url: str,
) -> None:
    app = App("logonly", state_url=sqlite_url, stream_url="listlog://app")
    try:
        assert isinstance(app.env.streams, ListLog)
        orders = app.stream("orders", shards=2)
        totals = app.table("totals", key="id")
        calls = {"n": 0}

        @app.on_stream(orders, batch_size=100, atomic=True, max_retry_attempts=-1)
        def add(event: Any, context: Any) -> None:
            for _ in event["Records"]:
                totals.update({"id": "all"}, "ADD n :one", values={":one": 1})
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("the first attempt fails after writing: its writes must go")

        orders.put_many([{"data": b"x", "partition_key": f"k{i}"} for i in range(20)])
        app.drain()
        assert totals.get({"id": "all"}) == {"id": "all", "n": 20}
        assert app.lag() == {"add": 0}
    finally:
        app.close()


def test_atomic_is_refused_on_a_stream_whose_store_cannot_replay(sqlite_url: str) -> None:
    app = App("forgets", state_url=sqlite_url, stream_url="forgetful://x")
    try:
        s = app.stream("s")
        with pytest.raises(
            ConfigError, match=r"^on_stream 'handler', atomic=True: stream 's' lives in forgetful://x"
        ):

            @app.on_stream(s, atomic=True)
            def handler(event: Any, context: Any) -> None: ...

        @app.on_stream(s)  # at least once is still available
        def plain(event: Any, context: Any) -> None: ...
    finally:
        app.close()
