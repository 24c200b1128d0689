"""What a log-backed trigger reads, and how its rows become the AWS event a handler gets.

Four kinds share the stream poller: Kinesis streams, DynamoDB table streams, lake object
events (S3 notifications) and schedule ticks (EventBridge). Only the event documents differ.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..events.kinesis import SEQ_WIDTH
from ..ports.log import LogRow, LogStore
from ..resources import changes
from ..resources.env import Env
from ..resources.stream import Stream, format_seq, shard_id

if TYPE_CHECKING:
    from ..resources.lake import Lake
    from ..resources.table import Table


class Source:
    log = ""
    shards = 1
    failure_kind = "async"  # "kinesis" | "dynamodb" | "async"
    store: LogStore | None = None  # the store holding ``log``; None: the state backend

    def matches(self, row: LogRow) -> bool:
        return True

    def record_id(self, row: LogRow) -> str:
        return format_seq(row.seq)

    def event(self, env: Env, fn: str, shard: int, rows: Sequence[LogRow]) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def arn(self) -> str:
        raise NotImplementedError


class KinesisSource(Source):
    failure_kind = "kinesis"

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.log = stream.log
        self.shards = stream.shards
        self.store = stream.store

    @property
    def arn(self) -> str:
        from ..events.arns import stream_arn

        s = self.stream.env.settings
        return stream_arn(self.stream.name, region=s.region, account=s.account)

    def event(self, env: Env, fn: str, shard: int, rows: Sequence[LogRow]) -> dict[str, Any]:
        from ..events.kinesis import kinesis_event_from_rows

        s = env.settings
        return kinesis_event_from_rows(
            rows,
            stream_name=self.stream.name,
            shard_id=shard_id(shard),
            region=s.region,
            account=s.account,
            function_name=fn,
        )


class RawStreamSource(KinesisSource):
    """A stream read by eventlake itself (lake delivery): the handler gets the stored rows,
    not a Kinesis event, so no record is base64-encoded only to be decoded again."""

    def event(self, env: Env, fn: str, shard: int, rows: Sequence[LogRow]) -> dict[str, Any]:
        return {"shard": shard_id(shard), "rows": rows}


class TableStreamSource(Source):
    failure_kind = "dynamodb"

    def __init__(self, table: Table) -> None:
        self.table = table
        self.log = table.log
        self.shards = table.stream_shards
        self.label = "2024-01-01T00:00:00.000"

    @property
    def arn(self) -> str:
        from ..events.arns import table_stream_arn

        s = self.table.env.settings
        return table_stream_arn(self.table.name, self.label, region=s.region, account=s.account)

    def event(self, env: Env, fn: str, shard: int, rows: Sequence[LogRow]) -> dict[str, Any]:
        # Built here rather than through a generic builder: the images are stored already in
        # DynamoDB JSON, and decoding them only to encode them again would double the cost of
        # the hottest path of table-stream pipelines. tests/events/test_event_shapes.py checks the
        # result against the Powertools model.
        arn = self.arn
        region = env.settings.region
        view = self.table.stream_view
        # eventID: md5 of "log:shard:seq", the shared prefix hashed once per batch.
        prefix = hashlib.md5(f"{self.log}:{shard}:".encode())
        decode = changes.decode
        records = []
        for seq, _, data, ts in rows:
            doc = decode(data)
            ddb: dict[str, Any] = {
                "ApproximateCreationDateTime": int(ts),
                "Keys": doc["k"],
                "SequenceNumber": str(seq).zfill(SEQ_WIDTH),
                "SizeBytes": doc["s"],
                "StreamViewType": view,
            }
            if "n" in doc:
                ddb["NewImage"] = doc["n"]
            if "o" in doc:
                ddb["OldImage"] = doc["o"]
            h = prefix.copy()
            h.update(str(seq).encode())
            records.append(
                {
                    "eventID": h.hexdigest(),
                    "eventName": doc["e"],
                    "eventVersion": "1.1",
                    "eventSource": "aws:dynamodb",
                    "awsRegion": region,
                    "dynamodb": ddb,
                    "eventSourceARN": arn,
                }
            )
        return {"Records": records}


class ObjectSource(Source):
    def __init__(self, lake: Lake, prefix: str, suffix: str, events: Sequence[str]) -> None:
        from ..resources.lake import EVENTS_LOG

        self.lake = lake
        self.log = EVENTS_LOG
        self.prefix = prefix
        self.suffix = suffix
        self.events = tuple(events)

    @property
    def arn(self) -> str:
        from ..events.arns import bucket_arn

        return bucket_arn(self.lake.bucket)

    def matches(self, row: LogRow) -> bool:
        doc = json.loads(row.data)
        key = doc["key"]
        kind = doc["event"]
        return (
            key.startswith(self.prefix)
            and key.endswith(self.suffix)
            and any(kind.startswith(e.rstrip("*")) for e in self.events)
        )

    def event(self, env: Env, fn: str, shard: int, rows: Sequence[LogRow]) -> dict[str, Any]:
        from ..events.s3 import s3_event, s3_record

        out = []
        for r in rows:
            doc = json.loads(r.data)
            out.append(
                s3_record(
                    bucket=self.lake.bucket,
                    key=doc["key"],
                    size=doc["size"],
                    etag=doc["etag"],
                    sequencer=f"{r.seq:016X}",
                    event_name=doc["event"],
                    event_ts=r.ts,
                    region=env.settings.region,
                )
            )
        return s3_event(out)


class ScheduleSource(Source):
    def __init__(self, fn_name: str, expression: str) -> None:
        self.log = f"schedule:{fn_name}"
        self.rule = f"{fn_name}-schedule"
        self.expression = expression

    @property
    def arn(self) -> str:
        return f"arn:aws:events:::rule/{self.rule}"

    def event(self, env: Env, fn: str, shard: int, rows: Sequence[LogRow]) -> dict[str, Any]:
        from ..events.scheduled import scheduled_event

        r = rows[0]
        doc = json.loads(r.data)
        return scheduled_event(
            rule_name=self.rule,
            ts=doc["tick"],
            event_id=doc["id"],
            region=env.settings.region,
            account=env.settings.account,
        )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
