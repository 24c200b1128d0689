"""The object-store contract (``eventlake/ports/objects.py``), run on every store that claims
it: a folder (``file://``) and ``memory://``. S3 joins when it lands."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventlake import App, ValidationError
from eventlake.backends.objects import FileStore, MemoryStore, open_object_store
from eventlake.errors import ConfigError, ResourceNotFound
from eventlake.ports.objects import ObjectInfo, ObjectStore

SCHEMES = ["file", "memory"]


@pytest.fixture(params=SCHEMES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"file://{tmp_path}/lake" if request.param == "file" else "memory://"


@pytest.fixture
def store(store_url: str) -> ObjectStore:
    return open_object_store(store_url)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_put_get_head_round_trip(store: ObjectStore) -> None:
    info = store.put("a/b/c.txt", b"hello")
    assert (info.key, info.size, info.etag) == ("a/b/c.txt", 5, md5(b"hello"))
    assert store.get("a/b/c.txt") == b"hello"
    head = store.head("a/b/c.txt")
    assert head is not None and (head.key, head.size, head.etag) == ("a/b/c.txt", 5, md5(b"hello"))


@pytest.mark.parametrize("data", [b"", bytearray(b"xy"), memoryview(b"xyz"), bytes(range(256)) * 1000])
def test_any_bytes_like_data_round_trips(store: ObjectStore, data: Any) -> None:
    store.put("k", data)
    assert store.get("k") == bytes(data)
    assert store.head("k") == ObjectInfo("k", len(data), md5(bytes(data)), store.head("k").modified)  # type: ignore[union-attr]


@pytest.mark.parametrize("data", ["text", 1, None, [b"x"]])
def test_data_that_is_not_bytes_is_refused(store: ObjectStore, data: Any) -> None:
    with pytest.raises(ValidationError, match="bytes"):
        store.put("k", data)
    assert store.head("k") is None


def test_overwrite_replaces_the_whole_object(store: ObjectStore) -> None:
    store.put("k", b"a long first version")
    info = store.put("k", b"short")
    assert store.get("k") == b"short" and info.size == 5 and info.etag == md5(b"short")
    assert [o.key for o in store.list()] == ["k"]


def test_missing_keys(store: ObjectStore) -> None:
    with pytest.raises(ResourceNotFound, match="nope"):
        store.get("nope")
    assert store.head("nope") is None
    assert store.delete("nope") is False
    store.put("dir/x", b"1")
    with pytest.raises(ResourceNotFound):
        store.get("dir")  # a prefix is not an object
    assert store.head("dir") is None


def test_delete(store: ObjectStore) -> None:
    store.put("a/x", b"1")
    store.put("a/y", b"2")
    assert store.delete("a/x") is True
    assert store.delete("a/x") is False
    assert [o.key for o in store.list()] == ["a/y"]
    assert store.delete("a/y") is True
    assert list(store.list()) == []


def test_list_is_in_key_order_with_a_plain_string_prefix(store: ObjectStore) -> None:
    keys = ["b", "a/b/c", "a/b", "a/bc", "a-b", "a/b/a", "é/x", "z/0", "A"]
    for i, k in enumerate(keys):
        if k == "a/b":
            continue  # a folder cannot hold "a/b" as an object and as a folder; see below
        store.put(k, str(i).encode())
    present = sorted(k for k in keys if k != "a/b")
    assert [o.key for o in store.list()] == present
    assert [o.key for o in store.list("a/b")] == ["a/b/a", "a/b/c", "a/bc"]
    assert [o.key for o in store.list("a/b/")] == ["a/b/a", "a/b/c"]
    assert [o.key for o in store.list("nothing")] == []
    for o in store.list("a/"):
        assert o.size == len(store.get(o.key)) and o.etag in ("", md5(store.get(o.key)))


def test_an_object_and_a_folder_of_one_name(store: ObjectStore) -> None:
    """S3 holds ``a`` and ``a/b`` side by side; a folder cannot. Either both are kept, or the
    second put is a ValidationError and the first object is untouched."""
    store.put("a", b"object")
    try:
        store.put("a/b", b"inside")
    except ValidationError as e:
        assert "a/b" in str(e)
        assert [o.key for o in store.list()] == ["a"]
    else:
        assert [o.key for o in store.list()] == ["a", "a/b"]
    assert store.get("a") == b"object"
    store.put("c/d", b"inside")
    try:
        store.put("c", b"object")
    except ValidationError:
        assert [o.key for o in store.list("c")] == ["c/d"]
    assert store.get("c/d") == b"inside"


HOSTILE = [
    "",
    "/abs",
    "../escape",
    "a/../../escape",
    "a/./b",
    "a//b",
    "a/",
    ".",
    "..",
    "nul\x00byte",
    "x" * 1025,
    "é" * 513,
    "lone\ud800surrogate",
    None,
    7,
    b"bytes",
]


@pytest.mark.parametrize("key", HOSTILE, ids=lambda k: repr(k)[:20])
def test_hostile_keys_are_refused_everywhere(store: ObjectStore, key: Any, tmp_path: Path) -> None:
    for call in (
        lambda: store.put(key, b"x"),
        lambda: store.get(key),
        lambda: store.head(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(ValidationError):
            call()
    assert list(store.list()) == []
    assert {p.name for p in tmp_path.iterdir()} <= {"lake"}  # nothing written beside the lake


def test_keys_at_the_limits(store: ObjectStore) -> None:
    longest = ("x" * 250 + "/") * 4 + "é" * 10  # 1,024 bytes, no segment over 255
    assert len(longest.encode()) == 1024
    deep = "a/" * 300 + "end"
    for k in (longest, deep, "with space/and'quote\"/ünï.txt", "tab\tand\nnewline"):
        store.put(k, b"v")
        assert store.get(k) == b"v"


def test_a_segment_a_folder_cannot_hold(store: ObjectStore) -> None:
    key = "x/" + "é" * 128  # 256 bytes in one segment: S3 takes it, a folder cannot
    try:
        store.put(key, b"v")
    except ValidationError as e:
        assert "255" in str(e)
        assert list(store.list()) == []
        with pytest.raises(ResourceNotFound):
            store.get(key)
        assert store.head(key) is None and store.delete(key) is False
    else:
        assert store.get(key) == b"v"


def test_no_object_is_hidden_from_listings(store: ObjectStore) -> None:
    """A folder keeps in-flight writes as ``.tmp-*`` files and leaves them out of listings; a
    user's object of such a name must be refused, not written and then never listed."""
    try:
        store.put("p/.tmp-x", b"v")
    except ValidationError:
        assert list(store.list()) == []
    else:
        assert [o.key for o in store.list()] == ["p/.tmp-x"]


def test_concurrent_puts_of_one_key_leave_one_whole_version(store: ObjectStore) -> None:
    versions = [bytes([i]) * 100_000 for i in range(8)]
    threads = [threading.Thread(target=store.put, args=("k", v)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("k") in versions


def test_memory_stores_are_private_unless_named() -> None:
    a, b = MemoryStore("memory://"), MemoryStore("memory://")
    a.put("k", b"1")
    assert b.head("k") is None
    n1, n2 = open_object_store("memory://shared-test"), open_object_store("memory://shared-test")
    n1.put("k", b"2")
    assert n2.get("k") == b"2"
    n1.delete("k")


def test_a_bad_memory_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="memory://"):
        MemoryStore("memory://x?opt=1")


def test_local_root_is_where_the_files_are(tmp_path: Path) -> None:
    store = FileStore(f"file://{tmp_path}/lake")
    store.put("a/b", b"v")
    root = store.local_root()
    assert root is not None and (Path(root) / "a" / "b").read_bytes() == b"v"
    assert MemoryStore().local_root() is None


# -- SQL over each store


@pytest.fixture
def lake_app(store_url: str, tmp_path: Path) -> Iterator[App]:
    app = App(
        "objects",
        state_url=f"sqlite:///{tmp_path}/state.db",
        lake_url=store_url,
        warehouse_path=f"{tmp_path}/wh/w.duckdb",
    )
    yield app
    app.close()


def _parquet(rows: dict[str, list[Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table(rows), buf)
    return buf.getvalue()


def test_sql_reads_parquet_and_json_lines_from_the_store(lake_app: App) -> None:
    lake_app.lake.put("orders/customer=c0/part-0.parquet", _parquet({"amount": [1, 2]}))
    lake_app.lake.put("orders/customer=c1/part-0.parquet", _parquet({"amount": [10]}))
    lake_app.catalog.create_table("orders", prefix="orders/", partitions=["customer"])
    rows = lake_app.sql("SELECT customer, sum(amount) FROM orders GROUP BY 1 ORDER BY 1").rows()
    assert rows == [("c0", 3), ("c1", 10)]
    lines = b"".join(json.dumps({"n": i}).encode() + b"\n" for i in range(3))
    lake_app.lake.put("events/2026/01/part.jsonl", lines)
    lake_app.catalog.create_table("events", prefix="events/", format="jsonl", columns=[("n", "BIGINT")])
    assert lake_app.sql("SELECT sum(n) FROM events").rows() == [(3,)]


def test_sql_sees_the_store_as_it_is_now(lake_app: App) -> None:
    lake_app.lake.put("t/part-0.parquet", _parquet({"v": [1]}))
    lake_app.catalog.create_table("t", prefix="t/")
    assert lake_app.sql("SELECT sum(v) FROM t").rows() == [(1,)]
    lake_app.lake.put("t/part-1.parquet", _parquet({"v": [2]}))
    assert lake_app.sql("SELECT sum(v) FROM t").rows() == [(3,)]
    lake_app.lake.delete("t/part-0.parquet")
    assert lake_app.sql("SELECT sum(v) FROM t").rows() == [(2,)]
    for v in (7, 8, 9):  # same size, rewritten at once
        lake_app.lake.put("t/part-1.parquet", _parquet({"v": [v]}))
        assert lake_app.sql("SELECT sum(v) FROM t").rows() == [(v,)]


def test_create_table_as_writes_into_the_store(lake_app: App) -> None:
    lake_app.lake.put("t/part-0.parquet", _parquet({"v": [1, 2, 3]}))
    lake_app.catalog.create_table("t", prefix="t/")
    lake_app.create_table_as("big", "SELECT v FROM t WHERE v > 1")
    assert lake_app.lake.keys("tables/big/") == ["tables/big/part-0.parquet"]
    assert lake_app.sql("SELECT sum(v) FROM big").rows() == [(5,)]


def test_sql_over_the_store_stays_sandboxed(lake_app: App) -> None:
    lake_app.lake.put("t/part-0.parquet", _parquet({"v": [1]}))
    lake_app.catalog.create_table("t", prefix="t/")
    with pytest.raises(ValidationError, match="only SELECT"):
        lake_app.sql("EXPLAIN ANALYZE COPY (SELECT 9 AS v) TO 't/part-0.parquet'")
    assert lake_app.sql("SELECT sum(v) FROM t").rows() == [(1,)]
