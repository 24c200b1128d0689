"""Streams with Kinesis semantics over the state port's log.

A record goes to the shard whose hash-key range holds MD5(partition key) as a 128-bit
integer, exactly as Kinesis assigns them, so a stream with the same shard count spreads
keys the same way. Sequence numbers increase per shard; they are exposed as zero-padded
decimal strings (as Kinesis exposes its own) so they compare correctly as text too.
"""

from __future__ import annotations

import hashlib
import json
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import ConfigError, ResourceNotFound, SizeLimitExceeded, ValidationError
from ..events.kinesis import SEQ_WIDTH
from ..ports.log import LogRow, LogStore, LogTxn
from .env import Env, check_name

MAX_RECORD_BYTES = 1024 * 1024  # data + partition key, as Kinesis counts it
MAX_PUT_RECORDS = 500
MAX_PUT_RECORDS_BYTES = 5 * 1024 * 1024
HASH_SPACE = 1 << 128


_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxstring, _SHOW.maxother, _SHOW.maxlong = 3, 80, 80, 60


def show(value: Any) -> str:
    """A bounded repr of a caller's value for an error message: a plain repr of data nested a
    thousand levels raises RecursionError, and one of a megabyte fills the message."""
    return _SHOW.repr(value)


def format_seq(n: int) -> str:
    return str(n).zfill(SEQ_WIDTH)


def parse_seq(s: str) -> int:
    if not isinstance(s, str) or not s.isascii() or not s.isdigit():
        raise ValidationError(f"invalid sequence number {show(s)}: expected a decimal string")
    return int(s)


def shard_id(index: int) -> str:
    return f"shardId-{index:012d}"


def shard_index(sid: str) -> int:
    if (
        not isinstance(sid, str)
        or not sid.startswith("shardId-")
        or not sid[8:].isascii()
        or not sid[8:].isdigit()
    ):
        raise ValidationError(f"invalid shard id {show(sid)}: expected shardId-000000000000")
    return int(sid[8:])


def hash_key(partition_key: str) -> int:
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big")


def shard_for(partition_key: str, shards: int, explicit_hash_key: str | None = None) -> int:
    h = int(explicit_hash_key) if explicit_hash_key is not None else hash_key(partition_key)
    return h * shards >> 128


def to_bytes(data: Any) -> bytes:
    """Records are bytes; str is UTF-8 encoded and dicts/lists become compact JSON."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return _utf8(data, "record data", "; send bytes, or fix the string")
    if isinstance(data, (dict, list)):
        return to_json(data, "record data").encode("utf-8")
    raise ValidationError(f"record data must be bytes, str, dict or list, not {type(data).__name__}")


def to_json(data: Any, what: str) -> str:
    """Compact JSON text of ``data``, or a ValidationError saying why it has none."""
    try:
        return json.dumps(data, separators=(",", ":"), default=_json_default, allow_nan=False)
    except ValueError as e:  # NaN or Infinity: not JSON, and no consumer could read them back
        raise ValidationError(
            f"{what} is not valid JSON: {e}; send null or a string for a missing or infinite number"
        ) from None
    except TypeError as e:
        raise ValidationError(f"{what} is not JSON-serialisable: {e}") from None
    except RecursionError:
        raise ValidationError(
            f"{what} is nested too deeply to encode as JSON; flatten it or send it as text"
        ) from None


def _utf8(text: str, what: str, hint: str = "") -> bytes:
    """``text`` as UTF-8, or a ValidationError saying where it is not text (a lone surrogate)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValidationError(f"{what} is not valid text: {e.reason} at character {e.start}{hint}") from e


def _json_default(o: Any) -> Any:
    from decimal import Decimal

    if isinstance(o, Decimal):
        if not o.is_finite():
            raise ValueError(f"Out of range float values are not JSON compliant: {o}")
        return int(o) if o == o.to_integral_value() else float(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


class PutResult(NamedTuple):
    shard_id: str
    sequence_number: str
    ok: bool = True


class PutFailure(NamedTuple):
    error_code: str
    error_message: str
    ok: bool = False


class PutRecordsResult(list[PutResult | PutFailure]):
    """PutRecords' response: one entry per record, in the order given (``Records``), a
    :class:`PutResult` or a :class:`PutFailure`; a list, so existing callers index it."""

    @property
    def failed_record_count(self) -> int:
        """``FailedRecordCount``: the records that were not written."""
        return sum(1 for r in self if not r.ok)

    def as_response(self) -> dict[str, Any]:
        """The response document Kinesis returns, field for field."""
        return {
            "FailedRecordCount": self.failed_record_count,
            "Records": [
                {"SequenceNumber": r.sequence_number, "ShardId": r.shard_id}
                if isinstance(r, PutResult)
                else {"ErrorCode": r.error_code, "ErrorMessage": r.error_message}
                for r in self
            ],
        }


@dataclass(frozen=True, slots=True)
class Record:
    shard_id: str
    sequence_number: str
    partition_key: str
    data: bytes
    arrival_ts: float

    def json(self) -> Any:
        return json.loads(self.data)


class Stream:
    """A partitioned, replayable log (Kinesis data stream)."""


    def __init__(
        self,
        env: Env,
        name: str,
        *,
        shards: int = 1,
        retention_hours: float = 24,
        log_name: str | None = None,
    ) -> None:
        check_name("stream", name)
        if not isinstance(shards, int) or not 1 <= shards <= 1024:
            raise ValidationError(f"stream {name!r}: shards must be an integer 1-1024, got {shards!r}")
        if not 24 <= retention_hours <= 8760 and log_name is None:
            raise ValidationError(
                f"stream {name!r}: retention_hours must be 24-8760 (Kinesis limits), got {retention_hours!r}"
            )
        self.env = env
        self.name = name
        self.shards = shards
        self.retention_hours = retention_hours
        self.log = log_name or f"stream:{name}"
        # The records (and the stream's declaration) live in the stream store: the state
        # backend unless ``stream_url`` names another. Consumers' checkpoints stay in state.
        self.store: LogStore = env.stream_store
        self._declare()

    def _declare(self) -> None:
        meta = json.dumps({"shards": self.shards, "retention_hours": self.retention_hours})
        existing = self.store.transaction(lambda t: t.log_declare(self.log, meta))
        if existing is not None and json.loads(existing)["shards"] != self.shards:
            raise ValidationError(
                f"stream {self.name!r} already exists with {json.loads(existing)['shards']} "
                f"shards; resharding is not supported, declare it with that count"
            )
        if existing is not None and existing != meta:
            self.store.transaction(lambda t: t.log_declare(self.log, meta, replace=True))

    def check_atomic(self, trigger: str) -> None:
        """Refuse an ``atomic=True`` consumer where the store cannot read a batch again from
        the checkpoint (see ``LogStore.replayable`` and docs/concepts/guarantees.md)."""
        if not self.store.replayable:
            raise ConfigError(
                f"{trigger}, atomic=True: stream {self.name!r} lives in {self.store.url}, which "
                "cannot read delivered records again, and an atomic handler's batch is re-read "
                "from its checkpoint after a rollback; use atomic=False with idempotent writes, "
                "or a stream_url whose store keeps its records"
            )

    @property
    def shard_ids(self) -> list[str]:
        return [shard_id(i) for i in range(self.shards)]

    # -- writing
    def _prepare(
        self, data: Any, partition_key: Any, explicit_hash_key: str | None
    ) -> tuple[int, str, bytes]:
        if not isinstance(partition_key, str) or not 1 <= len(partition_key) <= 256:
            raise ValidationError(
                f"stream {self.name!r}: partition_key must be a string of 1-256 characters, "
                f"got {show(partition_key)}"
            )
        if "\x00" in partition_key:  # no text column of PostgreSQL can hold it: refused everywhere
            raise ValidationError(
                f"stream {self.name!r}: partition_key contains a NUL character at "
                f"{partition_key.index(chr(0))}; partition keys are text, NUL excluded"
            )
        payload = to_bytes(data)
        size = len(payload) + len(_utf8(partition_key, f"stream {self.name!r}: partition_key"))
        if size > MAX_RECORD_BYTES:
            raise SizeLimitExceeded(
                f"stream {self.name!r}: record of {size} bytes (data + partition key) is over "
                f"the 1 MiB limit; split it or store it in the lake and send its key"
            )
        if explicit_hash_key is not None and not (
            isinstance(explicit_hash_key, str)
            and 0 < len(explicit_hash_key) <= 39
            and explicit_hash_key.isascii()  # "²" and "١" are digits to Python, not to Kinesis
            and explicit_hash_key.isdigit()
            and (explicit_hash_key[0] != "0" or explicit_hash_key == "0")  # Kinesis: 0|[1-9]\d{0,38}
            and int(explicit_hash_key) < HASH_SPACE
        ):
            raise ValidationError(
                f"stream {self.name!r}: explicit_hash_key must be a decimal number below 2**128 "
                f"in ASCII digits without leading zeros, got {show(explicit_hash_key)}"
            )
        return shard_for(partition_key, self.shards, explicit_hash_key), partition_key, payload

    def put(self, data: Any, partition_key: str, *, explicit_hash_key: str | None = None) -> PutResult:
        shard, pk, payload = self._prepare(data, partition_key, explicit_hash_key)
        ts = self.env.clock.time()
        seq = self.store.transaction(lambda t: t.log_append(self.log, shard, [(pk, payload, ts)]))
        self.env.signals.notify(self.log)
        return PutResult(shard_id(shard), format_seq(seq))

    def put_many(self, records: Sequence[Mapping[str, Any]]) -> PutRecordsResult:
        """PutRecords: every valid record is written in one transaction, in order per shard;
        an invalid one gets a :class:`PutFailure` in its slot and does not stop the others."""
        if type(records) is not list and (
            not isinstance(records, Sequence) or isinstance(records, (str, bytes, bytearray))
        ):
            raise ValidationError(
                f"stream {self.name!r}: put_many takes a list of "
                f"{{'data': ..., 'partition_key': ...}} records, got {type(records).__name__}"
            )
        if len(records) > MAX_PUT_RECORDS:
            raise ValidationError(
                f"stream {self.name!r}: put_many takes at most {MAX_PUT_RECORDS} records, "
                f"got {len(records)}; split the call"
            )
        out: PutRecordsResult = PutRecordsResult([None] * len(records))  # type: ignore[list-item]
        by_shard: dict[int, list[tuple[int, str, bytes]]] = {}
        total = 0
        n_shards = self.shards
        md5 = hashlib.md5
        for i, rec in enumerate(records):
            # Fast path for the common, well-formed record; anything unusual takes the checked path.
            if type(rec) is dict and len(rec) == 2:
                data = rec.get("data")
                pk = rec.get("partition_key")
                if type(data) is str:
                    try:
                        data = data.encode()
                    except UnicodeEncodeError:  # a lone surrogate: the checked path says so
                        data = None
                if (
                    type(data) is bytes
                    and type(pk) is str
                    and 0 < len(pk) <= 256
                    and pk.isascii()
                    and "\x00" not in pk
                ):
                    size = len(data) + len(pk)
                    if size <= MAX_RECORD_BYTES:
                        shard = (
                            0
                            if n_shards == 1
                            else int.from_bytes(md5(pk.encode()).digest(), "big") * n_shards >> 128
                        )
                        total += size
                        by_shard.setdefault(shard, []).append((i, pk, data))
                        continue
            try:
                if not isinstance(rec, Mapping) or "data" not in rec or "partition_key" not in rec:
                    raise ValidationError("each record must be a mapping with 'data' and 'partition_key'")
                shard, pk, payload = self._prepare(
                    rec["data"], rec["partition_key"], rec.get("explicit_hash_key")
                )
            except ValidationError as e:
                out[i] = PutFailure("InvalidArgumentException", str(e))
                continue
            total += len(payload) + len(pk)
            by_shard.setdefault(shard, []).append((i, pk, payload))
        if total > MAX_PUT_RECORDS_BYTES:
            raise SizeLimitExceeded(
                f"stream {self.name!r}: put_many payload of {total} bytes is over the 5 MiB "
                "limit of one call; split the call"
            )
        ts = self.env.clock.time()

        def write(txn: LogTxn) -> dict[int, int]:
            return {
                shard: txn.log_append(self.log, shard, [(pk, p, ts) for _, pk, p in rows])
                for shard, rows in by_shard.items()
            }

        if by_shard:
            firsts = self.store.transaction(write)
            for shard, rows in by_shard.items():
                sid = shard_id(shard)
                first = firsts[shard]
                for j, (i, _, _) in enumerate(rows):
                    out[i] = PutResult(sid, str(first + j).zfill(SEQ_WIDTH))
            self.env.signals.notify(self.log)
        return out

    # -- reading
    def read(
        self,
        shard: str,
        *,
        position: str = "TRIM_HORIZON",
        sequence_number: str | None = None,
        timestamp: float | None = None,
        limit: int = 10_000,
    ) -> list[Record]:
        """GetShardIterator + GetRecords in one call, for tools and tests."""
        idx = shard_index(shard)
        if idx >= self.shards:
            raise ResourceNotFound(f"stream {self.name!r} has no shard {shard}")
        if type(limit) is not int or not 1 <= limit <= 10_000:
            raise ValidationError(f"limit must be an integer 1-10000, got {show(limit)}")
        if not isinstance(position, str):
            raise ValidationError(f"position must be a string such as 'TRIM_HORIZON', got {show(position)}")
        if timestamp is not None and (
            not isinstance(timestamp, (int, float))
            or isinstance(timestamp, bool)
            or not -1e12 < timestamp < 1e12  # NaN too
        ):
            raise ValidationError(f"timestamp must be seconds since the epoch, got {show(timestamp)}")

        def rd(txn: LogTxn) -> list[Record]:
            after = self.start_after(txn, idx, position, sequence_number, timestamp)
            return [
                self._record(idx, r)
                for r in txn.log_read(self.log, idx, after, limit)
                if not self._expired(r.ts)
            ]

        return self.store.transaction(rd, readonly=True)

    def start_after(
        self, txn: LogTxn, idx: int, position: str, sequence_number: str | None, timestamp: float | None
    ) -> int:
        position = position.upper()
        if position == "TRIM_HORIZON":
            return 0
        if position == "LATEST":
            return int(txn.log_last_seq(self.log, idx))
        if position == "AT_TIMESTAMP":
            if timestamp is None:
                raise ValidationError("AT_TIMESTAMP needs a timestamp")
            first = txn.log_first_seq_at(self.log, idx, timestamp)
            return int(txn.log_last_seq(self.log, idx)) if first is None else first - 1
        if position in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            if sequence_number is None:
                raise ValidationError(f"{position} needs a sequence_number")
            n = parse_seq(sequence_number)
            return n - 1 if position == "AT_SEQUENCE_NUMBER" else n
        raise ValidationError(
            f"unknown starting position {show(position)}: use TRIM_HORIZON, LATEST, AT_TIMESTAMP, "
            "AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER"
        )

    def _expired(self, ts: float) -> bool:
        return ts < self.env.clock.time() - self.retention_hours * 3600

    def _record(self, idx: int, r: LogRow) -> Record:
        return Record(shard_id(idx), format_seq(r.seq), r.pkey, r.data, r.ts)

    def trim(self) -> int:
        """Delete records past retention (the runtime calls this periodically)."""
        cutoff = self.env.clock.time() - self.retention_hours * 3600
        return self.store.transaction(lambda t: t.log_trim(self.log, cutoff))

    def pending(self, checkpoints: Iterable[int]) -> int:
        """Records after the given per-shard checkpoints (for lag displays)."""
        cps = list(checkpoints)
        return self.store.transaction(
            lambda t: sum(max(0, t.log_last_seq(self.log, i) - cps[i]) for i in range(self.shards)),
            readonly=True,
        )

    def __repr__(self) -> str:
        return f"Stream({self.name!r}, shards={self.shards})"
