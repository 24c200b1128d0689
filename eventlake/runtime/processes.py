"""Worker processes: a supervisor that starts them, restarts any that dies, and stops them.

Each worker is a forked process with a runtime of its own; they share the work through
leases in the state backend (see ``leases.py``), so the supervisor coordinates nothing but
the processes' lives.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import signal
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Protocol

from .gc_tuning import tune_gc
from .trigger import RuntimeHost
from .worker import Runtime

log = logging.getLogger("eventlake.runtime")


class Runnable(Protocol):
    """What the supervisor needs of an App."""

    def runtime_host(self) -> RuntimeHost: ...

    def run(
        self, workers: int = 1, *, duration_s: float | None = None, stop: threading.Event | None = None
    ) -> None: ...


def _child_main(host: RuntimeHost, duration_s: float | None) -> None:
    host.after_fork()
    tune_gc()
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
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
    Runtime(host).run(stop, duration_s=duration_s)


class Supervisor:
    """Starts worker processes and restarts any that die (and, for chaos tests, kills them)."""

    def __init__(
        self, app: Runnable, workers: int, *, duration_s: float | None = None, restart: bool = True
    ) -> None:
        self.host = app.runtime_host()
        self.host.env.check_shared(f"{workers} worker processes")
        self.workers = workers
        self.duration_s = duration_s
        self.restart = restart
        self.procs: list[BaseProcess] = []
        self.restarts = 0
        self._ctx = multiprocessing.get_context("fork")

    def _start(self) -> BaseProcess:
        p = self._ctx.Process(target=_child_main, args=(self.host, self.duration_s), daemon=False)
        p.start()
        return p

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.is_alive() and p.pid is not None]

    def kill_one(self, rng: random.Random) -> int | None:
        """kill -9 a random live worker; return its pid."""
        pids = self.pids()
        if not pids:
            return None
        pid = rng.choice(pids)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return pid

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
                if p.is_alive() and p.pid is not None:
                    os.kill(p.pid, signal.SIGTERM)
            for p in self.procs:
                p.join(timeout=10)
                if p.is_alive():
                    p.kill()
                    p.join(timeout=5)


def run_workers(
    app: Runnable,
    workers: int,
    *,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    restart: bool = True,
) -> None:
    """Start ``workers`` processes and keep them running (restarting any that die)."""
    Supervisor(app, workers, duration_s=duration_s, restart=restart).run(stop)
