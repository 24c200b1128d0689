"""Running an app: ``drain`` for tests, threads for one worker, processes for several.

One worker process runs one thread per poller plus a keeper thread that balances leases,
renews them, fires schedules and trims streams. The pollers take turns through a gate of
``worker_concurrency`` places (default 1): with a thread per shard all running Python at
once, an atomic handler held the database's write lock twice as long as its own work took,
and a 40,000-record leda round ran 1.4× (atomic) to 1.8× (lab2) slower than with turns.
Several workers share the work through leases (see ``leases.py``); the supervising process
restarts a worker that dies.
"""

from __future__ import annotations

import collections
import gc
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, EventlakeError
from .functions import Invoker
from .leases import Leases, new_owner_id
from .metrics import Metrics, retire_snapshots, subtract_snapshot
from .pollers import PollResult, QueuePoller, StreamPoller
from .sources import KinesisSource

log = logging.getLogger("eventlake.runtime")
WINDOW_LOOK_S = 0.05
# A worker publishes its metrics twice a second: one silent this long is gone (killed, or
# stopped), and its row is folded into the RETIRED row by the next keeper that looks.
METRICS_RETIRE_S = 60.0
RETIRED = "retired"
# What the retirer folded of each worker: the cumulative snapshot its row carried (see
# publish_metrics). A worker taken for dead that publishes again reads it and deletes it; the
# records of workers that are really gone are dropped after an hour.
FOLDED = "metrics-folded"
FOLDED_KEEP_S = 3600.0
PUBLISH_WAIT_S = 5.0  # for another publication of the same worker to finish


def pair_stream_store(env: Any, consumers: list[str]) -> None:
    """Refuse to consume streams from another store than the one the checkpoints came from.

    A stream consumer's checkpoint (in the state) is a sequence number of the stream store's
    records. Pointed at a different store - ``stream_url`` added, removed or changed, or its
    file replaced - it would silently skip that store's first records, or wait for numbers it
    never reaches. Each store gets an id when first used and the state keeps the id of the
    store its consumers read; a mismatch is refused while any of ``consumers`` (poller names)
    holds a checkpoint, and re-paired when none does (there is nothing to lose). Apps that
    only use tables and queues never pair: a stream store cannot affect them."""

    def store_id(t: Any) -> str:
        t.kv_insert("meta", "store-id", uuid.uuid4().hex)
        return str(t.kv_get("meta", "store-id"))

    sid = env.stream_store.transaction(store_id)

    def pair(t: Any) -> tuple[str, list[str]] | None:
        if t.kv_insert("meta", "stream-store", sid):
            return None
        paired = t.kv_get("meta", "stream-store")
        if paired == sid:
            return None
        held = [c for c in consumers if t.kv_get("ckpt", c) is not None]
        if not held:
            t.kv_put("meta", "stream-store", sid)
            return None
        return str(paired), held

    mismatch = env.state.transaction(pair)
    if mismatch is not None:
        paired, held = mismatch
        where = env.settings.stream_url or "the state backend itself (stream_url unset)"
        raise ConfigError(
            f"stream checkpoints in this app's state ({', '.join(held[:3])}"
            f"{', ...' if len(held) > 3 else ''}) were taken on another stream store than "
            f"{where} (store {paired}; this one is {sid}): the consumers would skip records or "
            "wait for ones that never come. Point stream_url back at that store, or start "
            "these consumers afresh on a new state backend"
        )


class DrainTimeout(EventlakeError):
    """``drain`` ran out of time with work still pending."""


@dataclass
class DrainReport:
    invocations: int
    errors: int
    passes: int
    seconds: float


class FairGate:
    """At most ``places`` holders at once, served in arrival order: a released place goes to
    the longest waiter, so a poller that always has work cannot keep the others out (a
    semaphore lets the releasing thread, which holds the interpreter, take it straight back)."""

    def __init__(self, places: int) -> None:
        self._lock = threading.Lock()
        self._free = places
        self._waiters: collections.deque[threading.Event] = collections.deque()

    def __enter__(self) -> None:
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return
            turn = threading.Event()
            self._waiters.append(turn)
        turn.wait()  # the place is handed over with the event

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._free += 1


class Runtime:
    def __init__(self, app: Any, *, owner: str | None = None) -> None:
        self.app = app
        self.env = app.env
        self.metrics = Metrics()
        self.invoker = Invoker(self.env, self.metrics)
        self.leases = Leases(self.env, owner or new_owner_id(), self.env.settings.lease_ttl_s)
        self.stream_pollers: list[StreamPoller] = []
        self.queue_pollers: list[QueuePoller] = []
        self.tickers: list[Any] = []
        # See Settings.worker_concurrency: pollers of this process take turns through it.
        self._gate = FairGate(self.env.settings.worker_concurrency)
        self._dlqs: dict[str, Any] = {}
        self._publishing = threading.Lock()
        self._confirmed: dict[str, Any] | None = None  # the last snapshot known published
        self._metrics_base: dict[str, Any] | None = None  # counted in the retired row already
        for reg in app._registrations:
            reg.build(self)
        consumers = [p.name for p in self.stream_pollers if isinstance(p.src, KinesisSource)]
        if consumers:
            pair_stream_store(self.env, consumers)

    def destination_for(self, fn: Any, configured: Any) -> Any:
        """The failure destination, or the function's own dead-letter queue: never drop."""
        if configured is not None:
            return configured
        if fn.name not in self._dlqs:
            self._dlqs[fn.name] = self.app.queue(f"{fn.name}-dlq")
        return self._dlqs[fn.name]

    @property
    def pollers(self) -> list[Any]:
        return [*self.stream_pollers, *self.queue_pollers]

    def _stream_lease_names(self) -> list[str]:
        return [p.name for p in self.stream_pollers]

    def lag(self) -> dict[str, int]:
        """Records each stream function still has to process, from the state backend.

        Read in registration order, upstream first, so that a pipeline whose every stage shows
        zero has really finished (a stage writes downstream before it moves its checkpoint).
        """
        out: dict[str, int] = {}
        for p in self.stream_pollers:
            raw = self.env.state.transaction(lambda t, p=p: t.kv_get("ckpt", p.name), readonly=True)
            ck = int(raw.partition(":")[0]) if raw else 0
            last = p.store.transaction(lambda t, p=p: t.log_last_seq(p.src.log, p.shard), readonly=True)
            out[p.fn.name] = out.get(p.fn.name, 0) + max(0, last - ck)
        for q in self.queue_pollers:
            out.setdefault(q.fn.name, len(q.queue))
        return out

    # -- deterministic processing for tests
    def drain(self, timeout_s: float = 60.0, *, flush_windows: bool = True) -> DrainReport:
        clock = self.env.clock
        t0 = time.monotonic()
        before = self.metrics.snapshot()["functions"]
        for p in self.stream_pollers:
            if not self.leases.holds(p.name) and not self.leases.try_acquire(p.name):
                raise EventlakeError(
                    f"drain: lease {p.name} is held by another worker; stop the other workers "
                    "(or wait lease_ttl_s) before draining"
                )
        passes = 0
        while True:
            passes += 1
            if time.monotonic() - t0 > timeout_s:
                raise DrainTimeout(
                    f"drain: still pending after {timeout_s}s: "
                    + ", ".join(p.name for p in self.pollers if p.pending())
                )
            self.leases.renew_all()
            # A manual clock may have jumped past the lease TTL while sleeping through a delay;
            # drain runs alone, so it takes its expired leases back rather than stall.
            for p in self.stream_pollers:
                if not self.leases.holds(p.name):
                    self.leases.try_acquire(p.name)
            for t in self.tickers:
                t.tick()
            worked = False
            wake: list[float] = []
            for p in self.pollers:
                r: PollResult = p.poll_once(flush=flush_windows)
                worked |= r.worked
                if r.wake_at is not None:
                    wake.append(r.wake_at)
            if worked:
                continue
            if not any(p.pending() for p in self.pollers):
                break
            now = clock.time()
            target = min(wake) if wake else now + self.env.settings.poll_interval_s
            clock.sleep(min(max(target - now, 0.001), max(0.0, timeout_s - (time.monotonic() - t0))))
        after = self.metrics.snapshot()["functions"]
        inv = sum(v["invocations"] for v in after.values()) - sum(v["invocations"] for v in before.values())
        err = sum(v["errors"] for v in after.values()) - sum(v["errors"] for v in before.values())
        return DrainReport(inv, err, passes, time.monotonic() - t0)

    # -- one worker, many threads
    def run(self, stop: threading.Event, *, duration_s: float | None = None) -> None:
        threads = [threading.Thread(target=self._keeper, args=(stop,), name="el-keeper", daemon=True)]
        if self.env.settings.worker_concurrency == 1:
            # One place: the pollers take turns on one thread (see _serial).
            serial = threading.Thread(target=self._serial, args=(stop,), name="el-pollers", daemon=True)
            threads.append(serial)
        else:
            for p in self.pollers:
                threads.append(threading.Thread(target=self._loop, args=(p, stop), name=p.name, daemon=True))
        for t in threads:
            t.start()
        deadline = time.monotonic() + duration_s if duration_s else None
        try:
            while not stop.is_set():
                if deadline and time.monotonic() >= deadline:
                    break
                stop.wait(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=5)
            try:
                self.leases.leave()  # first: other workers wait lease_ttl_s for what is kept
            except Exception:  # the backend may already be gone at shutdown
                log.debug("lease release failed at shutdown", exc_info=True)
            try:
                self.publish_metrics()
            except Exception:
                log.debug("metrics publication failed at shutdown", exc_info=True)

    def publish_metrics(self) -> None:
        """Store this worker's metrics where every process can read them (``App.worker_metrics``):
        a supervisor or a CLI shows workers it does not share memory with.

        The row holds what is not yet counted in the ``retired`` row (see
        :meth:`retire_metrics`): everything, unless this worker was silent long enough to be
        taken for dead, in which case what its row held went there already.

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
            owner = self.leases.owner
            now = self.env.clock.time()

            def publish(t: Any) -> None:
                t.lock("metrics")
                if t.kv_get("metrics", owner) is None:
                    # Set here, not after the commit: a COMMIT that reports an error may have
                    # committed the row written with it. (A rerun or a rollback finds the row
                    # missing again and derives the same base.)
                    folded = t.kv_get(FOLDED, owner)
                    total = json.loads(folded).get("total") if folded is not None else None
                    if total is not None:  # retired: counted there up to what the row carried
                        self._metrics_base = total
                        t.kv_delete(FOLDED, owner)  # (committed with the row that replaces it)
                    elif self._confirmed is not None:
                        # Retired long ago (the record is kept FOLDED_KEEP_S): the last
                        # publication known to have committed is the best guess left.
                        self._metrics_base = self._confirmed
                    # else never written: every earlier publication failed
                base = self._metrics_base
                doc = snap if base is None else subtract_snapshot(snap, base)
                t.kv_put("metrics", owner, json.dumps(doc | {"at": now, "total": snap}))

            self.env.state.transaction(publish)
            self._confirmed = snap
        finally:
            self._publishing.release()

    def retire_metrics(self) -> int:
        """Fold the rows of workers silent for ``METRICS_RETIRE_S`` (killed, or stopped long
        ago) into one ``retired`` row, so that the rows do not grow with every worker ever
        started (a chaos run starts one a second) while their counts stay in the totals.
        Returns how many rows were folded."""
        now = self.env.clock.time()
        cutoff = now - max(METRICS_RETIRE_S, 10 * self.env.settings.lease_ttl_s)
        owner = self.leases.owner

        def retire(t: Any) -> int:
            t.lock("metrics")  # against a concurrent retirer, and a worker publishing late
            retired = None
            dead = []
            for key, raw in t.kv_list("metrics"):
                doc = json.loads(raw)
                if key == RETIRED:
                    retired = doc
                elif key != owner and doc.get("at", cutoff) < cutoff:
                    # (a row without "at" is a worker of an earlier release: never taken for
                    # dead, as it would write its whole count again after being folded)
                    dead.append((key, doc))
            for key, raw in t.kv_list(FOLDED):
                if json.loads(raw).get("at", 0) < now - FOLDED_KEEP_S:
                    t.kv_delete(FOLDED, key)
            if not dead:
                return 0
            folded = retire_snapshots(retired, [doc for _, doc in dead])
            t.kv_put("metrics", RETIRED, json.dumps(folded))
            for key, doc in dead:
                t.kv_delete("metrics", key)
                if "total" in doc:  # (rows of an earlier release carry no cumulative snapshot)
                    t.kv_put(FOLDED, key, json.dumps({"total": doc["total"], "at": now}))
            return len(dead)

        return int(self.env.state.transaction(retire))

    def _keeper(self, stop: threading.Event) -> None:
        period = max(self.env.settings.lease_ttl_s / 4, 0.05)
        last_trim = 0.0
        last_publish = 0.0
        last_retire = time.monotonic()
        while not stop.is_set():
            try:
                self.leases.balance(self._stream_lease_names())
                for t in self.tickers:
                    t.tick()
                if time.monotonic() - last_trim > 300:
                    for s in self.app._streams.values():
                        s.trim()
                    last_trim = time.monotonic()
                if time.monotonic() - last_publish >= 0.5:
                    self.publish_metrics()
                    last_publish = time.monotonic()
                if time.monotonic() - last_retire > 30:
                    self.retire_metrics()
                    last_retire = time.monotonic()
            except Exception:
                log.exception("keeper iteration failed; retrying")
            stop.wait(min(period, 0.5))

    def _serial(self, stop: threading.Event) -> None:
        """Every poller of this worker on one thread, in turn: what the gate of one place did
        with a thread per poller, without handing the interpreter lock and the gate from
        thread to thread after every batch.

        A poller is polled again at once after it worked; after a write to one of its names;
        or when it asked to be (an open batching window, a retry's backoff: at most every
        WINDOW_LOOK_S, as in _loop); and otherwise every poll_interval_s."""
        signals = self.env.signals
        clock = self.env.clock
        interval = self.env.settings.poll_interval_s
        pollers = list(self.pollers)
        if not pollers:
            return  # nothing to poll (an app of schedules only: the keeper fires them)
        names = tuple(dict.fromkeys(n for p in pollers for n in p.wake_names))
        # Due times are monotonic: a wall clock stepped back (NTP, a resumed VM) must not hold
        # pollers back. A poller's wake_at (clock time) becomes a delay when it is returned.
        due = [0.0] * len(pollers)
        seen = [signals.version(p.wake_names) for p in pollers]
        timed = [False] * len(pollers)  # True: only its due time wakes it, not writes
        mono = time.monotonic
        while not stop.is_set():
            before = signals.version(names)
            worked = False
            now = mono()
            for i, p in enumerate(pollers):
                version = signals.version(p.wake_names)
                if now < due[i] and (timed[i] or version == seen[i]):
                    continue
                seen[i] = version
                timed[i] = False
                try:
                    r = p.poll_once()
                except Exception:
                    log.exception("poller %s failed; retrying", p.name)
                    due[i] = mono() + 0.5
                    timed[i] = True  # as _loop: wait the half second, whatever arrives
                    continue
                if r.worked:
                    worked = True
                    due[i] = 0.0
                elif r.wake_at is not None:
                    # A window is open or a retry backs off: new records need not wake it.
                    left = max(r.wake_at - clock.time(), 0.0)
                    due[i] = mono() + min(left, max(interval, WINDOW_LOOK_S))
                    timed[i] = True
                else:
                    due[i] = mono() + interval
            if worked:
                continue
            left = min(due) - mono()
            if left > 0:
                signals.wait(names, before, min(left, interval))

    def _loop(self, p: Any, stop: threading.Event) -> None:
        signals = self.env.signals
        interval = self.env.settings.poll_interval_s
        while not stop.is_set():
            seen = signals.version(p.wake_names)
            try:
                with self._gate:
                    r = p.poll_once()
            except Exception:
                log.exception("poller %s failed; retrying", p.name)
                stop.wait(0.5)
                continue
            if r.worked:
                continue
            if r.wake_at is not None:
                # A batching window is open (or a retry backs off): new records need not wake
                # it one by one. Look again at most every WINDOW_LOOK_S, in case the batch fills
                # up before the window ends; Lambda itself looks once a second.
                left = max(r.wake_at - self.env.clock.time(), 0.0)
                stop.wait(min(left, max(interval, WINDOW_LOOK_S)))
                continue
            signals.wait(p.wake_names, seen, interval)


def _tune_gc() -> None:
    """Collect garbage less often in a worker process, and never look again at what exists
    before it starts working. A pipeline allocates tens of containers per record (a
    DynamoDB Streams record is about twenty dicts) and keeps a whole batch alive while it
    builds it; with the default threshold of 700 the collector scanned those batches over
    and over (15 % of building a table-stream event). Cycles are still collected, every
    50,000 allocations."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _child_main(app: Any, duration_s: float | None) -> None:
    app._after_fork()
    _tune_gc()
    stop = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    parent = os.getppid()

    def watch_parent() -> None:
        # A worker whose supervisor died (kill -9, a crashed shell) must not run on unmanaged.
        while not stop.wait(0.5):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=watch_parent, name="el-parent-watch", daemon=True).start()
    Runtime(app).run(stop, duration_s=duration_s)


class Supervisor:
    """Starts worker processes and restarts any that die (and, for chaos tests, kills them)."""

    def __init__(
        self, app: Any, workers: int, *, duration_s: float | None = None, restart: bool = True
    ) -> None:
        self.app = app
        self.workers = workers
        self.duration_s = duration_s
        self.restart = restart
        self.procs: list[Any] = []
        self.restarts = 0
        self._ctx = multiprocessing.get_context("fork")

    def _start(self) -> Any:
        p = self._ctx.Process(target=_child_main, args=(self.app, self.duration_s), daemon=False)
        p.start()
        return p

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.is_alive()]

    def kill_one(self, rng: Any) -> int | None:
        """kill -9 a random live worker; return its pid."""
        pids = self.pids()
        if not pids:
            return None
        pid = rng.choice(pids)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return int(pid)

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        self.procs = [self._start() for _ in range(self.workers)]
        deadline = time.monotonic() + self.duration_s if self.duration_s else None
        try:
            while not stop.is_set():
                if deadline and time.monotonic() >= deadline:
                    break
                for i, p in enumerate(self.procs):
                    if not p.is_alive() and self.restart:
                        log.warning("worker pid %s exited with %s; restarting", p.pid, p.exitcode)
                        p.join(timeout=0)
                        self.procs[i] = self._start()
                        self.restarts += 1
                stop.wait(0.1)
        finally:
            for p in self.procs:
                if p.is_alive():
                    os.kill(p.pid, signal.SIGTERM)
            for p in self.procs:
                p.join(timeout=10)
                if p.is_alive():
                    p.kill()
                    p.join(timeout=5)


def start_background(
    app: Any, workers: int, *, processes: bool = False
) -> tuple[threading.Event, threading.Thread, Supervisor | None]:
    """Run ``app`` on a background thread while the caller produces load: in this process for
    one worker, or as supervised worker processes (which chaos can kill) for more, or always
    as processes with ``processes=True`` (the caller's own Python work then does not compete
    with the workers' for one interpreter lock). Set the returned event and join the thread
    to stop."""
    stop = threading.Event()
    sup: Supervisor | None = None
    if workers > 1 or processes:
        sup = Supervisor(app, workers)
        thread = threading.Thread(target=sup.run, args=(stop,), daemon=True)
    else:
        thread = threading.Thread(target=app.run, kwargs={"stop": stop}, daemon=True)
    thread.start()
    return stop, thread, sup


def run_workers(
    app: Any,
    workers: int,
    *,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    restart: bool = True,
) -> None:
    """Start ``workers`` processes and keep them running (restarting any that die)."""
    Supervisor(app, workers, duration_s=duration_s, restart=restart).run(stop)
