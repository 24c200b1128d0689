"""Kinesis Data Streams events, as Lambda delivers them to a stream event source mapping."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any

from .arns import DEFAULT_ACCOUNT, DEFAULT_REGION, stream_arn

SEQ_WIDTH = 21  # sequence numbers are zero-padded decimal strings (see resources/stream.py)


def kinesis_record(
    *,
    stream_name: str,
    shard_id: str,
    sequence_number: str,
    partition_key: str,
    data: bytes,
    arrival_ts: float,
    region: str = DEFAULT_REGION,
    account: str = DEFAULT_ACCOUNT,
    function_name: str = "function",
) -> dict[str, Any]:
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": sequence_number,
            "data": base64.b64encode(data).decode("ascii"),
            "approximateArrivalTimestamp": round(arrival_ts, 3),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{sequence_number}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": f"arn:aws:iam::{account}:role/{function_name}-role",
        "awsRegion": region,
        "eventSourceARN": stream_arn(stream_name, region=region, account=account),
    }


def kinesis_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": records}


def kinesis_event_from_rows(
    rows: Iterable[tuple[int, str, bytes, float]],
    *,
    stream_name: str,
    shard_id: str,
    region: str = DEFAULT_REGION,
    account: str = DEFAULT_ACCOUNT,
    function_name: str = "function",
) -> dict[str, Any]:
    """The event for a batch of log rows ``(seq, partition key, data, arrival)``: the same
    documents as :func:`kinesis_record` makes one by one, with what every record of the
    batch shares worked out once (a poller builds one per batch of up to 10,000)."""
    arn = stream_arn(stream_name, region=region, account=account)
    role = f"arn:aws:iam::{account}:role/{function_name}-role"
    prefix = shard_id + ":"
    b64 = binascii.b2a_base64
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": pkey,
                    "sequenceNumber": sn,
                    "data": b64(data, newline=False).decode("ascii"),
                    "approximateArrivalTimestamp": round(ts, 3),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": prefix + sn,
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": role,
                "awsRegion": region,
                "eventSourceARN": arn,
            }
            for seq, pkey, data, ts in rows
            for sn in [str(seq).zfill(SEQ_WIDTH)]
        ]
    }
