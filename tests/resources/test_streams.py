"""Streams: Kinesis shard assignment, sequence numbers, positions, limits."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest

from eventlake import App, ManualClock, ValidationError
from eventlake.errors import SizeLimitExceeded
from eventlake.resources.stream import PutFailure, PutResult, shard_for


def test_shard_is_md5_of_partition_key_over_hash_range(app: App) -> None:
    s = app.stream("incoming", shards=4, retention_hours=24)
    for key in ["a", "b", "trade-1", "ü"]:
        h = int.from_bytes(hashlib.md5(key.encode()).digest(), "big")
        expected = h // ((1 << 128) // 4)
        assert s.put(b"x", key).shard_id == f"shardId-{expected:012d}"


def test_explicit_hash_key_chooses_the_shard(app: App) -> None:
    s = app.stream("s", shards=2)
    assert s.put("x", "k", explicit_hash_key=str((1 << 127) + 5)).shard_id == "shardId-000000000001"
    assert s.put("x", "k", explicit_hash_key="0").shard_id == "shardId-000000000000"
    with pytest.raises(ValidationError, match="explicit_hash_key"):
        s.put("x", "k", explicit_hash_key=str(1 << 128))


def test_sequence_numbers_increase_per_shard(app: App) -> None:
    s = app.stream("s", shards=1)
    seqs = [s.put({"i": i}, "k").sequence_number for i in range(5)]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 5
    assert all(x.isdigit() for x in seqs)


def test_put_accepts_bytes_str_and_dict(app: App) -> None:
    s = app.stream("s")
    s.put(b"\x00\x01", "k")
    s.put("héllo", "k")
    s.put({"a": 1}, "k")
    data = [r.data for r in s.read("shardId-000000000000")]
    assert data == [b"\x00\x01", "héllo".encode(), b'{"a":1}']


def test_put_rejects_oversized_record_with_clear_message(app: App) -> None:
    s = app.stream("s")
    with pytest.raises(SizeLimitExceeded, match="1 MiB"):
        s.put(b"x" * (1024 * 1024), "k")
    s.put(b"x" * (1024 * 1024 - 1), "k")  # data + key = exactly 1 MiB is allowed


def test_put_rejects_bad_partition_keys_and_data(app: App) -> None:
    s = app.stream("s")
    with pytest.raises(ValidationError, match="partition_key"):
        s.put("x", "")
    with pytest.raises(ValidationError, match="partition_key"):
        s.put("x", "k" * 257)
    with pytest.raises(ValidationError, match="bytes, str, dict or list"):
        s.put(12, "k")  # type: ignore[arg-type]


def test_put_many_fails_only_the_bad_records(app: App) -> None:
    s = app.stream("s", shards=2)
    out = s.put_many(
        [
            {"data": "a", "partition_key": "1"},
            {"data": "b", "partition_key": ""},
            {"data": b"x" * (2 * 1024 * 1024), "partition_key": "3"},
            {"data": "d", "partition_key": "4"},
            {"data": "lone \udc80 surrogate", "partition_key": "5"},
            {"data": "e", "partition_key": "lone \udc80"},
        ]
    )
    assert isinstance(out[0], PutResult) and isinstance(out[3], PutResult)
    assert isinstance(out[1], PutFailure) and out[1].error_code == "InvalidArgumentException"
    assert isinstance(out[2], PutFailure) and "1 MiB" in out[2].error_message
    assert isinstance(out[4], PutFailure) and "not valid text" in out[4].error_message
    assert isinstance(out[5], PutFailure) and "partition_key is not valid text" in out[5].error_message
    total = sum(len(s.read(sid)) for sid in s.shard_ids)
    assert total == 2
    with pytest.raises(ValidationError, match="not valid text: surrogates not allowed at character 5"):
        s.put("lone \udc80 surrogate", "k")
    with pytest.raises(ValidationError, match="partition_key is not valid text"):
        s.put("fine", "lone \udc80")


def test_put_many_limits(app: App) -> None:
    s = app.stream("s")
    with pytest.raises(ValidationError, match="at most 500"):
        s.put_many([{"data": "x", "partition_key": "k"}] * 501)


def test_read_positions(app: App, clock: ManualClock, app_factory) -> None:
    a = app_factory("clocked", clock=clock)
    s = a.stream("s")
    first = s.put("1", "k")
    clock.advance(10)
    t_mid = clock.time()
    s.put("2", "k")
    sid = first.shard_id
    assert [r.data for r in s.read(sid)] == [b"1", b"2"]
    assert s.read(sid, position="LATEST") == []
    assert [r.data for r in s.read(sid, position="AT_TIMESTAMP", timestamp=t_mid)] == [b"2"]
    assert [
        r.data for r in s.read(sid, position="AT_SEQUENCE_NUMBER", sequence_number=first.sequence_number)
    ] == [b"1", b"2"]
    assert [
        r.data for r in s.read(sid, position="AFTER_SEQUENCE_NUMBER", sequence_number=first.sequence_number)
    ] == [b"2"]
    with pytest.raises(ValidationError, match="starting position"):
        s.read(sid, position="SOMETIME")


def test_retention_hides_and_trims_old_records(app_factory, clock: ManualClock) -> None:
    a = app_factory("clocked", clock=clock)
    s = a.stream("s", retention_hours=24)
    s.put("old", "k")
    clock.advance(25 * 3600)
    s.put("new", "k")
    assert [r.data for r in s.read("shardId-000000000000")] == [b"new"]
    assert s.trim() == 1


def test_stream_declaration_checks(app: App) -> None:
    with pytest.raises(ValidationError, match="invalid stream name"):
        app.stream("bad name!")
    with pytest.raises(ValidationError, match="shards"):
        app.stream("s", shards=0)
    with pytest.raises(ValidationError, match="retention_hours"):
        app.stream("s", retention_hours=1)


def test_resharding_an_existing_stream_is_refused(app_factory) -> None:
    app_factory("one").stream("s", shards=2)
    with pytest.raises(ValidationError, match="already exists with 2 shards"):
        app_factory("two").stream("s", shards=3)


def test_shard_for_spreads_keys() -> None:
    counts = [0] * 4
    for i in range(4000):
        counts[shard_for(f"key-{i}", 4)] += 1
    assert min(counts) > 800


@pytest.mark.parametrize("streams", ["sqlite", "postgres"])
def test_streams_in_their_own_backend(sqlite_url: str, tmp_path, streams: str, request) -> None:
    """``stream_url`` puts the stream's records in another backend (here a second SQLite file,
    or PostgreSQL under a SQLite state); checkpoints stay in the state backend, triggers, lag
    and atomic handlers work as before."""
    from eventlake.backends import open_state_backend

    stream_url = (
        f"sqlite:///{tmp_path}/streams.db" if streams == "sqlite" else request.getfixturevalue("postgres_url")
    )
    app = App("sep", state_url=sqlite_url, stream_url=stream_url, lake_url=f"file://{tmp_path}/lake")
    s = app.stream("in", shards=2)
    totals = app.table("totals", key="k")
    seen: list[str] = []

    @app.on_stream(s, batch_size=10, atomic=True)
    def count(event, context):
        for r in event["Records"]:
            seen.append(r["kinesis"]["partitionKey"])
            totals.update({"k": "n"}, "ADD c :one", values={":one": 1})

    s.put_many([{"data": b"x", "partition_key": f"p{i}"} for i in range(25)])
    assert sum(app.lag().values()) == 25
    app.drain()
    assert sorted(seen) == sorted(f"p{i}" for i in range(25))
    assert totals.get({"k": "n"})["c"] == 25 and app.lag() == {"count": 0}
    state = open_state_backend(sqlite_url)
    other = open_state_backend(stream_url)
    try:
        assert sum(state.transaction(lambda t, i=i: t.log_last_seq(s.log, i)) for i in range(2)) == 0
        assert sum(other.transaction(lambda t, i=i: t.log_last_seq(s.log, i)) for i in range(2)) == 25
        assert state.transaction(lambda t: t.kv_list("ckpt"))  # checkpoints in the state backend
        assert other.transaction(lambda t: t.kv_list("ckpt")) == []
    finally:
        state.close()
        other.close()
    app.close()


def test_a_stream_url_naming_the_state_file_is_the_state_backend(tmp_path) -> None:
    """Two spellings of one SQLite file must not become two backends (a transaction on one
    would wait for its own write lock on the other)."""
    import os

    rel = os.path.relpath(tmp_path / "state.db")
    app = App("same", state_url=f"sqlite:///{tmp_path}/state.db", stream_url=f"sqlite:///{rel}")
    assert app.env.streams is None and app.stream("s").store is app.env.state
    app.close()


def test_a_bad_stream_url_is_a_clear_error(sqlite_url: str) -> None:
    from eventlake.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^stream_url 'kafka://broker:9092': unknown scheme 'kafka'"):
        App("bad", state_url=sqlite_url, stream_url="kafka://broker:9092")


def test_stream_consumers_refuse_a_stream_store_other_than_the_one_their_checkpoints_came_from(
    tmp_path,
) -> None:
    """Checkpoints are sequence numbers of one stream store: consumers whose stream_url
    changed (added, removed, another file, the file replaced) would skip or wait for records,
    so they are refused with the reason; the same store under another spelling is accepted,
    and apps without stream consumers (tables, queues) are never refused."""
    from eventlake.errors import ConfigError

    state = f"sqlite:///{tmp_path}/state.db"
    lake = f"file://{tmp_path}/lake"

    def app(stream_url: str | None, consume: bool = True) -> App:
        a = App("paired", state_url=state, stream_url=stream_url, lake_url=lake)
        s = a.stream("in")
        a.table("t", key="id").put({"id": "x"})
        if consume:
            a.on_stream(s, name="fn")(lambda event, context: None)
        return a

    first = app(f"sqlite:///{tmp_path}/streams.db")
    first.stream("in").put(b"x", "k")
    first.drain()
    first.close()
    again = app(f"sqlite:///{tmp_path}/./streams.db")
    again.drain()
    again.close()
    for other in (f"sqlite:///{tmp_path}/other.db", None):
        refused = app(other)
        with pytest.raises(ConfigError, match=r"stream checkpoints in this app's state \(esm:fn:"):
            refused.drain()
        refused.close()
        app(other, consume=False).close()  # tables only: nothing to refuse
    (tmp_path / "streams.db").unlink()  # the store replaced by an empty one of the same name
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"streams.db{suffix}").unlink(missing_ok=True)
    replaced = app(f"sqlite:///{tmp_path}/streams.db")
    with pytest.raises(ConfigError, match="Point stream_url back at that store"):
        replaced.drain()
    replaced.close()


def test_consumers_without_checkpoints_follow_a_new_stream_store(tmp_path) -> None:
    """Pairing happens when streams are first consumed; a state whose consumers have no
    checkpoint yet has nothing to lose and is re-paired with the new store."""
    state = f"sqlite:///{tmp_path}/state.db"
    lake = f"file://{tmp_path}/lake"
    seen: list[str] = []
    for n, url in enumerate((f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db")):
        a = App("repair", state_url=state, stream_url=url, lake_url=lake)
        s = a.stream("in")
        a.on_stream(s, name=f"fn{n}")(
            lambda event, context: seen.append(event["Records"][0]["kinesis"]["partitionKey"])
        )
        s.put(b"x", f"k{n}")
        a.drain()
        a.close()
    assert seen == ["k0", "k1"]


def _nested(depth: int) -> list:
    root: list = []
    cur = root
    for _ in range(depth):
        cur.append([])
        cur = cur[0]
    return root


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"x": float("nan")}, "not valid JSON"),
        ([float("inf")], "not valid JSON"),
        ({"x": -float("inf")}, "not valid JSON"),
        ({"x": Decimal("NaN")}, "not valid JSON"),
        ({"x": Decimal("sNaN")}, "not valid JSON"),
        ({"x": Decimal("-Infinity")}, "not valid JSON"),
        (_nested(1_100), "nested too deeply"),
    ],
    ids=["nan", "inf", "-inf", "decimal-nan", "decimal-snan", "decimal-inf", "nested-1100"],
)
def test_data_that_is_not_json_is_refused_by_put_and_fails_alone_in_put_many(app: App, data, match) -> None:
    """NaN and Infinity are not JSON: a consumer in another language could not read the record."""
    s = app.stream("s")
    with pytest.raises(ValidationError, match=match):
        s.put(data, "k")
    out = s.put_many([{"data": data, "partition_key": "k"}, {"data": {"ok": 1.5}, "partition_key": "k"}])
    assert isinstance(out[0], PutFailure) and match in out[0].error_message
    assert [r.json() for r in s.read("shardId-000000000000")] == [{"ok": 1.5}]


@pytest.mark.parametrize("key", ["²", "١", "12²", "", " 1", "-1", "1e3", "0x10", "007", 12], ids=repr)
def test_a_bad_explicit_hash_key_is_a_validation_error_and_fails_alone(app: App, key) -> None:
    s = app.stream("s", shards=2)
    with pytest.raises(ValidationError, match="explicit_hash_key"):
        s.put("x", "k", explicit_hash_key=key)
    out = s.put_many(
        [{"data": "x", "partition_key": "k", "explicit_hash_key": key}, {"data": "y", "partition_key": "k"}]
    )
    assert isinstance(out[0], PutFailure) and isinstance(out[1], PutResult)


@pytest.mark.parametrize("records", [None, 5, "ab", b"ab", {"data": "x", "partition_key": "k"}], ids=repr)
def test_put_many_of_something_not_a_list_is_a_validation_error(app: App, records) -> None:
    s = app.stream("s")
    with pytest.raises(ValidationError, match="put_many takes a list"):
        s.put_many(records)


def test_put_many_answers_like_put_records(app: App) -> None:
    """PutRecords' response: FailedRecordCount, and per record either SequenceNumber + ShardId
    or ErrorCode + ErrorMessage, in the order sent; the result is still a list of results."""
    s = app.stream("s", shards=2)
    out = s.put_many(
        [
            {"data": "a", "partition_key": "1"},
            {"data": "b", "partition_key": ""},
            {"data": {"n": float("nan")}, "partition_key": "3"},
            {"data": "d", "partition_key": "4"},
        ]
    )
    assert [r.ok for r in out] == [True, False, False, True]
    assert out.failed_record_count == 2
    doc = out.as_response()
    assert doc["FailedRecordCount"] == 2
    ok, bad, _, ok2 = doc["Records"]
    assert ok == {"SequenceNumber": out[0].sequence_number, "ShardId": out[0].shard_id}
    assert set(bad) == {"ErrorCode", "ErrorMessage"} and bad["ErrorCode"] == "InvalidArgumentException"
    assert ok2["ShardId"].startswith("shardId-")
    assert s.put_many([]).as_response() == {"FailedRecordCount": 0, "Records": []}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shard": "shardId-²"}, "invalid shard id"),
        ({"position": 5}, "position"),
        ({"limit": "x"}, "limit"),
        ({"limit": True}, "limit"),
        ({"position": "AT_TIMESTAMP", "timestamp": "x"}, "timestamp"),
        ({"position": "AT_SEQUENCE_NUMBER", "sequence_number": "²"}, "invalid sequence number"),
    ],
)
def test_read_arguments_of_the_wrong_type_are_validation_errors(app: App, kwargs, match) -> None:
    s = app.stream("s")
    s.put("x", "k")
    kwargs.setdefault("shard", "shardId-000000000000")
    with pytest.raises(ValidationError, match=match):
        s.read(**kwargs)
