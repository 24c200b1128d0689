"""``eventlake.workers.Workers``: an app's workers in the background, in a thread or as
processes that a chaos test may kill; and ``log_to_file``."""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import pytest

from eventlake import App, ValidationError
from eventlake.errors import ConfigError
from eventlake.workers import Workers, log_to_file


def _counting_app(state_url: str, tmp_path: Path) -> App:
    app = App("bg", state_url=state_url, lake_url=f"file://{tmp_path}/lake", lease_ttl_s=1.0)
    app.settings.poll_interval_s = 0.01
    incoming = app.stream("in", shards=2)
    seen = app.table("seen", key="id")

    @app.on_stream(incoming, batch_size=10)
    def count(event, context):
        for r in event["Records"]:
            seen.put({"id": r["kinesis"]["partitionKey"]})  # unique per record here

    return app


def _seen(app: App) -> int:
    return sum(1 for _ in app.table("seen", key="id").items())


def _wait(predicate, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_one_worker_runs_in_a_thread_and_stops_with_the_block(sqlite_url: str, tmp_path: Path) -> None:
    app = _counting_app(sqlite_url, tmp_path)
    with Workers(app) as workers:
        assert workers.pids == [] and not workers.processes
        app.stream("in", shards=2).put_many([{"data": {"n": i}, "partition_key": str(i)} for i in range(30)])
        _wait(lambda: _seen(app) == 30)
        with pytest.raises(ValidationError, match=r"Workers.kill needs worker processes"):
            workers.kill()
    assert not workers._thread.is_alive()  # type: ignore[union-attr]
    app.close()


def test_killed_worker_processes_are_replaced_and_no_record_is_lost(
    shared_state_url: str, tmp_path: Path
) -> None:
    app = _counting_app(shared_state_url, tmp_path)
    rng = random.Random(3)
    kills = 0
    with Workers(app, 2) as workers:
        for i in range(10):
            batch = [{"data": {"n": i}, "partition_key": f"{i}-{j}"} for j in range(20)]
            app.stream("in", shards=2).put_many(batch)
            if i % 3 == 0:
                _wait(lambda: len(workers.pids) == 2)  # the last one killed is replaced
                pid = workers.kill(rng)
                assert pid is not None
                kills += 1
                _wait(lambda pid=pid: pid not in workers.pids)
        _wait(lambda: _seen(app) == 200)
        _wait(lambda: workers.restarts == kills)
    assert workers.pids == []
    app.close()


def test_a_worker_that_cannot_start_raises_when_stopped(tmp_path: Path) -> None:
    state = f"sqlite:///{tmp_path}/state.db"

    def app(stream_url: str) -> App:
        a = App("paired", state_url=state, stream_url=stream_url, lake_url=f"file://{tmp_path}/lake")
        a.on_stream(a.stream("in"), name="fn")(lambda event, context: None)
        return a

    first = app(f"sqlite:///{tmp_path}/streams.db")
    first.stream("in").put(b"x", "k")
    first.drain()
    first.close()
    moved = app(f"sqlite:///{tmp_path}/other.db")  # checkpoints of another stream store: refused
    workers = Workers(moved).start()
    with pytest.raises(ConfigError, match="Point stream_url back at that store"):
        workers.stop()
    workers.stop()  # reported once
    moved.close()


def test_worker_processes_need_a_state_they_can_share(tmp_path: Path) -> None:
    app = _counting_app("memory://", tmp_path)
    with pytest.raises(ConfigError, match="memory://"):
        Workers(app, 2).start().stop()
    app.close()


@pytest.mark.parametrize("count", [0, -1, 1.5, True])
def test_a_bad_worker_count_is_refused(sqlite_url: str, count: object) -> None:
    with App("bad", state_url=sqlite_url) as app, pytest.raises(ValidationError, match="positive integer"):
        Workers(app, count)  # type: ignore[arg-type]


def test_a_workers_object_starts_once(sqlite_url: str, tmp_path: Path) -> None:
    app = _counting_app(sqlite_url, tmp_path)
    with Workers(app) as workers, pytest.raises(ValidationError, match="already started"):
        workers.start()
    app.close()


def test_log_to_file_takes_the_runtime_logs_off_the_terminal_once(tmp_path: Path) -> None:
    target = tmp_path / "logs" / "run.log"
    log = logging.getLogger("eventlake.functions")
    before = list(log.handlers)
    try:
        log_to_file(target)
        log_to_file(str(target))
        log.info("one line")
        for h in log.handlers:
            h.flush()
        assert target.read_text() == "one line\n"
        assert log.propagate is False
    finally:
        for name in ("eventlake.functions", "eventlake.runtime"):
            lg = logging.getLogger(name)
            for h in lg.handlers:
                if h not in before:
                    lg.removeHandler(h)
                    h.close()
            lg.propagate = True
