"""SQS events as Lambda delivers them, and SQS's MD5 of message attributes."""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

from .arns import DEFAULT_ACCOUNT, DEFAULT_REGION, queue_arn


def md5_of_message_attributes(attrs: dict[str, dict[str, Any]]) -> str:
    """The documented algorithm: for each attribute sorted by name, length-prefixed (4-byte
    big-endian) name, data type, then a transport byte (1 string, 2 binary) and the value."""
    out = bytearray()
    for name in sorted(attrs):
        a = attrs[name]
        dtype = a["DataType"]
        for part in (name.encode(), dtype.encode()):
            out += struct.pack(">I", len(part)) + part
        if "StringValue" in a:
            v = str(a["StringValue"]).encode()
            out += b"\x01" + struct.pack(">I", len(v)) + v
        else:
            v = a["BinaryValue"]
            out += b"\x02" + struct.pack(">I", len(v)) + v
    return hashlib.md5(bytes(out)).hexdigest()


def _lambda_attributes(attrs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for name, a in attrs.items():
        entry: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": a["DataType"]}
        if "StringValue" in a:
            entry["stringValue"] = str(a["StringValue"])
        else:
            entry["binaryValue"] = base64.b64encode(a["BinaryValue"]).decode()
        out[name] = entry
    return out


def sqs_record(
    *,
    queue_name: str,
    message_id: str,
    receipt_handle: str,
    body: str,
    md5_of_body: str,
    sent_ts: float,
    first_receive_ts: float,
    receive_count: int,
    sender_id: str = "AIDAIENQZJOLO23YVJ4VO",
    message_attributes: dict[str, Any] | None = None,
    group_id: str | None = None,
    dedup_id: str | None = None,
    sequence_number: str | None = None,
    region: str = DEFAULT_REGION,
    account: str = DEFAULT_ACCOUNT,
) -> dict[str, Any]:
    attributes = {
        "ApproximateReceiveCount": str(receive_count),
        "SentTimestamp": str(int(sent_ts * 1000)),
        "SenderId": sender_id,
        "ApproximateFirstReceiveTimestamp": str(int(first_receive_ts * 1000)),
    }
    if group_id is not None:
        attributes["MessageGroupId"] = group_id
        attributes["MessageDeduplicationId"] = dedup_id or ""
        attributes["SequenceNumber"] = sequence_number or ""
    rec: dict[str, Any] = {
        "messageId": message_id,
        "receiptHandle": receipt_handle,
        "body": body,
        "attributes": attributes,
        "messageAttributes": _lambda_attributes(message_attributes or {}),
        "md5OfBody": md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn(queue_name, region=region, account=account),
        "awsRegion": region,
    }
    if message_attributes:
        rec["md5OfMessageAttributes"] = md5_of_message_attributes(message_attributes)
    return rec


def sqs_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": records}
