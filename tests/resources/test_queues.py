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


def _nested(depth: int) -> list:
    root: list = []
    cur = root
    for _ in range(depth):
        cur.append([])
        cur = cur[0]
    return root


# Each case is refused by SQS (the Developer Guide's message attribute rules); the message
# names the attribute and the rule, in SQS's words where SQS has them.
BAD_ATTRIBUTES = [
    ({"": "v"}, "non-empty message attribute name"),
    ({1: "v"}, "names are strings"),
    ({"x" * 257: "v"}, "at most 256"),
    ({"AWS.trace": "v"}, "reserved"),
    ({"amazon.x": "v"}, "reserved"),
    ({"aWs.x": "v"}, "reserved"),
    ({"a b": "v"}, "is invalid"),
    ({"é": "v"}, "is invalid"),
    ({"\ud800": "v"}, "is invalid"),
    ({".a": "v"}, "is invalid"),
    ({"a.": "v"}, "is invalid"),
    ({"a..b": "v"}, "is invalid"),
    ({"a": ""}, "non-empty value of type 'String'"),
    ({"a": b""}, "non-empty value of type 'Binary'"),
    ({"a": "\x00"}, "U\\+0000"),
    ({"a": "x\ud800"}, "U\\+D800"),
    ({"a": "\ufffe"}, "U\\+FFFE"),
    ({"a": {"DataType": "String", "StringValue": 5}}, "StringValue must be a str"),
    ({"a": {"DataType": "Binary", "BinaryValue": "text"}}, "BinaryValue must be bytes"),
    ({"a": {"DataType": "Binary", "StringValue": "x"}}, "must use field 'BinaryValue'"),
    ({"a": {"DataType": "String", "BinaryValue": b"x"}}, "must use field 'StringValue'"),
    ({"a": {"DataType": "", "StringValue": "x"}}, "non-empty message attribute type"),
    ({"a": {"StringValue": "x"}}, "non-empty message attribute type"),
    ({"a": {"DataType": "string", "StringValue": "x"}}, "supported type prefixes"),
    ({"a": {"DataType": "Strings", "StringValue": "x"}}, "supported type prefixes"),
    ({"a": {"DataType": "Float", "StringValue": "1"}}, "supported type prefixes"),
    ({"a": {"DataType": "String." + "x" * 250, "StringValue": "x"}}, "at most 256"),
    ({"a": {"DataType": "String", "StringValue": "x", "Extra": 1}}, "unknown field"),
    ({"a": {"DataType": "Number", "StringValue": "abc"}}, "Can't cast"),
    ({"a": {"DataType": "Number", "StringValue": "1_000"}}, "Can't cast"),
    ({"a": {"DataType": "Number", "StringValue": " 1"}}, "Can't cast"),
    ({"a": {"DataType": "Number", "StringValue": "NaN"}}, "Can't cast"),
    ({"a": {"DataType": "Number", "StringValue": "Infinity"}}, "Can't cast"),
    ({"a": {"DataType": "Number", "StringValue": "١"}}, "Can't cast"),
    ({"a": {"DataType": "Number", "StringValue": "1" * 39}}, "39 significant digits"),
    ({"a": {"DataType": "Number", "StringValue": "1e126"}}, "outside SQS's range"),
    ({"a": {"DataType": "Number", "StringValue": "1e-129"}}, "outside SQS's range"),
    ({"a": float("nan")}, "Can't cast"),
    ({"a": float("inf")}, "Can't cast"),
    ({"a": [1]}, "give a str, number, bytes"),
    ({f"a{i}": "v" for i in range(11)}, "exceeds the allowed maximum"),
]


@pytest.mark.parametrize(("attributes", "match"), BAD_ATTRIBUTES, ids=[m for _, m in BAD_ATTRIBUTES])
def test_message_attributes_follow_sqs_rules(app: App, attributes, match) -> None:
    q = app.queue("jobs")
    with pytest.raises(ValidationError, match=match):
        q.send("x", attributes=attributes)
    out = q.send_many([{"id": "bad", "body": "x", "attributes": attributes}, {"id": "good", "body": "y"}])
    assert [r.ok for r in out] == [False, True]
    assert out.failed[0].id == "bad" and out.failed[0].sender_fault
    assert [m.body for m in q.receive(10)] == ["y"]


def test_message_attributes_sqs_accepts(app: App) -> None:
    q = app.queue("jobs")
    attrs = {
        "a-b_c.D9": "text é ✓",
        "n": {"DataType": "Number", "StringValue": "-1.5e3"},
        "big": {"DataType": "Number", "StringValue": "9" * 38 + "0000"},
        "tiny": {"DataType": "Number", "StringValue": "1e-128"},
        "custom": {"DataType": "Number.int", "StringValue": "12"},
        "label": {"DataType": "String.json ✓", "StringValue": "{}"},
        "gif": {"DataType": "Binary.gif", "BinaryValue": b"GIF89a"},
        "x" * 256: "long name",
    }
    r = q.send("x", attributes=attrs)
    [m] = q.receive()
    assert m.attributes["custom"] == {"DataType": "Number.int", "StringValue": "12"}
    assert m.attributes["gif"] == {"DataType": "Binary.gif", "BinaryValue": b"GIF89a"}
    from eventlake.events import md5_of_message_attributes

    assert r.md5_of_message_attributes == md5_of_message_attributes(m.attributes)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"x": float("nan")}, "not valid JSON"),
        ([float("-inf")], "not valid JSON"),
        (_nested(1_100), "nested too deeply"),
        ("a\x00b", "U\\+0000"),
        ("lone \ud800", "U\\+D800"),
    ],
    ids=["nan", "inf", "nested", "nul", "surrogate"],
)
def test_bodies_that_sqs_would_refuse_are_validation_errors(app: App, body, match) -> None:
    q = app.queue("jobs")
    with pytest.raises(ValidationError, match=match):
        q.send(body)
    out = q.send_many([{"body": body}, {"body": "ok"}])
    assert [r.ok for r in out] == [False, True]
    assert q.stats()["visible"] == 1


@pytest.mark.parametrize("value", ["x", None, float("nan"), -1, 901, True, [1]], ids=repr)
def test_delay_of_the_wrong_type_or_range_is_a_validation_error(app: App, value) -> None:
    q = app.queue("jobs")
    if value is not None:
        with pytest.raises(ValidationError, match="delay_s"):
            q.send("x", delay_s=value)
        out = q.send_many([{"body": "x", "delay_s": value}, {"body": "y"}])
        assert [r.ok for r in out] == [False, True]
    for kwargs in ({"visibility_timeout_s": value}, {"wait_s": value}):
        if value is not None and value != 901:
            with pytest.raises(ValidationError):
                q.receive(**kwargs)
    with pytest.raises(ValidationError, match="delay_s"):
        app.queue("other", delay_s=value if value is not None else "x")


@pytest.mark.parametrize(
    "group",
    ["\ud800", "g r", "é", "", "x" * 129, 5, "tab\t"],
    ids=["surrogate", "space", "é", "empty", "129", "int", "tab"],
)
def test_fifo_group_and_dedup_ids_follow_sqs_rules(app: App, group) -> None:
    q = app.queue("jobs.fifo", content_based_dedup=True)
    with pytest.raises(ValidationError, match="group_id"):
        q.send("x", group_id=group)
    if group:
        with pytest.raises(ValidationError, match="dedup_id"):
            q.send("x", group_id="g", dedup_id=group)
    q.send("x", group_id="!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~AZaz09", dedup_id="~" * 128)
    assert q.stats()["visible"] == 1


@pytest.mark.parametrize("handle", ["\ud800:x", "é:x", "x" * 1025 + ":", 5, None, b"a:b"], ids=repr)
def test_receipt_handles_that_name_no_message_are_invalid(app: App, handle) -> None:
    q = app.queue("jobs")
    q.send("x")
    with pytest.raises(ReceiptHandleIsInvalid):
        q.delete(handle)
    with pytest.raises(ReceiptHandleIsInvalid):
        q.change_visibility(handle, 5)
    with pytest.raises(ReceiptHandleIsInvalid):
        q.delete_many([handle])


@pytest.mark.parametrize("arg", [None, 5, "ab"], ids=repr)
def test_batch_calls_of_something_not_a_list_are_validation_errors(app: App, arg) -> None:
    q = app.queue("jobs")
    with pytest.raises(ValidationError, match="send_many takes a list"):
        q.send_many(arg)
    with pytest.raises(ValidationError, match="delete_many takes a list"):
        q.delete_many(arg)


def test_send_many_answers_like_send_message_batch(app: App) -> None:
    """SendMessageBatch's response: Successful (Id, MessageId, MD5OfMessageBody,
    MD5OfMessageAttributes) and Failed (Id, SenderFault, Code, Message), by entry id."""
    import hashlib

    q = app.queue("jobs")
    out = q.send_many(
        [
            {"id": "a", "body": "one", "attributes": {"k": "v"}},
            {"id": "b", "body": "bad \x00"},
            {"id": "c", "body": "two", "attributes": {"AWS.x": "v"}},
            {"body": "three"},
        ]
    )
    doc = out.as_response()
    assert [d["Id"] for d in doc["Successful"]] == ["a", "3"]
    assert doc["Successful"][0]["MD5OfMessageBody"] == hashlib.md5(b"one").hexdigest()
    assert "MD5OfMessageAttributes" in doc["Successful"][0]
    assert "MD5OfMessageAttributes" not in doc["Successful"][1]
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in doc["Failed"]] == [
        ("b", "InvalidMessageContents", True),
        ("c", "InvalidParameterValue", True),
    ]
    assert all(f["Message"] for f in doc["Failed"])
    assert [r.ok for r in out] == [True, False, False, True]  # still a list, in entry order


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ([{"id": "a", "body": "x"}, {"id": "a", "body": "y"}], "BatchEntryIdsNotDistinct"),
        ([{"id": "a b", "body": "x"}], "InvalidBatchEntryId"),
        ([{"id": "x" * 81, "body": "x"}], "InvalidBatchEntryId"),
        ([{"id": 1, "body": "x"}], "InvalidBatchEntryId"),
        ([], "EmptyBatchRequest"),
    ],
    ids=["duplicate", "space", "81", "int", "empty"],
)
def test_send_many_refuses_bad_entry_ids_as_a_whole(app: App, entries, match) -> None:
    q = app.queue("jobs")
    with pytest.raises(ValidationError, match=match):
        q.send_many(entries)
    assert q.stats()["visible"] == 0
