"""The events handlers really receive, validated by AWS Lambda Powertools' parser models.

If Powertools can parse what our runtime delivers, handlers written for AWS with Powertools
run unchanged on eventlake.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamModel,
    EventBridgeModel,
    KinesisDataStreamModel,
    S3Model,
    SqsModel,
)

from eventlake import App, ManualClock


def _collect(app: App) -> tuple[list[Any], Any]:
    events: list[Any] = []

    def handler(event: Any, context: Any) -> None:
        events.append(event)

    return events, handler


def test_kinesis_event_parses(app: App) -> None:
    s = app.stream("in", shards=2)
    events, handler = _collect(app)
    app.on_stream(s)(handler)
    s.put({"a": 1}, "k1")
    s.put(b"\x00\xff", "k2")
    app.drain()
    for e in events:
        model = parse(event=e, model=KinesisDataStreamModel)
        for rec in model.Records:
            assert rec.eventSource == "aws:kinesis"
            assert rec.kinesis.partitionKey in ("k1", "k2")
    datas = [r.kinesis.data for e in events for r in parse(event=e, model=KinesisDataStreamModel).Records]
    assert b'{"a":1}' in datas and b"\x00\xff" in datas


def test_dynamodb_stream_event_parses(app: App) -> None:
    t = app.table("items", key="id", sort_key=("n", "N"), stream="new_and_old_images")
    events, handler = _collect(app)
    app.on_table_stream(t)(handler)
    t.put({"id": "a", "n": 1, "tags": {"x", "y"}, "m": {"l": [1, "two", None, True]}, "b": b"\x01"})
    t.update({"id": "a", "n": 1}, "SET v = :v", values={":v": "new"})
    t.delete({"id": "a", "n": 1})
    app.drain()
    records = [r for e in events for r in parse(event=e, model=DynamoDBStreamModel).Records]
    assert [r.eventName for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    assert records[0].dynamodb.Keys == {"id": "a", "n": 1}  # Powertools deserialises the images


def test_sqs_event_parses(app: App) -> None:
    q = app.queue("jobs")
    fifo = app.queue("jobs.fifo", content_based_dedup=True)
    events, handler = _collect(app)
    app.on_queue(q)(handler)
    app.on_queue(fifo, name="fifo_handler")(handler)
    q.send("plain", attributes={"n": 1, "s": "x", "b": b"\x01"})
    fifo.send("ordered", group_id="g")
    app.drain()
    records = [r for e in events for r in parse(event=e, model=SqsModel).Records]
    assert sorted(r.body for r in records) == ["ordered", "plain"]
    f = next(r for r in records if r.body == "ordered")
    assert f.attributes.MessageGroupId == "g"


def test_s3_event_parses(app: App) -> None:
    events, handler = _collect(app)
    app.on_object(prefix="raw/")(handler)
    app.lake.put("raw/with space/ü.json", b"{}")
    app.drain()
    [e] = events
    model = parse(event=e, model=S3Model)
    assert model.Records[0].s3.object.size == 2
    assert model.Records[0].eventName == "ObjectCreated:Put"


def test_scheduled_event_parses(app_factory) -> None:
    clock = ManualClock()
    app = app_factory("sched", clock=clock)
    events, handler = _collect(app)
    app.on_schedule("rate(5 minutes)")(handler)
    app.drain()
    clock.advance(301)
    app.drain()
    [e] = events
    model = parse(event=e, model=EventBridgeModel)
    assert model.detail_type == "Scheduled Event" and model.source == "aws.events"


def test_batch_built_kinesis_events_equal_record_by_record_ones() -> None:
    """The poller builds a batch's Kinesis event in one pass; it must be the very document the
    one-record builder makes for each record."""
    from eventlake.events.kinesis import kinesis_event_from_rows, kinesis_record

    rows = [(7, "k1", b'{"a":1}', 1_700_000_000.12345), (8, "k\u00fc", b"\x00\xff", 1_700_000_001.0)]
    batch = kinesis_event_from_rows(
        rows,
        stream_name="s",
        shard_id="shardId-000000000001",
        region="eu-west-1",
        account="1",
        function_name="f",
    )
    one_by_one = [
        kinesis_record(
            stream_name="s",
            shard_id="shardId-000000000001",
            sequence_number=str(seq).zfill(21),
            partition_key=pk,
            data=data,
            arrival_ts=ts,
            region="eu-west-1",
            account="1",
            function_name="f",
        )
        for seq, pk, data, ts in rows
    ]
    assert batch == {"Records": one_by_one}
