"""What a queue hands back: send results, batch results in SQS's shape, received messages."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SendResult:
    """A sent message (SendMessage's response; in a batch, one of ``Successful``)."""

    message_id: str
    md5_of_body: str
    sequence_number: str | None = None
    ok: bool = True
    id: str | None = None  # the batch entry's id
    md5_of_message_attributes: str | None = None


@dataclass(frozen=True, slots=True)
class SendFailure:
    """A batch entry that was not sent (one of SendMessageBatch's ``Failed``)."""

    id: str
    code: str
    message: str
    ok: bool = False
    sender_fault: bool = True


class SendBatchResult(list[SendResult | SendFailure]):
    """SendMessageBatch's response: one result per entry, in the order given; a list, so
    existing callers index it, with ``successful`` and ``failed`` as SQS splits them."""

    @property
    def successful(self) -> list[SendResult]:
        return [r for r in self if isinstance(r, SendResult)]

    @property
    def failed(self) -> list[SendFailure]:
        return [r for r in self if isinstance(r, SendFailure)]

    def as_response(self) -> dict[str, Any]:
        """The response document SQS returns, field for field."""
        ok = []
        for r in self.successful:
            doc = {"Id": r.id, "MessageId": r.message_id, "MD5OfMessageBody": r.md5_of_body}
            if r.md5_of_message_attributes is not None:
                doc["MD5OfMessageAttributes"] = r.md5_of_message_attributes
            if r.sequence_number is not None:
                doc["SequenceNumber"] = r.sequence_number
            ok.append(doc)
        failed = [
            {"Id": f.id, "SenderFault": f.sender_fault, "Code": f.code, "Message": f.message}
            for f in self.failed
        ]
        return {"Successful": ok, "Failed": failed}


@dataclass(slots=True)
class Message:
    message_id: str
    body: str
    receipt_handle: str
    receive_count: int
    sent_ts: float
    first_receive_ts: float
    attributes: dict[str, Any] = field(default_factory=dict)
    group_id: str | None = None
    dedup_id: str | None = None
    sequence_number: str | None = None

    @property
    def md5_of_body(self) -> str:
        return hashlib.md5(self.body.encode("utf-8")).hexdigest()

    def json(self) -> Any:
        return json.loads(self.body)
