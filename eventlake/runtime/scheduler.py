"""Schedules: each due tick is claimed once in the state backend, then delivered through a log.

Claiming a tick is a compare-and-set on the last fired tick, so with any number of workers a
tick fires at most once. Missed ticks (the app was down) are not replayed: only the latest
due tick fires, as EventBridge does not backfill. The tick becomes a record in the
function's schedule log and is invoked by a stream poller, which gives retries and a
dead-letter destination for free.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from ..ports.state import StateTxn
from ..resources.env import Env
from .functions import Function
from .mappings import StreamMapping
from .pollers import StreamPoller
from .sources import Source
from .trigger import TriggerContext


class Ticker:
    def __init__(self, env: Env, fn_name: str, expression: str, log: str) -> None:
        from ..schedule import parse_schedule

        self.env = env
        self.fn = fn_name
        self.schedule = parse_schedule(expression)
        self.log = log
        self.key = fn_name

    def _due(self, last: float, now: float) -> float | None:
        """The latest tick in (last, now], or None."""
        due = None
        t = datetime.fromtimestamp(last, UTC)
        for _ in range(100_000):
            nxt = self.schedule.next_after(t)
            if nxt is None or nxt.timestamp() > now:
                break
            due = nxt.timestamp()
            t = nxt
        return due

    def next_at(self) -> float | None:
        raw = self.env.state.transaction(lambda t: t.kv_get("sched", self.key), readonly=True)
        base = float(raw) if raw is not None else self.env.clock.time()
        nxt = self.schedule.next_after(datetime.fromtimestamp(base, UTC))
        return nxt.timestamp() if nxt else None

    def tick(self) -> bool:
        """Fire the due tick if this worker wins it; return whether it fired."""
        now = self.env.clock.time()

        def run(txn: StateTxn) -> bool:
            raw = txn.kv_get("sched", self.key, lock=True)
            if raw is None:
                # First start: begin counting from now; nothing is due yet.
                txn.kv_put("sched", self.key, repr(now))
                return False
            due = self._due(float(raw), now)
            if due is None:
                return False
            txn.kv_put("sched", self.key, repr(due))
            doc = json.dumps({"tick": due, "id": str(uuid.uuid4())}).encode()
            txn.log_append(self.log, 0, [(self.fn, doc, now)])
            return True

        fired = self.env.state.transaction(run)
        if fired:
            self.env.signals.notify(self.log)
        return fired


class SchedulePoller(StreamPoller):
    """A schedule's trigger: claims due ticks in ``keep`` (in every worker: the claim decides
    which one fires) and invokes them as any log's poller does, under a lease."""

    def __init__(
        self,
        ctx: TriggerContext,
        fn: Function,
        mapping: StreamMapping,
        source: Source,
        shard: int,
        slot: int,
        ticker: Ticker,
    ) -> None:
        super().__init__(ctx, fn, mapping, source, shard, slot)
        self.ticker = ticker

    def keep(self) -> None:
        self.ticker.tick()
