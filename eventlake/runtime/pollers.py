"""Pollers: the event source mappings that turn logs and queues into invocations.

A stream poller owns one (function, shard, slot) under a lease. It keeps the batch it is
working on in memory, so a retry delivers the same records in the same order, as Lambda
guarantees; the checkpoint moves only after success, a partial-failure report, or a discard
to the failure destination, and always in a transaction that re-checks the lease.

Both are pull triggers (``trigger.py``): ``poll_once`` never blocks; it says whether it did
something, or the time at which it next wants to run (``None``: when something new arrives),
and the runtime decides how to wait.
"""

from __future__ import annotations

import json
import operator
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

from ..errors import EventlakeError, HandlerError, TooManyRequests
from ..ports.kv import KvTxn
from ..ports.log import LogRow, LogTxn
from ..ports.state import StateTxn
from ..resources.queue import Message, Queue
from ..resources.stream import Stream, format_seq, shard_id
from .functions import Function, Invoker
from .leases import LeaseLost, Leases
from .mappings import QueueMapping, StreamMapping
from .sources import Source
from .trigger import PollResult, PullTrigger, TriggerContext

Destination = Queue | Stream
_DATA = operator.itemgetter(2)  # LogRow.data, for summing sizes in C


@dataclass
class _Segment:
    rows: list[LogRow]
    end: int  # checkpoint to store when this segment is done


def _partial_failures(resp: Any, ids: list[str]) -> tuple[int | None, str | None]:
    """Index of the first record to retry, from a ``batchItemFailures`` response.

    Returns ``(None, None)`` for complete success, ``(0, reason)`` for a response Lambda treats
    as a complete failure (an empty, null or unknown ``itemIdentifier``).
    """
    if resp is None or not isinstance(resp, dict):
        return None, None
    fails = resp.get("batchItemFailures")
    if not fails:
        return None, None
    if not isinstance(fails, list):
        return 0, "batchItemFailures is not a list"
    index = {rid: i for i, rid in enumerate(ids)}
    lowest: int | None = None
    for f in fails:
        rid = f.get("itemIdentifier") if isinstance(f, dict) else None
        if not rid or rid not in index:
            return 0, f"invalid itemIdentifier {rid!r} in batchItemFailures"
        lowest = index[rid] if lowest is None else min(lowest, index[rid])
    return lowest, None


class StreamPoller(PullTrigger):
    def __init__(
        self, rt: TriggerContext, fn: Function, mapping: StreamMapping, source: Source, shard: int, slot: int
    ) -> None:
        self.rt = rt
        self.env = rt.env
        self.invoker: Invoker = rt.invoker
        self.leases: Leases = rt.leases
        self.fn = fn
        self.m = mapping
        self.src = source
        self.store = source.store if source.store is not None else rt.env.state
        self.shard = shard
        self.slot = slot
        self.name = f"esm:{fn.name}:{source.log}:{shard}:{slot}"
        self.lease = self.name
        self.segments: list[_Segment] = []
        self.attempts = 0
        self.not_before = 0.0
        self.wake_names = (source.log,)
        self._ck: int | None = None  # authoritative while the lease is held
        self._term = 0  # the lease's term when _ck was loaded (see Leases.term)
        self._pending_ck: int | None = None
        self._full = False
        self._inflight: int | None = None
        self._ahead: tuple[int, list[LogRow], int, int] | None = None  # see _read

    # -- checkpoint
    # The kv value is "seq" or "seq:end". ``end`` marks a batch in flight: after a crash the
    # next owner re-reads exactly (seq, end], so a retried batch is the same batch (the same
    # records, in the same order) even across worker restarts, and tokens derived from a
    # batch (md5 of its records) stay valid.
    def _load(self) -> tuple[int, int | None]:
        raw = self.env.state.transaction(lambda t: t.kv_get("ckpt", self.name), readonly=True)
        if raw is None:
            return self._init_checkpoint(), None
        seq, _, end = raw.partition(":")
        return int(seq), int(end) if end else None

    def _init_checkpoint(self) -> int:
        def position(txn: LogTxn) -> int:
            pos = self.m.starting_position.upper()
            if pos == "TRIM_HORIZON":
                return 0
            if pos == "LATEST":
                return int(txn.log_last_seq(self.src.log, self.shard))
            at = self.m.starting_timestamp
            if at is None:  # (the mapping's validation refuses AT_TIMESTAMP without one)
                return 0
            first = txn.log_first_seq_at(self.src.log, self.shard, at)
            return int(txn.log_last_seq(self.src.log, self.shard)) if first is None else first - 1

        # The log may live in another backend than the checkpoint: find the position first,
        # then store it unless another worker stored one meanwhile.
        start = self.store.transaction(position, readonly=True)

        def run(txn: KvTxn) -> int:
            raw = txn.kv_get("ckpt", self.name, lock=True)
            if raw is not None:
                return int(raw.partition(":")[0])
            txn.kv_put("ckpt", self.name, str(start))
            return start

        return self.env.state.transaction(run)

    def _checkpoint(self) -> int:
        if self._ck is None:
            self._term = self.leases.term(self.name)
            self._ck, self._inflight = self._load()
        return self._ck

    def _mark_inflight(self, end: int) -> None:
        def run(txn: StateTxn) -> None:
            self.leases.check(txn, self.name, self._term)
            txn.kv_put("ckpt", self.name, f"{self._ck}:{end}")

        self.env.state.transaction(run)
        self._inflight = end

    def _commit(self, txn: KvTxn, seq: int, *, lease_checked: bool = False) -> None:
        if not lease_checked:  # an atomic invocation checked it first in this transaction
            self.leases.check(txn, self.name, self._term)
        end = self._inflight if self._inflight is not None and self._inflight > seq else None
        txn.kv_put("ckpt", self.name, f"{seq}:{end}" if end else str(seq))
        # Only remembered once the transaction commits; a rollback must not move it.
        self._pending_ck = seq

    def _committed(self) -> None:
        if self._pending_ck is not None:
            self._ck = self._pending_ck
            if self._inflight is not None and self._inflight <= self._ck:
                self._inflight = None
            self._pending_ck = None

    def _in_slot(self, row: LogRow) -> bool:
        n = self.m.parallelization_factor
        return n == 1 or zlib.crc32(row.pkey.encode()) % n == self.slot

    def _read(self, after: int, upto: int | None = None) -> tuple[list[LogRow], int]:
        """The next batch after checkpoint ``after`` (at most up to ``upto``, a replayed range).

        Rows read while a batching window is still open are kept (``_ahead``) and the next
        poll reads only what arrived since: re-reading the whole window on every wake-up made a
        busy window quadratic in its length."""
        want = self.m.batch_size
        ahead = self._ahead
        if ahead is not None and ahead[0] == after and upto is None:
            _, rows, end, size = ahead
            if self._full or len(rows) >= want:
                return rows, end
        else:
            self._full = False  # set when the byte limit, not the record count, ended the batch
            rows, end, size = [], after, 0
        simple = self.m.parallelization_factor == 1 and type(self.src).matches is Source.matches
        while len(rows) < want and not self._full:
            def read(t: LogTxn, a: int = end) -> list[LogRow]:
                return t.log_read(self.src.log, self.shard, a, min(max(want, 100), 2000))

            chunk = self.store.transaction(read, readonly=True)
            if upto is not None:
                chunk = [r for r in chunk if r.seq <= upto]
            if not chunk:
                break
            if simple and len(rows) + len(chunk) <= want:
                chunk_bytes = sum(map(len, map(_DATA, chunk)))
                if size + chunk_bytes <= self.m.max_batch_bytes:
                    rows.extend(chunk)  # the common case, without a per-record check
                    size += chunk_bytes
                    end = chunk[-1].seq
                    continue
            for r in chunk:
                if self._in_slot(r) and self.src.matches(r):
                    if rows and size + len(r.data) > self.m.max_batch_bytes:
                        self._full = True
                        break
                    rows.append(r)
                    size += len(r.data)
                end = r.seq
                if len(rows) >= want:
                    break
        self._ahead = (after, rows, end, size) if upto is None else None
        return rows, end

    def pending(self) -> bool:
        if self.segments:
            return True
        ck = self._checkpoint()
        last = self.store.transaction(lambda t: t.log_last_seq(self.src.log, self.shard), readonly=True)
        return last > ck

    def lag(self) -> dict[str, int]:
        """From the stored checkpoint, not this poller's: another worker may hold the lease."""
        raw = self.env.state.transaction(lambda t: t.kv_get("ckpt", self.name), readonly=True)
        ck = int(raw.partition(":")[0]) if raw else 0
        last = self.store.transaction(lambda t: t.log_last_seq(self.src.log, self.shard), readonly=True)
        return {self.fn.name: max(0, last - ck)}

    # -- the loop body
    def poll_once(self, *, flush: bool = False) -> PollResult:
        if not self.leases.holds(self.name):
            self.segments = []
            self._ck = None
            self._ahead = None
            return PollResult(False, None)
        if self._ck is not None and self._term != self.leases.term(self.name):
            # The lease lapsed and this worker's keeper took it back before this poller saw
            # it lapse: another worker may have moved the shard on meanwhile (its checkpoint,
            # its batch in flight), so what is kept here is stale.
            self.segments = []
            self._ck = None
            self._ahead = None
        now = self.env.clock.time()
        if not self.segments:
            ck = self._checkpoint()
            replay = self._inflight
            rows, end = self._read(ck, replay)
            if replay is not None and end < replay:
                end = replay  # the rest of the range held only records of other lanes
            if end == ck:
                return PollResult(False, None)
            if not rows:
                self.env.state.transaction(lambda t: self._commit(t, end))
                self._committed()
                return PollResult(True)
            window = self.m.batching_window_s
            if (
                replay is None
                and window > 0
                and not flush
                and not self._full
                and len(rows) < self.m.batch_size
                and now - rows[0].ts < window
            ):
                return PollResult(False, rows[0].ts + window)
            # An atomic function's effects commit with its checkpoint, so a batch cut short by
            # a crash left nothing behind and need not be replayed identically: no mark.
            if replay is None and not self.fn.atomic:
                try:
                    self._mark_inflight(end)
                except LeaseLost:
                    self._ck = None
                    return PollResult(True)
            self._ahead = None
            self.segments = [_Segment(rows, end)]
            self.attempts = 0
            self.not_before = 0.0
        if now < self.not_before:
            return PollResult(False, self.not_before)
        seg = self.segments[0]
        if self.m.max_record_age_s > 0:
            expired = [r for r in seg.rows if now - r.ts > self.m.max_record_age_s]
            if expired:
                keep = seg.rows[len(expired) :]
                done_end = expired[-1].seq if keep else seg.end
                self._discard(expired, "RecordAgeExceeded", None, done_end)
                if keep:
                    seg.rows = keep
                else:
                    self.segments.pop(0)
                return PollResult(True)
        self.rt.metrics.iterator_age(self.fn.name, max(0.0, (now - seg.rows[-1].ts) * 1000))
        try:
            self._invoke(seg)
        except TooManyRequests:
            self.not_before = now + 0.05
            return PollResult(True)
        except LeaseLost:
            self.segments = []
            self._ck = None
            return PollResult(True)
        return PollResult(True)

    def _invoke(self, seg: _Segment) -> None:
        event = self.src.event(self.env, self.fn.name, self.shard, seg.rows)
        ids = [self.src.record_id(r) for r in seg.rows] if self.m.report_batch_item_failures else []
        outcome: dict[str, Any] = {}

        def body(txn: StateTxn | None) -> None:
            if txn is not None:
                # An atomic invocation runs inside its transaction: checking the lease first
                # holds it (SQLite's write lock, PostgreSQL's row lock) until the commit, so a
                # worker that lost its shard never runs the handler for it.
                self.leases.check(txn, self.name, self._term)
            resp = self.invoker.invoke(self.fn, event, inline=txn is not None, records=len(seg.rows))
            idx, reason = (None, None)
            if self.m.report_batch_item_failures:
                idx, reason = _partial_failures(resp, ids)
            if idx == 0:
                raise HandlerError(reason or "all records failed", "PartialBatchFailure")
            outcome["idx"] = idx
            seq = seg.end if idx is None else seg.rows[idx - 1].seq
            if txn is not None:
                self._commit(txn, seq, lease_checked=True)
            else:
                self.env.state.transaction(lambda t: self._commit(t, seq))

        self._pending_ck = None
        try:
            with self.invoker.slot(self.fn):
                if self.fn.atomic:
                    self.env.state.transaction(lambda t: body(t))
                else:
                    body(None)
            self._committed()
        except HandlerError as e:
            if isinstance(e, HandlerError) and e.error_type == "PartialBatchFailure":
                self.rt.metrics.add(f"{self.fn.name}.partial_failures")
            self._failed(seg, e)
            return
        idx = outcome.get("idx")
        if idx is None:
            self.segments.pop(0)
            self.attempts = 0
        else:
            seg.rows = seg.rows[idx:]
            self._failed(seg, HandlerError("batch item failures reported", "PartialBatchFailure"))

    def _failed(self, seg: _Segment, error: HandlerError) -> None:
        if self.m.bisect_on_error and len(seg.rows) > 1:
            mid = len(seg.rows) // 2
            first = _Segment(seg.rows[:mid], seg.rows[mid - 1].seq)
            second = _Segment(seg.rows[mid:], seg.end)
            self.segments[0:1] = [first, second]
            return
        self.attempts += 1
        if 0 <= self.m.max_retry_attempts < self.attempts:
            self._discard(seg.rows, "RetryAttemptsExhausted", error, seg.end)
            self.segments.pop(0)
            self.attempts = 0
            return
        s = self.env.settings
        backoff = min(s.retry_backoff_s * (2 ** min(self.attempts - 1, 30)), s.retry_backoff_max_s)
        self.not_before = self.env.clock.time() + backoff

    def _discard(self, rows: list[LogRow], condition: str, error: HandlerError | None, end: int) -> None:
        doc = self._failure_doc(rows, condition, error)
        dest = self.rt.destination_for(self.fn, self.m.on_failure)

        def run(txn: StateTxn) -> None:
            self._commit(txn, end)
            _send(dest, doc)

        self._pending_ck = None
        self.env.state.transaction(run)
        self._committed()
        self.rt.metrics.dead_lettered(self.fn.name, len(rows))

    def _failure_doc(self, rows: list[LogRow], condition: str, error: HandlerError | None) -> dict[str, Any]:
        s = self.env.settings
        from ..events.arns import function_arn

        fn_arn = function_arn(self.fn.name, region=s.region, account=s.account)
        if self.src.failure_kind in ("kinesis", "dynamodb"):
            from ..events.failure import stream_failure_record

            return stream_failure_record(
                source=self.src.failure_kind,
                function_name=self.fn.name,
                request_id=str(uuid.uuid4()),
                condition=condition,
                approximate_invoke_count=self.attempts,
                function_error=error.error_type if error else None,
                status_code=200,
                shard_id=shard_id(self.shard),
                start_seq=format_seq(rows[0].seq),
                end_seq=format_seq(rows[-1].seq),
                first_arrival_ts=rows[0].ts,
                last_arrival_ts=rows[-1].ts,
                batch_size=len(rows),
                stream_arn=self.src.arn,
                ts=self.env.clock.time(),
                region=s.region,
                account=s.account,
            )
        # Asynchronous invocations (object events, schedules): Lambda's async destination record.
        return {
            "version": "1.0",
            "timestamp": _iso(self.env.clock.time()),
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"{fn_arn}:$LATEST",
                "condition": "RetriesExhausted"
                if condition == "RetryAttemptsExhausted"
                else "EventAgeExceeded",
                "approximateInvokeCount": self.attempts,
            },
            "requestPayload": self.src.event(self.env, self.fn.name, self.shard, rows),
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": {
                "errorMessage": str(error) if error else condition,
                "errorType": error.error_type if error else condition,
            },
        }


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def _send(dest: Destination, doc: dict[str, Any]) -> None:
    if isinstance(dest, Queue):
        dest.send(json.dumps(doc))
    else:
        dest.put(doc, partition_key=doc.get("requestContext", {}).get("requestId", "failure"))


@dataclass
class QueuePoller(PullTrigger):
    rt: TriggerContext
    fn: Function
    m: QueueMapping
    queue: Queue
    index: int = 0
    _window_start: float | None = field(default=None)

    def __post_init__(self) -> None:
        self.name = f"sqs:{self.fn.name}:{self.queue.name}:{self.index}"
        self.wake_names = (self.queue.key,)

    def pending(self) -> bool:
        return len(self.queue) > 0

    def lag(self) -> dict[str, int]:
        # The pollers of one queue share its backlog: the first reports it.
        return {self.fn.name: len(self.queue)} if self.index == 0 else {}

    def poll_once(self, *, flush: bool = False) -> PollResult:
        env = self.rt.env
        now = env.clock.time()
        q = self.queue
        if self.m.batching_window_s > 0 and not flush:
            visible = q.stats()["visible"]
            if visible == 0:
                self._window_start = None
                return PollResult(False, self._next_visible())
            if visible < self.m.batch_size:
                if self._window_start is None:
                    self._window_start = now
                if now - self._window_start < self.m.batching_window_s:
                    return PollResult(False, self._window_start + self.m.batching_window_s)
        self._window_start = None
        msgs: list[Message] = []
        while len(msgs) < self.m.batch_size:
            got = q.receive_now(min(10, self.m.batch_size - len(msgs)), q.visibility_timeout_s)
            if not got:
                break
            msgs.extend(got)
        if not msgs:
            return PollResult(False, self._next_visible())
        from ..events.sqs import sqs_event, sqs_record

        s = env.settings
        event = sqs_event(
            [
                sqs_record(
                    queue_name=q.name,
                    message_id=m.message_id,
                    receipt_handle=m.receipt_handle,
                    body=m.body,
                    md5_of_body=m.md5_of_body,
                    sent_ts=m.sent_ts,
                    first_receive_ts=m.first_receive_ts,
                    receive_count=m.receive_count,
                    message_attributes=m.attributes or None,
                    group_id=m.group_id,
                    dedup_id=m.dedup_id,
                    sequence_number=m.sequence_number,
                    region=s.region,
                    account=s.account,
                )
                for m in msgs
            ]
        )

        def body(txn: StateTxn | None) -> None:
            resp = self.rt.invoker.invoke(self.fn, event, inline=txn is not None, records=len(msgs))
            failed: set[str] = set()
            if self.m.report_batch_item_failures and isinstance(resp, dict) and resp.get("batchItemFailures"):
                ids = {m.message_id for m in msgs}
                for f in resp["batchItemFailures"]:
                    rid = f.get("itemIdentifier") if isinstance(f, dict) else None
                    if not rid or rid not in ids:
                        raise HandlerError(f"invalid itemIdentifier {rid!r}", "PartialBatchFailure")
                    failed.add(rid)
            done = [m.receipt_handle for m in msgs if m.message_id not in failed]
            if done:
                q.delete_many(done)
            if failed:
                self.rt.metrics.add(f"{self.fn.name}.partial_failures")

        try:
            with self.rt.invoker.slot(self.fn):
                if self.fn.atomic:
                    env.state.transaction(lambda t: body(t))
                else:
                    body(None)
        except TooManyRequests:
            for m in msgs:
                q.change_visibility(m.receipt_handle, 0)
        except HandlerError:
            pass  # messages reappear after their visibility timeout; redrive handles poison
        except EventlakeError:
            raise
        return PollResult(True)

    def _next_visible(self) -> float | None:
        t = self.rt.env.state.transaction(lambda x: x.q_next_visible(self.queue.key), readonly=True)
        return t
