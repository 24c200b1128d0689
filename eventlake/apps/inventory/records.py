"""The workshop's stock record: what a store reports about one product, and what the lake keeps."""

from __future__ import annotations

from typing import Any

PRODUCT_NAMES = ("Milk", "Bread", "Eggs", "Rice", "Coffee", "Sugar", "Butter", "Apples", "Pasta", "Tea")
RESTOCK_STATUS = {"requested": "requested", "dispatched": "in_transit", "closed": "restocked"}


def product_name(p: int) -> str:
    base = PRODUCT_NAMES[(p - 1) % len(PRODUCT_NAMES)]
    return base if p <= len(PRODUCT_NAMES) else f"{base} {(p - 1) // len(PRODUCT_NAMES) + 1}"


def record_for(item: dict[str, Any], ts: float, alert_status: str | None) -> dict[str, Any]:
    """The workshop's record for one product of one store at time ``ts``."""
    stock = int(item["current_stock"])
    threshold = int(item["threshold_level"])
    return {
        "store_id": item["store_id"],
        "product_id": item["product_id"],
        "product_name": item["product_name"],
        "current_stock": stock,
        "threshold_level": threshold,
        "is_stock_low": stock < threshold,
        "check_timestamp": round(ts, 3),
        "notification_sent": alert_status in ("requested", "dispatched"),
        "restock_status": RESTOCK_STATUS.get(alert_status or "", "none"),
    }
