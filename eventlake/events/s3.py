"""S3 event notifications (version 2.1), as S3 sends them to Lambda."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus

from ._time import iso_ms
from .arns import DEFAULT_REGION, bucket_arn


def s3_record(
    *,
    bucket: str,
    key: str,
    size: int,
    etag: str,
    sequencer: str,
    event_name: str,
    event_ts: float,
    version_id: str | None = None,
    region: str = DEFAULT_REGION,
    configuration_id: str = "eventlake",
) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "sequencer": sequencer}
    if event_name.startswith("ObjectCreated"):
        obj.update(size=size, eTag=etag)
    if version_id is not None:
        obj["versionId"] = version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": iso_ms(event_ts),
        "eventName": event_name,
        "userIdentity": {"principalId": "EVENTLAKE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": sequencer[-16:].rjust(16, "0"), "x-amz-id-2": "eventlake"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "EVENTLAKE"},
                "arn": bucket_arn(bucket),
            },
            "object": obj,
        },
    }


def s3_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": records}
