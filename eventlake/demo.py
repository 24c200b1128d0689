"""The demo pipeline: every trigger kind working together, with a live view and an exactness check.

clicks (stream, 4 shards) → ``count_pages`` (atomic: counts and checkpoint in one commit)
→ pages (table with a change stream) → ``trending`` (sends a queue message when a page
crosses a threshold) → alerts (queue) → ``archive`` (writes each alert to the lake)
→ ``index`` (object trigger that records the archived keys). At the end the page counts
must equal what was produced, exactly.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table as RichTable

from .app import App

PAGES = [f"/page/{i}" for i in range(50)]
THRESHOLDS = (100, 500, 1000)


def build(state_url: str | None, workdir: Path) -> App:
    app = App(
        "demo",
        state_url=state_url or f"sqlite:///{workdir}/state.db",
        lake_url=f"file://{workdir}/lake",
        poll_interval_s=0.01,
    )
    clicks = app.stream("clicks", shards=4)
    pages = app.table("pages", key="page", stream="new_and_old_images")
    alerts = app.queue("alerts", visibility_timeout_s=10)
    index = app.table("archive_index", key="key")

    @app.on_stream(clicks, batch_size=500, atomic=True, bisect_on_error=True)
    def count_pages(event: dict[str, Any], context: Any) -> None:
        per_page: dict[str, int] = {}
        for r in event["Records"]:
            click = json.loads(base64.b64decode(r["kinesis"]["data"]))
            per_page[click["page"]] = per_page.get(click["page"], 0) + 1
        for page, n in per_page.items():
            pages.update({"page": page}, "ADD hits :n", values={":n": n})

    @app.on_table_stream(pages, batch_size=1000)
    def trending(event: dict[str, Any], context: Any) -> None:
        for r in event["Records"]:
            new = int(r["dynamodb"]["NewImage"]["hits"]["N"])
            old = int(r["dynamodb"].get("OldImage", {}).get("hits", {"N": "0"})["N"])
            for t in THRESHOLDS:
                if old < t <= new:
                    page = r["dynamodb"]["Keys"]["page"]["S"]
                    alerts.send({"page": page, "threshold": t})

    @app.on_queue(alerts, batch_size=10)
    def archive(event: dict[str, Any], context: Any) -> None:
        for r in event["Records"]:
            alert = json.loads(r["body"])
            key = f"alerts/{alert['threshold']}/{alert['page'].strip('/').replace('/', '-')}.json"
            app.lake.put(key, r["body"])

    @app.on_object(prefix="alerts/", suffix=".json")
    def index_alert(event: dict[str, Any], context: Any) -> None:
        for r in event["Records"]:
            index.put({"key": r["s3"]["object"]["key"], "size": r["s3"]["object"]["size"]})

    return app


def _view(app: App, progress: Progress, produced: int, started: float) -> Group:
    m = app.metrics()["functions"]
    t = RichTable(title="functions", expand=True)
    for col in ("function", "invocations", "records", "errors", "p50 ms", "p99 ms", "iterator age ms"):
        t.add_column(col, justify="right" if col != "function" else "left")
    for name in ("count_pages", "trending", "archive", "index_alert"):
        f = m.get(name, {})
        t.add_row(
            name,
            str(f.get("invocations", 0)),
            str(f.get("records", 0)),
            str(f.get("errors", 0)),
            f"{f.get('duration_ms_p50', 0):.1f}",
            f"{f.get('duration_ms_p99', 0):.1f}",
            f"{f.get('iterator_age_ms', 0):.0f}",
        )
    elapsed = max(time.monotonic() - started, 1e-6)
    done = m.get("count_pages", {}).get("records", 0)
    info = (
        f"produced {produced:,}  processed {done:,}  "
        f"({done / elapsed:,.0f} records/s)  alerts queued {len(app.queue('alerts'))}"
    )
    return Group(progress, Panel(info, title="clicks → pages → trending → alerts → lake"), t)


def run_demo(
    *,
    records: int = 20_000,
    rate: float = 4_000.0,
    live: bool = True,
    state_url: str | None = None,
    workdir: str = ".eventlake/demo",
) -> bool:
    console = Console()
    work = Path(workdir)
    if work.exists() and state_url is None:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    app = build(state_url, work)
    clicks = app.stream("clicks", shards=4)
    pages = app.table("pages", key="page", stream="new_and_old_images")
    rng = random.Random(7)
    expected: dict[str, int] = {}
    stop = threading.Event()
    runner = threading.Thread(target=app.run, kwargs={"stop": stop}, daemon=True)
    runner.start()
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}")
    )
    produce = progress.add_task("produce", total=records)
    process = progress.add_task("process", total=records)
    started = time.monotonic()
    produced = 0

    def refresh() -> Any:
        done = app.metrics()["functions"].get("count_pages", {}).get("records", 0)
        progress.update(produce, completed=produced)
        progress.update(process, completed=min(done, records))
        return _view(app, progress, produced, started)

    ctx = Live(refresh(), console=console, refresh_per_second=8) if live else None
    if ctx:
        ctx.__enter__()
    try:
        batch = 250
        while produced < records:
            n = min(batch, records - produced)
            entries = []
            for _ in range(n):
                page = PAGES[min(int(rng.paretovariate(1.2)) - 1, len(PAGES) - 1)]
                expected[page] = expected.get(page, 0) + 1
                entries.append({"data": {"page": page, "user": rng.randrange(10_000)}, "partition_key": page})
            clicks.put_many(entries)
            produced += n
            target = started + produced / rate
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if ctx:
                ctx.update(refresh())
            elif produced % 5000 == 0:
                console.print(f"produced {produced:,}")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if ctx:
                ctx.update(refresh())
            done = app.metrics()["functions"].get("count_pages", {}).get("records", 0)
            if done >= records and len(app.queue("alerts")) == 0:
                break
            time.sleep(0.1)
        stop.set()
        runner.join(timeout=10)
        app.drain(timeout_s=60)  # anything left (object triggers, last table-stream batch)
        if ctx:
            ctx.update(refresh())
    finally:
        stop.set()
        if ctx:
            ctx.__exit__(None, None, None)
    actual = {i["page"]: int(i["hits"]) for i in pages.items()}
    exact = actual == expected
    expected_alerts = sum(1 for v in expected.values() for t in THRESHOLDS if v >= t)
    archived = len(app.lake.keys("alerts/"))
    indexed = app.table("archive_index", key="key").count()
    elapsed = time.monotonic() - started
    console.print(
        f"[bold]{records:,} clicks in {elapsed:.1f}s[/] — page counts exact: "
        f"{'[green]yes' if exact else '[red]NO'}[/]; alerts archived {archived}/{expected_alerts}, "
        f"indexed {indexed}"
    )
    app.close()
    return exact and archived == expected_alerts and indexed == expected_alerts
