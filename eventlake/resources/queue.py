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
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..errors import ReceiptHandleIsInvalid, SizeLimitExceeded, ValidationError
from ..events.sqs import md5_of_message_attributes
from ..ports.queues import QueueRow, QueueTxn
from ..ports.state import StateTxn
from .env import Env, check_name
from .queue_messages import (
    _ENTRY_ID,
    _FIFO_ID,
    InvalidMessageContents,
    _attrs_size,
    _body_text,
    _check_attrs,
    _decode_attrs,
    _encode_attrs,
    _seconds,
)
from .queue_results import Message as Message
from .queue_results import SendBatchResult as SendBatchResult
from .queue_results import SendFailure as SendFailure
from .queue_results import SendResult as SendResult
from .stream import show

MAX_MESSAGE_BYTES = 256 * 1024
MAX_BATCH = 10
DEDUP_WINDOW_S = 300.0
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


class Queue:
    """A message queue (SQS standard or FIFO)."""

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
        visibility_timeout_s = _seconds(visibility_timeout_s, f"queue {name!r}: visibility_timeout_s", 43_200)
        delay_s = _seconds(delay_s, f"queue {name!r}: delay_s", 900)
        retention_s = _seconds(retention_s, f"queue {name!r}: retention_s", 1_209_600, 60)
        receive_wait_s = _seconds(receive_wait_s, f"queue {name!r}: receive_wait_s", 20)
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
            if type(max_receive_count) is not int or not 1 <= max_receive_count <= 1000:
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
            if delay_s is not None and delay_s != 0:
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
                if not isinstance(v, str) or _FIFO_ID.fullmatch(v) is None:
                    raise ValidationError(
                        f"queue {self.name!r}: {what} must be 1-128 characters of A-Z, a-z, 0-9 "
                        f"and ASCII punctuation (SQS's rule), got {show(v)}"
                    )
            delay = self.delay_s
        else:
            if group_id or dedup_id:
                raise ValidationError(f"queue {self.name!r}: group_id and dedup_id are for FIFO queues")
            delay = self.delay_s if delay_s is None else _seconds(delay_s, "delay_s", 900)
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

    def send_many(self, entries: Sequence[Mapping[str, Any]]) -> SendBatchResult:
        """SendMessageBatch: up to 10 entries, 256 KiB in all; a bad entry fails alone, with
        SQS's code, and the others are sent. Entry ids (``id``, default the entry's index) must
        be distinct, 1-80 of A-Z a-z 0-9 - _, as SQS's; a bad id fails the whole call, as there."""
        if isinstance(entries, (str, bytes)) or not isinstance(entries, Sequence):
            raise ValidationError(
                f"queue {self.name!r}: send_many takes a list of {{'body': ...}} entries, "
                f"got {type(entries).__name__}"
            )
        if not 1 <= len(entries) <= MAX_BATCH:
            raise ValidationError(
                f"queue {self.name!r}: send_many takes 1-{MAX_BATCH} entries, got {len(entries)} "
                "(SQS's EmptyBatchRequest / TooManyEntriesInBatchRequest)"
            )
        ids = [e.get("id", str(i)) if isinstance(e, Mapping) else str(i) for i, e in enumerate(entries)]
        for eid in ids:
            if not isinstance(eid, str) or _ENTRY_ID.fullmatch(eid) is None:
                raise ValidationError(
                    f"queue {self.name!r}: batch entry id {show(eid)} is invalid: use 1-80 of "
                    "A-Z, a-z, 0-9, hyphen and underscore (SQS's InvalidBatchEntryId)"
                )
        if len(set(ids)) != len(ids):
            raise ValidationError(
                f"queue {self.name!r}: two batch entries have the same id "
                f"{show(next(x for x in ids if ids.count(x) > 1))} (SQS's BatchEntryIdsNotDistinct)"
            )
        prepared: list[Any] = []
        out = SendBatchResult([None] * len(entries))  # type: ignore[list-item]
        total = 0
        for i, e in enumerate(entries):
            try:
                if not isinstance(e, Mapping) or "body" not in e:
                    raise ValidationError("each entry must be a mapping with a 'body'")
                unknown = set(e) - {"id", "body", "delay_s", "attributes", "group_id", "dedup_id"}
                if unknown:
                    raise ValidationError(f"unknown entry field(s) {sorted(map(repr, unknown))}")
                entry = self._entry(
                    e["body"], e.get("delay_s"), e.get("attributes"), e.get("group_id"), e.get("dedup_id")
                )
                total += len(entry[0].encode()) + _attrs_size(entry[1])
                prepared.append((i, entry))
            except ValidationError as exc:
                code = (
                    "InvalidMessageContents"
                    if isinstance(exc, InvalidMessageContents)
                    else "InvalidParameterValue"
                )
                out[i] = SendFailure(ids[i], code, str(exc))
        if total > MAX_MESSAGE_BYTES:
            raise SizeLimitExceeded(
                f"queue {self.name!r}: batch of {total} bytes is over the 256 KiB limit of one call "
                "(SQS's BatchRequestTooLong)"
            )
        if prepared:
            results = self._send_entries([p[1] for p in prepared])
            for (i, _), r in zip(prepared, results, strict=True):
                out[i] = replace(r, id=ids[i])
        return out

    def _send_entries(self, entries: list[Any]) -> list[SendResult]:
        def run(txn: StateTxn) -> list[SendResult]:
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
                results.append(
                    SendResult(
                        mid,
                        md5,
                        str(seq).zfill(20) if self.fifo else None,
                        md5_of_message_attributes=md5_of_message_attributes(attrs) if attrs else None,
                    )
                )
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
        if type(max_messages) is not int or not 1 <= max_messages <= MAX_BATCH:
            raise ValidationError(f"max_messages must be an integer 1-{MAX_BATCH}, got {show(max_messages)}")
        wait = self.receive_wait_s if wait_s is None else _seconds(wait_s, "wait_s", 20)
        vis = (
            self.visibility_timeout_s
            if visibility_timeout_s is None
            else _seconds(visibility_timeout_s, "visibility_timeout_s", 43_200)
        )
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

        def run(txn: StateTxn) -> list[Message]:
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
                        if self.fifo and r.grp is not None:
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

    def _redrive(self, txn: QueueTxn, r: QueueRow, now: float) -> None:
        dlq = self.dead_letter
        assert dlq is not None
        seq = txn.counter_next(dlq.key, 1)
        txn.q_delete(self.key, [r.id])
        txn.q_insert(
            dlq.key, [QueueRow(r.id, seq, r.body, r.attrs, r.sent, now, 0, None, None, r.grp, r.dedup)]
        )

    @staticmethod
    def _split(receipt_handle: str) -> str:
        # Handles this queue hands out are ASCII ("<message id>:<token>"); anything else,
        # a lone surrogate included, names no message and must not reach the store.
        if (
            not isinstance(receipt_handle, str)
            or ":" not in receipt_handle
            or not receipt_handle.isascii()
            or not receipt_handle.isprintable()
            or len(receipt_handle) > 1024
        ):
            raise ReceiptHandleIsInvalid(f"The input receipt handle {show(receipt_handle)} is not valid")
        return receipt_handle.split(":", 1)[0]

    def delete(self, receipt_handle: str) -> bool:
        """DeleteMessage; returns whether a message was deleted (False for a stale receipt)."""
        return self.delete_many([receipt_handle]) == 1

    def delete_many(self, receipt_handles: Sequence[str]) -> int:
        if isinstance(receipt_handles, (str, bytes)) or not isinstance(receipt_handles, Sequence):
            raise ValidationError(
                f"queue {self.name!r}: delete_many takes a list of receipt handles, "
                f"got {type(receipt_handles).__name__}"
            )
        ids = [(self._split(h), h) for h in receipt_handles]

        def run(txn: StateTxn) -> int:
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
        timeout_s = _seconds(timeout_s, "timeout_s", 43_200)
        mid = self._split(receipt_handle)

        def run(txn: StateTxn) -> bool:
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
