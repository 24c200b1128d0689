"""Per-function and per-resource counters, like the CloudWatch metrics Lambda publishes.

In-process and lock-protected; the surfaces (CLI live view, console) read snapshots.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FunctionMetrics:
    invocations: int = 0
    errors: int = 0
    throttles: int = 0
    timeouts: int = 0
    records: int = 0
    duration_ms_sum: float = 0.0
    duration_ms_max: float = 0.0
    iterator_age_ms: float = 0.0
    dead_lettered: int = 0
    durations: deque[float] = field(default_factory=lambda: deque(maxlen=2048))

    def percentile(self, p: float) -> float:
        if not self.durations:
            return 0.0
        data = sorted(self.durations)
        return data[min(len(data) - 1, int(p / 100 * len(data)))]


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.functions: dict[str, FunctionMetrics] = defaultdict(FunctionMetrics)
        self.counters: dict[str, float] = defaultdict(float)

    def invoked(
        self, fn: str, duration_ms: float, *, error: bool, timeout: bool = False, records: int = 0
    ) -> None:
        with self._lock:
            m = self.functions[fn]
            m.invocations += 1
            m.records += records
            m.errors += int(error)
            m.timeouts += int(timeout)
            m.duration_ms_sum += duration_ms
            m.duration_ms_max = max(m.duration_ms_max, duration_ms)
            m.durations.append(duration_ms)

    def throttled(self, fn: str) -> None:
        with self._lock:
            self.functions[fn].throttles += 1

    def iterator_age(self, fn: str, age_ms: float) -> None:
        with self._lock:
            self.functions[fn].iterator_age_ms = age_ms

    def dead_lettered(self, fn: str, n: int = 1) -> None:
        with self._lock:
            self.functions[fn].dead_lettered += n

    def add(self, name: str, value: float = 1) -> None:
        with self._lock:
            self.counters[name] += value

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "functions": {
                    name: {
                        "invocations": m.invocations,
                        "errors": m.errors,
                        "throttles": m.throttles,
                        "timeouts": m.timeouts,
                        "records": m.records,
                        "duration_ms_avg": m.duration_ms_sum / m.invocations if m.invocations else 0,
                        "duration_ms_p50": m.percentile(50),
                        "duration_ms_p99": m.percentile(99),
                        "duration_ms_max": m.duration_ms_max,
                        "iterator_age_ms": m.iterator_age_ms,
                        "dead_lettered": m.dead_lettered,
                    }
                    for name, m in self.functions.items()
                },
                "counters": dict(self.counters),
            }


def merge_snapshots(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """One view of several workers' snapshots: counts and sums add up, maxima and ages take the
    largest, averages are weighted by invocations; a percentile is the largest of the workers'
    (an upper bound: the samples themselves stay in each worker)."""
    functions: dict[str, dict[str, Any]] = {}
    counters: dict[str, float] = defaultdict(float)
    for snap in snapshots:
        for name, f in snap.get("functions", {}).items():
            m = functions.setdefault(
                name,
                {k: 0 for k in f} | {"duration_ms_avg": 0.0},
            )
            total = m["invocations"] + f["invocations"]
            if total:
                m["duration_ms_avg"] = (
                    m["duration_ms_avg"] * m["invocations"] + f["duration_ms_avg"] * f["invocations"]
                ) / total
            for k in ("invocations", "errors", "throttles", "timeouts", "records", "dead_lettered"):
                m[k] += f.get(k, 0)
            for k in ("duration_ms_p50", "duration_ms_p99", "duration_ms_max", "iterator_age_ms"):
                m[k] = max(m[k], f.get(k, 0))
        for k, v in snap.get("counters", {}).items():
            counters[k] += v
    return {"functions": functions, "counters": dict(counters)}


_COUNTS = ("invocations", "errors", "throttles", "timeouts", "records", "dead_lettered")


def subtract_snapshot(full: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """What ``full`` (a worker's cumulative snapshot) holds beyond ``base`` (an earlier one of
    the same worker, already counted elsewhere): counts and averages of the difference;
    maxima, percentiles and ages stay as they are (they cannot be taken apart)."""
    functions = {}
    for name, f in full.get("functions", {}).items():
        b = base.get("functions", {}).get(name, {})
        out = dict(f)
        for k in _COUNTS:
            out[k] = f.get(k, 0) - b.get(k, 0)
        if out["invocations"] > 0:
            total = f["duration_ms_avg"] * f["invocations"] - b.get("duration_ms_avg", 0) * b.get(
                "invocations", 0
            )
            out["duration_ms_avg"] = total / out["invocations"]
        else:
            out["duration_ms_avg"] = 0.0
        functions[name] = out
    counters = {k: v - base.get("counters", {}).get(k, 0) for k, v in full.get("counters", {}).items()}
    return {"functions": functions, "counters": counters}


def retire_snapshots(retired: dict[str, Any] | None, dead: list[dict[str, Any]]) -> dict[str, Any]:
    """Fold the last publications of workers that are gone into one snapshot: their counts
    stay in every merged view, their ages (a gauge of work still waiting) do not."""
    gone = []
    for snap in dead:
        functions = {n: f | {"iterator_age_ms": 0} for n, f in snap.get("functions", {}).items()}
        gone.append({"functions": functions, "counters": snap.get("counters", {})})
    return merge_snapshots(([retired] if retired else []) + gone)
