"""Parquet delivery, the catalog (schema inference and evolution) and SQL over the lake."""

from __future__ import annotations

import gzip
import json
import os

import duckdb
import pyarrow.dataset as ds
import pytest

from eventlake import App, ValidationError
from eventlake.resources.sql import QueryError

PREFIX = "store-data/store_id=!{partitionKeyFromQuery:store_id}/"


def inventory(app: App):
    s = app.stream("inventory", shards=2)
    app.delivery("inventory", source=s, format="parquet", prefix=PREFIX, table="inventory")
    return s


def rec(store: int, product: int, stock: int, **extra) -> dict:
    return {
        "store_id": f"STORE_{store}",
        "product_id": f"PRD_{product}",
        "current_stock": stock,
        "threshold_level": 10,
        "is_stock_low": stock < 10,
        **extra,
    }


def test_parquet_delivery_creates_the_catalog_table_on_first_data(app: App) -> None:
    s = inventory(app)
    assert app.catalog.get("inventory") is None
    s.put_many([{"data": rec(i % 3, i % 5, i), "partition_key": str(i)} for i in range(30)])
    app.drain()
    t = app.catalog.table("inventory")
    assert t.columns == [
        ("store_id", "VARCHAR"),
        ("product_id", "VARCHAR"),
        ("current_stock", "BIGINT"),
        ("threshold_level", "BIGINT"),
        ("is_stock_low", "BOOLEAN"),
    ]
    assert t.partitions == ["store_id"] and t.prefix == "store-data/"
    assert all(k.endswith(".parquet") for k in app.lake.keys("store-data/"))
    rows = app.sql("SELECT count(*), sum(current_stock) FROM inventory").rows()
    assert rows == [(30, sum(range(30)))]


def test_schema_evolves_with_new_fields_and_widens_numbers(app: App) -> None:
    s = inventory(app)
    s.put(rec(1, 1, 5), "a")
    app.drain()
    s.put(rec(1, 2, 7, restock_status="pending"), "b")
    s.put({**rec(2, 1, 3), "threshold_level": 9.5}, "c")
    app.drain()
    cols = dict(app.catalog.table("inventory").columns)
    assert cols["restock_status"] == "VARCHAR" and cols["threshold_level"] == "DOUBLE"
    rows = app.sql("SELECT product_id, restock_status FROM inventory ORDER BY product_id, store_id").rows()
    assert ("PRD_2", "pending") in rows and ("PRD_1", None) in rows


def test_values_that_fit_no_column_are_reported_not_dropped(app: App) -> None:
    s = inventory(app)
    s.put(rec(1, 1, 5), "a")
    app.drain()
    s.put({**rec(1, 2, 5), "current_stock": "lots"}, "b")
    app.drain()
    assert app.sql("SELECT count(*) FROM inventory").rows() == [(1,)]
    [key] = app.lake.keys("errors/format-conversion-failed/")
    [err] = [json.loads(x) for x in gzip.decompress(app.lake.get(key)).splitlines()]
    assert "current_stock" in err["errorMessage"] and "BIGINT" in err["errorMessage"]


def test_partition_pruning_reads_only_matching_folders(app: App) -> None:
    s = inventory(app)
    s.put_many([{"data": rec(i % 4, 1, i), "partition_key": str(i)} for i in range(40)])
    app.drain()
    plan = "\n".join(
        r[1]
        for r in app.sql("EXPLAIN ANALYZE SELECT count(*) FROM inventory WHERE store_id = 'STORE_1'").rows()
    )
    assert app.sql("SELECT count(*) FROM inventory WHERE store_id = 'STORE_1'").rows() == [(10,)]
    store_1 = len(app.lake.keys("store-data/store_id=STORE_1/"))
    assert f"Scanning Files: {store_1}/{len(app.lake.keys('store-data/'))}" in plan


FIREHOSE_PREFIX = (
    "store-data/store_id=!{partitionKeyFromQuery:store_id}/!{partitionKeyFromQuery:year}/"
    "!{partitionKeyFromQuery:month}/!{partitionKeyFromQuery:day}/!{partitionKeyFromQuery:hour}/"
)
KEYS = {
    "store_id": ".store_id",
    "year": '.check_timestamp | strftime("%Y")',
    "month": '.check_timestamp | strftime("%m")',
    "day": '.check_timestamp | strftime("%d")',
    "hour": '.check_timestamp | strftime("%H")',
}


def test_firehose_time_layout_folders_become_partition_columns_with_pruning(app: App) -> None:
    s = app.stream("inventory", shards=1)
    app.delivery("inv", source=s, format="parquet", prefix=FIREHOSE_PREFIX, partition_keys=KEYS, table="inv")
    base = 1_763_800_000  # 2025-11-22 08:26:40 UTC
    s.put_many(
        [
            {"data": rec(i % 2, 1, i, check_timestamp=base + 3600 * (i % 3)), "partition_key": str(i)}
            for i in range(30)
        ]
    )
    app.drain()
    folders = {k.rsplit("/", 1)[0] for k in app.lake.keys("store-data/")}
    assert "store-data/store_id=STORE_0/2025/11/22/08" in folders and len(folders) == 6
    t = app.catalog.table("inv")
    assert (t.partitions, t.layout) == (["store_id", "year", "month", "day", "hour"], ["hive"] + ["path"] * 4)
    rows = app.sql("SELECT hour, count(*) FROM inv GROUP BY hour ORDER BY hour").rows()
    assert rows == [(8, 10), (9, 10), (10, 10)]
    q = "SELECT count(*) FROM inv WHERE year = 2025 AND hour = 9 AND store_id = 'STORE_1'"
    assert app.sql(q).rows() == [(5,)]
    plan = "\n".join(r[1] for r in app.sql("EXPLAIN ANALYZE " + q).rows())
    assert "Scanning Files: 1/6" in plan
    assert app.sql("SELECT count(DISTINCT store_id) FROM inv").rows() == [(2,)]


def test_partition_key_queries_are_checked_and_bad_records_go_to_errors(app: App) -> None:
    s = app.stream("inventory", shards=1)
    with pytest.raises(ValidationError, match="partition_keys defines only"):
        app.delivery("x", source=s, prefix="a/!{partitionKeyFromQuery:nope}/", partition_keys={"y": ".y"})
    with pytest.raises(ValidationError, match="not supported"):
        app.delivery("y", source=s, prefix="a/!{partitionKeyFromQuery:y}/", partition_keys={"y": "$.y[0]"})
    app.delivery("inv", source=s, format="parquet", prefix=FIREHOSE_PREFIX, partition_keys=KEYS)
    s.put(rec(1, 1, 3, check_timestamp="yesterday"), "a")
    s.put(rec(1, 1, 3), "b")  # no check_timestamp at all
    s.put(rec(1, 1, 3, check_timestamp=1_763_800_000), "c")
    app.drain()
    errors = app.lake.keys("errors/")
    assert errors and all("partitioning-failed" in k for k in errors)
    docs = [json.loads(line) for k in errors for line in gzip.decompress(app.lake.get(k)).splitlines()]
    reasons = sorted(d["errorMessage"] for d in docs)
    assert len(reasons) == 2
    assert "strftime needs epoch seconds" in reasons[0] or "strftime needs epoch seconds" in reasons[1]
    assert any("missing from the record" in r for r in reasons)
    assert app.sql("SELECT count(*) FROM inv").rows() == [(1,)]


def test_lake_is_readable_by_plain_duckdb_and_pyarrow(app: App, tmp_path) -> None:
    s = inventory(app)
    s.put_many([{"data": rec(i % 2, 1, i), "partition_key": str(i)} for i in range(10)])
    app.drain()
    root = app.lake.store.root
    rows = (
        duckdb.connect()
        .execute(
            f"SELECT store_id, count(*) FROM read_parquet('{root}/store-data/**/*.parquet', "
            "hive_partitioning=true) GROUP BY 1 ORDER BY 1"
        )
        .fetchall()
    )
    assert rows == [("STORE_0", 5), ("STORE_1", 5)]
    table = ds.dataset(f"{root}/store-data", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 10


def test_user_queries_are_read_only_and_lake_only(app: App) -> None:
    inventory(app).put(rec(1, 1, 1), "a")
    app.drain()
    with pytest.raises(ValidationError, match="only SELECT"):
        app.sql("CREATE TABLE x AS SELECT 1")
    with pytest.raises(ValidationError, match="only SELECT"):
        app.sql("COPY (SELECT 1) TO '/tmp/out.csv'")
    with pytest.raises(QueryError):
        app.sql("SELECT * FROM read_csv('/etc/passwd')")
    with pytest.raises(QueryError):
        app.sql("SELECT * FROM read_parquet('https://example.com/x.parquet')")
    with pytest.raises(QueryError, match="in: SELECT nope"):
        app.sql("SELECT nope FROM inventory")


def test_warehouse_tables_and_create_table_as(app: App) -> None:
    inventory(app).put_many([{"data": rec(i % 2, i % 3, i), "partition_key": str(i)} for i in range(12)])
    app.drain()
    app.sql("CREATE TABLE IF NOT EXISTS daily (d VARCHAR, n BIGINT)", readonly=False)
    app.sql("INSERT INTO daily VALUES ('2024-01-01', 3)", readonly=False)
    assert app.sql("SELECT * FROM daily").rows() == [("2024-01-01", 3)]
    t = app.create_table_as("low_stock", "SELECT store_id, product_id FROM inventory WHERE is_stock_low")
    assert t.prefix == "tables/low_stock/"
    assert len(app.sql("SELECT * FROM low_stock")) == 10


def test_sql_results_convert(app: App) -> None:
    r = app.sql("SELECT 1 AS a, 'x' AS b")
    assert r.columns == ["a", "b"] and r.rows() == [(1, "x")] and r.arrow().num_rows == 1


def test_empty_catalog_table_queries_return_nothing(app: App) -> None:
    app.catalog.create_table("later", prefix="later/", columns=[("a", "BIGINT")])
    assert app.sql("SELECT * FROM later").rows() == []


def test_column_wise_and_record_wise_conversion_write_the_same_lake(app: App) -> None:
    """Clean batches are parsed whole by PyArrow; a Python partition function forces the
    record-by-record path. Both must produce the same rows, types and layout."""
    s = app.stream("inventory", shards=1)
    app.delivery(
        "fast",
        source=s,
        format="parquet",
        prefix="fast/!{partitionKeyFromQuery:store}/",
        partition_keys={"store": ".store_id"},
        table="fast",
    )
    app.delivery(
        "slow",
        source=s,
        format="parquet",
        prefix="slow/!{partitionKeyFromQuery:store}/",
        partition_keys={"store": lambda r: r["store_id"]},
        table="slow",
    )
    docs = [rec(i % 3, i % 2, i, ratio=i / 7, note=None if i % 2 else "x") for i in range(50)]
    s.put_many([{"data": d, "partition_key": str(i)} for i, d in enumerate(docs)])
    app.drain()
    s.put_many([{"data": rec(9, 9, 5, extra=True), "partition_key": "z"}])  # a new column later
    app.drain()
    assert app.catalog.table("fast").columns == app.catalog.table("slow").columns
    q = "SELECT * EXCLUDE (store) FROM {} ORDER BY current_stock, store_id"
    assert app.sql(q.format("fast")).rows() == app.sql(q.format("slow")).rows()
    fast_dirs = sorted(k.split("/")[1] for k in app.lake.keys("fast/"))
    assert fast_dirs == sorted(k.split("/")[1] for k in app.lake.keys("slow/"))


def test_a_table_over_existing_files_infers_its_schema(app: App, tmp_path) -> None:
    root = app.lake.store.root
    for store in (1, 2):
        folder = f"{root}/old/store_id=STORE_{store}"
        os.makedirs(folder)
        duckdb.execute(
            f"COPY (SELECT 'PRD_' || i AS product_id, i AS current_stock, i / 3 AS ratio, i < 2 AS low "
            f"FROM range(4) t(i)) TO '{folder}/part.parquet' (FORMAT parquet)"
        )
    app.lake.put(
        "logs/a.jsonl.gz", gzip.compress(b'{"level": "info", "n": 1}\n{"level": "warn", "n": 2.5}\n')
    )
    old = app.catalog.create_table("old", prefix="old/", partitions=["store_id"])
    assert old.columns == [
        ("product_id", "VARCHAR"),
        ("current_stock", "BIGINT"),
        ("ratio", "DOUBLE"),
        ("low", "BOOLEAN"),
    ]
    logs = app.catalog.create_table("logs", prefix="logs/", format="jsonl")
    assert logs.columns == [("level", "VARCHAR"), ("n", "DOUBLE")]
    assert app.sql("SELECT count(*), sum(current_stock) FROM old WHERE store_id = 'STORE_2'").rows() == [
        (4, 6)
    ]
    assert app.catalog.create_table("empty", prefix="nothing/").columns == []
    app.lake.put("bad/x.parquet", b"not parquet")
    with pytest.raises(ValidationError, match=r"cannot infer a schema from 'bad/x\.parquet'"):
        app.catalog.create_table("bad", prefix="bad/")
