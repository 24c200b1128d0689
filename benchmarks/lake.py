"""Lake benchmark: delivery into Parquet and JSONL.gz vs PyArrow writing the same records
directly (the limit), and SQL through app.sql vs plain DuckDB on the same files.

Run: .venv/bin/python benchmarks/lake.py [--records 200000] [--sql-rows 10000000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import tempfile
import time

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _speed import speed_check, speed_line  # benchmarks/_speed.py

from eventlake import App

console = Console()


def records(n: int) -> list[dict]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        stock = rng.randrange(0, 100)
        out.append(
            {
                "store_id": f"STORE_{rng.randrange(1, 11)}",
                "product_id": f"PRD_{rng.randrange(1, 6)}",
                "product_name": f"Product {rng.randrange(1, 6)}",
                "current_stock": stock,
                "threshold_level": 20,
                "is_stock_low": stock < 20,
                "check_timestamp": 1_700_000_000 + i,
                "notification_sent": False,
                "restock_status": "none",
            }
        )
    return out


def deliver(tmp: str, recs: list[dict], fmt: str, compression: str | None) -> tuple[float, float]:
    """(records/s from the stream into the lake, records/s including the puts into the stream)."""
    app = App(
        "bench",
        state_url=f"sqlite:///{tmp}/{fmt}.db",
        lake_url=f"file://{tmp}/lake-{fmt}",
        warehouse_path=f"{tmp}/w-{fmt}.duckdb",
    )
    s = app.stream("in", shards=4)
    app.delivery(
        "d",
        source=s,
        format=fmt,
        compression=compression,
        buffer_mb=64,
        buffer_s=900,
        prefix="store-data/store_id=!{partitionKeyFromQuery:store_id}/",
    )
    payload = [
        {"data": json.dumps(r).encode(), "partition_key": r["product_id"] + str(i)}
        for i, r in enumerate(recs)
    ]
    t0 = time.perf_counter()
    for i in range(0, len(payload), 500):
        s.put_many(payload[i : i + 500])
    t1 = time.perf_counter()
    app.drain(timeout_s=600)
    t2 = time.perf_counter()
    app.close()
    return len(recs) / (t2 - t1), len(recs) / (t2 - t0)


def direct(tmp: str, recs: list[dict], fmt: str) -> float:
    """The same records, grouped by store, written straight to files with PyArrow/gzip."""
    t0 = time.perf_counter()
    groups: dict[str, list[dict]] = {}
    for r in recs:
        groups.setdefault(r["store_id"], []).append(r)
    for store, rows in groups.items():
        folder = f"{tmp}/direct-{fmt}/store_id={store}"
        os.makedirs(folder, exist_ok=True)
        if fmt == "parquet":
            pq.write_table(pa.Table.from_pylist(rows), f"{folder}/part.parquet", compression="gzip")
        else:
            body = "\n".join(json.dumps(r) for r in rows).encode()
            with open(f"{folder}/part.jsonl.gz", "wb") as f:
                f.write(gzip.compress(body))
    return len(recs) / (time.perf_counter() - t0)


def sql_overhead(tmp: str, rows: int) -> tuple[float, float]:
    app = App(
        "sqlbench",
        state_url=f"sqlite:///{tmp}/sql.db",
        lake_url=f"file://{tmp}/lake-sql",
        warehouse_path=f"{tmp}/w-sql.duckdb",
    )
    root = app.lake.store.root
    con = duckdb.connect()
    for store in range(1, 11):
        folder = f"{root}/inv/store_id=STORE_{store}"
        os.makedirs(folder, exist_ok=True)
        con.execute(
            f"COPY (SELECT 'PRD_' || (i % 5 + 1) AS product_id, (i * 7919) % 100 AS current_stock, "
            f"20 AS threshold_level, ((i * 7919) % 100) < 20 AS is_stock_low, i AS check_timestamp "
            f"FROM range({rows // 10}) t(i)) TO '{folder}/part.parquet' (FORMAT parquet)"
        )
    app.catalog.create_table("inventory", prefix="inv/", partitions=["store_id"])
    q = (
        "SELECT store_id, product_id, count(*) AS n, avg(current_stock) AS avg_stock, "
        "sum(CASE WHEN is_stock_low THEN 1 ELSE 0 END) AS low FROM {src} "
        "WHERE store_id IN ('STORE_1', 'STORE_2', 'STORE_3') GROUP BY 1, 2 ORDER BY 1, 2"
    )
    plain_src = f"read_parquet('{root}/inv/**/*.parquet', hive_partitioning=true, union_by_name=true)"

    def best(fn: object, runs: int = 5) -> float:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()  # type: ignore[operator]
            times.append(time.perf_counter() - t0)
        return min(times)

    ours = best(lambda: app.sql(q.format(src="inventory")).rows())
    plain = best(lambda: duckdb.connect().execute(q.format(src=plain_src)).fetchall())
    app.close()
    return ours, plain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--sql-rows", type=int, default=10_000_000)
    args = ap.parse_args()
    recs = records(args.records)
    speed_before = speed_check()
    with tempfile.TemporaryDirectory() as tmp, Progress(console=console, transient=True) as progress:
        task = progress.add_task("lake benchmarks", total=5)
        res = {}
        for fmt, comp in (("parquet", "gzip"), ("jsonl", "gzip")):
            res[fmt] = (deliver(tmp, recs, fmt, comp), direct(tmp, recs, fmt))
            progress.advance(task, 2)
        ours, plain = sql_overhead(tmp, args.sql_rows) if args.sql_rows else (0.0, 0.0)
        progress.advance(task)
    table = Table(
        title=f"lake: delivery of {args.records:,} inventory records; SQL over {args.sql_rows:,} rows"
    )
    for col in ("measure", "eventlake", "baseline", "ratio"):
        table.add_column(col, justify="right" if col != "measure" else "left")
    lines = ["| measure | eventlake | baseline | ratio |", "| --- | ---: | ---: | ---: |"]
    rows = []
    for fmt, base in (("parquet", "PyArrow"), ("jsonl", "json+gzip")):
        (drain, total), direct_rate = res[fmt]
        label = "Parquet" if fmt == "parquet" else "JSONL.gz"
        rows.append(
            (
                f"delivery stream → lake, {label} (records/s)",
                f"{drain:,.0f}",
                f"{direct_rate:,.0f} ({base})",
                f"{drain / direct_rate:.0%}",
            )
        )
        rows.append(
            (
                f"put + delivery, {label} (records/s)",
                f"{total:,.0f}",
                f"{direct_rate:,.0f} ({base})",
                f"{total / direct_rate:.0%}",
            )
        )
    rows.append(
        (
            "SQL query (s, best of 5)",
            f"{ours:.3f}",
            f"{plain:.3f} (plain DuckDB)",
            f"{(ours / plain - 1):+.0%}" if plain else "skipped",
        )
    )
    for r in rows:
        table.add_row(*r)
        lines.append("| " + " | ".join(r) + " |")
    console.print(table)
    print("\n".join(lines))
    print(speed_line(speed_before, speed_check()))


if __name__ == "__main__":
    main()
