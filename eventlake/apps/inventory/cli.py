"""``eventlake inventory run | plan | status``."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table as RichTable

from eventlake.local import remove_local_data
from eventlake.workers import log_to_file

from .app import build_app, dashboard, plan
from .runner import InventoryRun, check

cli = typer.Typer(help="The store inventory system: stores → lake → planner → trucks.", no_args_is_help=True)
console = Console()
STATE = "sqlite:///.eventlake/inventory.db"
LAKE = "file://./.eventlake/inventory-lake"
WAREHOUSE = ".eventlake/inventory.duckdb"
BARS = " ▁▂▃▄▅▆▇█"

StateOpt = Annotated[str, typer.Option(help="state backend URL")]
LakeOpt = Annotated[str, typer.Option(help="lake URL")]


def _app(state_url: str, lake_url: str, **kw: Any) -> Any:
    return build_app(state_url=state_url, lake_url=lake_url, warehouse_path=WAREHOUSE, **kw)


def spark(values: list[int], width: int = 40) -> str:
    """A one-line bar chart of the last ``width`` values."""
    values = values[-width:]
    top = max(values, default=0)
    if not top:
        return BARS[0] * len(values)
    return "".join(BARS[min(8, round(v / top * 8))] for v in values)


def _view(app: Any, run: InventoryRun, started: float) -> Group:
    d = dashboard(app)
    stock = {
        (i["store_id"], i["product_id"]): i
        for i in app.table("Stock", key="store_id", sort_key="product_id").items()
    }
    alerts = {
        (a["store_id"], a["product_id"]): a["status"]
        for a in app.table("Alerts", key="store_id", sort_key="product_id").items()
    }
    products = sorted({p for _, p in stock}, key=lambda p: int(p.split("_")[1]))
    stores = sorted({s for s, _ in stock}, key=lambda s: int(s.split("_")[1]))
    grid = RichTable(title="stock (red: low, yellow: truck requested or on its way)", expand=True)
    grid.add_column("store")
    for p in products:
        grid.add_column(f"{p} {stock[(stores[0], p)]['product_name']}", justify="right")
    for s in stores[:12]:
        cells = []
        for p in products:
            item = stock[(s, p)]
            status = alerts.get((s, p), "closed")
            colour = (
                "yellow"
                if status != "closed"
                else ("red" if item["current_stock"] < item["threshold_level"] else "green")
            )
            cells.append(f"[{colour}]{int(item['current_stock'])}[/]")
        grid.add_row(s, *cells)
    if len(stores) > 12:
        grid.add_row(f"… {len(stores) - 12} more", *["" for _ in products])
    per_minute = [n for _, n in d["dispatches_per_minute"]]
    q = d["queue_depth"]
    fresh = "–" if d["lake_freshness_s"] is None else f"{d['lake_freshness_s']:.0f}s"
    last_plan = str(run.plans[-1]) if run.plans else "not yet"
    head = (
        f"ticks {run.ticks}  records {run.ticks * len(stock):,}  lake rows {d['lake_rows']:,} "
        f"(freshness {fresh})  elapsed {time.monotonic() - started:.0f}/{run.duration_s:.0f}s\n"
        f"dispatches {d['dispatches']} (delivered {d['delivered']})  trucks busy "
        f"{d['trucks_busy']}/{run.trucks}  queue visible {q['visible']} in flight {q['in_flight']} "
        f"delayed {q['delayed']}  dead letters {d['dead_letters']}"
        + (f"  kills {run.kills}" if run.chaos else "")
        + f"\nlast plan: {last_plan}\ndispatches/min {spark(per_minute)}"
    )
    return Group(Panel(head, title="inventory"), grid)


@cli.command()
def run(
    stores: Annotated[int, typer.Option(help="stores to simulate")] = 10,
    products: Annotated[int, typer.Option(help="products per store")] = 5,
    trucks: Annotated[int, typer.Option(help="trucks in the fleet")] = 4,
    duration: Annotated[float, typer.Option(help="seconds to run")] = 60.0,
    tick: Annotated[float, typer.Option(help="seconds between store reports")] = 1.0,
    buffer: Annotated[float, typer.Option(help="delivery buffering interval, seconds")] = 5.0,
    plan_every: Annotated[float, typer.Option(help="run the planner on demand every N seconds")] = 10.0,
    travel: Annotated[float, typer.Option(help="a truck's trip, seconds")] = 3.0,
    workers: Annotated[int, typer.Option(help="worker processes")] = 1,
    chaos: Annotated[bool, typer.Option(help="kill -9 worker processes at random moments")] = False,
    fresh: Annotated[bool, typer.Option(help="start from empty state and lake")] = False,
    state_url: StateOpt = STATE,
    lake_url: LakeOpt = LAKE,
    live: Annotated[bool, typer.Option(help="live view")] = True,
) -> None:
    """Run stores, delivery, planner and trucks; exit 1 if the dispatch history is inconsistent."""
    log_to_file(".eventlake/logs/inventory.log")
    if fresh:
        _wipe(state_url, lake_url)
    r = InventoryRun(
        stores=stores,
        products=products,
        trucks=trucks,
        duration_s=duration,
        tick_s=tick,
        buffer_s=buffer,
        plan_every_s=plan_every,
        travel_s=travel,
        workers=workers,
        chaos=chaos,
        state_url=state_url,
        lake_url=lake_url,
        settings={"warehouse_path": WAREHOUSE, "poll_interval_s": 0.05},
    )
    started = time.monotonic()
    live_ctx = Live(console=console, refresh_per_second=2) if live and console.is_terminal else None
    last = {"t": 0.0}

    def progress(app: Any, run: InventoryRun) -> None:
        now = time.monotonic()
        if now - last["t"] >= 0.5:
            last["t"] = now
            if live_ctx is not None:
                live_ctx.update(_view(app, run, started))
            elif len(run.plans) != last.get("plans", 0):
                last["plans"] = len(run.plans)
                console.print(f"tick {run.ticks}: plan: {run.plans[-1]}")

    if live_ctx:
        live_ctx.__enter__()
    try:
        app = r.run(progress)
    finally:
        if live_ctx:
            live_ctx.__exit__(None, None, None)
    console.print(_view(app, r, started))
    problems = check(app)
    for p in problems:
        console.print(f"[red]problem:[/] {p}")
    if not problems:
        console.print("[green]dispatch history consistent:[/] every shortage dispatched at most once")
    app.close()
    raise typer.Exit(1 if problems else 0)


def _wipe(state_url: str, lake_url: str) -> None:
    for kept in remove_local_data(state_url, lake_url, WAREHOUSE):
        console.print(f"[yellow]--fresh only empties local files; {kept} is kept as it is[/]")


@cli.command("plan")
def plan_cmd(state_url: StateOpt = STATE, lake_url: LakeOpt = LAKE) -> None:
    """Run StorePlanningApp once: shortages from the lake become restock requests (idempotent)."""
    app = _app(state_url, lake_url, schedule=None)
    report = plan(app)
    console.print(str(report))
    app.close()


@cli.command()
def status(
    state_url: StateOpt = STATE,
    lake_url: LakeOpt = LAKE,
    as_json: Annotated[bool, typer.Option("--json", help="print the dashboard data as JSON")] = False,
) -> None:
    """The dashboard data: shortages by store, dispatches over time, queue depth, freshness."""
    app = _app(state_url, lake_url, schedule=None)
    d = dashboard(app)
    problems = check(app)
    app.close()
    if as_json:
        console.print_json(json.dumps({**d, "problems": problems}, default=str))
        return
    t = RichTable(title="inventory dashboard")
    t.add_column("measure")
    t.add_column("value", justify="right")
    for k, v in d.items():
        if k == "dispatches_per_minute":
            v = spark([n for _, n in v])
        t.add_row(k.replace("_", " "), str(v))
    t.add_row("problems", str(len(problems)))
    console.print(t)
