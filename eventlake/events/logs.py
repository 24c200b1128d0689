"""Lambda's platform log lines, in the classic text format and the JSON format.

eventlake writes its function logs in these exact formats so that log pipelines (the logs
reference system) can ingest them like real Lambda logs.
"""

from __future__ import annotations

import json
import time
from typing import Any


def start_line(request_id: str) -> str:
    return f"START RequestId: {request_id} Version: $LATEST"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def report_line(
    request_id: str,
    *,
    duration_ms: float,
    billed_ms: int,
    memory_mb: int,
    max_memory_mb: int,
    init_ms: float | None = None,
) -> str:
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {billed_ms} ms\tMemory Size: {memory_mb} MB\t"
        f"Max Memory Used: {max_memory_mb} MB"
    )
    if init_ms is not None:
        line += f"\tInit Duration: {init_ms:.2f} ms"
    return line


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def platform_json(kind: str, request_id: str, **metrics: Any) -> str:
    """``{"time", "type": "platform.start|platform.report|...", "record": {...}}``."""
    record: dict[str, Any] = {"requestId": request_id}
    if kind == "platform.start":
        record["version"] = "$LATEST"
    if kind in ("platform.report", "platform.runtimeDone"):
        record["metrics"] = {k: v for k, v in metrics.items() if k != "status"}
        record["status"] = metrics.get("status", "success")
    return json.dumps({"time": _now(), "type": kind, "record": record})
