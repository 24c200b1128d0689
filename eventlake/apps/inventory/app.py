"""The inventory system on eventlake: stores stream their stock into the lake, a planner finds
shortages with SQL, trucks restock the stores.

The workshop's flow, with its three bugs fixed:

* ``notification_sent`` is real: a store reports ``true`` while a restock for that product is
  requested or under way, and the planner keeps a ledger (``Alerts``) so that a shortage is
  alerted once, however often the planner runs and however stale the lake is.
* the planner and the truck app use the same queue (``restock-requests``).
* every record carries the time it was taken, not the time the process started.

Exactly-once dispatch without distributed transactions: the planner writes the ledger entry
and the queue message in one commit (:meth:`App.atomically`); the truck app records the
dispatch, books the truck, schedules the arrival and deletes the message in one commit
(``atomic=True``); the store receives the arrival, adds the stock and frees the truck in one
commit. A killed process leaves either all of a step or none of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eventlake import App, ConditionalCheckFailed, ValidationError

from .records import product_name, record_for

STREAM = "store-inventory"
DELIVERY = "store-data"
TABLE = "store_data"
RESTOCK_QUEUE = "restock-requests"
ARRIVALS_QUEUE = "truck-arrivals"
PREFIX = (
    "store-data/store_id=!{partitionKeyFromQuery:store_id}/!{partitionKeyFromQuery:year}/"
    "!{partitionKeyFromQuery:month}/!{partitionKeyFromQuery:day}/!{partitionKeyFromQuery:hour}/"
)
# Firehose's metadata extraction query, as the workshop configures it (jq over the record).
PARTITION_KEYS = {
    "store_id": ".store_id",
    "year": '.check_timestamp | strftime("%Y")',
    "month": '.check_timestamp | strftime("%m")',
    "day": '.check_timestamp | strftime("%d")',
    "hour": '.check_timestamp | strftime("%H")',
}
PLAN_QUERY = f"""
SELECT store_id, product_id, product_name, current_stock, threshold_level, check_timestamp
FROM (
    SELECT *, row_number() OVER (
        PARTITION BY store_id, product_id ORDER BY check_timestamp DESC, current_stock DESC
    ) AS newest
    FROM {TABLE}
)
WHERE newest = 1 AND is_stock_low = true AND notification_sent = false
ORDER BY store_id, product_id
"""
REQUIRED = ("alert_id", "store_id", "product_id", "product_name", "current_stock", "threshold_level")


class NoTruckAvailable(Exception):
    """Every truck is out; the message comes back after its visibility timeout."""


@dataclass
class PlanReport:
    """One planner run: shortages seen in the lake, alerts sent, and those already alerted."""

    candidates: int = 0
    alerted: int = 0
    already_alerted: int = 0

    def __str__(self) -> str:
        return (
            f"{self.candidates} shortage(s) in the lake: {self.alerted} alerted, "
            f"{self.already_alerted} already alerted before"
        )


def build_app(
    *,
    state_url: str | None = None,
    lake_url: str | None = None,
    travel_s: float = 5.0,
    buffer_s: float = 60.0,
    schedule: str | None = "rate(1 minute)",
    visibility_timeout_s: float = 10.0,
    max_receive_count: int = 3,
    **settings: Any,
) -> App:
    """The inventory app. ``buffer_s`` is Firehose's buffering interval; ``schedule`` runs the
    planner (None: on demand only); ``travel_s`` is a truck's trip to a store."""
    if not 0 <= travel_s <= 900:
        raise ValidationError(f"travel_s must be 0-900 (a queue delay), got {travel_s!r}")
    app = App("inventory", state_url=state_url, lake_url=lake_url, **settings)
    stream = app.stream(STREAM, shards=2)
    app.delivery(
        DELIVERY,
        source=stream,
        format="parquet",
        compression="zstd",
        prefix=PREFIX,
        partition_keys=PARTITION_KEYS,
        error_prefix="error/!{firehose:error-output-type}/",
        buffer_mb=1,
        buffer_s=buffer_s,
        table=TABLE,
    )
    app.table("Stock", key="store_id", sort_key="product_id")
    app.table("Alerts", key="store_id", sort_key="product_id")
    app.table("Fleet", key="truck_id")
    app.table("Dispatches", key="alert_id")
    dlq = app.queue(f"{RESTOCK_QUEUE}-dlq")
    restock = app.queue(
        RESTOCK_QUEUE,
        visibility_timeout_s=visibility_timeout_s,
        dead_letter=dlq,
        max_receive_count=max_receive_count,
    )
    arrivals = app.queue(ARRIVALS_QUEUE, visibility_timeout_s=visibility_timeout_s)

    if schedule is not None:

        @app.on_schedule(schedule, name="planner")
        def planner(event: dict[str, Any], context: Any) -> dict[str, int]:
            r = plan(app)
            return {"candidates": r.candidates, "alerted": r.alerted}

    @app.on_queue(restock, batch_size=10, report_batch_item_failures=True, atomic=True, name="trucks")
    def trucks_fn(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failures = []
        for record in event["Records"]:
            try:
                dispatch(app, _parse_request(record["body"]), travel_s)
            except NoTruckAvailable:
                # Busy trucks are not the message's fault: ask again later with a fresh copy
                # (same commit as this one's delete), so waiting never counts toward the
                # dead-letter limit.
                restock.send(record["body"], delay_s=max(1.0, min(travel_s, 900.0)))
            except PoisonMessage:
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    @app.on_queue(arrivals, batch_size=10, atomic=True, name="store-receiving")
    def receiving_fn(event: dict[str, Any], context: Any) -> None:
        for record in event["Records"]:
            receive(app, json.loads(record["body"]))

    return app


class PoisonMessage(Exception):
    """A restock request that can never be dispatched; it goes to the dead-letter queue."""


def _parse_request(body: str) -> dict[str, Any]:
    try:
        msg = json.loads(body)
    except json.JSONDecodeError as e:
        raise PoisonMessage(f"not JSON: {e}") from None
    if not isinstance(msg, dict) or any(k not in msg for k in REQUIRED):
        raise PoisonMessage(f"a restock request needs {', '.join(REQUIRED)}")
    return msg


def setup(
    app: App, stores: int, products: int, *, trucks: int = 3, capacity: int = 100, threshold: int = 20
) -> None:
    """Create the stores' stock and the fleet if they do not exist yet (safe to repeat)."""
    for what, n in (("stores", stores), ("products", products), ("trucks", trucks)):
        if not isinstance(n, int) or n < 1:
            raise ValidationError(f"{what} must be a positive integer, got {n!r}")
    if not 0 < threshold < capacity:
        raise ValidationError(f"threshold ({threshold}) must be between 0 and capacity ({capacity})")

    stock = app.table("Stock", key="store_id", sort_key="product_id")
    fleet = app.table("Fleet", key="truck_id")

    def run() -> None:
        for s in range(1, stores + 1):
            for p in range(1, products + 1):
                try:
                    stock.put(
                        {
                            "store_id": f"STORE_{s}",
                            "product_id": f"PRD_{p}",
                            "product_name": product_name(p),
                            "current_stock": capacity - (s * 7 + p * 13) % (capacity - threshold),
                            "threshold_level": threshold,
                            "capacity": capacity,
                        },
                        condition="attribute_not_exists(store_id)",
                    )
                except ConditionalCheckFailed:
                    pass
        for t in range(1, trucks + 1):
            try:
                fleet.put(
                    {"truck_id": f"TRUCK_{t}", "status": "available"},
                    condition="attribute_not_exists(truck_id)",
                )
            except ConditionalCheckFailed:
                pass

    app.atomically(run)


def plan(app: App) -> PlanReport:
    """StorePlanningApp: the newest record per store and product, from the lake; a shortage not
    alerted yet becomes a restock request. The ledger entry and the message are one commit,
    and the ledger's condition makes a re-run (or a stale lake) alert nothing twice."""
    alerts = app.table("Alerts", key="store_id", sort_key="product_id")
    restock = app.queue(RESTOCK_QUEUE)
    report = PlanReport()
    if app.catalog.get(TABLE) is None:
        return report  # nothing delivered yet
    for row in app.sql(PLAN_QUERY).arrow().to_pylist():
        report.candidates += 1
        ts = row["check_timestamp"]
        alert_id = f"{row['store_id']}/{row['product_id']}/{ts}"
        message = {
            "alert_id": alert_id,
            "store_id": row["store_id"],
            "product_id": row["product_id"],
            "product_name": row["product_name"],
            "alert": "Stock low",
            "current_stock": row["current_stock"],
            "threshold_level": row["threshold_level"],
            "check_timestamp": ts,
        }

        def send(row: dict[str, Any] = row, message: dict[str, Any] = message, ts: Any = ts) -> None:
            alerts.put(
                {
                    "store_id": row["store_id"],
                    "product_id": row["product_id"],
                    "status": "requested",
                    "alert_id": message["alert_id"],
                    "since": Decimal(str(ts)),
                },
                # A new alert only when none is open and the shortage was seen after the
                # last restock: older records still in the lake cannot re-alert.
                condition="attribute_not_exists(store_id) OR (#s = :closed AND restocked_at < :ts)",
                names={"#s": "status"},
                values={":closed": "closed", ":ts": Decimal(str(ts))},
            )
            restock.send(message)

        try:
            app.atomically(send)
            report.alerted += 1
        except ConditionalCheckFailed:
            report.already_alerted += 1
    return report


def dispatch(app: App, msg: dict[str, Any], travel_s: float) -> None:
    """StoreTruckApp, one request: book a free truck, record the dispatch, send it on its way.
    A request already dispatched (a redelivered message) is acknowledged and does nothing."""
    fleet = app.table("Fleet", key="truck_id")
    dispatches = app.table("Dispatches", key="alert_id")
    alerts = app.table("Alerts", key="store_id", sort_key="product_id")
    stock = app.table("Stock", key="store_id", sort_key="product_id")
    if dispatches.get({"alert_id": msg["alert_id"]}) is not None:
        return
    item = stock.get({"store_id": msg["store_id"], "product_id": msg["product_id"]})
    if item is None:
        raise PoisonMessage(f"unknown store or product: {msg['store_id']} {msg['product_id']}")
    now = app.env.clock.time()
    for truck in sorted(fleet.items(), key=lambda t: t["truck_id"]):
        if truck["status"] != "available":
            continue
        try:
            fleet.update(
                {"truck_id": truck["truck_id"]},
                "SET #s = :busy, alert_id = :a",
                condition="#s = :available",
                names={"#s": "status"},
                values={":busy": "busy", ":available": "available", ":a": msg["alert_id"]},
            )
        except ConditionalCheckFailed:
            continue  # taken by another worker a moment ago
        quantity = int(item["capacity"]) - int(msg["current_stock"])
        dispatches.put(
            {
                "alert_id": msg["alert_id"],
                "truck_id": truck["truck_id"],
                "store_id": msg["store_id"],
                "product_id": msg["product_id"],
                "quantity": max(quantity, 1),
                "dispatched_at": Decimal(str(now)),
            },
            condition="attribute_not_exists(alert_id)",
        )
        alerts.update(
            {"store_id": msg["store_id"], "product_id": msg["product_id"]},
            "SET #s = :d, truck_id = :t",
            names={"#s": "status"},
            values={":d": "dispatched", ":t": truck["truck_id"]},
        )
        app.queue(ARRIVALS_QUEUE).send({"alert_id": msg["alert_id"]}, delay_s=travel_s)
        return
    raise NoTruckAvailable(f"no truck free for {msg['alert_id']}")


def receive(app: App, msg: dict[str, Any]) -> None:
    """A truck arrives: the stock goes up, the store reports it, the truck is free again."""
    dispatches = app.table("Dispatches", key="alert_id")
    d = dispatches.get({"alert_id": msg["alert_id"]})
    if d is None or "delivered_at" in d:
        return  # unknown or already received (a redelivered arrival)
    now = Decimal(str(app.env.clock.time()))
    key = {"store_id": d["store_id"], "product_id": d["product_id"]}
    item = app.table("Stock", key="store_id", sort_key="product_id").update(
        key, "ADD current_stock :q", values={":q": d["quantity"]}, return_values="ALL_NEW"
    )
    dispatches.update({"alert_id": d["alert_id"]}, "SET delivered_at = :n", values={":n": now})
    app.table("Fleet", key="truck_id").update(
        {"truck_id": d["truck_id"]},
        "SET #s = :a REMOVE alert_id",
        names={"#s": "status"},
        values={":a": "available"},
    )
    app.table("Alerts", key="store_id", sort_key="product_id").update(
        key, "SET #s = :c, restocked_at = :n", names={"#s": "status"}, values={":c": "closed", ":n": now}
    )
    assert item is not None
    rec = record_for(item, float(now), alert_status="closed")
    app.stream(STREAM, shards=2).put(rec, rec["store_id"])


def dashboard(app: App) -> dict[str, Any]:
    """The numbers the workshop's dashboard shows: shortages by store, dispatches over time,
    queue depth and how fresh the lake is."""
    now = app.env.clock.time()
    alerts = list(app.table("Alerts", key="store_id", sort_key="product_id").items())
    dispatches = list(app.table("Dispatches", key="alert_id").items())
    open_by_store: dict[str, int] = {}
    for a in alerts:
        if a["status"] != "closed":
            open_by_store[a["store_id"]] = open_by_store.get(a["store_id"], 0) + 1
    per_minute: dict[int, int] = {}
    for d in dispatches:
        minute = int(d["dispatched_at"]) // 60 * 60
        per_minute[minute] = per_minute.get(minute, 0) + 1
    lake_rows, newest = 0, None
    shortages: dict[str, int] = {}
    if app.catalog.get(TABLE) is not None:
        lake_rows, newest = app.sql(f"SELECT count(*), max(check_timestamp) FROM {TABLE}").rows()[0]
        shortages = dict(
            app.sql(
                f"""SELECT store_id, count(*) FROM (
                    SELECT store_id, is_stock_low, row_number() OVER (
                        PARTITION BY store_id, product_id ORDER BY check_timestamp DESC) AS n
                    FROM {TABLE}) WHERE n = 1 AND is_stock_low GROUP BY store_id"""
            ).rows()
        )
    return {
        "shortages_by_store": shortages,
        "open_alerts_by_store": open_by_store,
        "dispatches": len(dispatches),
        "delivered": sum(1 for d in dispatches if "delivered_at" in d),
        "dispatches_per_minute": sorted(per_minute.items()),
        "queue_depth": app.queue(RESTOCK_QUEUE).stats(),
        "dead_letters": len(app.queue(f"{RESTOCK_QUEUE}-dlq")),
        "lake_rows": lake_rows or 0,
        "lake_freshness_s": None if newest is None else max(0.0, now - newest),
        "trucks_busy": sum(1 for t in app.table("Fleet", key="truck_id").items() if t["status"] == "busy"),
    }
