"""Running an app in the background while the caller does something else: produce load, show
progress, or kill workers at random to prove that nothing is lost (chaos tests).

``App.run`` blocks until it is stopped; scripts, benchmarks and the CLIs of apps need the
pipeline running beside their own loop instead.
"""

from __future__ import annotations

import logging
import random
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from .errors import ValidationError
from .runtime.processes import Supervisor

if TYPE_CHECKING:
    from .app import App

__all__ = ["Workers", "log_to_file"]


class Workers:
    """``app``'s workers running in the background, in a thread of this process or as
    supervised worker processes::

        with Workers(app, 2) as workers:
            stream.put_many(records)
            workers.kill(rng)  # kill -9 one worker; the supervisor starts a new one
        # leaving the block stops the workers and waits for them

    More than one worker always means processes (they share the work through leases). One
    worker runs in a thread unless ``processes=True``: a process keeps the caller's own Python
    work from competing with the worker's for one interpreter lock, and gives ``kill``
    something to kill. A killed worker's shards wait for its leases to expire
    (``lease_ttl_s``) before another worker takes them over.
    """

    def __init__(self, app: App, count: int = 1, *, processes: bool = False) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValidationError(f"Workers: count must be a positive integer, got {count!r}")
        self.app = app
        self.count = count
        self.processes = processes or count > 1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._supervisor: Supervisor | None = None
        self._failure: BaseException | None = None

    def start(self) -> Workers:
        if self._thread is not None:
            raise ValidationError("Workers: already started; a Workers object runs once")
        if self.processes:
            self._supervisor = Supervisor(self.app, self.count)
        self._thread = threading.Thread(target=self._main, name="eventlake-workers", daemon=True)
        self._thread.start()
        return self

    def _main(self) -> None:
        try:
            if self._supervisor is not None:
                self._supervisor.run(self._stop)
            else:
                self.app.run(stop=self._stop)
        except BaseException as e:  # re-raised by stop(): a failed start must not pass unseen
            self._failure = e

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the workers and wait up to ``timeout_s`` for them; raise what made them fail."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    @property
    def pids(self) -> list[int]:
        """The live worker processes (none when the worker is a thread)."""
        return self._supervisor.pids() if self._supervisor is not None else []

    @property
    def restarts(self) -> int:
        """How many times a dead worker process was replaced."""
        return self._supervisor.restarts if self._supervisor is not None else 0

    def kill(self, rng: random.Random | None = None) -> int | None:
        """``kill -9`` one live worker process chosen by ``rng``; its pid, or None when none is
        alive at this moment (all are being restarted)."""
        if self._supervisor is None:
            raise ValidationError(
                "Workers.kill needs worker processes: Workers(app, processes=True), or count > 1"
            )
        return self._supervisor.kill_one(rng or random.Random())

    def __enter__(self) -> Workers:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def log_to_file(path: str | Path) -> None:
    """Send the functions' and the runtime's logs to a file instead of the terminal, where they
    would tear through a live view. Calling it again with the same path adds nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = str(path.resolve())
    for name in ("eventlake.functions", "eventlake.runtime"):
        logger = logging.getLogger(name)
        if not any(
            isinstance(h, logging.FileHandler) and h.baseFilename == target for h in logger.handlers
        ):
            handler = logging.FileHandler(target)
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
