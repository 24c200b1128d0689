"""Running leda rounds: produce, wait until the pipeline is idle, score; optionally with chaos."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eventlake import App
from eventlake.workers import Workers

from .app import DEFAULT_FAILURES, aggregates, build_app, set_failures
from .generator import Generator
from .verify import Score, score_round


@dataclass
class RoundResult:
    round: int
    records: int
    seconds: float
    score: Score


@dataclass
class LedaRun:
    mode: str = "lab2"
    rounds: int = 1
    hard: bool = False
    failures: bool = False
    chaos: bool = False
    workers: int = 1
    batches: int = 250
    per_batch: int = 40
    seed: int = 1
    state_url: str | None = None
    lake_url: str | None = None
    map_window_s: float = 3.0
    stale_after_s: float = 60.0  # the workshop's rule: state skips records older than this
    failure_rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FAILURES))
    settings: dict[str, Any] = field(default_factory=dict)
    results: list[RoundResult] = field(default_factory=list)
    kills: int = 0

    def build(self) -> App:
        settings = dict(self.settings)
        if self.chaos:
            # A killed worker's shards wait for its leases to expire; chaos kills about once a
            # second, so leases of 2 s (renewed every 0.5 s) keep the pipeline moving.
            settings.setdefault("lease_ttl_s", 2.0)
        return build_app(
            self.mode,
            state_url=self.state_url,
            lake_url=self.lake_url,
            map_window_s=self.map_window_s,
            stale_after_s=self.stale_after_s,
            seed=self.seed,
            **settings,
        )

    def run(self, on_progress: Callable[[App, Generator, LedaRun], None] | None = None) -> list[RoundResult]:
        app = self.build()
        set_failures(app, self.failure_rates if self.failures else None)
        gen = Generator(seed=self.seed, hard=self.hard, batches=self.batches, per_batch=self.per_batch)
        # Workers are processes even when there is one: the generator is the workshop's
        # separate producer, and chaos can kill a lone worker as well as one of several.
        chaos_rng = random.Random(self.seed + 1)
        incoming = app.stream("IncomingDataStream", shards=4)
        with Workers(app, self.workers, processes=True) as workers:
            for r in range(1, self.rounds + 1):
                t0 = time.monotonic()
                for batch in gen.round():
                    incoming.put_many(batch)
                    if self.chaos and chaos_rng.random() < 0.05 and workers.kill(chaos_rng):
                        self.kills += 1
                    if on_progress:
                        on_progress(app, gen, self)
                self._wait_idle(app, workers, chaos_rng, on_progress, gen)
                seconds = time.monotonic() - t0
                score = score_round(gen.expected(), aggregates(app), gen.effects)
                self.results.append(RoundResult(r, gen.records_per_round(), seconds, score))
                if on_progress:
                    on_progress(app, gen, self)
        app.close()
        return self.results

    def _wait_idle(
        self,
        app: App,
        workers: Workers,
        rng: random.Random,
        on_progress: Callable[..., None] | None,
        gen: Generator,
        timeout_s: float = 600,
    ) -> None:
        # Lag is read upstream first and every stage writes downstream before it moves its
        # checkpoint, so one reading of zero everywhere means done; a second one 20 ms later
        # is only a margin.
        deadline = time.monotonic() + timeout_s
        quiet = 0
        last_chaos = time.monotonic()
        while time.monotonic() < deadline:
            lag = app.lag()
            if all(v == 0 for v in lag.values()):
                quiet += 1
                if quiet >= 2:
                    return
            else:
                quiet = 0
                if self.chaos and time.monotonic() - last_chaos >= 0.1:
                    last_chaos = time.monotonic()
                    if rng.random() < 0.1 and workers.kill(rng):
                        self.kills += 1
            if on_progress:
                on_progress(app, gen, self)
            time.sleep(0.02)
        raise TimeoutError(f"leda: pipeline still busy after {timeout_s}s: {app.lag()}")
