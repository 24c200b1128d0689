"""The runtime of one worker: ``drain`` for tests, threads for a running worker.

A running worker has a keeper thread that shares out and renews leases, runs the triggers'
periodic work (schedules fire there), trims streams and publishes metrics; its pull triggers
are polled in turn on one thread, or each on its own thread through a gate of
``worker_concurrency`` places; each push trigger serves on a thread of its own. Several
workers share the work through leases (see ``leases.py``).

The runtime drives triggers only through the protocol of ``trigger.py``: it does not know
which kinds exist.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import DrainTimeout, EventlakeError, ValidationError
from ..resources.env import Env
from .functions import Function, Invoker
from .gate import FairGate
from .leases import Leases, new_owner_id
from .metrics import Metrics
from .publication import MetricsPublisher
from .trigger import AnyTrigger, PullTrigger, PushTrigger, RuntimeHost, TriggerSpec, trigger_kind

if TYPE_CHECKING:
    from .trigger import Destination

log = logging.getLogger("eventlake.runtime")
WINDOW_LOOK_S = 0.05
TRIM_EVERY_S = 300.0
PUBLISH_EVERY_S = 0.5
RETIRE_EVERY_S = 30.0


def _not_a_trigger(t: object) -> str:
    common = ("name", "lease", "start", "stop", "keep", "pending", "lag")
    pull = [m for m in (*common, "poll_once", "wake_names") if not hasattr(t, m)]
    push = [m for m in (*common, "serve") if not hasattr(t, m)]
    return (
        f"{t!r} (built by a trigger kind) is neither a pull trigger (it lacks {', '.join(pull)}) "
        f"nor a push trigger (it lacks {', '.join(push)}); subclass PullTrigger or PushTrigger "
        "from eventlake.runtime.trigger to inherit the defaults"
    )


@dataclass
class DrainReport:
    invocations: int
    errors: int
    passes: int
    seconds: float


class Runtime:
    def __init__(self, host: RuntimeHost, *, owner: str | None = None) -> None:
        self.host = host
        self.env: Env = host.env
        self.metrics = Metrics()
        self.invoker = Invoker(self.env, self.metrics)
        self.leases = Leases(self.env, owner or new_owner_id(), self.env.settings.lease_ttl_s)
        self.publisher = MetricsPublisher(self.env, self.metrics, self.leases.owner)
        # See Settings.worker_concurrency: pull triggers of this process take turns through it.
        self._gate = FairGate(self.env.settings.worker_concurrency)
        self._dlqs: dict[str, Destination] = {}
        # Kinds in the order first declared, each kind's in declaration order: ``lag`` reads
        # them so, upstream first as far as declarations go.
        by_kind: dict[str, list[TriggerSpec]] = {}
        for spec in host.specs:
            by_kind.setdefault(spec.kind, []).append(spec)
        self.triggers: list[AnyTrigger] = []
        for kind, specs in by_kind.items():
            self.triggers.extend(trigger_kind(kind).build(specs, self))
        self.pull: list[PullTrigger] = []
        self.push: list[PushTrigger] = []
        for t in self.triggers:
            if isinstance(t, PullTrigger):
                self.pull.append(t)
            elif isinstance(t, PushTrigger):
                self.push.append(t)
            else:
                raise ValidationError(_not_a_trigger(t))
        self.leased = [t.lease for t in self.triggers if t.lease is not None]

    def destination_for(self, fn: Function, configured: Destination | None) -> Destination:
        """The failure destination, or the function's own dead-letter queue: never drop."""
        if configured is not None:
            return configured
        if fn.name not in self._dlqs:
            self._dlqs[fn.name] = self.host.queue(f"{fn.name}-dlq")
        return self._dlqs[fn.name]

    def lag(self) -> dict[str, int]:
        """Records each function still has to process, from the backends (every worker's).

        Read upstream first (see ``__init__``), so that a pipeline whose every stage shows
        zero has really finished (a stage writes downstream before it moves its checkpoint).
        """
        out: dict[str, int] = {}
        for t in self.triggers:
            for fn, n in t.lag().items():
                out[fn] = out.get(fn, 0) + n
        return out

    def publish_metrics(self) -> None:
        self.publisher.publish()

    def retire_metrics(self) -> int:
        return self.publisher.retire()

    # -- deterministic processing for tests
    def drain(self, timeout_s: float = 60.0, *, flush_windows: bool = True) -> DrainReport:
        """Poll every pull trigger until no trigger has work pending. Push triggers are not
        served (no port is opened); work they have in flight is waited for."""
        clock = self.env.clock
        t0 = time.monotonic()
        before = self.metrics.snapshot()["functions"]
        for name in self.leased:
            if not self.leases.holds(name) and not self.leases.try_acquire(name):
                raise EventlakeError(
                    f"drain: lease {name} is held by another worker; stop the other workers "
                    "(or wait lease_ttl_s) before draining"
                )
        passes = 0
        while True:
            passes += 1
            if time.monotonic() - t0 > timeout_s:
                raise DrainTimeout(
                    f"drain: still pending after {timeout_s}s: "
                    + ", ".join(t.name for t in self.triggers if t.pending())
                )
            self.leases.renew_all()
            # A manual clock may have jumped past the lease TTL while sleeping through a delay;
            # drain runs alone, so it takes its expired leases back rather than stall.
            for name in self.leased:
                if not self.leases.holds(name):
                    self.leases.try_acquire(name)
            for t in self.triggers:
                t.keep()
            worked = False
            wake: list[float] = []
            for p in self.pull:
                r = p.poll_once(flush=flush_windows)
                worked |= r.worked
                if r.wake_at is not None:
                    wake.append(r.wake_at)
            if worked:
                continue
            if not any(t.pending() for t in self.triggers):
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
        started: list[AnyTrigger] = []
        try:
            for t in self.triggers:
                t.start()
                started.append(t)
        except BaseException:
            self._stop_triggers(started)
            raise
        threads = [threading.Thread(target=self._keeper, args=(stop,), name="el-keeper", daemon=True)]
        if self.env.settings.worker_concurrency == 1:
            # One place: the pull triggers take turns on one thread (see _serial).
            serial = threading.Thread(target=self._serial, args=(stop,), name="el-pollers", daemon=True)
            threads.append(serial)
        else:
            for p in self.pull:
                threads.append(threading.Thread(target=self._loop, args=(p, stop), name=p.name, daemon=True))
        for s in self.push:
            threads.append(threading.Thread(target=self._serve, args=(s, stop), name=s.name, daemon=True))
        for th in threads:
            th.start()
        deadline = time.monotonic() + duration_s if duration_s else None
        try:
            while not stop.is_set():
                if deadline and time.monotonic() >= deadline:
                    break
                stop.wait(0.2)
        finally:
            stop.set()
            for th in threads:
                th.join(timeout=5)
            self._stop_triggers(started)
            try:
                self.leases.leave()  # first: other workers wait lease_ttl_s for what is kept
            except Exception:  # the backend may already be gone at shutdown
                log.debug("lease release failed at shutdown", exc_info=True)
            try:
                self.publish_metrics()
            except Exception:
                log.debug("metrics publication failed at shutdown", exc_info=True)

    @staticmethod
    def _stop_triggers(triggers: list[AnyTrigger]) -> None:
        for t in reversed(triggers):
            try:
                t.stop()
            except Exception:
                log.exception("trigger %s failed to stop", t.name)

    def _keeper(self, stop: threading.Event) -> None:
        period = max(self.env.settings.lease_ttl_s / 4, 0.05)
        last_trim = 0.0
        last_publish = 0.0
        last_retire = time.monotonic()
        while not stop.is_set():
            try:
                self.leases.balance(self.leased)
                for t in self.triggers:
                    t.keep()
                if time.monotonic() - last_trim > TRIM_EVERY_S:
                    self.host.maintain()
                    last_trim = time.monotonic()
                if time.monotonic() - last_publish >= PUBLISH_EVERY_S:
                    self.publish_metrics()
                    last_publish = time.monotonic()
                if time.monotonic() - last_retire > RETIRE_EVERY_S:
                    self.retire_metrics()
                    last_retire = time.monotonic()
            except Exception:
                log.exception("keeper iteration failed; retrying")
            stop.wait(min(period, 0.5))

    def _serve(self, trigger: PushTrigger, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                trigger.serve(stop)
            except Exception:
                log.exception("trigger %s failed while serving; serving again", trigger.name)
                stop.wait(0.5)

    def _serial(self, stop: threading.Event) -> None:
        """Every pull trigger of this worker on one thread, in turn: what the gate of one place
        did with a thread per trigger, without handing the interpreter lock and the gate from
        thread to thread after every batch.

        A trigger is polled again at once after it worked; after a write to one of its names;
        or when it asked to be (an open batching window, a retry's backoff: at most every
        WINDOW_LOOK_S, as in _loop); and otherwise every poll_interval_s."""
        signals = self.env.signals
        clock = self.env.clock
        interval = self.env.settings.poll_interval_s
        pollers = list(self.pull)
        if not pollers:
            return  # nothing to poll (an app of push triggers only)
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

    def _loop(self, p: PullTrigger, stop: threading.Event) -> None:
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
