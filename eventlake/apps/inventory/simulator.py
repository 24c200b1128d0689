"""StoreApp: a simulator of stores selling their stock and reporting it, record by record.

Each store and product has its own demand (some products sell fast, some slowly); every tick
the store sells a random amount around that demand, never more than it has, and reports the
product's stock as the workshop's record. The stock lives in the ``Stock`` table, so the
trucks' deliveries (``receive``) and the sales add up exactly even across processes, and the
sale and its report are one commit: the lake never shows a sale that did not happen.
"""

from __future__ import annotations

import random

from eventlake import App

from .app import STREAM
from .records import record_for


class StoreSimulator:
    """Ticks of selling and reporting for every store in the ``Stock`` table."""

    def __init__(self, app: App, *, seed: int = 1, mean_sales: float = 1.0) -> None:
        self.app = app
        self.rng = random.Random(seed)
        self.mean_sales = mean_sales
        self.demand: dict[tuple[str, str], float] = {}
        self.records = 0
        self.sold: dict[tuple[str, str], int] = {}  # committed sales, for checking the books
        self.stock = app.table("Stock", key="store_id", sort_key="product_id")
        self.alerts = app.table("Alerts", key="store_id", sort_key="product_id")
        self.stream = app.stream(STREAM, shards=2)

    def _demand(self, key: tuple[str, str]) -> float:
        d = self.demand.get(key)
        if d is None:
            d = self.demand[key] = self.mean_sales * self.rng.uniform(0.3, 1.7)
        return d

    def tick(self) -> int:
        """One round of sales and reports; returns the number of records sent."""
        clock = self.app.env.clock

        def run() -> tuple[int, dict[tuple[str, str], int]]:
            sales: dict[tuple[str, str], int] = {}
            status = {(a["store_id"], a["product_id"]): a["status"] for a in self.alerts.items()}
            records = []
            for item in self.stock.items():
                key = (item["store_id"], item["product_id"])
                sold = min(int(self.rng.expovariate(1 / self._demand(key))), int(item["current_stock"]))
                if sold:
                    sales[key] = sold
                    updated = self.stock.update(
                        {"store_id": key[0], "product_id": key[1]},
                        "ADD current_stock :d",
                        values={":d": -sold},
                        return_values="ALL_NEW",
                    )
                    assert updated is not None  # ALL_NEW of an update is the item
                    item = updated
                records.append(record_for(item, clock.time(), status.get(key)))
            for i in range(0, len(records), 500):
                self.stream.put_many(
                    [{"data": r, "partition_key": r["store_id"]} for r in records[i : i + 500]]
                )
            return len(records), sales

        n, sales = self.app.atomically(run)
        self.records += n
        for key, sold in sales.items():
            self.sold[key] = self.sold.get(key, 0) + sold
        return n
