"""Builders of the exact AWS event documents handlers receive; pure functions, no I/O."""

from .context import LambdaContext
from .failure import stream_failure_record
from .kinesis import kinesis_event, kinesis_record
from .s3 import s3_event, s3_record
from .scheduled import scheduled_event
from .sqs import md5_of_message_attributes, sqs_event, sqs_record

__all__ = [
    "LambdaContext",
    "kinesis_event",
    "kinesis_record",
    "md5_of_message_attributes",
    "s3_event",
    "s3_record",
    "scheduled_event",
    "sqs_event",
    "sqs_record",
    "stream_failure_record",
]
