"""A bad record never stops a delivery: it goes under the error prefix with Firehose's error
code and the reason, and the rest of the batch is delivered. A bad prefix is refused when
the delivery is declared. Each case here wedged a delivery (retried for ever) before."""

from __future__ import annotations

import base64
import gzip
import io
import json
from typing import Any

import pytest

from eventlake import App, ValidationError

DRAIN_S = 15  # a wedged delivery fails the test instead of hanging it


def objects(app: App, prefix: str = "") -> dict[str, list[Any]]:
    """Every object under ``prefix``: its JSON lines, or its Parquet rows."""
    out: dict[str, list[Any]] = {}
    for key in app.lake.keys(prefix):
        raw = app.lake.get(key)
        if key.endswith(".parquet"):
            import pyarrow.parquet as pq

            out[key] = pq.read_table(io.BytesIO(raw)).to_pylist()
            continue
        if key.endswith(".gz"):
            raw = gzip.decompress(raw)
        out[key] = [json.loads(line) for line in raw.splitlines()]
    return out


def deliver(app: App, records: list[bytes], **options: Any) -> tuple[list[Any], list[dict[str, Any]]]:
    """Put ``records`` through a delivery; (delivered rows, error documents)."""
    s = app.stream("in")
    options.setdefault("prefix", "out/")
    app.delivery("d", source=s, compression=None, **options)
    s.put_many([{"data": r, "partition_key": "k"} for r in records])
    app.drain(timeout_s=DRAIN_S)
    delivered = [row for rows in objects(app, "out/").values() for row in rows]
    errors = [doc for rows in objects(app, "errors/").values() for doc in rows]
    return delivered, errors


KEYED = {"prefix": "out/k=!{partitionKeyFromQuery:k}/", "partition_keys": {"k": ".k"}}
GOOD = b'{"k": "ok", "n": 1}'


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(b'{"k": "a\\u0000b"}', id="NUL"),
        pytest.param(b'{"k": "a\\nb"}', id="newline"),
        pytest.param(b'{"k": "\\ud800"}', id="lone-surrogate"),
        pytest.param(json.dumps({"k": "\u00e9" * 128}).encode(), id="folder-over-255-bytes"),
        pytest.param(json.dumps({"k": "x" * 254}).encode(), id="folder-of-256-bytes-with-k="),
        pytest.param(b'{"k": ' + b"9" * 4000 + b"}", id="4000-digit-number"),
    ],
)
def test_a_partition_value_that_cannot_be_a_key_goes_to_partitioning_failed(app: App, bad: bytes) -> None:
    delivered, errors = deliver(app, [bad, GOOD], **KEYED)
    assert delivered == [{"k": "ok", "n": 1}]
    [err] = errors
    assert err["errorCode"] == "DynamicPartitioning.MetadataExtractionFailed"
    assert base64.b64decode(err["rawData"]) == bad
    assert all(k.startswith("errors/partitioning-failed/") for k in app.lake.keys("errors/"))


def test_a_key_over_1024_bytes_goes_to_partitioning_failed(app: App) -> None:
    fields = "abcdef"
    prefix = "out/" + "".join(f"!{{partitionKeyFromQuery:{f}}}/" for f in fields)
    bad = json.dumps({f: "\u00e9" * 100 for f in fields}).encode()  # six 200-byte folders
    good = json.dumps({f: f for f in fields}).encode()
    delivered, errors = deliver(app, [bad, good], prefix=prefix, partition_keys={f: f".{f}" for f in fields})
    assert delivered == [json.loads(good)]
    [err] = errors
    assert err["errorCode"] == "DynamicPartitioning.MetadataExtractionFailed"
    assert "at most 512" in err["errorMessage"] or "1024" in err["errorMessage"]


@pytest.mark.parametrize(
    "bad, code",
    [
        pytest.param(b'{"n": 2, "s": "\\udc00"}', "DataFormatConversion.Malformed", id="lone-surrogate"),
        pytest.param(
            b'{"n": 2, "s": {"x": ["\\ud800"]}}', "DataFormatConversion.Malformed", id="nested-surrogate"
        ),
        pytest.param(b'{"n": 2, "d": ' + b"[" * 5000 + b"]" * 5000 + b"}", "InvalidJSON", id="nested-5000"),
        pytest.param(b'{"n": 2, "s": "\xff\xfe"}', "InvalidJSON", id="invalid-utf8"),
        pytest.param(b'{"n": NaN}', "InvalidJSON", id="NaN"),
        pytest.param(
            b'{"n": 2, "big": ' + b"9" * 400 + b"}", "DataFormatConversion.Malformed", id="huge-integer"
        ),
    ],
)
def test_a_record_parquet_cannot_hold_goes_to_format_conversion_failed(
    app: App, bad: bytes, code: str
) -> None:
    delivered, errors = deliver(app, [GOOD, bad, GOOD], format="parquet")
    assert [r["n"] for r in delivered] == [1, 1]
    [err] = errors
    assert err["errorCode"] == code
    assert base64.b64decode(err["rawData"]) == bad
    assert all(k.startswith("errors/format-conversion-failed/") for k in app.lake.keys("errors/"))
    if code.startswith("DataFormatConversion."):  # Firehose's conversion-error fields
        assert err["lastErrorCode"] == code and err["dataCatalogTable"]["tableName"] == "d"


def test_a_record_nested_past_the_limit_is_refused_on_both_json_lines_paths(app: App) -> None:
    """PyArrow parses 5,000 levels but Python's JSON reader recurses: both paths apply one
    limit, so a batch delivers the same whichever path takes it."""
    deep = b'{"d": ' + b"[" * 300 + b"]" * 300 + b"}"
    ok = b'{"d": ' + b"[" * 200 + b"]" * 200 + b"}"
    delivered, errors = deliver(app, [deep, ok, b'{"k": "ok"}'], **KEYED)
    assert delivered == [{"k": "ok"}]  # ``ok`` has no key field: partitioning-failed
    assert sorted(e["errorCode"] for e in errors) == [
        "DynamicPartitioning.MetadataExtractionFailed",
        "InvalidJSON",
    ]
    assert "301 levels" in next(e for e in errors if e["errorCode"] == "InvalidJSON")["errorMessage"]


def test_a_multi_line_record_with_a_lone_surrogate_is_delivered_as_one_line(app: App) -> None:
    _, errors = deliver(app, [b'{"s": "\\ud800",\n "n": 1}'])
    assert errors == []
    [key] = app.lake.keys("out/")
    assert app.lake.get(key) == b'{"s":"\\ud800","n":1}\n'


@pytest.mark.parametrize(
    "option, value, rule",
    [
        ("prefix", "../x/", "folder '..'"),
        ("prefix", "a/../x/", "folder '..'"),
        ("prefix", "./x/", "folder '.'"),
        ("prefix", "/abs/", "starts with '/'"),
        ("prefix", "data//x/", "folder ''"),
        ("prefix", "a\x00b/", "control character"),
        ("prefix", "a\nb/", "control character"),
        ("prefix", "\ud800/", "lone surrogate"),
        ("prefix", "x" * 256 + "/", "folder of 256 bytes"),
        ("prefix", "a/" * 300, "characters"),
        ("prefix", "e/!{firehose:error-output-type}/", "only error_prefix"),
        ("prefix", "a/!{partitionKeyFromQuery:k}//", "folder ''"),
        ("error_prefix", "../errors/!{firehose:error-output-type}/", "folder '..'"),
        ("error_prefix", "errors/!{timestamp:yyyy}/", "no !{firehose:error-output-type}"),
        ("error_prefix", "/errors/", "starts with '/'"),
    ],
)
def test_a_bad_prefix_is_refused_when_the_delivery_is_declared(
    app: App, option: str, value: str, rule: str
) -> None:
    s = app.stream("in")
    with pytest.raises(ValidationError) as e:
        app.delivery("d", source=s, partition_keys={"k": ".k"}, **{option: value})
    message = str(e.value)
    assert f"delivery 'd': {option} {value!r}" in message
    assert rule in message
    assert "a prefix is a relative key" in message  # the rules, so the fix is plain


def test_a_transform_whose_output_cannot_be_delivered_sends_it_to_the_error_prefix(app: App) -> None:
    outputs = [b"not json", b'{"k": "\\u0000"}', b'{"k": "fine"}']

    def transform(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {
            "records": [
                {"recordId": r["recordId"], "result": "Ok", "data": base64.b64encode(out).decode()}
                for r, out in zip(event["records"], outputs, strict=True)
            ]
        }

    delivered, errors = deliver(app, [b'{"k": 1}'] * 3, transform=transform, **KEYED)
    assert delivered == [{"k": "fine"}]
    assert sorted(e["errorCode"] for e in errors) == [
        "DynamicPartitioning.MetadataExtractionFailed",
        "InvalidJSON",
    ]
    assert {base64.b64decode(e["rawData"]) for e in errors} == set(outputs[:2])  # what was delivered


@pytest.mark.parametrize(
    "response, code",
    [
        pytest.param(
            lambda ids: {"records": [{"recordId": [1], "result": "Ok"}]},
            "Lambda.JsonProcessingException",
            id="unhashable-id",
        ),
        pytest.param(
            lambda ids: {"records": [{"recordId": i, "result": "Ok", "data": 7} for i in ids]},
            "Lambda.JsonProcessingException",
            id="data-not-text",
        ),
        pytest.param(
            lambda ids: {"records": [{"recordId": i, "result": ["Ok"]} for i in ids]},
            "Lambda.JsonProcessingException",
            id="unhashable-result",
        ),
        pytest.param(
            lambda ids: {"records": [{"recordId": ids[0], "result": "Dropped"}] * 2},
            "Lambda.DuplicatedRecordId",
            id="duplicate",
        ),
        pytest.param(lambda ids: {"records": []}, "Lambda.MissingRecordId", id="missing"),
        pytest.param(lambda ids: 1 / 0, "Lambda.FunctionError", id="raises"),
    ],
)
def test_a_malformed_transform_response_fails_the_batch_with_firehose_codes(
    app: App, response: Any, code: str
) -> None:
    def transform(event: dict[str, Any], context: Any) -> Any:
        return response([r["recordId"] for r in event["records"]])

    delivered, errors = deliver(app, [GOOD], transform=transform)
    assert delivered == []
    [err] = errors
    assert err["errorCode"] == code
    assert err["lambdaArn"].endswith(":function:transform")
    assert base64.b64decode(err["rawData"]) == GOOD
