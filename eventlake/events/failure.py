"""The record Lambda sends to a stream event source mapping's on-failure destination."""

from __future__ import annotations

from typing import Any

from ._time import iso_ms
from .arns import DEFAULT_ACCOUNT, DEFAULT_REGION, function_arn


def stream_failure_record(
    *,
    source: str,
    function_name: str,
    request_id: str,
    condition: str,
    approximate_invoke_count: int,
    function_error: str | None,
    status_code: int,
    shard_id: str,
    start_seq: str,
    end_seq: str,
    first_arrival_ts: float,
    last_arrival_ts: float,
    batch_size: int,
    stream_arn: str,
    ts: float,
    region: str = DEFAULT_REGION,
    account: str = DEFAULT_ACCOUNT,
) -> dict[str, Any]:
    info_key = "KinesisBatchInfo" if source == "kinesis" else "DDBStreamBatchInfo"
    response: dict[str, Any] = {"statusCode": status_code, "executedVersion": "$LATEST"}
    if function_error:
        response["functionError"] = function_error
    return {
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn(function_name, region=region, account=account),
            "condition": condition,
            "approximateInvokeCount": approximate_invoke_count,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": iso_ms(ts),
        info_key: {
            "shardId": shard_id,
            "startSequenceNumber": start_seq,
            "endSequenceNumber": end_seq,
            "approximateArrivalOfFirstRecord": iso_ms(first_arrival_ts),
            "approximateArrivalOfLastRecord": iso_ms(last_arrival_ts),
            "batchSize": batch_size,
            "streamArn": stream_arn,
        },
    }
