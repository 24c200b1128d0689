"""Firehose data-transformation events, and the checks Firehose makes on the response.

A delivery whose source is a stream sends its transform the event Firehose sends a Lambda
function for a Kinesis-sourced delivery stream: ``sourceKinesisStreamArn`` and, per record,
``kinesisRecordMetadata`` (shard, partition key, sequence number, arrival time).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from .arns import DEFAULT_ACCOUNT, DEFAULT_REGION, stream_arn
from .kinesis import SEQ_WIDTH


def delivery_stream_arn(name: str, *, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> str:
    return f"arn:aws:firehose:{region}:{account}:deliverystream/{name}"


def transformation_event(
    rows: Sequence[tuple[int, str, bytes, float]],
    *,
    delivery_name: str,
    stream_name: str,
    shard_id: str,
    region: str = DEFAULT_REGION,
    account: str = DEFAULT_ACCOUNT,
) -> dict[str, Any]:
    """The event for stream rows ``(seq, partition key, data, arrival)``; a record's
    ``recordId`` is its sequence number, so a replayed batch gets the same ids."""
    b64 = binascii.b2a_base64
    records = []
    for seq, pkey, data, ts in rows:
        sn = str(seq).zfill(SEQ_WIDTH)
        ms = int(ts * 1000)
        records.append(
            {
                "recordId": sn,
                "approximateArrivalTimestamp": ms,
                "data": b64(data, newline=False).decode("ascii"),
                "kinesisRecordMetadata": {
                    "shardId": shard_id,
                    "partitionKey": pkey,
                    "approximateArrivalTimestamp": ms,
                    "sequenceNumber": sn,
                    "subsequenceNumber": 0,
                },
            }
        )
    first = records[0]["recordId"] if records else "0"
    return {
        "invocationId": f"{delivery_name}-{shard_id}-{first}",
        "deliveryStreamArn": delivery_stream_arn(delivery_name, region=region, account=account),
        "sourceKinesisStreamArn": stream_arn(stream_name, region=region, account=account),
        "region": region,
        "records": records,
    }


def check_response(resp: Any, ids: set[str]) -> tuple[str, str] | None:
    """``(error code, reason)`` when a transform response is unusable as a whole (Firehose's
    codes from its Lambda invocation errors), or None."""
    if not isinstance(resp, dict) or not isinstance(resp.get("records"), list):
        return "Lambda.JsonProcessingException", "the transform must return {'records': [...]}"
    seen: set[str] = set()
    for r in resp["records"]:
        if not isinstance(r, dict):
            return "Lambda.JsonProcessingException", "each returned record must be an object"
        rid = r.get("recordId")
        if not isinstance(rid, str) or rid not in ids:
            return "Lambda.JsonProcessingException", f"the transform returned an unknown recordId {rid!r:.80}"
        if rid in seen:
            return "Lambda.DuplicatedRecordId", f"the transform returned recordId {rid!r} twice"
        seen.add(rid)
        result = r.get("result")
        if not isinstance(result, str) or result not in ("Ok", "Dropped", "ProcessingFailed"):
            return (
                "Lambda.JsonProcessingException",
                f"record {rid}: result must be Ok, Dropped or ProcessingFailed, got {result!r:.80}",
            )
        if result == "Ok":
            data = r.get("data", "")
            try:
                if not isinstance(data, (str, bytes)):
                    raise TypeError
                base64.b64decode(data, validate=True)
            except (ValueError, TypeError):
                return "Lambda.JsonProcessingException", f"record {rid}: data is not valid base64"
    if seen != ids:
        return (
            "Lambda.MissingRecordId",
            f"the transform returned {len(seen)} of {len(ids)} records; every record must come back",
        )
    return None
