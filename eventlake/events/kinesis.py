"""Kinesis Data Streams events, as Lambda delivers them to a stream event source mapping."""

from __future__ import annotations

import base64
from typing import Any

from .arns import DEFAULT_ACCOUNT, DEFAULT_REGION, stream_arn


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
