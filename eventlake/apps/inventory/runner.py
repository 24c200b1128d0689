"""Running the inventory system: stores tick, the planner runs on demand and on its schedule,
trucks drive; ``check`` proves no shortage was dispatched twice and no truck was lost."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from eventlake import App
from eventlake.workers import Workers

from .app import PlanReport, build_app, plan, setup
from .simulator import StoreSimulator


def check(app: App) -> list[str]:
    """What is wrong with the dispatch history (empty when all is well).

    * a shortage is dispatched at most once: per store and product, a dispatch starts only
      after the previous one was delivered, for a shortage seen after that delivery;
    * every booked truck belongs to exactly one undelivered dispatch;
    * no stock is negative.
    """
    problems: list[str] = []
    by_product: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for d in app.table("Dispatches", key="alert_id").items():
        by_product.setdefault((d["store_id"], d["product_id"]), []).append(d)
    for key, ds in by_product.items():
        ds.sort(key=lambda d: d["dispatched_at"])
        for prev, nxt in itertools.pairwise(ds):
            seen_at = Decimal(nxt["alert_id"].rsplit("/", 1)[1])
            if "delivered_at" not in prev or prev["delivered_at"] > nxt["dispatched_at"]:
                problems.append(
                    f"{key}: {nxt['alert_id']} dispatched while {prev['alert_id']} was on its way"
                )
            elif seen_at <= prev["delivered_at"]:
                problems.append(f"{key}: {nxt['alert_id']} re-alerts a shortage restocked before it")
    undelivered = {
        d["truck_id"]: d["alert_id"] for ds in by_product.values() for d in ds if "delivered_at" not in d
    }
    for t in app.table("Fleet", key="truck_id").items():
        busy_with = undelivered.get(t["truck_id"])
        if (t["status"] == "busy") != (busy_with is not None) or t.get("alert_id") != busy_with:
            problems.append(f"{t['truck_id']} is {t['status']} ({t.get('alert_id')}) but carries {busy_with}")
    if len(undelivered) != sum(1 for ds in by_product.values() for d in ds if "delivered_at" not in d):
        problems.append("one truck carries two dispatches")
    for item in app.table("Stock", key="store_id", sort_key="product_id").items():
        if item["current_stock"] < 0:
            problems.append(
                f"{item['store_id']} {item['product_id']}: negative stock {item['current_stock']}"
            )
    return problems


@dataclass
class InventoryRun:
    """``eventlake inventory run``: the whole system for ``duration_s`` seconds."""

    stores: int = 10
    products: int = 5
    trucks: int = 4
    duration_s: float = 60.0
    tick_s: float = 1.0
    buffer_s: float = 5.0
    plan_every_s: float = 10.0
    travel_s: float = 3.0
    workers: int = 1
    chaos: bool = False
    seed: int = 1
    state_url: str | None = None
    lake_url: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    plans: list[PlanReport] = field(default_factory=list)
    kills: int = 0
    ticks: int = 0

    def build(self) -> App:
        return build_app(
            state_url=self.state_url,
            lake_url=self.lake_url,
            travel_s=self.travel_s,
            buffer_s=self.buffer_s,
            **self.settings,
        )

    def run(self, on_progress: Callable[[App, InventoryRun], None] | None = None) -> App:
        app = self.build()
        setup(app, self.stores, self.products, trucks=self.trucks)
        sim = StoreSimulator(app, seed=self.seed)
        rng = random.Random(self.seed + 1)
        started = time.monotonic()
        next_plan = started + self.plan_every_s
        with Workers(app, max(self.workers, 2 if self.chaos else 1)) as workers:
            while time.monotonic() - started < self.duration_s:
                t0 = time.monotonic()
                sim.tick()
                self.ticks += 1
                if time.monotonic() >= next_plan:
                    self.plans.append(plan(app))
                    next_plan += self.plan_every_s
                if self.chaos and rng.random() < 0.1 and workers.kill(rng):
                    self.kills += 1
                if on_progress:
                    on_progress(app, self)
                time.sleep(max(0.0, self.tick_s - (time.monotonic() - t0)))
        return app
