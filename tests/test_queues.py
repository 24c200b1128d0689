"""Queues: SQS standard and FIFO semantics."""

from __future__ import annotations

import pytest

from eventlake import App, ManualClock, ValidationError
from eventlake.errors import ReceiptHandleIsInvalid, SizeLimitExceeded


@pytest.fixture
def capp(app_factory, clock: ManualClock) -> App:
    return app_factory("q", clock=clock)


def test_send_receive_delete(app: App) -> None:
    q = app.queue("jobs")
    r = q.send({"job": 1})
    [m] = q.receive(10)
    assert m.message_id == r.message_id and m.json() == {"job": 1}
    assert m.receive_count == 1
    assert q.receive() == []  # in flight
    assert q.delete(m.receipt_handle)
    assert len(q) == 0


def test_visibility_timeout_makes_message_reappear_with_higher_count(capp: App, clock) -> None:
    q = capp.queue("jobs", visibility_timeout_s=30)
    q.send("x")
    [m1] = q.receive()
    clock.advance(29)
    assert q.receive() == []
    clock.advance(2)
    [m2] = q.receive()
    assert m2.message_id == m1.message_id and m2.receive_count == 2
    assert not q.delete(m1.receipt_handle)  # a stale receipt deletes nothing
    assert q.delete(m2.receipt_handle)


def test_change_visibility(capp: App, clock) -> None:
    q = capp.queue("jobs", visibility_timeout_s=30)
    q.send("x")
    [m] = q.receive()
    assert q.change_visibility(m.receipt_handle, 0)
    [m2] = q.receive()
    assert q.change_visibility(m2.receipt_handle, 100)
    clock.advance(50)
    assert q.receive() == []
    with pytest.raises(ValidationError):
        q.change_visibility(m2.receipt_handle, 50_000)


def test_delay(capp: App, clock) -> None:
    q = capp.queue("jobs")
    q.send("later", delay_s=10)
    assert q.receive() == [] and q.stats()["delayed"] == 1
    clock.advance(10)
    assert [m.body for m in q.receive()] == ["later"]


def test_redrive_to_dead_letter_queue_after_max_receive_count(capp: App, clock) -> None:
    dlq = capp.queue("dlq")
    q = capp.queue("jobs", visibility_timeout_s=1, dead_letter=dlq, max_receive_count=2)
    sent = q.send("poison")
    for _ in range(2):
        assert len(q.receive()) == 1
        clock.advance(2)
    assert q.receive() == []
    [m] = dlq.receive()
    assert m.message_id == sent.message_id and m.body == "poison"


def test_body_limit_and_bad_bodies(app: App) -> None:
    q = app.queue("jobs")
    with pytest.raises(SizeLimitExceeded, match="256 KiB"):
        q.send("x" * (256 * 1024 + 1))
    q.send("x" * (256 * 1024))
    with pytest.raises(ValidationError, match="U\\+0000"):
        q.send("bad\x00body")
    with pytest.raises(ValidationError, match="str, dict or list"):
        q.send(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ReceiptHandleIsInvalid):
        q.delete("nonsense")


def test_send_many_fails_only_bad_entries(app: App) -> None:
    q = app.queue("jobs")
    out = q.send_many([{"id": "a", "body": "ok"}, {"id": "b", "body": ""}, {"id": "c", "body": "ok2"}])
    assert [o.ok for o in out] == [True, False, True]
    assert out[1].id == "b" and "empty" in out[1].message
    with pytest.raises(ValidationError):
        q.send_many([{"body": "x"}] * 11)


def test_long_poll_returns_when_message_arrives(app: App) -> None:
    import threading
    import time

    q = app.queue("jobs")
    threading.Timer(0.2, lambda: q.send("hi")).start()
    t0 = time.monotonic()
    msgs = q.receive(wait_s=5)
    assert [m.body for m in msgs] == ["hi"]
    assert time.monotonic() - t0 < 4


def test_fifo_orders_groups_and_blocks_group_in_flight(app: App) -> None:
    q = app.queue("orders.fifo", fifo=True)
    for i in range(3):
        q.send(f"a{i}", group_id="A", dedup_id=f"a{i}")
    q.send("b0", group_id="B", dedup_id="b0")
    first = q.receive(2)
    assert [m.body for m in first] == ["a0", "a1"]
    second = q.receive(10)
    assert [m.body for m in second] == ["b0"]  # group A is in flight
    for m in first:
        q.delete(m.receipt_handle)
    assert [m.body for m in q.receive(10)] == ["a2"]


def test_fifo_deduplicates_for_five_minutes(capp: App, clock) -> None:
    q = capp.queue("o.fifo", fifo=True, content_based_dedup=True)
    a = q.send("same", group_id="g")
    b = q.send("same", group_id="g")
    assert a.message_id == b.message_id
    assert len(q) == 1
    clock.advance(301)
    c = q.send("same", group_id="g")
    assert c.message_id != a.message_id


def test_fifo_rules(app: App) -> None:
    with pytest.raises(ValidationError, match=r"\.fifo"):
        app.queue("plain", fifo=True)
    q = app.queue("x.fifo", fifo=True)
    with pytest.raises(ValidationError, match="group_id"):
        q.send("m")
    with pytest.raises(ValidationError, match="dedup_id"):
        q.send("m", group_id="g")
    std = app.queue("std")
    with pytest.raises(ValidationError, match="FIFO"):
        std.send("m", group_id="g")


def test_message_attributes_round_trip(app: App) -> None:
    q = app.queue("jobs")
    q.send("x", attributes={"kind": "a", "n": 3, "raw": b"\x01"})
    [m] = q.receive()
    assert m.attributes["kind"] == {"DataType": "String", "StringValue": "a"}
    assert m.attributes["n"] == {"DataType": "Number", "StringValue": "3"}
    assert m.attributes["raw"]["BinaryValue"] == b"\x01"


def test_purge(app: App) -> None:
    q = app.queue("jobs")
    q.send_many([{"body": str(i)} for i in range(5)])
    assert q.purge() == 5 and len(q) == 0


def test_concurrent_consumers_never_get_the_same_message(app: App) -> None:
    import threading

    q = app.queue("jobs", visibility_timeout_s=60)
    for i in range(0, 300, 10):
        q.send_many([{"body": str(i + j)} for j in range(10)])
    got: list[str] = []
    lock = threading.Lock()

    def consume() -> None:
        while True:
            msgs = q.receive(10)
            if not msgs:
                return
            with lock:
                got.extend(m.body for m in msgs)
            q.delete_many([m.receipt_handle for m in msgs])

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got, key=int) == [str(i) for i in range(300)]


def test_fifo_groups_are_never_in_flight_twice_across_consumers(app: App) -> None:
    import threading

    q = app.queue("g.fifo", fifo=True, visibility_timeout_s=60)
    for i in range(120):
        q.send(f"{i % 4}:{i}", group_id=str(i % 4), dedup_id=str(i))
    in_flight: set[str] = set()
    order: dict[str, list[int]] = {}
    lock = threading.Lock()
    violations: list[str] = []

    def consume() -> None:
        idle = 0
        while idle < 3:
            msgs = q.receive(3)
            if not msgs:
                idle += 1
                continue
            idle = 0
            groups = {m.group_id for m in msgs}
            with lock:
                if groups & in_flight:
                    violations.append(f"{groups & in_flight} delivered twice")
                in_flight.update(groups)
                for m in msgs:
                    g, n = m.body.split(":")
                    order.setdefault(g, []).append(int(n))
            with lock:
                in_flight.difference_update(groups)
            q.delete_many([m.receipt_handle for m in msgs])

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not violations
    assert sum(len(v) for v in order.values()) == 120
    for values in order.values():
        assert values == sorted(values)


def test_concurrent_fifo_sends_with_one_dedup_id_enqueue_one_message(app: App) -> None:
    """Producers retrying one send at the same moment (the usual reason for a dedup id) must
    enqueue it once, on engines with concurrent writers too: a dedup row read as missing
    locks nothing, so the queue's sends are serialised by its sequence counter."""
    import threading

    q = app.queue("once.fifo", fifo=True)
    q.send("warm-up", group_id="g", dedup_id="warm")  # the counter row exists: the usual case
    fresh = app.queue("fresh.fifo", fifo=True)  # and a queue whose first sends race
    barrier = threading.Barrier(8)
    ids: dict[str, list[str]] = {"once.fifo": [], "fresh.fifo": []}
    lock = threading.Lock()

    def send(queue) -> None:
        barrier.wait()
        r = queue.send("the order", group_id="g", dedup_id="order-1")
        with lock:
            ids[queue.name].append(r.message_id)

    for queue in (q, fresh):
        threads = [threading.Thread(target=send, args=(queue,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        barrier.reset()
    for queue, before in ((q, 1), (fresh, 0)):
        assert len(set(ids[queue.name])) == 1  # every producer was told the same message id
        bodies = []
        while msgs := queue.receive(10):
            bodies += [m.body for m in msgs]
            queue.delete_many([m.receipt_handle for m in msgs])
        assert bodies.count("the order") == 1 and len(bodies) == before + 1
