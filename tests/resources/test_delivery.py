"""Delivery into the lake (Firehose semantics): buffering, prefixes, errors, transforms."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from eventlake import App, ManualClock, ValidationError


def lines(app: App, key: str) -> list[dict]:
    raw = app.lake.get(key)
    if key.endswith(".gz"):
        raw = gzip.decompress(raw)
    return [json.loads(x) for x in raw.decode().splitlines()]


def all_records(app: App, prefix: str = "") -> list[dict]:
    return [r for k in app.lake.keys(prefix) for r in lines(app, k)]


def test_default_layout_is_hourly_folders_of_gzipped_json_lines(app_factory, clock: ManualClock) -> None:
    app = app_factory("d", clock=clock)
    s = app.stream("in")
    app.delivery("raw", source=s)
    for i in range(5):
        s.put({"i": i}, "k")
    app.drain()
    [key] = app.lake.keys()
    assert key.startswith("2023/11/14/22/raw-1-2023-11-14-22-13-20-") and key.endswith(".jsonl.gz")
    assert [r["i"] for r in lines(app, key)] == [0, 1, 2, 3, 4]


def test_prefix_expressions_partition_by_fields_and_time(app_factory, clock: ManualClock) -> None:
    app = app_factory("d", clock=clock)
    s = app.stream("in", shards=2)
    app.delivery(
        "stores",
        source=s,
        compression=None,
        prefix="store-data/store_id=!{partitionKeyFromQuery:store_id}/!{timestamp:yyyy}/!{timestamp:MM}/",
    )
    for i in range(6):
        s.put({"store_id": f"STORE_{i % 2}", "n": i}, str(i))
    app.drain()
    keys = app.lake.keys()
    assert {k.rsplit("/", 1)[0] for k in keys} == {
        "store-data/store_id=STORE_0/2023/11",
        "store-data/store_id=STORE_1/2023/11",
    }
    assert sorted(r["n"] for r in all_records(app, "store-data/store_id=STORE_1/")) == [1, 3, 5]


def test_bad_records_go_to_the_error_prefix_with_the_reason(app: App) -> None:
    s = app.stream("in")
    app.delivery("raw", source=s, prefix="ok/!{partitionKeyFromQuery:kind}/")
    s.put({"kind": "a"}, "k")
    s.put(b"{not json", "k")
    s.put({"other": 1}, "k")
    app.drain()
    assert [r["kind"] for r in all_records(app, "ok/")] == ["a"]
    bad = all_records(app, "errors/")
    codes = sorted(r["errorCode"] for r in bad)
    assert codes == ["DynamicPartitioning.MetadataExtractionFailed", "InvalidJSON"]
    raw = {base64.b64decode(r["rawData"]) for r in bad}
    assert b"{not json" in raw  # the original bytes are kept
    assert any(k.startswith("errors/format-conversion-failed/") for k in app.lake.keys("errors/"))


def test_transform_ok_dropped_and_failed(app: App) -> None:
    s = app.stream("in")

    def transform(event, context):
        out = []
        for r in event["records"]:
            doc = json.loads(base64.b64decode(r["data"]))
            if doc["n"] == 1:
                out.append({"recordId": r["recordId"], "result": "Dropped"})
            elif doc["n"] == 2:
                out.append({"recordId": r["recordId"], "result": "ProcessingFailed"})
            else:
                doc["seen"] = True
                data = base64.b64encode(json.dumps(doc).encode()).decode()
                out.append({"recordId": r["recordId"], "result": "Ok", "data": data})
        return {"records": out}

    app.delivery("t", source=s, prefix="out/", transform=transform)
    for n in range(4):
        s.put({"n": n}, "k")
    app.drain()
    assert sorted(r["n"] for r in all_records(app, "out/")) == [0, 3]
    assert all(r["seen"] for r in all_records(app, "out/"))
    [failed] = all_records(app, "errors/processing-failed/")
    assert failed["errorCode"] == "Lambda.ProcessingFailedStatus"  # Firehose's code for that result
    assert failed["lambdaArn"] == "arn:aws:lambda:us-east-1:123456789012:function:transform"
    assert json.loads(base64.b64decode(failed["rawData"])) == {"n": 2}


def test_a_malformed_transform_response_fails_every_record_with_the_reason(app: App) -> None:
    s = app.stream("in")
    app.delivery("t", source=s, prefix="out/", transform=lambda e, c: {"records": []})
    s.put({"n": 1}, "k")
    app.drain()
    assert app.lake.keys("out/") == []
    [bad] = all_records(app, "errors/")
    assert "every record must come back" in bad["errorMessage"]


def test_buffering_by_time(app_factory, clock: ManualClock) -> None:
    app = app_factory("d", clock=clock, lease_ttl_s=10_000)
    s = app.stream("in")
    app.delivery("raw", source=s, prefix="out/", buffer_s=60)
    s.put({"i": 1}, "k")
    rt = app.runtime()
    for p in rt.triggers:
        rt.leases.try_acquire(p.name)
    assert not rt.triggers[0].poll_once().worked  # buffering
    clock.advance(30)
    s.put({"i": 2}, "k")
    assert not rt.triggers[0].poll_once().worked
    clock.advance(31)
    assert rt.triggers[0].poll_once().worked
    [key] = app.lake.keys("out/")
    assert [r["i"] for r in lines(app, key)] == [1, 2]


def test_buffering_by_size(app: App) -> None:
    s = app.stream("in")
    app.delivery("raw", source=s, prefix="out/", buffer_mb=1, buffer_s=900, compression=None)
    blob = "x" * 100_000
    for i in range(25):  # 2.5 MB: at least three objects of at most 1 MiB each
        s.put({"i": i, "blob": blob}, "k")
    app.drain()
    keys = app.lake.keys("out/")
    assert len(keys) >= 3
    assert sorted(r["i"] for r in all_records(app, "out/")) == list(range(25))


def test_objects_trigger_object_events(app: App) -> None:
    s = app.stream("in")
    app.delivery("raw", source=s, prefix="landed/")
    seen = []

    @app.on_object(prefix="landed/")
    def on_landed(event, context):
        seen.extend(r["s3"]["object"]["key"] for r in event["Records"])

    s.put({"a": 1}, "k")
    app.drain()
    assert seen == app.lake.keys("landed/")


def test_bad_delivery_options(app: App) -> None:
    s = app.stream("in")
    with pytest.raises(ValidationError, match="buffer_mb"):
        app.delivery("x", source=s, buffer_mb=500)
    with pytest.raises(ValidationError, match="unknown expression"):
        app.delivery("x", source=s, prefix="!{nope:x}/")
    with pytest.raises(ValidationError, match="format"):
        app.delivery("x", source=s, format="csv")
    with pytest.raises(ValidationError, match="unexpected keyword"):
        app.delivery("x", source=s, buffer=3)


def test_json_lines_keep_the_bytes_as_put_on_both_paths(app: App) -> None:
    """Firehose stores records as they were put. A clean batch is checked and partitioned by
    PyArrow in one pass; a Python partition function sends it record by record; the objects
    are byte-identical either way, and a record spanning lines is written compactly."""
    s = app.stream("in", shards=1)
    for name, key in (("fast", ".store"), ("slow", lambda r: r["store"])):
        app.delivery(
            name,
            source=s,
            compression=None,
            prefix=f"{name}/!{{partitionKeyFromQuery:store}}/",
            partition_keys={"store": key},
        )
    raw = [
        b'{"store": "S1", "n": 1,  "text": "caf\\u00e9"}',
        b'{"store":"S2","n":2.50}',
        b'{"store":"S1","n":3}',
    ]
    s.put_many([{"data": d, "partition_key": str(i)} for i, d in enumerate(raw)])
    app.drain()

    def objects(prefix: str) -> dict[str, bytes]:
        return {k.split("/")[1]: app.lake.get(k) for k in app.lake.keys(prefix)}

    fast, slow = objects("fast/"), objects("slow/")
    assert fast == slow
    assert fast["S1"] == raw[0] + b"\n" + raw[2] + b"\n"
    s.put(b'{"store": "S3",\n "n": 4}', "x")  # one record over two lines
    app.drain()
    assert objects("fast/")["S3"] == b'{"store":"S3","n":4}\n'


def test_the_transformation_event_is_firehose_s_for_a_stream_source(app: App) -> None:
    """Powertools' parser model and data class read the event as Lambda would receive it
    from a Kinesis-sourced Firehose stream: the source stream's ARN and, per record, the
    stream record's shard, partition key, sequence number and arrival time."""
    from aws_lambda_powertools.utilities.data_classes import KinesisFirehoseEvent
    from aws_lambda_powertools.utilities.parser import parse
    from aws_lambda_powertools.utilities.parser.models import KinesisFirehoseModel

    s = app.stream("in", shards=2)
    events: list[dict] = []

    def transform(event, context):
        events.append(event)
        return {"records": [{"recordId": r["recordId"], "result": "Dropped"} for r in event["records"]]}

    app.delivery("t", source=s, prefix="out/", transform=transform)
    put = [s.put({"n": n}, f"pk-{n}") for n in range(4)]
    app.drain()
    by_seq = {(p.shard_id, p.sequence_number): f"pk-{n}" for n, p in enumerate(put)}
    seen = []
    for event in events:
        model = parse(event=event, model=KinesisFirehoseModel)
        assert model.deliveryStreamArn == "arn:aws:firehose:us-east-1:123456789012:deliverystream/t"
        assert model.sourceKinesisStreamArn == "arn:aws:kinesis:us-east-1:123456789012:stream/in"
        for record in model.records:
            meta = record.kinesisRecordMetadata
            assert meta is not None
            assert meta.partitionKey == by_seq[meta.shardId, meta.sequenceNumber]
            assert meta.subsequenceNumber == 0
            assert meta.approximateArrivalTimestamp == record.approximateArrivalTimestamp
            assert json.loads(record.data) == {"n": int(meta.partitionKey[3:])}
            seen.append((meta.shardId, meta.sequenceNumber))
        wrapped = KinesisFirehoseEvent(event)
        assert wrapped.source_kinesis_stream_arn == model.sourceKinesisStreamArn
        for r in wrapped.records:
            assert r.metadata is not None and r.metadata.sequence_number == r.record_id
            assert r.metadata.shard_id in ("shardId-000000000000", "shardId-000000000001")
    assert sorted(seen) == sorted(by_seq)
