"""Queues with SQS semantics (standard and FIFO) over the state port's queue rows.

Receive marks messages invisible and hands out a fresh receipt handle in one transaction;
only the newest receipt deletes or changes visibility (an old one is accepted and does
nothing, as SQS does). Redrive to the dead-letter queue happens at receive time, when a
message that has already been received ``max_receive_count`` times becomes visible again.
FIFO receives are serialised per queue so that one message group is never in flight twice.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ReceiptHandleIsInvalid, SizeLimitExceeded, ValidationError
from .env import Env, check_name

MAX_MESSAGE_BYTES = 256 * 1024
MAX_BATCH = 10
DEDUP_WINDOW_S = 300.0
_QUEUE_NAME = __import__("re").compile(r"^[A-Za-z0-9_-]{1,80}$")


@dataclass(frozen=True, slots=True)
class SendResult:
    message_id: str
    md5_of_body: str
    sequence_number: str | None = None
    ok: bool = True


@dataclass(frozen=True, slots=True)
class SendFailure:
    id: str
    code: str
    message: str
    ok: bool = False


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


def _body_text(body: Any) -> str:
    if isinstance(body, str):
        text = body
    elif isinstance(body, (dict, list)):
        from .stream import to_bytes

        text = to_bytes(body).decode("utf-8")
    else:
        raise ValidationError(
            f"message body must be str, dict or list, not {type(body).__name__} "
            "(SQS bodies are text; base64-encode binary data)"
        )
    if not text:
        raise ValidationError("message body must not be empty")
    for ch in text:
        o = ord(ch)
        if not (
            o in (0x9, 0xA, 0xD) or 0x20 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD or 0x10000 <= o <= 0x10FFFF
        ):
            raise ValidationError(
                f"message body contains the character U+{o:04X}, which SQS does not allow; "
                "base64-encode binary data"
            )
    return text


def _attrs_size(attrs: Mapping[str, Any] | None) -> int:
    if not attrs:
        return 0
    n = 0
    for k, v in attrs.items():
        n += len(k.encode())
        n += len(str(v.get("DataType", "")).encode())
        if "StringValue" in v:
            n += len(str(v["StringValue"]).encode())
        if "BinaryValue" in v:
            n += len(v["BinaryValue"])
    return n


def _check_attrs(attrs: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if attrs is None:
        return None
    if not isinstance(attrs, Mapping) or len(attrs) > 10:
        raise ValidationError("attributes must be a dict of at most 10 message attributes")
    out = {}
    for k, v in attrs.items():
        if isinstance(v, str):
            v = {"DataType": "String", "StringValue": v}
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            v = {"DataType": "Number", "StringValue": str(v)}
        elif isinstance(v, bytes):
            v = {"DataType": "Binary", "BinaryValue": v}
        if (
            not isinstance(v, Mapping)
            or "DataType" not in v
            or not ("StringValue" in v or "BinaryValue" in v)
        ):
            raise ValidationError(
                f"message attribute {k!r}: give a str, number, bytes or "
                "{'DataType': ..., 'StringValue'|'BinaryValue': ...}"
            )
        out[k] = dict(v)
    return out


def _encode_attrs(attrs: dict[str, Any] | None) -> str | None:
    if not attrs:
        return None
    import base64

    return json.dumps(
        {
            k: (
                {**v, "BinaryValue": base64.b64encode(v["BinaryValue"]).decode()} if "BinaryValue" in v else v
            )
            for k, v in attrs.items()
        }
    )


def _decode_attrs(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    import base64

    return {
        k: ({**v, "BinaryValue": base64.b64decode(v["BinaryValue"])} if "BinaryValue" in v else v)
        for k, v in json.loads(raw).items()
    }


class Queue:
    """A message queue (SQS standard or FIFO)."""

    kind = "queue"
    fifo: bool

    def __init__(
        self,
        env: Env,
        name: str,
        *,
        fifo: bool = False,
        visibility_timeout_s: float = 30,
        delay_s: float = 0,
        retention_s: float = 345_600,
        receive_wait_s: float = 0,
        dead_letter: Queue | None = None,
        max_receive_count: int | None = None,
        content_based_dedup: bool = False,
    ) -> None:
        base = name[:-5] if name.endswith(".fifo") else name
        check_name(
            "queue",
            base,
            pattern=_QUEUE_NAME,
            hint="SQS names are 1-80 of A-Z a-z 0-9 _ -, and FIFO names end in .fifo",
        )
        if fifo != name.endswith(".fifo"):
            raise ValidationError(
                f"queue {name!r}: a FIFO queue's name must end in '.fifo' and only a FIFO queue's may"
            )
        if not 0 <= visibility_timeout_s <= 43_200:
            raise ValidationError(f"queue {name!r}: visibility_timeout_s must be 0-43200")
        if not 0 <= delay_s <= 900:
            raise ValidationError(f"queue {name!r}: delay_s must be 0-900")
        if not 60 <= retention_s <= 1_209_600:
            raise ValidationError(f"queue {name!r}: retention_s must be 60-1209600")
        if not 0 <= receive_wait_s <= 20:
            raise ValidationError(f"queue {name!r}: receive_wait_s must be 0-20")
        if (dead_letter is None) != (max_receive_count is None):
            if dead_letter is not None:
                max_receive_count = 10
            else:
                raise ValidationError(f"queue {name!r}: max_receive_count needs a dead_letter queue")
        if dead_letter is not None:
            if not isinstance(dead_letter, Queue):
                raise ValidationError(f"queue {name!r}: dead_letter must be a Queue")
            if dead_letter.fifo != fifo:
                raise ValidationError(
                    f"queue {name!r}: the dead-letter queue of a {'FIFO' if fifo else 'standard'} "
                    f"queue must also be {'FIFO' if fifo else 'standard'}"
                )
            if not 1 <= max_receive_count <= 1000:  # type: ignore[operator]
                raise ValidationError(f"queue {name!r}: max_receive_count must be 1-1000")
        self.env = env
        self.name = name
        self.fifo = fifo
        self.visibility_timeout_s = float(visibility_timeout_s)
        self.delay_s = float(delay_s)
        self.retention_s = float(retention_s)
        self.receive_wait_s = float(receive_wait_s)
        self.dead_letter = dead_letter
        self.max_receive_count = max_receive_count
        self.content_based_dedup = content_based_dedup
        self.key = f"queue:{name}"

    # -- sending
    def _entry(
        self,
        body: Any,
        delay_s: float | None,
        attributes: Mapping[str, Any] | None,
        group_id: str | None,
        dedup_id: str | None,
    ) -> tuple[str, dict[str, Any] | None, float, str | None, str | None]:
        text = _body_text(body)
        attrs = _check_attrs(attributes)
        size = len(text.encode("utf-8")) + _attrs_size(attrs)
        if size > MAX_MESSAGE_BYTES:
            raise SizeLimitExceeded(
                f"queue {self.name!r}: message of {size} bytes (body + attributes) is over the "
                "256 KiB limit; put the payload in the lake and send its key"
            )
        if self.fifo:
            if delay_s:
                raise ValidationError(
                    f"queue {self.name!r}: FIFO queues take no per-message delay; set delay_s on the queue"
                )
            if not group_id:
                raise ValidationError(f"queue {self.name!r}: FIFO messages need a group_id")
            if not dedup_id:
                if not self.content_based_dedup:
                    raise ValidationError(
                        f"queue {self.name!r}: give a dedup_id or create the queue with "
                        "content_based_dedup=True"
                    )
                dedup_id = hashlib.sha256(text.encode("utf-8")).hexdigest()
            for what, v in (("group_id", group_id), ("dedup_id", dedup_id)):
                if not (isinstance(v, str) and 1 <= len(v) <= 128):
                    raise ValidationError(f"{what} must be a string of 1-128 characters, got {v!r}")
            delay = self.delay_s
        else:
            if group_id or dedup_id:
                raise ValidationError(f"queue {self.name!r}: group_id and dedup_id are for FIFO queues")
            delay = self.delay_s if delay_s is None else float(delay_s)
            if not 0 <= delay <= 900:
                raise ValidationError(f"delay_s must be 0-900, got {delay_s!r}")
        return text, attrs, delay, group_id, dedup_id

    def send(
        self,
        body: Any,
        *,
        delay_s: float | None = None,
        attributes: Mapping[str, Any] | None = None,
        group_id: str | None = None,
        dedup_id: str | None = None,
    ) -> SendResult:
        res = self._send_entries([self._entry(body, delay_s, attributes, group_id, dedup_id)])[0]
        return res

    def send_many(self, entries: Sequence[Mapping[str, Any]]) -> list[SendResult | SendFailure]:
        """SendMessageBatch: up to 10 entries, 256 KiB in all; a bad entry fails alone."""
        if not 1 <= len(entries) <= MAX_BATCH:
            raise ValidationError(f"send_many takes 1-{MAX_BATCH} entries, got {len(entries)}")
        prepared: list[Any] = []
        out: list[SendResult | SendFailure | None] = [None] * len(entries)
        total = 0
        for i, e in enumerate(entries):
            eid = str(e.get("id", i)) if isinstance(e, Mapping) else str(i)
            try:
                if not isinstance(e, Mapping) or "body" not in e:
                    raise ValidationError("each entry must be a mapping with a 'body'")
                unknown = set(e) - {"id", "body", "delay_s", "attributes", "group_id", "dedup_id"}
                if unknown:
                    raise ValidationError(f"unknown entry field(s) {sorted(unknown)}")
                entry = self._entry(
                    e["body"], e.get("delay_s"), e.get("attributes"), e.get("group_id"), e.get("dedup_id")
                )
                total += len(entry[0].encode()) + _attrs_size(entry[1])
                prepared.append((i, entry))
            except ValidationError as exc:
                out[i] = SendFailure(eid, type(exc).__name__, str(exc))
        if total > MAX_MESSAGE_BYTES:
            raise SizeLimitExceeded(
                f"queue {self.name!r}: batch of {total} bytes is over the 256 KiB limit of one call"
            )
        if prepared:
            results = self._send_entries([p[1] for p in prepared])
            for (i, _), r in zip(prepared, results, strict=True):
                out[i] = r
        return out  # type: ignore[return-value]

    def _send_entries(self, entries: list[Any]) -> list[SendResult]:
        from ..backends.base import QueueRow

        def run(txn: Any) -> list[SendResult]:
            now = self.env.clock.time()
            results = []
            rows = []
            first = txn.counter_next(self.key, len(entries))
            for j, (text, attrs, delay, grp, dedup) in enumerate(entries):
                md5 = hashlib.md5(text.encode("utf-8")).hexdigest()
                seq = first + j
                if self.fifo:
                    ns = f"dedup:{self.name}"
                    raw = txn.kv_get(ns, dedup, lock=True)
                    if raw is not None:
                        prev = json.loads(raw)
                        if prev["exp"] > now:
                            results.append(SendResult(prev["id"], md5, prev["seq"]))
                            continue
                mid = str(uuid.uuid4())
                if self.fifo:
                    txn.kv_put(
                        f"dedup:{self.name}",
                        dedup,
                        json.dumps({"id": mid, "exp": now + DEDUP_WINDOW_S, "seq": str(seq)}),
                    )
                rows.append(
                    QueueRow(
                        mid,
                        seq,
                        text.encode("utf-8"),
                        _encode_attrs(attrs),
                        now,
                        now + delay,
                        0,
                        None,
                        None,
                        grp,
                        dedup,
                    )
                )
                results.append(SendResult(mid, md5, str(seq).zfill(20) if self.fifo else None))
            if rows:
                txn.q_insert(self.key, rows)
            return results

        out = self.env.state.transaction(run)
        self.env.signals.notify(self.key)
        return out

    # -- receiving
    def receive(
        self, max_messages: int = 1, *, wait_s: float | None = None, visibility_timeout_s: float | None = None
    ) -> list[Message]:
        """ReceiveMessage; ``wait_s`` > 0 long-polls until a message arrives or time runs out."""
        if not 1 <= max_messages <= MAX_BATCH:
            raise ValidationError(f"max_messages must be 1-{MAX_BATCH}, got {max_messages}")
        wait = self.receive_wait_s if wait_s is None else wait_s
        if not 0 <= wait <= 20:
            raise ValidationError(f"wait_s must be 0-20, got {wait_s}")
        vis = self.visibility_timeout_s if visibility_timeout_s is None else visibility_timeout_s
        if not 0 <= vis <= 43_200:
            raise ValidationError(f"visibility_timeout_s must be 0-43200, got {vis}")
        import time as _time

        deadline = _time.monotonic() + wait
        while True:
            seen = self.env.signals.version([self.key])
            msgs = self.receive_now(max_messages, vis)
            left = deadline - _time.monotonic()
            if msgs or left <= 0:
                return msgs
            self.env.signals.wait([self.key], seen, min(left, self.env.settings.poll_interval_s * 5))

    def receive_now(self, max_messages: int, visibility_timeout_s: float) -> list[Message]:
        moved: list[bool] = []
        # A read-only look first: an idle consumer must not take the write lock every poll.
        if not self.env.state.in_transaction():
            nxt = self.env.state.transaction(lambda t: t.q_next_visible(self.key), readonly=True)
            if nxt is None or nxt > self.env.clock.time():
                return []

        def run(txn: Any) -> list[Message]:
            moved.clear()
            now = self.env.clock.time()
            if self.fifo:
                txn.lock(self.key)
                blocked = txn.q_inflight_groups(self.key, now)
            out: list[Message] = []
            after = 0
            expired: list[str] = []
            while len(out) < max_messages:
                rows = txn.q_scan_visible(self.key, now, after, max(max_messages * 4, 20))
                if not rows:
                    break
                for r in rows:
                    after = r.seq
                    if r.sent < now - self.retention_s:
                        expired.append(r.id)
                        continue
                    if self.fifo and r.grp in blocked:
                        continue
                    if (
                        self.max_receive_count is not None
                        and self.dead_letter is not None
                        and r.receives >= self.max_receive_count
                    ):
                        self._redrive(txn, r, now)
                        moved.append(True)
                        if self.fifo:
                            blocked.add(r.grp)  # keep order: the group waits for the next receive
                        continue
                    receipt = f"{r.id}:{secrets.token_urlsafe(12)}"
                    first = r.first_receive if r.first_receive is not None else now
                    txn.q_update(
                        self.key,
                        r.id,
                        visible=now + visibility_timeout_s,
                        receives=r.receives + 1,
                        first_receive=first,
                        receipt=receipt,
                    )
                    out.append(
                        Message(
                            r.id,
                            r.body.decode("utf-8"),
                            receipt,
                            r.receives + 1,
                            r.sent,
                            first,
                            _decode_attrs(r.attrs),
                            r.grp,
                            r.dedup,
                            str(r.seq).zfill(20) if self.fifo else None,
                        )
                    )
                    if len(out) >= max_messages:
                        break
            if expired:
                txn.q_delete(self.key, expired)
            return out

        msgs = self.env.state.transaction(run)
        if moved and self.dead_letter is not None:
            self.env.signals.notify(self.dead_letter.key)
        return msgs

    def _redrive(self, txn: Any, r: Any, now: float) -> None:
        from ..backends.base import QueueRow

        dlq = self.dead_letter
        assert dlq is not None
        seq = txn.counter_next(dlq.key, 1)
        txn.q_delete(self.key, [r.id])
        txn.q_insert(
            dlq.key, [QueueRow(r.id, seq, r.body, r.attrs, r.sent, now, 0, None, None, r.grp, r.dedup)]
        )

    @staticmethod
    def _split(receipt_handle: str) -> str:
        if not isinstance(receipt_handle, str) or ":" not in receipt_handle:
            raise ReceiptHandleIsInvalid(f"The input receipt handle {receipt_handle!r} is not valid")
        return receipt_handle.split(":", 1)[0]

    def delete(self, receipt_handle: str) -> bool:
        """DeleteMessage; returns whether a message was deleted (False for a stale receipt)."""
        return self.delete_many([receipt_handle]) == 1

    def delete_many(self, receipt_handles: Sequence[str]) -> int:
        ids = [(self._split(h), h) for h in receipt_handles]

        def run(txn: Any) -> int:
            n = 0
            for mid, handle in ids:
                row = txn.q_get(self.key, mid, lock=True)
                if row is not None and row.receipt == handle:
                    n += txn.q_delete(self.key, [mid])
            return n

        n = self.env.state.transaction(run)
        if n and self.fifo:
            self.env.signals.notify(self.key)
        return n

    def change_visibility(self, receipt_handle: str, timeout_s: float) -> bool:
        """ChangeMessageVisibility; 0 makes the message visible again at once."""
        if not 0 <= timeout_s <= 43_200:
            raise ValidationError(f"timeout_s must be 0-43200, got {timeout_s}")
        mid = self._split(receipt_handle)

        def run(txn: Any) -> bool:
            row = txn.q_get(self.key, mid, lock=True)
            if row is None or row.receipt != receipt_handle:
                return False
            now = self.env.clock.time()
            if row.visible <= now:
                from ..errors import EventlakeError

                raise EventlakeError(
                    f"queue {self.name!r}: message {mid} is not in flight "
                    "(its visibility timeout already expired)"
                )
            txn.q_update(
                self.key,
                mid,
                visible=now + timeout_s,
                receives=row.receives,
                first_receive=row.first_receive,
                receipt=row.receipt,
            )
            return True

        ok = self.env.state.transaction(run)
        if ok and timeout_s == 0:
            self.env.signals.notify(self.key)
        return ok

    def purge(self) -> int:
        return self.env.state.transaction(lambda t: t.q_purge(self.key))

    def stats(self) -> dict[str, int]:
        v, f, d = self.env.state.transaction(
            lambda t: t.q_stats(self.key, self.env.clock.time()), readonly=True
        )
        return {"visible": v, "in_flight": f, "delayed": d}

    def __len__(self) -> int:
        s = self.stats()
        return s["visible"] + s["in_flight"] + s["delayed"]

    def __repr__(self) -> str:
        return f"Queue({self.name!r}, fifo={self.fifo})"
