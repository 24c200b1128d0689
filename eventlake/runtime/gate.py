"""The gate through which the pollers of one worker take turns (``worker_concurrency`` places).

With a thread per shard all running Python at once, an atomic handler held the database's
write lock for much longer than its own work took; taking turns keeps each holder short.
"""

from __future__ import annotations

import collections
import threading


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
