"""Core benchmark: eventlake (embedded SQLite) vs raw sqlite3 (the limit) vs moto (the local AWS).

Run: .venv/bin/python benchmarks/core.py [--scale 1.0]

Operations, each measured the same way for every contender (ops per second, higher is better):
  stream put (single)          one record per call
  stream put (batched)         500 records per call
  queue send+receive+delete    one message through the full cycle
  conditional table put        put with attribute_not_exists(id)
and for eventlake alone (moto has no triggers): stream → handler throughput, and end-to-end
latency p50/p99 at 1,000 records/s.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _speed import speed_check, speed_line  # benchmarks/_speed.py

from eventlake import App

console = Console()


def rate(n: int, fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


# ---------------------------------------------------------------- raw sqlite3, the limit
def raw_conn(path: str) -> sqlite3.Connection:
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=NORMAL")
    c.execute(
        "CREATE TABLE log (shard INTEGER, seq INTEGER, pkey TEXT, data BLOB, ts REAL, "
        "PRIMARY KEY (shard, seq))"
    )
    c.execute("CREATE TABLE items (pk BLOB PRIMARY KEY, data BLOB) WITHOUT ROWID")
    c.execute("CREATE TABLE q (id TEXT PRIMARY KEY, body BLOB, visible REAL, receipt TEXT)")
    c.execute("CREATE INDEX qv ON q (visible)")
    return c


def raw_put_single(c: sqlite3.Connection, records: list[bytes]) -> None:
    for i, r in enumerate(records):
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO log VALUES (0, ?, 'k', ?, ?)", (i, r, time.time()))
        c.execute("COMMIT")


def raw_put_batched(c: sqlite3.Connection, records: list[bytes], base: int) -> None:
    for start in range(0, len(records), 500):
        c.execute("BEGIN IMMEDIATE")
        c.executemany(
            "INSERT INTO log VALUES (1, ?, 'k', ?, ?)",
            [(base + start + j, r, time.time()) for j, r in enumerate(records[start : start + 500])],
        )
        c.execute("COMMIT")


def raw_queue_cycle(c: sqlite3.Connection, n: int) -> None:
    for i in range(n):
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO q VALUES (?, ?, 0, NULL)", (str(i), b"body"))
        c.execute("COMMIT")
        c.execute("BEGIN IMMEDIATE")
        row = c.execute("SELECT id FROM q WHERE visible <= ? LIMIT 1", (time.time(),)).fetchone()
        c.execute("UPDATE q SET visible = ?, receipt = 'r' WHERE id = ?", (time.time() + 30, row[0]))
        c.execute("COMMIT")
        c.execute("BEGIN IMMEDIATE")
        c.execute("DELETE FROM q WHERE id = ?", (row[0],))
        c.execute("COMMIT")


def raw_conditional_put(c: sqlite3.Connection, n: int) -> None:
    for i in range(n):
        c.execute("BEGIN IMMEDIATE")
        key = f"item-{i}".encode()
        if c.execute("SELECT 1 FROM items WHERE pk = ?", (key,)).fetchone() is None:
            c.execute("INSERT INTO items VALUES (?, ?)", (key, json.dumps({"id": i, "v": 1}).encode()))
        c.execute("COMMIT")


# ---------------------------------------------------------------- moto, the local AWS
def moto_results(n_single: int, n_batched: int, n_queue: int, n_put: int) -> dict[str, float]:
    import boto3
    from moto import mock_aws

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    out: dict[str, float] = {}
    with mock_aws():
        kin = boto3.client("kinesis", region_name="us-east-1")
        kin.create_stream(StreamName="s", ShardCount=1)
        out["stream put (single)"] = rate(
            n_single,
            lambda: [
                kin.put_record(StreamName="s", Data=b"x" * 100, PartitionKey=str(i)) for i in range(n_single)
            ],
        )
        recs = [{"Data": b"x" * 100, "PartitionKey": str(i)} for i in range(500)]
        out["stream put (batched)"] = rate(
            n_batched,
            lambda: [kin.put_records(StreamName="s", Records=recs) for _ in range(n_batched // 500)],
        )
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]

        def cycle() -> None:
            for _ in range(n_queue):
                sqs.send_message(QueueUrl=url, MessageBody="body")
                m = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"][0]
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

        out["queue send+receive+delete"] = rate(n_queue, cycle)
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        out["conditional table put"] = rate(
            n_put,
            lambda: [
                ddb.put_item(
                    TableName="t",
                    Item={"id": {"S": f"item-{i}"}, "v": {"N": "1"}},
                    ConditionExpression="attribute_not_exists(id)",
                )
                for i in range(n_put)
            ],
        )
    return out


# ---------------------------------------------------------------- eventlake
def eventlake_results(tmp: str, n_single: int, n_batched: int, n_queue: int, n_put: int) -> dict[str, float]:
    app = App("bench", state_url=f"sqlite:///{tmp}/el.db", lake_url=f"file://{tmp}/lake")
    s = app.stream("s", shards=1)
    out: dict[str, float] = {}
    out["stream put (single)"] = rate(n_single, lambda: [s.put(b"x" * 100, str(i)) for i in range(n_single)])
    recs = [{"data": b"x" * 100, "partition_key": str(i)} for i in range(500)]
    out["stream put (batched)"] = rate(n_batched, lambda: [s.put_many(recs) for _ in range(n_batched // 500)])
    q = app.queue("q")

    def cycle() -> None:
        for _ in range(n_queue):
            q.send("body")
            m = q.receive()[0]
            q.delete(m.receipt_handle)

    out["queue send+receive+delete"] = rate(n_queue, cycle)
    t = app.table("t", key="id")
    out["conditional table put"] = rate(
        n_put,
        lambda: [
            t.put({"id": f"item-{i}", "v": 1}, condition="attribute_not_exists(id)") for i in range(n_put)
        ],
    )
    app.close()
    return out


def end_to_end(tmp: str, n: int, target_rate: float, seconds: float) -> dict[str, float]:
    """Throughput of stream → handler, then latency at a steady 1,000 records/s."""
    app = App(
        "e2e", state_url=f"sqlite:///{tmp}/e2e.db", lake_url=f"file://{tmp}/lake2", poll_interval_s=0.005
    )
    s = app.stream("in", shards=4)
    latencies: list[float] = []
    count = [0]
    lock = threading.Lock()

    @app.on_stream(s, batch_size=500)
    def handler(event: dict[str, Any], context: Any) -> None:
        now = time.time()
        with lock:
            for r in event["Records"]:
                sent = json.loads(base64.b64decode(r["kinesis"]["data"]))["t"]
                if sent > 0:
                    latencies.append((now - sent) * 1000)
                count[0] += 1

    # Throughput: a backlog of n records, drained by the running worker.
    for start in range(0, n, 500):
        s.put_many([{"data": {"t": 0, "i": i}, "partition_key": str(i)} for i in range(start, start + 500)])
    stop = threading.Event()
    th = threading.Thread(target=app.run, kwargs={"stop": stop}, daemon=True)
    t0 = time.perf_counter()
    th.start()
    while count[0] < n:
        time.sleep(0.005)
    throughput = n / (time.perf_counter() - t0)
    # Latency at a steady rate, 10 records every 10 ms.
    sent = 0
    start = time.perf_counter()
    total = int(target_rate * seconds)
    while sent < total:
        s.put_many(
            [{"data": {"t": time.time(), "i": sent + j}, "partition_key": str(sent + j)} for j in range(10)]
        )
        sent += 10
        delay = start + sent / target_rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    while count[0] < n + total:
        time.sleep(0.005)
    stop.set()
    th.join()
    app.close()
    qs = statistics.quantiles(latencies, n=100)
    return {"throughput": throughput, "p50": qs[49], "p99": qs[98], "samples": len(latencies)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply operation counts")
    args = ap.parse_args()
    k = args.scale
    n_single, n_batched, n_queue, n_put = int(2000 * k), int(50_000 * k), int(1000 * k), int(2000 * k)
    n_batched -= n_batched % 500
    speed_before = speed_check()
    with tempfile.TemporaryDirectory() as tmp, Progress(console=console, transient=True) as progress:
        task = progress.add_task("benchmarks", total=5)
        c = raw_conn(f"{tmp}/raw.db")
        payload = [b"x" * 100] * max(n_single, n_batched)
        raw = {
            "stream put (single)": rate(n_single, lambda: raw_put_single(c, payload[:n_single])),
            "stream put (batched)": rate(n_batched, lambda: raw_put_batched(c, payload[:n_batched], 0)),
            "queue send+receive+delete": rate(n_queue, lambda: raw_queue_cycle(c, n_queue)),
            "conditional table put": rate(n_put, lambda: raw_conditional_put(c, n_put)),
        }
        progress.advance(task)
        el = eventlake_results(tmp, n_single, n_batched, n_queue, n_put)
        progress.advance(task)
        mo = moto_results(
            max(n_single // 4, 100), min(n_batched, 10_000), max(n_queue // 4, 100), max(n_put // 4, 100)
        )
        progress.advance(task)
        e2e = end_to_end(tmp, int(20_000 * k), 1000.0, 5.0)
        progress.advance(task, 2)
    table = Table(title="eventlake core benchmark (ops/s; SQLite, embedded)")
    for col in ("operation", "eventlake", "raw sqlite3", "moto", "vs sqlite3", "vs moto"):
        table.add_column(col, justify="right" if col != "operation" else "left")
    lines = [
        "| operation | eventlake ops/s | raw sqlite3 ops/s | moto ops/s "
        "| eventlake / sqlite3 | eventlake / moto |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for op in raw:
        row = (
            op,
            f"{el[op]:,.0f}",
            f"{raw[op]:,.0f}",
            f"{mo[op]:,.0f}",
            f"{el[op] / raw[op]:.0%}",
            f"{el[op] / mo[op]:.1f}×",
        )
        table.add_row(*row)
        lines.append("| " + " | ".join(row) + " |")
    console.print(table)
    e2e_line = (
        f"stream → handler: {e2e['throughput']:,.0f} records/s; end-to-end latency at "
        f"1,000 records/s: p50 {e2e['p50']:.1f} ms, p99 {e2e['p99']:.1f} ms "
        f"({e2e['samples']:,} samples)"
    )
    console.print(e2e_line)
    print("\n".join(lines))
    print(f"\n{e2e_line}")
    print(speed_line(speed_before, speed_check()))


if __name__ == "__main__":
    main()
