"""Leases: exactly one winner, even when workers race for a lease that does not exist yet."""

from __future__ import annotations

import threading

import pytest

from eventlake import App, ManualClock
from eventlake.runtime.leases import LeaseLost, Leases


def test_racing_workers_never_both_win_a_new_lease(app: App) -> None:
    for round_ in range(15):
        name = f"race-{round_}"
        barrier = threading.Barrier(4)
        wins: list[str] = []

        def contend(
            owner: str, name: str = name, barrier: threading.Barrier = barrier, wins: list[str] = wins
        ) -> None:
            leases = Leases(app.env, owner, ttl_s=30)
            barrier.wait()
            if leases.try_acquire(name):
                wins.append(owner)

        threads = [threading.Thread(target=contend, args=(f"w{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1, f"{name}: {wins}"


def test_expired_lease_is_taken_over_and_the_old_owner_is_fenced(app_factory) -> None:
    clock = ManualClock()
    app = app_factory("leases", clock=clock)
    a = Leases(app.env, "a", ttl_s=10)
    b = Leases(app.env, "b", ttl_s=10)
    assert a.try_acquire("shard") and not b.try_acquire("shard")
    clock.advance(11)
    assert b.try_acquire("shard")
    try:
        app.env.state.transaction(lambda t: a.check(t, "shard"))
        raise AssertionError("the old owner must be fenced")
    except LeaseLost:
        pass
    app.env.state.transaction(lambda t: b.check(t, "shard"))


def test_an_atomic_handler_never_runs_on_a_shard_whose_lease_was_taken(app_factory) -> None:
    """The lease is checked inside the atomic invocation's transaction, before the handler:
    a worker whose lease another worker took (before it noticed) does not run the handler."""
    import json

    app = app_factory("fenced", lease_ttl_s=30)
    s = app.stream("in")
    calls: list[int] = []

    @app.on_stream(s, atomic=True)
    def fn(event, context):
        calls.append(len(event["Records"]))

    s.put("x", "k")
    rt = app.runtime()
    poller = rt.triggers[0]
    assert rt.leases.try_acquire(poller.name)
    stolen = json.dumps({"owner": "another-worker", "exp": app.env.clock.time() + 60})
    app.env.state.transaction(lambda t: t.kv_put(Leases.NS, poller.name, stolen))
    assert rt.leases.holds(poller.name)  # this worker has not noticed yet
    poller.poll_once()
    assert calls == [] and not rt.leases.holds(poller.name)


@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "plain"])
def test_a_worker_that_takes_its_lease_back_does_not_redo_what_another_worker_did_meanwhile(
    app_factory, atomic: bool
) -> None:
    """A worker paused past its lease (a loaded machine) whose keeper takes the lease back
    before its poller has seen it lapse: meanwhile another worker took the shard, processed
    r2, committed, and gave it back. The first worker's checkpoint in memory is stale; it must
    reload it, not process r2 again (twice, for an atomic function: exactly-once broken)."""
    clock = ManualClock()
    seen: dict[str, list[str]] = {"a": [], "b": []}

    def worker(who: str):
        app = app_factory(f"worker-{who}", clock=clock, lease_ttl_s=10)
        s = app.stream("in")

        @app.on_stream(s, atomic=atomic)
        def fn(event, context):
            seen[who].extend(r["kinesis"]["partitionKey"] for r in event["Records"])

        rt = app.runtime()
        return s, rt.leases, rt.triggers[0]

    s, a_leases, a = worker("a")
    _, b_leases, b = worker("b")
    assert a.name == b.name
    s.put("x", "r1")
    assert a_leases.try_acquire(a.name)
    a.poll_once()
    clock.advance(11)  # a is paused past its lease
    assert b_leases.try_acquire(b.name)
    s.put("x", "r2")
    b.poll_once()
    b_leases.release(b.name)  # b gives the shard back (a fair share; or b died and it expired)
    assert a_leases.try_acquire(a.name)  # a's keeper, before a's poller looks
    a.poll_once()
    a.poll_once()
    assert seen == {"a": ["r1"], "b": ["r2"]}
    s.put("x", "r3")
    a.poll_once()
    assert seen == {"a": ["r1", "r3"], "b": ["r2"]}
