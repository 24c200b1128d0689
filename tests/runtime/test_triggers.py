"""Event source mappings: batches, retries, bisect, partial failures, destinations, windows."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from eventlake import App, ManualClock, ValidationError


def _data(event: dict[str, Any]) -> list[str]:
    return [base64.b64decode(r["kinesis"]["data"]).decode() for r in event["Records"]]


def test_handler_gets_kinesis_event_in_order(app: App) -> None:
    s = app.stream("in")
    seen: list[list[str]] = []

    @app.on_stream(s, batch_size=3)
    def fn(event, context):
        assert context.function_name == "fn"
        assert context.get_remaining_time_in_millis() > 0
        seen.append(_data(event))

    for i in range(7):
        s.put(str(i), "k")
    app.drain()
    assert seen == [["0", "1", "2"], ["3", "4", "5"], ["6"]]


def test_failed_batch_is_retried_with_the_same_records(app: App) -> None:
    s = app.stream("in")
    calls: list[list[str]] = []

    @app.on_stream(s, batch_size=2)
    def fn(event, context):
        calls.append(_data(event))
        if len(calls) < 3:
            raise RuntimeError("transient")

    for i in range(3):
        s.put(str(i), "k")
    app.drain()
    assert calls[:3] == [["0", "1"]] * 3
    assert calls[3:] == [["2"]]


def test_retries_exhausted_go_to_on_failure_destination(app: App) -> None:
    s = app.stream("in")
    dest = app.queue("failures")
    calls = []

    @app.on_stream(s, batch_size=10, max_retry_attempts=2, on_failure=dest)
    def fn(event, context):
        calls.append(1)
        raise ValueError("boom")

    s.put("a", "k")
    s.put("b", "k")
    app.drain()
    assert len(calls) == 3  # first attempt + 2 retries
    [m] = dest.receive()
    doc = m.json()
    assert doc["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert doc["requestContext"]["approximateInvokeCount"] == 3
    info = doc["KinesisBatchInfo"]
    assert info["batchSize"] == 2 and info["shardId"] == "shardId-000000000000"
    assert doc["responseContext"]["functionError"] == "ValueError"
    # The checkpoint moved on: new records are processed by a healthy handler.
    assert app.drain().invocations == 0


def test_without_destination_failures_land_in_the_function_dlq(app: App) -> None:
    s = app.stream("in")

    @app.on_stream(s, max_retry_attempts=0)
    def broken(event, context):
        raise RuntimeError("always")

    s.put("a", "k")
    app.drain()
    assert len(app.queue("broken-dlq").receive()) == 1


def test_bisect_on_error_isolates_the_poison_record(app: App) -> None:
    s = app.stream("in")
    dest = app.queue("failures")
    ok: list[str] = []

    @app.on_stream(s, batch_size=8, bisect_on_error=True, max_retry_attempts=1, on_failure=dest)
    def fn(event, context):
        data = _data(event)
        if "poison" in data:
            raise ValueError("poison")
        ok.extend(data)

    for i in range(8):
        s.put("poison" if i == 5 else str(i), "k")
    app.drain()
    assert sorted(ok) == ["0", "1", "2", "3", "4", "6", "7"]
    [m] = dest.receive()
    assert m.json()["KinesisBatchInfo"]["batchSize"] == 1


def test_report_batch_item_failures_resumes_from_lowest_failure(app: App) -> None:
    s = app.stream("in")
    calls: list[list[str]] = []

    @app.on_stream(s, batch_size=5, report_batch_item_failures=True)
    def fn(event, context):
        data = _data(event)
        calls.append(data)
        if len(calls) == 1:
            recs = event["Records"]
            return {
                "batchItemFailures": [
                    {"itemIdentifier": recs[3]["kinesis"]["sequenceNumber"]},
                    {"itemIdentifier": recs[2]["kinesis"]["sequenceNumber"]},
                ]
            }
        return {"batchItemFailures": []}

    for i in range(5):
        s.put(str(i), "k")
    app.drain()
    assert calls == [["0", "1", "2", "3", "4"], ["2", "3", "4"]]


def test_bad_item_identifier_fails_the_whole_batch(app: App) -> None:
    s = app.stream("in")
    calls: list[list[str]] = []

    @app.on_stream(s, batch_size=5, report_batch_item_failures=True)
    def fn(event, context):
        calls.append(_data(event))
        if len(calls) == 1:
            return {"batchItemFailures": [{"itemIdentifier": ""}]}
        return None

    s.put("a", "k")
    s.put("b", "k")
    app.drain()
    assert calls == [["a", "b"], ["a", "b"]]


def test_parallelization_keeps_order_per_partition_key(app: App) -> None:
    s = app.stream("in")
    per_key: dict[str, list[int]] = {}

    @app.on_stream(s, batch_size=4, parallelization_factor=5)
    def fn(event, context):
        for r in event["Records"]:
            per_key.setdefault(r["kinesis"]["partitionKey"], []).append(
                int(base64.b64decode(r["kinesis"]["data"]))
            )

    for i in range(200):
        s.put(str(i), f"key-{i % 13}")
    app.drain()
    assert sum(len(v) for v in per_key.values()) == 200
    for values in per_key.values():
        assert values == sorted(values)


def test_starting_position_latest_skips_existing_records(app: App) -> None:
    s = app.stream("in")
    s.put("old", "k")
    seen: list[str] = []

    @app.on_stream(s, starting_position="LATEST")
    def fn(event, context):
        seen.extend(_data(event))

    app.drain()
    s.put("new", "k")
    app.drain()
    assert seen == ["new"]


def test_max_record_age_discards_old_records(app_factory, clock: ManualClock) -> None:
    app = app_factory("aged", clock=clock)
    s = app.stream("in")
    dest = app.queue("failures")
    seen: list[str] = []

    @app.on_stream(s, max_record_age_s=60, on_failure=dest)
    def fn(event, context):
        seen.extend(_data(event))

    s.put("stale", "k")
    clock.advance(120)
    s.put("fresh", "k")
    app.drain()
    assert seen == ["fresh"]
    assert dest.receive()[0].json()["requestContext"]["condition"] == "RecordAgeExceeded"


def _windowed(app_factory, clock: ManualClock, batch_size: int) -> tuple[Any, list[list[str]], Any]:
    """A stream, the batches its 5-second-window function received, and the poller, leased."""
    app = app_factory("win", clock=clock, lease_ttl_s=60)
    s = app.stream("in")
    batches: list[list[str]] = []

    @app.on_stream(s, batch_size=batch_size, batching_window_s=5)
    def fn(event, context):
        batches.append(_data(event))

    rt = app.runtime()
    for p in rt.triggers:
        rt.leases.try_acquire(p.name)
    return s, batches, rt.triggers[0]


def test_batching_window_waits_for_more_records(app_factory, clock: ManualClock) -> None:
    s, batches, poller = _windowed(app_factory, clock, 100)
    s.put("a", "k")
    assert not poller.poll_once().worked  # window still open
    clock.advance(2)
    s.put("b", "k")
    clock.advance(3.5)
    assert poller.poll_once().worked
    assert batches == [["a", "b"]]


def test_batching_window_reads_on_from_where_it_stopped(app_factory, clock: ManualClock) -> None:
    """Rows read while the window is open are kept; a batch that fills up goes at once, in
    order, and the rest waits for the next window."""
    s, batches, poller = _windowed(app_factory, clock, 3)
    s.put("a", "k")
    assert not poller.poll_once().worked
    s.put("b", "k")
    assert not poller.poll_once().worked
    for x in "cde":
        s.put(x, "k")
    assert poller.poll_once().worked  # full: no need to wait for the window
    assert batches == [["a", "b", "c"]]
    assert not poller.poll_once().worked  # d, e: a new window
    clock.advance(5.5)
    assert poller.poll_once().worked
    assert batches == [["a", "b", "c"], ["d", "e"]]


def test_table_stream_events(app: App) -> None:
    t = app.table("items", key="id", stream="new_and_old_images")
    events: list[dict[str, Any]] = []

    @app.on_table_stream(t, batch_size=100)
    def fn(event, context):
        events.extend(event["Records"])

    t.put({"id": "a", "v": 1})
    t.put({"id": "a", "v": 1})  # no change: no record, as DynamoDB Streams
    t.update({"id": "a"}, "SET v = v + :one", values={":one": 1})
    t.delete({"id": "a"})
    app.drain()
    assert [e["eventName"] for e in events] == ["INSERT", "MODIFY", "REMOVE"]
    ins, mod, rem = (e["dynamodb"] for e in events)
    assert ins["Keys"] == {"id": {"S": "a"}} and ins["NewImage"]["v"] == {"N": "1"}
    assert "OldImage" not in ins
    assert mod["OldImage"]["v"] == {"N": "1"} and mod["NewImage"]["v"] == {"N": "2"}
    assert "NewImage" not in rem and rem["OldImage"]["v"] == {"N": "2"}
    assert ins["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert int(ins["SequenceNumber"]) < int(mod["SequenceNumber"])


def test_keys_only_stream_has_no_images(app: App) -> None:
    t = app.table("items", key="id", stream="keys_only")
    events: list[dict[str, Any]] = []

    @app.on_table_stream(t)
    def fn(event, context):
        events.extend(event["Records"])

    t.put({"id": "a", "v": 1})
    app.drain()
    assert set(events[0]["dynamodb"]) >= {"Keys", "SequenceNumber", "SizeBytes"}
    assert "NewImage" not in events[0]["dynamodb"]


def test_table_without_stream_cannot_trigger(app: App) -> None:
    t = app.table("plain", key="id")
    with pytest.raises(ValidationError, match="no change stream"):
        app.on_table_stream(t)


def test_queue_trigger_deletes_on_success_and_redrives_poison(app_factory, clock) -> None:
    app = app_factory("qt", clock=clock)
    dlq = app.queue("dlq")
    q = app.queue("jobs", visibility_timeout_s=10, dead_letter=dlq, max_receive_count=3)
    done: list[str] = []

    @app.on_queue(q, batch_size=10)
    def fn(event, context):
        for r in event["Records"]:
            if r["body"] == "poison":
                raise ValueError("bad message")
            done.append(r["body"])

    q.send("ok")
    app.drain()
    q.send("poison")
    app.drain()
    assert done == ["ok"]
    assert [m.body for m in dlq.receive()] == ["poison"]


def test_queue_partial_batch_failures_keep_only_failed(app_factory, clock) -> None:
    app = app_factory("qp", clock=clock)
    q = app.queue("jobs", visibility_timeout_s=10)
    seen: list[str] = []

    @app.on_queue(q, batch_size=10, report_batch_item_failures=True)
    def fn(event, context):
        fails = []
        for r in event["Records"]:
            seen.append(r["body"])
            if r["body"] == "b" and seen.count("b") == 1:
                fails.append({"itemIdentifier": r["messageId"]})
        return {"batchItemFailures": fails}

    q.send_many([{"body": "a"}, {"body": "b"}, {"body": "c"}])
    app.drain()
    assert sorted(seen) == ["a", "b", "b", "c"]
    assert len(q) == 0


def test_sqs_event_shape(app: App) -> None:
    q = app.queue("jobs")
    got: list[dict[str, Any]] = []

    @app.on_queue(q)
    def fn(event, context):
        got.extend(event["Records"])

    q.send("hello", attributes={"a": "b"})
    app.drain()
    [r] = got
    assert r["body"] == "hello" and r["eventSource"] == "aws:sqs"
    assert r["attributes"]["ApproximateReceiveCount"] == "1"
    assert r["messageAttributes"]["a"]["stringValue"] == "b"


def test_object_trigger_filters_prefix_and_suffix(app: App) -> None:
    keys: list[str] = []

    @app.on_object(prefix="raw/", suffix=".json")
    def fn(event, context):
        keys.extend(r["s3"]["object"]["key"] for r in event["Records"])

    app.lake.put("raw/a.json", b"{}")
    app.lake.put("raw/b.csv", b"x")
    app.lake.put("other/c.json", b"{}")
    app.drain()
    assert keys == ["raw/a.json"]
    assert app.lake.get("raw/a.json") == b"{}"


def test_object_trigger_failures_retry_twice_then_dead_letter(app: App) -> None:
    calls = []

    @app.on_object(prefix="in/")
    def etl(event, context):
        calls.append(1)
        raise RuntimeError("cannot parse")

    app.lake.put("in/x", b"1")
    app.drain()
    assert len(calls) == 3
    [m] = app.queue("etl-dlq").receive()
    doc = m.json()
    assert doc["requestContext"]["condition"] == "RetriesExhausted"
    assert doc["requestPayload"]["Records"][0]["s3"]["object"]["key"] == "in/x"


def test_schedule_fires_once_per_tick_across_runtimes(app_factory, clock: ManualClock) -> None:
    app = app_factory("sched", clock=clock)
    fired: list[dict[str, Any]] = []

    @app.on_schedule("rate(1 minute)")
    def tick(event, context):
        fired.append(event)

    app.drain()  # first start: nothing due yet
    assert fired == []
    clock.advance(61)
    # A second worker's ticker competes for the same tick.
    from eventlake.runtime.scheduler import Ticker

    other = Ticker(app.env, "tick", "rate(1 minute)", "schedule:tick")
    other.tick()
    app.drain()
    assert len(fired) == 1
    assert fired[0]["detail-type"] == "Scheduled Event" and fired[0]["source"] == "aws.events"
    clock.advance(600)  # missed ticks are not replayed: one fire
    app.drain()
    assert len(fired) == 2


def test_handler_timeout_counts_as_failure(app: App) -> None:
    s = app.stream("in")
    dest = app.queue("f")
    calls = []

    @app.on_stream(s, max_retry_attempts=0, on_failure=dest, timeout_s=0.05)
    def slow(event, context):
        calls.append(1)
        time.sleep(0.3)

    s.put("x", "k")
    app.drain()
    assert dest.receive()[0].json()["responseContext"]["functionError"] == "Sandbox.Timedout"
    assert app.metrics()["functions"]["slow"]["timeouts"] == 1


def test_unserialisable_response_is_an_error(app: App) -> None:
    s = app.stream("in")
    dest = app.queue("f")

    @app.on_stream(s, max_retry_attempts=0, on_failure=dest)
    def weird(event, context):
        return object()

    s.put("x", "k")
    app.drain()
    assert dest.receive()[0].json()["responseContext"]["functionError"] == "Runtime.MarshalError"


def test_atomic_handler_effects_roll_back_with_failure(app: App) -> None:
    s = app.stream("in")
    t = app.table("counts", key="id")
    attempts = []

    @app.on_stream(s, atomic=True)
    def count(event, context):
        attempts.append(1)
        t.update({"id": "n"}, "ADD c :n", values={":n": len(event["Records"])})
        if len(attempts) == 1:
            raise RuntimeError("crash after the write")

    for i in range(3):
        s.put(str(i), "k")
    app.drain()
    assert t.get({"id": "n"})["c"] == 3  # not 6: the first attempt's write rolled back


def test_a_conflict_inside_an_atomic_handler_reruns_the_transaction_not_the_batch(app: App) -> None:
    """A write that lost a race (RetryTransaction, or the engine's serialisation failure)
    inside an atomic handler makes the transaction run again at once; it is not the handler
    failing (no error, no retry of the batch, nothing dead-lettered), and a handler's own
    ``except Exception`` cannot swallow it and commit without the write."""
    from eventlake.backends.base import RetryTransaction

    s = app.stream("in")
    t = app.table("counts", key="id")
    attempts = []

    @app.on_stream(s, atomic=True, max_retry_attempts=0)
    def count(event, context):
        attempts.append(1)
        t.update({"id": "n"}, "ADD c :n", values={":n": len(event["Records"])})
        try:
            if len(attempts) == 1:
                raise RetryTransaction("lost an insert race")
        except Exception:  # a careless handler
            pass

    for i in range(3):
        s.put(str(i), "k")
    report = app.drain()
    assert len(attempts) == 2 and report.errors == 0
    assert t.get({"id": "n"})["c"] == 3  # applied once: the first attempt rolled back
    assert len(app.queue("count-dlq")) == 0


def test_unknown_and_bad_options_are_rejected(app: App) -> None:
    s = app.stream("in")
    with pytest.raises(ValidationError, match="unknown option"):
        app.on_stream(s, batchsize=10)
    with pytest.raises(ValidationError, match="batch_size"):
        app.on_stream(s, batch_size=0)(lambda e, c: None)
    with pytest.raises(ValidationError, match="parallelization_factor"):
        app.on_stream(s, parallelization_factor=11)(lambda e, c: None)
    with pytest.raises(ValidationError, match="event, context"):
        app.on_stream(s)(lambda e: None)


def test_metrics_count_invocations_and_errors(app: App) -> None:
    s = app.stream("in")
    n = []

    @app.on_stream(s, max_retry_attempts=0, batch_size=1)
    def fn(event, context):
        n.append(1)
        if len(n) == 1:
            raise RuntimeError("x")

    s.put("a", "k")
    s.put("b", "k2")
    app.drain()
    m = app.metrics()["functions"]["fn"]
    assert m["invocations"] == 2 and m["errors"] == 1


def test_json_log_lines(app: App, caplog) -> None:
    import logging

    s = app.stream("in")

    @app.on_stream(s)
    def fn(event, context):
        return {"ok": True}

    s.put("a", "k")
    with caplog.at_level(logging.INFO, logger="eventlake.functions"):
        app.drain()
    lines = [r.getMessage() for r in caplog.records]
    assert any(x.startswith("START RequestId: ") for x in lines)
    assert any(x.startswith("END RequestId: ") for x in lines)
    assert any(x.startswith("REPORT RequestId: ") and "Duration:" in x for x in lines)
    _ = json


def test_json_log_format(app_factory, caplog) -> None:
    import logging

    app = app_factory("jsonlogs", log_format="json")
    s = app.stream("in")

    @app.on_stream(s)
    def fn(event, context):
        return None

    s.put("a", "k")
    with caplog.at_level(logging.INFO, logger="eventlake.functions"):
        app.drain()
    docs = [json.loads(r.getMessage()) for r in caplog.records]
    assert [d["type"] for d in docs] == ["platform.start", "platform.report"]
    metrics = docs[1]["record"]["metrics"]
    assert set(metrics) == {"durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB"}
    assert docs[1]["record"]["status"] == "success"


def test_object_trigger_honours_on_failure(app: App) -> None:
    dest = app.queue("object-failures")

    @app.on_object(prefix="bad/", on_failure=dest)
    def parse(event, context):
        raise ValueError("corrupt file")

    app.lake.put("bad/x.gz", b"\x00")
    app.drain()
    [m] = dest.receive()
    assert m.json()["responsePayload"]["errorType"] == "ValueError"
    assert app.queue("parse-dlq").receive() == []


def test_worker_metrics_merge_what_every_worker_published(shared_app_factory) -> None:
    """Worker processes publish their metrics to the state backend; any process reads the sum."""
    import threading

    app = shared_app_factory("wm")
    s = app.stream("in")

    @app.on_stream(s, batch_size=10)
    def fn(event, context):
        return None

    for x in ["a", "b", "c"]:
        s.put(x, "k")
    stop = threading.Event()
    runner = threading.Thread(target=app.run, kwargs={"stop": stop, "workers": 2})
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = app.worker_metrics()["functions"].get("fn", {})
            if m.get("records", 0) >= 3:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(30)
    m = app.worker_metrics()["functions"]["fn"]
    assert m["records"] == 3 and m["errors"] == 0 and m["invocations"] >= 1
    assert app.metrics()["functions"].get("fn", {}).get("invocations", 0) == 0  # not this process


def test_rows_of_workers_gone_are_folded_into_one_and_counted_once(app_factory, clock) -> None:
    """Every worker start adds a metrics row (a chaos run starts one a second): rows silent
    for a minute are folded into one retired row, the totals unchanged; a worker that was
    only stalled and publishes again is not counted twice."""
    a = app_factory("retire", clock=clock)
    b = app_factory("retire", clock=clock)
    s = a.stream("in")
    b.stream("in")

    @a.on_stream(s, batch_size=10)
    def fn(event, context):
        return None

    b.on_stream(b.stream("in"), batch_size=10, name="fn")(fn)
    worker, other = a.runtime(), b.runtime()
    for x in "abc":
        s.put(x, "k")
    a.drain()
    worker.publish_metrics()  # 1 invocation, 3 records
    other.publish_metrics()  # nothing yet
    assert b.worker_metrics()["functions"]["fn"]["records"] == 3
    clock.advance(30)
    assert other.retire_metrics() == 0  # 30 s of silence: not gone yet
    clock.advance(60)
    other.publish_metrics()
    assert other.retire_metrics() == 1  # the silent one; never itself
    rows = dict(b.env.state.transaction(lambda t: t.kv_list("metrics")))
    assert set(rows) == {"retired", other.leases.owner}
    assert b.worker_metrics()["functions"]["fn"]["records"] == 3
    # The "dead" worker was only stalled: it works on and publishes its cumulative counts.
    for x in "de":
        s.put(x, "k")
    a.drain()
    worker.publish_metrics()
    worker.publish_metrics()
    m = b.worker_metrics()["functions"]["fn"]
    assert m["records"] == 5 and m["invocations"] == 2
    clock.advance(120)
    other.publish_metrics()
    assert other.retire_metrics() == 1 and other.retire_metrics() == 0
    m = b.worker_metrics()["functions"]["fn"]
    assert m["records"] == 5 and m["invocations"] == 2 and m["iterator_age_ms"] == 0


@pytest.mark.parametrize("then_failing", [0, 40], ids=["then-retired", "then-40-failures"])
@pytest.mark.parametrize("committed", [True, False], ids=["committed", "rolled-back"])
def test_a_publication_whose_commit_reported_an_error_is_not_counted_twice(
    app_factory, clock, monkeypatch, committed: bool, then_failing: int
) -> None:
    """A COMMIT can fail with the transaction committed (a connection lost in it). If that
    worker is then retired, the retired row counts that publication: the worker must take it
    as its base, not the last one it saw succeed, or the gap is counted twice - also after
    many more publications failed outright (a database out of reach for a minute)."""
    a = app_factory("uncertain", clock=clock)
    b = app_factory("uncertain", clock=clock)
    s = a.stream("in")

    @a.on_stream(s, batch_size=10)
    def fn(event, context):
        return None

    b.on_stream(b.stream("in"), batch_size=10, name="fn")(fn)
    worker, other = a.runtime(), b.runtime()

    def records(*keys: str) -> None:
        for k in keys:
            s.put(k, "k")
        a.drain()

    records("a", "b", "c")
    worker.publish_metrics()  # 3 records
    records("d", "e")
    state = a.env.state
    real = state.transaction

    def lost_in_commit(fn, **kw):
        if committed:
            real(fn, **kw)
        raise ConnectionError("server closed the connection unexpectedly")

    monkeypatch.setattr(state, "transaction", lost_in_commit)
    with pytest.raises(ConnectionError):
        worker.publish_metrics()  # 5 records: stored or not, the worker cannot tell
    committed = False  # (read by lost_in_commit) the next ones fail before their COMMIT
    for _ in range(then_failing):
        with pytest.raises(ConnectionError):
            worker.publish_metrics()
    monkeypatch.setattr(state, "transaction", real)

    def retire_worker(after_s: float = 90) -> None:
        clock.advance(after_s)
        other.publish_metrics()
        assert other.retire_metrics() == 1

    def total() -> int:
        return b.worker_metrics()["functions"]["fn"]["records"]

    def folded() -> list[str]:
        return [k for k, _ in b.env.state.transaction(lambda t: t.kv_list("metrics-folded"))]

    retire_worker()  # folds whichever the row held: 5 or 3 records
    assert folded() == [worker.leases.owner]
    records("f", "g")
    worker.publish_metrics()
    assert total() == 7 and folded() == []  # the record read, and deleted with the new row
    # Retired again, and the publication that finds its row gone reports an error but
    # commits: the base it took from the retirer's record holds for the next ones.
    retire_worker()
    records("h")
    committed = True
    monkeypatch.setattr(state, "transaction", lost_in_commit)
    with pytest.raises(ConnectionError):
        worker.publish_metrics()
    monkeypatch.setattr(state, "transaction", real)
    records("i")
    worker.publish_metrics()
    assert total() == 9
    # The records of workers that never come back are dropped after an hour; a worker back
    # after longer takes the last publication it knows committed as its base.
    retire_worker()
    clock.advance(3500)
    other.publish_metrics()
    assert other.retire_metrics() == 0 and folded() == [worker.leases.owner]
    clock.advance(200)
    other.publish_metrics()
    assert other.retire_metrics() == 0 and folded() == []
    records("j")
    worker.publish_metrics()
    assert total() == 10


def test_a_publication_does_not_wait_for_ever_on_one_that_hangs(app_factory, monkeypatch) -> None:
    """The shutdown's last publication must not hang on the keeper's if that one is stuck in
    the database: it gives up, and the earlier publication stays in place."""
    import threading

    from eventlake.runtime import publication

    monkeypatch.setattr(publication, "PUBLISH_WAIT_S", 0.05)
    app = app_factory("hung")
    rt = app.runtime()
    rt.publish_metrics()
    before = app.env.state.transaction(lambda t: t.kv_get("metrics", rt.leases.owner))
    held = threading.Event()
    release = threading.Event()

    def hung_publication() -> None:
        with rt.publisher._publishing:
            held.set()
            release.wait(10)

    th = threading.Thread(target=hung_publication)
    th.start()
    try:
        assert held.wait(5)
        rt.publish_metrics()  # returns: gave up
        assert app.env.state.transaction(lambda t: t.kv_get("metrics", rt.leases.owner)) == before
    finally:
        release.set()
        th.join(10)


def test_merge_snapshots_adds_counts_and_weights_averages() -> None:
    from eventlake.runtime.metrics import merge_snapshots

    def snap(inv: int, avg: float, p99: float) -> dict:
        f = {
            "invocations": inv,
            "errors": 1,
            "throttles": 0,
            "timeouts": 0,
            "records": inv * 10,
            "duration_ms_avg": avg,
            "duration_ms_p50": avg,
            "duration_ms_p99": p99,
            "duration_ms_max": p99,
            "iterator_age_ms": p99,
            "dead_lettered": 0,
        }
        return {"functions": {"f": f}, "counters": {"f.partial_failures": 1}}

    merged = merge_snapshots([snap(1, 10.0, 50.0), snap(3, 2.0, 20.0)])
    f = merged["functions"]["f"]
    assert f["invocations"] == 4 and f["records"] == 40 and f["errors"] == 2
    assert f["duration_ms_avg"] == 4.0 and f["duration_ms_p99"] == 50.0
    assert merged["counters"] == {"f.partial_failures": 2}


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_worker_runs_at_most_worker_concurrency_invocations_at_once(app_factory, concurrency: int) -> None:
    """Three shards' handlers in one worker process: never more at once than the setting."""
    import threading

    app = app_factory("gate", worker_concurrency=concurrency)
    s = app.stream("in", shards=3)
    running = 0
    peak = 0
    done = 0
    lock = threading.Lock()

    @app.on_stream(s, batch_size=1)
    def fn(event, context):
        nonlocal running, peak, done
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
            done += 1

    for i in range(12):
        s.put(str(i), f"key-{i}")
    stop = threading.Event()
    runner = threading.Thread(target=app.run, kwargs={"stop": stop})
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while done < 12 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        runner.join(30)
    assert done == 12 and 1 <= peak <= concurrency


def test_the_worker_gate_serves_waiters_in_arrival_order() -> None:
    import threading

    from eventlake.runtime.gate import FairGate

    gate = FairGate(1)
    order: list[int] = []
    gate.__enter__()
    threads = []
    for i in range(5):
        ready = threading.Event()

        def take(i: int = i, ready: threading.Event = ready) -> None:
            ready.set()
            with gate:
                order.append(i)

        t = threading.Thread(target=take)
        t.start()
        ready.wait(5)
        deadline = time.monotonic() + 5
        while len(gate._waiters) < i + 1 and time.monotonic() < deadline:  # queued in turn
            time.sleep(0.001)
        threads.append(t)
    gate.__exit__(None, None, None)
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4]


def test_one_busy_poller_does_not_keep_the_others_of_its_worker_waiting(app_factory) -> None:
    """With one place (the default), a worker's pollers take turns on one thread: a stream
    with a long backlog gives way after each batch, so a record on another stream is
    handled long before the backlog is done."""
    import threading

    app = app_factory("turns")
    busy = app.stream("busy")
    other = app.stream("other")
    order: list[str] = []

    @app.on_stream(busy, batch_size=1)
    def slow(event, context):
        time.sleep(0.002)
        order.append("busy")

    @app.on_stream(other, batch_size=1)
    def quick(event, context):
        order.append("other")

    busy.put_many([{"data": b"x", "partition_key": "k"} for _ in range(200)])
    stop = threading.Event()
    runner = threading.Thread(target=app.run, kwargs={"stop": stop})
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while len(order) < 20 and time.monotonic() < deadline:
            time.sleep(0.005)
        other.put(b"y", "k")
        while len(order) < 201 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        runner.join(30)
    assert len(order) == 201
    assert order.index("other") < 150  # served within a few turns, not after the backlog


def test_a_wall_clock_stepped_back_does_not_hold_the_pollers(app_factory) -> None:
    """NTP or a resumed VM can step the wall clock back: a worker's pollers still poll on
    time (their due times are monotonic), so a record written by another process - which
    wakes nobody here - is handled within the poll interval, not after the step is undone."""
    import threading

    from eventlake.resources.env import Clock

    class Stepped(Clock):
        back = 0.0

        def time(self) -> float:
            return time.time() - self.back

    clock = Stepped()
    worker = app_factory("stepped", clock=clock, poll_interval_s=0.05)
    other = app_factory("stepped")  # the same files; its writes do not wake the worker
    seen: list[str] = []

    @worker.on_stream(worker.stream("in"), batch_size=10)
    def fn(event, context):
        seen.extend(r["kinesis"]["partitionKey"] for r in event["Records"])

    stop = threading.Event()
    runner = threading.Thread(target=worker.run, kwargs={"stop": stop})
    runner.start()
    try:
        other.stream("in").put(b"x", "before")
        deadline = time.monotonic() + 20
        while "before" not in seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "before" in seen
        # Let the poller go idle first: its turn after "before" (no records) plans the next
        # one, and a step that lands before that plan would let code that plans on the
        # stepped clock pass.
        time.sleep(0.3)
        clock.back = 30.0
        time.sleep(0.2)  # the pollers' next turns are planned on the stepped clock
        other.stream("in").put(b"y", "after")
        deadline = time.monotonic() + 5
        while "after" not in seen and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        runner.join(30)
    assert "after" in seen


@pytest.mark.parametrize("how", ["return", "reraise-other", "keep-writing", "always"])
def test_aborted_atomic_transactions_rerun_a_few_times_then_fail_the_handler(app: App, how: str) -> None:
    """Whatever a handler does after catching an error that aborted its PostgreSQL
    transaction (usually a deadlock or serialisation failure) - return, raise its own error,
    keep writing into the aborted transaction - the transaction reruns at once (not a handler
    failure); a handler that aborts its transaction every time fails after a few reruns like
    any failing handler - retries, dead-letter queue - instead of stalling its worker. SQLite
    undoes only the failed statement, so there the first attempt stands."""
    s = app.stream("in")
    t = app.table("counts", key="id")
    attempts = []
    pg = type(app.env.state).__name__ == "PostgresBackend"

    @app.on_stream(s, atomic=True, max_retry_attempts=0)
    def count(event, context):
        attempts.append(1)
        t.update({"id": "n"}, "ADD c :n", values={":n": len(event["Records"])})
        if how == "always" or len(attempts) == 1:
            try:
                app.env.state.current().cur.execute("SELECT * FROM no_such_table")
            except Exception as e:
                if how == "reraise-other":
                    raise RuntimeError("wrapped") from e
                if how == "keep-writing":
                    t.put({"id": "other"})

    s.put("x", "k")
    report = app.drain(timeout_s=30)
    if not pg:  # SQLite: the failed statement alone is undone
        if how == "reraise-other":
            assert report.errors == 1 and len(app.queue("count-dlq")) == 1
        else:
            assert report.errors == 0 and t.get({"id": "n"})["c"] == 1
        return
    if how == "always":
        assert len(attempts) == 3  # the first run and two reruns
        assert report.errors == 1 and len(app.queue("count-dlq")) == 1
        assert t.get({"id": "n"}) is None
    else:
        assert len(attempts) == 2 and report.errors == 0 and len(app.queue("count-dlq")) == 0
        assert t.get({"id": "n"})["c"] == 1
