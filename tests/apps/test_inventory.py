"""The inventory system end to end: stores → delivery → lake → planner (SQL) → queue → trucks
→ stores. Every shortage is dispatched exactly once, across repeated planner runs, a stale
lake and killed worker processes; poison requests are dead-lettered."""

from __future__ import annotations

import json
import random
import time
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eventlake import ManualClock
from eventlake.apps.inventory import StoreSimulator, build_app, dashboard, plan, setup
from eventlake.apps.inventory.app import RESTOCK_QUEUE, TABLE
from eventlake.apps.inventory.runner import check
from eventlake.workers import Workers


def make(state_url: str, tmp_path: Path, **kw):
    kw.setdefault("retry_backoff_s", 0.001)
    kw.setdefault("retry_backoff_max_s", 0.01)
    return build_app(
        state_url=state_url,
        lake_url=f"file://{tmp_path}/lake",
        warehouse_path=f"{tmp_path}/w.duckdb",
        **kw,
    )


def stock(app) -> dict[tuple[str, str], int]:
    t = app.table("Stock", key="store_id", sort_key="product_id")
    return {(i["store_id"], i["product_id"]): int(i["current_stock"]) for i in t.items()}


def test_records_land_in_the_lake_with_the_workshop_layout(state_url: str, tmp_path: Path) -> None:
    clock = ManualClock(1_763_800_000)
    app = make(state_url, tmp_path, clock=clock, schedule=None)
    setup(app, 3, 2)
    sim = StoreSimulator(app, seed=3)
    for _ in range(3):
        sim.tick()
        clock.advance(1.5)
    app.drain()
    keys = app.lake.keys("store-data/")
    assert keys and all(k.startswith("store-data/store_id=STORE_") and "/2025/11/22/08/" in k for k in keys)
    rows = app.sql(
        f"SELECT store_id, count(*), count(DISTINCT check_timestamp), min(hour) FROM {TABLE} "
        "GROUP BY store_id ORDER BY store_id"
    ).rows()
    # Each report carries the time it was taken (the original stamped every record with the
    # container's start time); the manual clock moves between ticks only.
    assert rows == [(f"STORE_{s}", 6, 3, 8) for s in (1, 2, 3)]
    cols = dict(app.catalog.table(TABLE).columns)
    assert cols["is_stock_low"] == "BOOLEAN" and cols["check_timestamp"] == "DOUBLE"
    app.close()


def test_planner_alerts_each_shortage_once_and_trucks_restock(state_url: str, tmp_path: Path) -> None:
    clock = ManualClock(1_763_800_000)
    app = make(state_url, tmp_path, clock=clock, schedule=None, travel_s=30)
    setup(app, 4, 3, trucks=2)
    sim = StoreSimulator(app, seed=1, mean_sales=8)
    while sum(v < 20 for v in stock(app).values()) < 3:
        sim.tick()
        clock.advance(60)
    app.drain()
    first = plan(app)
    assert first.candidates >= 3 and first.alerted == first.candidates
    # Planner re-runs see the same lake: nothing is alerted twice (the original re-alerted all).
    again = plan(app)
    assert (again.alerted, again.already_alerted) == (0, first.candidates)
    assert app.queue(RESTOCK_QUEUE).stats()["visible"] == first.alerted
    messages = app.queue(RESTOCK_QUEUE).receive(max_messages=10, visibility_timeout_s=0)
    body = json.loads(messages[0].body)
    assert body["alert"] == "Stock low" and body["store_id"].startswith("STORE_")
    # Two trucks for three or more shortages: the rest wait for a free truck (drain moves the
    # manual clock through the trips) without nearing the dead-letter limit.
    app.drain()
    d = dashboard(app)
    assert d["dispatches"] == d["delivered"] == first.alerted and d["dead_letters"] == 0
    low = {
        (r[0], r[1])
        for r in app.sql(
            f"SELECT store_id, product_id FROM {TABLE} WHERE restock_status = 'restocked'"
        ).rows()
    }
    assert len(low) == first.alerted  # the restock shows up in the store's reports
    assert plan(app).alerted == 0  # the newest reports are restocked: nothing to do
    assert check(app) == []
    app.close()


def test_a_stale_lake_cannot_re_alert_a_restocked_shortage(state_url: str, tmp_path: Path) -> None:
    clock = ManualClock(1_763_800_000)
    app = make(state_url, tmp_path, clock=clock, schedule=None, travel_s=0)
    setup(app, 1, 1, trucks=1)
    t = app.table("Stock", key="store_id", sort_key="product_id")
    t.update({"store_id": "STORE_1", "product_id": "PRD_1"}, "SET current_stock = :z", values={":z": 5})
    StoreSimulator(app, mean_sales=0.0001).tick()
    app.drain()
    assert plan(app).alerted == 1
    clock.advance(1)
    app.drain()  # dispatched, arrived, restocked; the restocked report is delivered too
    assert stock(app)[("STORE_1", "PRD_1")] == 100
    # Put the stale low report back as the newest thing the lake has: remove the restocked one.
    for key in app.lake.keys("store-data/"):
        table = __import__("pyarrow.parquet", fromlist=["x"]).read_table(app.lake.local_path(key))
        if "restocked" in table.column("restock_status").to_pylist():
            app.lake.delete(key)
    assert app.sql(f"SELECT max(restock_status) FROM {TABLE}").rows() == [("none",)]
    report = plan(app)
    assert (report.candidates, report.alerted, report.already_alerted) == (1, 0, 1)
    assert check(app) == []
    app.close()


def test_poison_requests_are_dead_lettered_and_the_rest_dispatched(state_url: str, tmp_path: Path) -> None:
    clock = ManualClock(1_763_800_000)
    app = make(state_url, tmp_path, clock=clock, schedule=None, travel_s=0, visibility_timeout_s=1)
    setup(app, 1, 1, trucks=1)
    q = app.queue(RESTOCK_QUEUE)
    q.send("not json {")
    q.send({"store_id": "STORE_1"})  # missing fields
    good = {
        "alert_id": "STORE_1/PRD_1/1",
        "store_id": "STORE_1",
        "product_id": "PRD_1",
        "product_name": "Milk",
        "current_stock": 3,
        "threshold_level": 20,
    }
    q.send({**good, "alert_id": "STORE_9/PRD_1/1", "store_id": "STORE_9"})  # no such store
    q.send(good)
    for _ in range(6):
        app.drain()
        clock.advance(2)
    dlq = app.queue(f"{RESTOCK_QUEUE}-dlq")
    dead = sorted(m.body for m in dlq.receive(max_messages=10, visibility_timeout_s=0))
    assert len(dead) == 3 and "not json {" in dead
    assert [d["alert_id"] for d in app.table("Dispatches", key="alert_id").items()] == ["STORE_1/PRD_1/1"]
    assert len(q) == 0
    app.close()


def test_the_planner_runs_on_its_schedule(state_url: str, tmp_path: Path) -> None:
    clock = ManualClock(1_763_800_000)
    app = make(state_url, tmp_path, clock=clock, schedule="rate(1 minute)", travel_s=0)
    setup(app, 2, 2)
    t = app.table("Stock", key="store_id", sort_key="product_id")
    t.update({"store_id": "STORE_2", "product_id": "PRD_2"}, "SET current_stock = :z", values={":z": 1})
    StoreSimulator(app, mean_sales=0.0001).tick()
    app.drain()
    assert app.table("Dispatches", key="alert_id").count() == 0
    clock.advance(61)
    app.drain()
    clock.advance(1)
    app.drain()
    assert [d["store_id"] for d in app.table("Dispatches", key="alert_id").items()] == ["STORE_2"]
    app.close()


def test_every_shortage_dispatched_once_with_killed_workers(sqlite_url: str, tmp_path: Path) -> None:
    """Real worker processes (delivery, trucks, receiving) are kill -9'd at random while stores
    sell and the planner runs again and again; the books must still balance exactly."""
    app = make(sqlite_url, tmp_path, schedule=None, travel_s=0.2, buffer_s=0.3, lease_ttl_s=1.0)
    app.settings.poll_interval_s = 0.02
    setup(app, 5, 4, trucks=3)
    initial = stock(app)
    sim = StoreSimulator(app, seed=7, mean_sales=6)
    rng = random.Random(5)
    kills = 0
    alerted = 0
    with Workers(app, 2) as workers:
        for i in range(60):
            sim.tick()
            if i % 3 == 0:
                alerted += plan(app).alerted
            if rng.random() < 0.25 and workers.kill(rng):
                kills += 1
            time.sleep(0.05)
        # Let the system settle: no more sales, keep planning until every truck is home.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            alerted += plan(app).alerted
            d = dashboard(app)
            lag = app.lag()
            if (
                d["dispatches"] == d["delivered"] == alerted
                and not any(lag.values())
                and d["queue_depth"]["visible"] + d["queue_depth"]["in_flight"] + d["queue_depth"]["delayed"]
                == 0
            ):
                break
            time.sleep(0.3)
    assert kills >= 3
    assert check(app) == []
    d = dashboard(app)
    assert d["dispatches"] == d["delivered"] == alerted > 0 and d["dead_letters"] == 0
    # Stock balances: what the stores had, less what they sold, plus what trucks brought.
    delivered: dict[tuple[str, str], int] = {}
    for x in app.table("Dispatches", key="alert_id").items():
        k = (x["store_id"], x["product_id"])
        delivered[k] = delivered.get(k, 0) + int(x["quantity"])
    # What the stores sold is in the lake: each report follows one sale or one restock.
    rows = app.sql(
        f"SELECT store_id, product_id, current_stock, restock_status FROM {TABLE} ORDER BY check_timestamp"
    ).rows()
    assert len(rows) == sim.records + d["delivered"]  # every report delivered exactly once
    now = stock(app)
    assert sum(sim.sold.values()) > 0
    for k, v in initial.items():
        assert now[k] == v - sim.sold.get(k, 0) + delivered.get(k, 0), k
    app.close()


def test_cli_plan_and_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from eventlake.cli import cli

    monkeypatch.chdir(tmp_path)
    clock = ManualClock(1_763_800_000)
    app = build_app(
        state_url="sqlite:///.eventlake/inventory.db",
        lake_url="file://./.eventlake/inventory-lake",
        warehouse_path=".eventlake/inventory.duckdb",
        clock=clock,
        schedule=None,
    )
    setup(app, 2, 2)
    app.table("Stock", key="store_id", sort_key="product_id").update(
        {"store_id": "STORE_1", "product_id": "PRD_1"}, "SET current_stock = :z", values={":z": Decimal(2)}
    )
    StoreSimulator(app, mean_sales=0.0001).tick()
    app.drain()
    app.close()
    runner = CliRunner()
    out = runner.invoke(cli, ["inventory", "plan"])
    assert out.exit_code == 0, out.output
    assert "1 shortage(s) in the lake: 1 alerted" in out.output
    out = runner.invoke(cli, ["inventory", "plan"])
    assert "0 alerted, 1 already alerted" in out.output
    out = runner.invoke(cli, ["inventory", "status", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["queue_depth"]["visible"] == 1 and data["problems"] == []
    assert data["shortages_by_store"] == {"STORE_1": 1}


def test_cli_run_runs_the_whole_system_and_checks_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from eventlake.cli import cli

    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(
        cli,
        [
            "inventory", "run", "--stores", "3", "--products", "2", "--duration", "4", "--tick", "0.2",
            "--buffer", "0.5", "--plan-every", "1", "--travel", "0.2", "--no-live", "--fresh",
        ],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "dispatch history consistent" in out.output
    assert "plan:" in out.output  # the planner ran on demand while the stores ticked
    assert (tmp_path / ".eventlake/inventory-lake/store-data").is_dir()
