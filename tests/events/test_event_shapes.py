"""The events handlers really receive, validated by AWS Lambda Powertools' parser models.

If Powertools can parse what our runtime delivers, handlers written for AWS with Powertools
run unchanged on eventlake.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
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


# -- every event kind, in another region and account, by both Powertools readers -------------
# The parser models check types and required fields; the data classes are what most handlers
# use, and they read fields lazily, so every property is read here (a missing field AWS always
# sends is a KeyError there). Region and account come from the settings, as on AWS.

REGION = "eu-west-1"
ACCOUNT = "111122223333"


# Properties that fail on AWS's own documents too: the nested S3/SNS event decoded from a body
# that is not one, and an SQS attribute's value of the other kind (Lambda sends only
# ``stringValue`` or only ``binaryValue``, as its documented sample shows).
_ABSENT_ON_AWS_TOO = {"decoded_nested_s3_event", "decoded_nested_sns_event", "string_value", "binary_value"}


def _read_all(obj: Any, path: str = "event", out: list[str] | None = None) -> list[str]:
    """Read every property of a Powertools data class, recursively; the errors met."""
    import inspect

    from aws_lambda_powertools.utilities.data_classes.common import DictWrapper

    out = [] if out is None else out
    if isinstance(obj, DictWrapper):
        for name, member in inspect.getmembers(type(obj)):
            if name.startswith("_") or not isinstance(member, property) or name == "raw_event":
                continue
            try:
                value = getattr(obj, name)
            except Exception as e:  # any error reading a field is the finding
                if name not in _ABSENT_ON_AWS_TOO:
                    out.append(f"{path}.{name}: {type(e).__name__} {e}")
                continue
            _read_all(value, f"{path}.{name}", out)
    elif isinstance(obj, (list, tuple)) or inspect.isgenerator(obj):
        for i, x in enumerate(obj):
            _read_all(x, f"{path}[{i}]", out)
    elif isinstance(obj, dict):
        for k, x in obj.items():
            _read_all(x, f"{path}[{k!r}]", out)
    return out


@pytest.fixture
def regional(app_factory) -> App:
    return app_factory("regional", region=REGION, account=ACCOUNT)


def test_kinesis_events_in_the_configured_region(regional: App) -> None:
    from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent

    s = regional.stream("in", shards=2)
    events, handler = _collect(regional)
    regional.on_stream(s)(handler)
    s.put({"a": 1}, "k1")
    s.put(b"\x00\xff", "k\u00fc")
    regional.drain()
    for e in events:
        for rec in parse(event=e, model=KinesisDataStreamModel).Records:
            assert rec.awsRegion == REGION
            assert rec.eventSourceARN == f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/in"
        assert _read_all(KinesisStreamEvent(e)) == []


def test_dynamodb_stream_events_in_the_configured_region(regional: App) -> None:
    from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent

    for view in ("keys_only", "new_image", "old_image", "new_and_old_images"):
        t = regional.table(f"items_{view}", key="id", sort_key=("n", "N"), stream=view)
        events, handler = _collect(regional)
        regional.on_table_stream(t, name=f"fn_{view}")(handler)
        t.put({"id": "a", "n": 1, "ns": {1, 2}, "bs": {b"x"}, "l": [{"m": None}], "f": Decimal("1.5")})
        t.update({"id": "a", "n": 1}, "SET v = :v", values={":v": "new"})
        t.delete({"id": "a", "n": 1})
        regional.drain()
        records = [r for e in events for r in parse(event=e, model=DynamoDBStreamModel).Records]
        assert [r.eventName for r in records] == ["INSERT", "MODIFY", "REMOVE"]
        assert {r.awsRegion for r in records} == {REGION}
        assert all(
            r.eventSourceARN.startswith(f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/") for r in records
        )
        assert all(_read_all(DynamoDBStreamEvent(e)) == [] for e in events)


def test_sqs_events_in_the_configured_region(regional: App) -> None:
    from aws_lambda_powertools.utilities.data_classes import SQSEvent

    q = regional.queue("jobs")
    fifo = regional.queue("jobs.fifo", content_based_dedup=True)
    events, handler = _collect(regional)
    regional.on_queue(q)(handler)
    regional.on_queue(fifo, name="fifo_handler")(handler)
    q.send(
        "plain",
        attributes={"n": 1, "s": "x", "b": b"\x01", "c": {"DataType": "Number.int", "StringValue": "7"}},
    )
    fifo.send("ordered", group_id="g")
    regional.drain()
    records = [r for e in events for r in parse(event=e, model=SqsModel).Records]
    assert {r.awsRegion for r in records} == {REGION}
    assert {r.eventSourceARN for r in records} == {
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:jobs",
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:jobs.fifo",
    }
    plain = next(r for r in records if r.body == "plain")
    assert plain.messageAttributes["c"].dataType == "Number.int"
    assert all(_read_all(SQSEvent(e)) == [] for e in events)
    [raw] = [r for e in events for r in e["Records"] if r["body"] == "plain"]
    attrs = next(SQSEvent({"Records": [raw]}).records).message_attributes
    assert attrs["s"].string_value == "x" and attrs["b"].binary_value == "AQ=="


def test_s3_events_carry_the_configured_region(regional: App) -> None:
    """S3 sends the bucket's region in awsRegion; eventlake's bucket is in the app's region."""
    from aws_lambda_powertools.utilities.data_classes import S3Event

    events, handler = _collect(regional)
    regional.on_object(prefix="raw/")(handler)
    regional.lake.put("raw/with space/\u00fc.json", b"{}")
    regional.drain()
    [e] = events
    [rec] = parse(event=e, model=S3Model).Records
    assert rec.awsRegion == REGION
    assert S3Event(e).record.aws_region == REGION
    assert _read_all(S3Event(e)) == []


def test_scheduled_events_in_the_configured_region(app_factory) -> None:
    from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

    clock = ManualClock()
    app = app_factory("sched", clock=clock, region=REGION, account=ACCOUNT)
    events, handler = _collect(app)
    app.on_schedule("rate(5 minutes)")(handler)
    app.drain()
    clock.advance(301)
    app.drain()
    [e] = events
    model = parse(event=e, model=EventBridgeModel)
    assert model.region == REGION and model.account == ACCOUNT
    assert model.resources[0].startswith(f"arn:aws:events:{REGION}:{ACCOUNT}:rule/")
    assert _read_all(EventBridgeEvent(e)) == []


# -- failure destinations: Powertools has no model, so these are the documented records ---------
# (Lambda Developer Guide, "Retain discarded batch records" for Kinesis and DynamoDB, and
# "Asynchronous invocation: destinations"), as pydantic models that forbid unknown fields.


def _failure_models() -> dict[str, Any]:
    from typing import Literal

    from pydantic import BaseModel, ConfigDict

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)

    class RequestContext(Strict):
        requestId: str
        functionArn: str
        condition: Literal[
            "RetryAttemptsExhausted", "RecordAgeExceeded", "RetriesExhausted", "EventAgeExceeded"
        ]
        approximateInvokeCount: int

    class ResponseContext(Strict):
        statusCode: int
        executedVersion: str
        functionError: str | None = None

    class BatchInfo(Strict):
        shardId: str
        startSequenceNumber: str
        endSequenceNumber: str
        approximateArrivalOfFirstRecord: str
        approximateArrivalOfLastRecord: str
        batchSize: int
        streamArn: str

    class KinesisFailure(Strict):
        requestContext: RequestContext
        responseContext: ResponseContext
        version: Literal["1.0"]
        timestamp: str
        KinesisBatchInfo: BatchInfo

    class DynamoDBFailure(Strict):
        requestContext: RequestContext
        responseContext: ResponseContext
        version: Literal["1.0"]
        timestamp: str
        DDBStreamBatchInfo: BatchInfo

    class AsyncFailure(Strict):
        version: Literal["1.0"]
        timestamp: str
        requestContext: RequestContext
        requestPayload: dict[str, Any]
        responseContext: ResponseContext
        responsePayload: dict[str, Any]

    return {"kinesis": KinesisFailure, "dynamodb": DynamoDBFailure, "async": AsyncFailure}


_ISO_MS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


def test_failure_destination_records_are_the_documented_documents(regional: App) -> None:
    import re

    models = _failure_models()
    s = regional.stream("in")
    t = regional.table("t", key="id", stream="new_image")
    dest = regional.queue("failures")

    @regional.on_stream(s, max_retry_attempts=0, on_failure=dest)
    def kin(event, context):
        raise ValueError("boom")

    @regional.on_table_stream(t, max_retry_attempts=0, on_failure=dest)
    def ddb(event, context):
        raise ValueError("boom")

    @regional.on_object(prefix="bad/", on_failure=dest)
    def obj(event, context):
        raise ValueError("boom")

    s.put("a", "k")
    t.put({"id": "a"})
    regional.lake.put("bad/x", b"x")
    regional.drain()
    docs = [m.json() for m in dest.receive(10)]
    kinds = {"KinesisBatchInfo": "kinesis", "DDBStreamBatchInfo": "dynamodb", "requestPayload": "async"}
    seen = set()
    for doc in docs:
        [kind] = [v for k, v in kinds.items() if k in doc]
        seen.add(kind)
        model = models[kind].model_validate(doc)
        assert re.match(_ISO_MS, model.timestamp)
        assert model.requestContext.functionArn.startswith(f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:")
        if kind != "async":
            info = model.KinesisBatchInfo if kind == "kinesis" else model.DDBStreamBatchInfo
            assert re.match(_ISO_MS, info.approximateArrivalOfFirstRecord)
            service = "kinesis" if kind == "kinesis" else "dynamodb"
            assert info.streamArn.startswith(f"arn:aws:{service}:{REGION}:{ACCOUNT}:")
    assert seen == {"kinesis", "dynamodb", "async"}
