"""Publishing a worker's metrics where every process can read them, and retiring the rows of
workers that are gone.

A worker publishes its metrics twice a second: one silent for ``METRICS_RETIRE_S`` is gone
(killed, or stopped), and its row is folded into the ``retired`` row by the next keeper that
looks, so that the rows do not grow with every worker ever started while their counts stay
in the totals.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from ..ports.kv import KvTxn
from ..resources.env import Env
from .metrics import Metrics, retire_snapshots, subtract_snapshot

log = logging.getLogger("eventlake.runtime")
METRICS_RETIRE_S = 60.0
RETIRED = "retired"
# What the retirer folded of each worker: the cumulative snapshot its row carried (see
# MetricsPublisher.publish). A worker taken for dead that publishes again reads it and deletes
# it; the records of workers that are really gone are dropped after an hour.
FOLDED = "metrics-folded"
FOLDED_KEEP_S = 3600.0
PUBLISH_WAIT_S = 5.0  # for another publication of the same worker to finish


class MetricsPublisher:
    """One worker's publications (``metrics`` rows keyed by ``owner``), and retirement of
    the rows of others."""

    def __init__(self, env: Env, metrics: Metrics, owner: str) -> None:
        self.env = env
        self.metrics = metrics
        self.owner = owner
        self._publishing = threading.Lock()
        self._confirmed: dict[str, Any] | None = None  # the last snapshot known published
        self._base: dict[str, Any] | None = None  # counted in the retired row already

    def publish(self) -> None:
        """Store this worker's metrics where every process can read them (``App.worker_metrics``):
        a supervisor or a CLI shows workers it does not share memory with.

        The row holds what is not yet counted in the ``retired`` row (see :meth:`retire`):
        everything, unless this worker was silent long enough to be taken for dead, in which
        case what its row held went there already.

        How much went there is read from the retirer's record (``FOLDED``: the cumulative
        snapshot the row carried), not taken from this worker's memory: a COMMIT that reports
        an error (a connection lost in it) may still have committed, and a worker that took
        its last confirmed publication as the base would count the gap twice."""
        # One at a time: the keeper's, and the one at shutdown if the keeper hangs in its own
        # (then this one gives up rather than hold the shutdown).
        if not self._publishing.acquire(timeout=PUBLISH_WAIT_S):
            log.warning("metrics not published: an earlier publication is still in progress")
            return
        try:
            snap = self.metrics.snapshot()
            owner = self.owner
            now = self.env.clock.time()

            def publish(t: KvTxn) -> None:
                t.lock("metrics")
                if t.kv_get("metrics", owner) is None:
                    # Set here, not after the commit: a COMMIT that reports an error may have
                    # committed the row written with it. (A rerun or a rollback finds the row
                    # missing again and derives the same base.)
                    folded = t.kv_get(FOLDED, owner)
                    if folded is not None:  # retired: counted there up to what the row carried
                        self._base = json.loads(folded)["total"]
                        t.kv_delete(FOLDED, owner)  # (committed with the row that replaces it)
                    elif self._confirmed is not None:
                        # Retired long ago (the record is kept FOLDED_KEEP_S): the last
                        # publication known to have committed is the best guess left.
                        self._base = self._confirmed
                    # else never written: every earlier publication failed
                base = self._base
                doc = snap if base is None else subtract_snapshot(snap, base)
                t.kv_put("metrics", owner, json.dumps(doc | {"at": now, "total": snap}))

            self.env.state.transaction(publish)
            self._confirmed = snap
        finally:
            self._publishing.release()

    def retire(self) -> int:
        """Fold the rows of workers silent for ``METRICS_RETIRE_S`` (killed, or stopped long
        ago) into one ``retired`` row. Returns how many rows were folded."""
        now = self.env.clock.time()
        cutoff = now - max(METRICS_RETIRE_S, 10 * self.env.settings.lease_ttl_s)
        owner = self.owner

        def retire(t: KvTxn) -> int:
            t.lock("metrics")  # against a concurrent retirer, and a worker publishing late
            retired = None
            dead = []
            for key, raw in t.kv_list("metrics"):
                doc = json.loads(raw)
                if key == RETIRED:
                    retired = doc
                elif key != owner and doc["at"] < cutoff:
                    dead.append((key, doc))
            for key, raw in t.kv_list(FOLDED):
                if json.loads(raw)["at"] < now - FOLDED_KEEP_S:
                    t.kv_delete(FOLDED, key)
            if not dead:
                return 0
            folded = retire_snapshots(retired, [doc for _, doc in dead])
            t.kv_put("metrics", RETIRED, json.dumps(folded))
            for key, doc in dead:
                t.kv_delete("metrics", key)
                t.kv_put(FOLDED, key, json.dumps({"total": doc["total"], "at": now}))
            return len(dead)

        return self.env.state.transaction(retire)
