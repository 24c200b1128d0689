"""Tables with DynamoDB semantics over the state port's items.

Every write is read-evaluate-write inside one port transaction: the old item is read under a
row lock, the condition and update expressions are evaluated in Python (``eventlake.expressions``),
and only then is anything written, so a failed condition never leaves a partial write, even
inside a caller's larger transaction. The change-stream record is appended to the table's log
in the same transaction as the item, as DynamoDB Streams guarantees.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import (
    CancellationReason,
    ConditionalCheckFailed,
    IdempotentParameterMismatch,
    SizeLimitExceeded,
    TransactionCanceled,
    ValidationError,
)
from ..expressions import (
    apply_update,
    check_condition,
    condition_on_missing,
    deserialize_item,
    dump_avs,
    encode_item,
    item_size,
    load_avs,
    normalize,
    normalize_item,
    parse_key_condition,
    parse_projection,
    prepare_item,
    project,
    serialize_item,
    sort_key_bytes,
    to_dynamo,
    type_name,
    updated_paths,
    validate_condition_placeholders,
    validate_placeholders,
)
from ..ports.items import ItemTxn
from ..ports.kv import KvTxn
from ..ports.state import RetryTransaction, StateTxn
from . import changes
from .env import Env, check_name
from .stream import shard_for, show

MAX_ITEM_BYTES = 400 * 1024
MAX_TRANSACT_ACTIONS = 100
TOKEN_TTL_S = 600.0
PAGE_BYTES = 1024 * 1024
VIEW_TYPES = {
    "keys_only": "KEYS_ONLY",
    "new_image": "NEW_IMAGE",
    "old_image": "OLD_IMAGE",
    "new_and_old_images": "NEW_AND_OLD_IMAGES",
}
KEY_TYPES = ("S", "N", "B")


def _key_spec(spec: str | tuple[str, str] | None, what: str, table: str) -> tuple[str, str] | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        return (spec, "S")
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) and spec[1] in KEY_TYPES:
        return spec
    raise ValidationError(
        f"table {table!r}: {what} must be an attribute name or (name, 'S'|'N'|'B'), got {spec!r}"
    )


@dataclass
class Page:
    """One page of a query or scan, like DynamoDB's response."""

    items: list[dict[str, Any]]
    last_key: dict[str, Any] | None
    count: int
    scanned_count: int

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class Action:
    """One action of :meth:`App.transact` (build them with ``table.tx_put`` and friends)."""

    table: Table
    kind: str  # Put | Update | Delete | ConditionCheck
    key: dict[str, Any]
    item: dict[str, Any] | None = None
    update: str | None = None
    condition: str | None = None
    names: dict[str, str] | None = None
    values: dict[str, Any] | None = None
    fingerprint: str = field(default="", repr=False)


class Table:
    """Items keyed by a partition key and an optional sort key (DynamoDB table)."""


    def __init__(
        self,
        env: Env,
        name: str,
        *,
        key: str | tuple[str, str],
        sort_key: str | tuple[str, str] | None = None,
        stream: str | None = None,
        stream_shards: int = 1,
    ) -> None:
        check_name("table", name, hint="DynamoDB allows 3-255; eventlake allows 1-128")
        self.env = env
        self.name = name
        pk = _key_spec(key, "key", name)
        assert pk is not None
        self.pk_name, self.pk_type = pk
        sk = _key_spec(sort_key, "sort_key", name)
        self.sk_name: str | None = sk[0] if sk else None
        self.sk_type: str | None = sk[1] if sk else None
        if stream is not None and stream not in VIEW_TYPES:
            raise ValidationError(
                f"table {name!r}: stream must be one of {', '.join(VIEW_TYPES)} or None, got {stream!r}"
            )
        self.stream_view = VIEW_TYPES[stream] if stream else None
        if not isinstance(stream_shards, int) or not 1 <= stream_shards <= 64:
            raise ValidationError(f"table {name!r}: stream_shards must be 1-64, got {stream_shards!r}")
        self.stream_shards = stream_shards
        self.log = f"table:{name}"
        self.key_attributes = (self.pk_name,) + ((self.sk_name,) if self.sk_name else ())
        # Facts the write path asks on every change record, worked out once.
        self._simple_key = self.sk_name is None and self.pk_type == "S"
        self._pk_size = len(self.pk_name.encode("utf-8"))
        self._new_view = self.stream_view in _NEW_VIEWS
        self._old_view = self.stream_view in _OLD_VIEWS
        self._insert_record = self._simple_key and self._new_view and stream_shards == 1
        self._insert_head = changes.insert_prefix(self.pk_name)

        meta = json.dumps(
            {
                "key": [self.pk_name, self.pk_type],
                "sort_key": [self.sk_name, self.sk_type] if self.sk_name else None,
                "stream": self.stream_view,
                "shards": stream_shards,
            }
        )

        def declare(txn: KvTxn) -> str | None:
            if txn.kv_insert("meta", self.log, meta):
                return None
            old = txn.kv_get("meta", self.log)
            txn.kv_put("meta", self.log, meta)
            return old

        old = env.state.transaction(declare)
        if old is not None:
            prev = json.loads(old)
            if prev["key"] != [self.pk_name, self.pk_type] or prev["sort_key"] != (
                [self.sk_name, self.sk_type] if self.sk_name else None
            ):
                raise ValidationError(
                    f"table {name!r} already exists with key schema {prev['key']}/{prev['sort_key']}; "
                    "a key schema cannot change: use a new table name"
                )

    # -- keys
    def _check_key_value(self, attr: str, typ: str, value: Any) -> None:
        if value is None:
            raise ValidationError(
                f"table {self.name!r}: One or more parameter values were invalid: "
                f"Missing the key {attr} in the item"
            )
        actual = type_name(value)
        if actual != typ:
            raise ValidationError(
                f"table {self.name!r}: One or more parameter values were invalid: Type mismatch "
                f"for key {attr} expected: {typ} actual: {actual}"
            )
        if typ in ("S", "B") and len(value) == 0:
            raise ValidationError(
                f"table {self.name!r}: One or more parameter values are not valid. The "
                f"AttributeValue for a key attribute cannot contain an empty string value. Key: {attr}"
            )

    def _key_arg(self, key: Any, what: str = "key") -> dict[str, Any]:
        """A caller's key, normalised; anything but a mapping with string names is refused here,
        before it can fail as a built-in error further in."""
        if not isinstance(key, Mapping):
            raise ValidationError(
                f"table {self.name!r}: {what} must be a dict like "
                f"{{{self.pk_name!r}: ...}}, got {type(key).__name__}"
            )
        return normalize_item(dict(key))

    def _item_arg(self, item: Any) -> dict[str, Any]:
        if not isinstance(item, Mapping):
            raise ValidationError(f"table {self.name!r}: item must be a dict, got {type(item).__name__}")
        return normalize_item(dict(item))

    def key_of(self, item: Mapping[str, Any]) -> dict[str, Any]:
        key = {self.pk_name: item.get(self.pk_name)}
        if self.sk_name:
            key[self.sk_name] = item.get(self.sk_name)
        return key

    def _encode_key(self, key: Mapping[str, Any]) -> tuple[bytes, bytes]:
        if not isinstance(key, Mapping):
            raise ValidationError(f"table {self.name!r}: key must be a dict, got {type(key).__name__}")
        extra = set(key) - set(self.key_attributes)
        if extra:
            raise ValidationError(
                f"table {self.name!r}: The provided key element does not match the schema: "
                f"unexpected attribute(s) {sorted(extra)}; the key is {list(self.key_attributes)}"
            )
        pv = normalize(key.get(self.pk_name))
        self._check_key_value(self.pk_name, self.pk_type, pv)
        skb = b""
        if self.sk_name:
            sv = normalize(key.get(self.sk_name))
            assert self.sk_type is not None
            self._check_key_value(self.sk_name, self.sk_type, sv)
            skb = sort_key_bytes(sv)
        return sort_key_bytes(pv), skb

    def _encode_normalized_key(self, item: Mapping[str, Any]) -> tuple[bytes, bytes]:
        """Key bytes of an item that ``normalize`` has already walked (a put's new item)."""
        pv = item.get(self.pk_name)
        if type(pv) is not str or not pv or self.pk_type != "S":
            self._check_key_value(self.pk_name, self.pk_type, pv)
        skb = b""
        if self.sk_name:
            sv = item.get(self.sk_name)
            assert self.sk_type is not None
            self._check_key_value(self.sk_name, self.sk_type, sv)
            skb = sort_key_bytes(sv)
        return sort_key_bytes(pv), skb

    @staticmethod
    def _encode(item: Mapping[str, Any]) -> bytes:
        return dump_avs(serialize_item(item))  # type: ignore[arg-type]

    @staticmethod
    def _decode(raw: bytes | None) -> dict[str, Any] | None:
        return None if raw is None else deserialize_item(load_avs(raw))

    def _encode_sized(self, item: dict[str, Any]) -> tuple[bytes, int, dict[str, Any]]:
        """The stored bytes, DynamoDB size and attribute values of an item, from one walk;
        refuses over 400 KB. The attribute values give the change record its keys."""
        avs, size = encode_item(item)
        self._refuse_size(size)
        return dump_avs(avs), size, avs

    def _check_size(self, item: Mapping[str, Any]) -> int:
        size = item_size(item)  # type: ignore[arg-type]
        self._refuse_size(size)
        return size

    def _refuse_size(self, size: int) -> None:
        if size > MAX_ITEM_BYTES:
            raise SizeLimitExceeded(
                f"table {self.name!r}: Item size has exceeded the maximum allowed size: "
                f"{size} bytes > 400 KB; store large values in the lake and keep their key"
            )

    # -- change stream
    def _emit(
        self,
        txn: ItemTxn,
        old: dict[str, Any] | None,
        new: dict[str, Any] | None,
        old_raw: bytes | None = None,
        new_raw: bytes | None = None,
        new_size: int | None = None,
        new_avs: dict[str, Any] | None = None,
    ) -> None:
        """Append the change record. The images are the stored DynamoDB JSON, spliced in as
        bytes: serialising an item again for its stream record would double the cost of a write.
        (Storing the whole DynamoDB Streams record instead, ready for the handler, was tried:
        the parse saved in the poller cost less than the 60 % larger rows cost to store.)"""
        event = b"INSERT" if old is None else (b"REMOVE" if new is None else b"MODIFY")
        pk_name = self.pk_name
        if new_avs is not None:
            pk_av = new_avs[pk_name]
            key_av = {pk_name: pk_av}
            if self.sk_name:
                key_av[self.sk_name] = new_avs[self.sk_name]
        else:
            key_av = serialize_item(self.key_of(new if new is not None else old))  # type: ignore[arg-type]
            pk_av = key_av[pk_name]
        if self._simple_key:  # the common key: its size and text directly
            pk_s = pk_av["S"]
            size = self._pk_size + (len(pk_s) if pk_s.isascii() else len(pk_s.encode()))
            # The shard is chosen from this text; it must stay what json.dumps made of it.
            pk_text = '{"S": ' + _quote(pk_s) + "}"
        else:
            size = item_size(self.key_of(new if new is not None else old))  # type: ignore[arg-type]
            pk_text = json.dumps(pk_av)
        head = changes.head(event, _dumps(key_av))
        if new is not None and self._new_view:
            head += changes.NEW + (new_raw or self._encode(new))
            size += new_size if new_size is not None else item_size(new)
        if old is not None and self._old_view:
            head += changes.OLD + (old_raw or self._encode(old))
            size += item_size(old)
        shard = 0 if self.stream_shards == 1 else shard_for(pk_text, self.stream_shards)
        txn.log_add(self.log, shard, pk_text, changes.finish(head, size), self.env.clock.time())
        txn.after_commit(self.log, self._notify)

    # -- single-item writes
    def _write(
        self,
        key: Mapping[str, Any],
        compute: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Read, compute, write and emit in one transaction (updates and deletes)."""
        pkb, skb = self._encode_key(key)

        def run(txn: ItemTxn) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
            old_raw = txn.item_get(self.name, pkb, skb, lock=True)
            old = self._decode(old_raw)
            new = compute(old)
            new_raw = None
            new_size = None
            new_avs = None
            if new is None:
                if old is not None:
                    txn.item_delete(self.name, pkb, skb)
            else:
                new_raw, new_size, new_avs = self._encode_sized(new)  # every write sizes, once
                _store(txn, self.name, pkb, skb, new_raw, created=old is None)
            if self.stream_view is not None and old != new:
                self._emit(txn, old, new, old_raw, new_raw, new_size, new_avs)
            return old, new

        return self.env.state.transaction(run)

    def _notify(self) -> None:
        self.env.signals.notify(self.log)

    def _condition(self, condition: str | None, names: Any, values: Any, item: dict[str, Any] | None) -> None:
        if condition is not None and not check_condition(condition, item, names, values):
            raise ConditionalCheckFailed(item=item)

    def put(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
        return_values: str = "NONE",
    ) -> dict[str, Any] | None:
        """PutItem. ``return_values="ALL_OLD"`` returns the replaced item.

        The hottest call of most pipelines, so everything that does not need the old item
        (validation, encoding, the key) happens before the transaction, and the transaction
        itself is one read, one write and the change record."""
        if type(item) is not dict:
            if not isinstance(item, Mapping):
                raise ValidationError(f"table {self.name!r}: item must be a dict, got {type(item).__name__}")
            item = dict(item)
        if return_values != "NONE":
            _check_return(return_values, ("NONE", "ALL_OLD"))
        if condition is not None or names is not None or values is not None:
            validate_condition_placeholders(condition, names, values)
        new, avs, size = prepare_item(item)
        if size > MAX_ITEM_BYTES:
            self._refuse_size(size)
        pv = new.get(self.pk_name)
        if self._simple_key and type(pv) is str and pv:
            pkb, skb = pv.encode(), b""
        else:
            pkb, skb = self._encode_normalized_key(new)
        raw = _dumps(avs)
        # Most puts create an item. When the condition holds for a missing item, the insert
        # goes first and tells whether there was one: a new item costs no read.
        if condition is None:
            insert_first = True
        else:
            on_missing = condition_on_missing(condition)
            if on_missing is not None:
                insert_first = on_missing
            else:
                try:
                    insert_first = check_condition(condition, None, names, values)
                except ValidationError:  # an ExpressionError too
                    # The condition cannot be judged on no item: judge it on the real one,
                    # inside the transaction, which reports whatever error is the true one.
                    insert_first = False
        txn = self.env.state.current()
        if txn is not None:  # inside a caller's transaction (an atomic handler): join it
            old = self._put(txn, pkb, skb, raw, new, avs, size, condition, names, values, insert_first)
        else:
            args = (pkb, skb, raw, new, avs, size, condition, names, values, insert_first)
            old = self.env.state.transaction(lambda t: self._put(t, *args))
        return old if return_values == "ALL_OLD" else None

    def _put(
        self,
        txn: ItemTxn,
        pkb: bytes,
        skb: bytes,
        raw: bytes,
        new: dict[str, Any],
        avs: dict[str, Any],
        size: int,
        condition: str | None,
        names: dict[str, str] | None,
        values: dict[str, Any] | None,
        insert_first: bool,
    ) -> dict[str, Any] | None:
        """A put's transaction: one insert for a new item; read, check, write for an old one."""
        name = self.name
        if insert_first and txn.item_insert(name, pkb, skb, raw):
            if self._insert_record:
                # The commonest change record (a new item, a string key, one shard), written
                # with the least work; _emit is the general form of the same record.
                pk_av = avs[self.pk_name]
                pk_s = pk_av["S"]
                if pk_s.isascii():
                    txn.log_add(
                        self.log,
                        0,
                        '{"S": ' + _quote(pk_s) + "}",
                        changes.INSERT
                        % (self._insert_head, _dumps(pk_av), raw, self._pk_size + len(pk_s) + size),
                        self.env.clock.time(),
                    )
                    txn.after_commit(self.log, self._notify)
                    return None
            old_raw = old = None
        else:
            old_raw = txn.item_get(name, pkb, skb, lock=True)
            old = None if old_raw is None else self._decode(old_raw)
            if condition is not None and not check_condition(condition, old, names, values):
                raise ConditionalCheckFailed(item=old)
            _store(txn, name, pkb, skb, raw, created=old is None)
        if self.stream_view is not None and old != new:
            self._emit(txn, old, new, old_raw, raw, size, avs)
        return old

    def update(
        self,
        key: Mapping[str, Any],
        update: str,
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
        return_values: str = "NONE",
    ) -> dict[str, Any] | None:
        """UpdateItem (creates the item when missing, as DynamoDB does)."""
        _check_return(return_values, ("NONE", "ALL_OLD", "ALL_NEW", "UPDATED_OLD", "UPDATED_NEW"))
        validate_placeholders([update, condition], names, values, ["update", "condition"])
        key = self._key_arg(key)

        def compute(old: dict[str, Any] | None) -> dict[str, Any]:
            self._condition(condition, names, values, old)
            base = dict(old) if old is not None else dict(key)
            return apply_update(
                update, base, names, values, key_attributes=self.key_attributes, item_exists=old is not None
            )

        old, new = self._write(key, compute)
        return _returned(return_values, old, new, update, names)

    def delete(
        self,
        key: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
        return_values: str = "NONE",
    ) -> dict[str, Any] | None:
        _check_return(return_values, ("NONE", "ALL_OLD"))
        validate_placeholders([condition], names, values)
        key = self._key_arg(key)

        def compute(old: dict[str, Any] | None) -> None:
            self._condition(condition, names, values, old)
            return None

        old, _ = self._write(key, compute)
        return old if return_values == "ALL_OLD" else None

    # -- reads
    def get(
        self, key: Mapping[str, Any], *, projection: str | None = None, names: dict[str, str] | None = None
    ) -> dict[str, Any] | None:
        """GetItem; always strongly consistent (the state backend is)."""
        key = self._key_arg(key)
        if projection is not None or names is not None:
            validate_placeholders([projection], names, None, ["projection"])
        pkb, skb = self._encode_key(key)
        item = self._decode(
            self.env.state.transaction(lambda t: t.item_get(self.name, pkb, skb), readonly=True)
        )
        if item is not None and projection:
            item = project(item, parse_projection(projection, names))
        return item

    def query(
        self,
        key_condition: str,
        *,
        values: dict[str, Any] | None = None,
        names: dict[str, str] | None = None,
        filter: str | None = None,
        limit: int | None = None,
        start_key: Mapping[str, Any] | None = None,
        forward: bool = True,
        projection: str | None = None,
    ) -> Page:
        """Query one partition; ``limit`` counts items read before the filter, as DynamoDB."""
        _check_limit(limit)
        validate_placeholders(
            [key_condition, filter, projection], names, values, ["condition", "condition", "projection"]
        )
        kc = parse_key_condition(key_condition, names, values, self.pk_name, self.sk_name, self.sk_type)
        pkey = {self.pk_name: kc.partition_value}
        self._check_key_value(self.pk_name, self.pk_type, normalize(kc.partition_value))
        pkb = sort_key_bytes(normalize(kc.partition_value))
        after = None
        if start_key is not None:
            sk = self._key_arg(start_key, "start_key")
            if self.sk_name is None or sk.get(self.pk_name) != kc.partition_value:
                raise ValidationError(f"table {self.name!r}: start_key does not match the query")
            after = self._encode_key(sk)[1]
        paths = parse_projection(projection, names) if projection else None
        items: list[dict[str, Any]] = []
        scanned = 0
        nbytes = 0
        last: bytes | None = None
        done = False
        while not done:
            chunk = min(limit - scanned, 1000) if limit else 1000
            rows = self.env.state.transaction(
                functools.partial(
                    _item_range, table=self.name, pk=pkb, after=after, forward=forward, limit=chunk
                ),
                readonly=True,
            )
            if len(rows) < chunk:
                done = True
            for skb, raw in rows:
                after = skb
                item = self._decode(raw)
                assert item is not None
                if self.sk_name and not kc.matches_sort(item.get(self.sk_name)):
                    continue
                scanned += 1
                nbytes += len(raw)
                last = skb
                if filter is None or check_condition(filter, item, names, values):
                    items.append(project(item, paths) if paths else item)
                if (limit and scanned >= limit) or nbytes >= PAGE_BYTES:
                    done = True
                    break
        last_key = None
        if last is not None and ((limit and scanned >= limit) or nbytes >= PAGE_BYTES):
            last_key = dict(pkey)
            if self.sk_name:
                src = next((i for i in [self._decode(r) for s, r in rows if s == last]), None)
                if src is not None:
                    last_key[self.sk_name] = src[self.sk_name]
        return Page(items, last_key, len(items), scanned)

    def scan(
        self,
        *,
        filter: str | None = None,
        values: dict[str, Any] | None = None,
        names: dict[str, str] | None = None,
        limit: int | None = None,
        start_key: Mapping[str, Any] | None = None,
        segment: int | None = None,
        total_segments: int | None = None,
        projection: str | None = None,
    ) -> Page:
        _check_limit(limit)
        if (segment is None) != (total_segments is None):
            raise ValidationError("segment and total_segments go together")
        if total_segments is not None:
            if type(total_segments) is not int or not 1 <= total_segments <= 1_000_000:
                raise ValidationError(
                    f"total_segments must be an integer 1-1000000, got {show(total_segments)}"
                )
            if type(segment) is not int or not 0 <= segment < total_segments:
                raise ValidationError(
                    f"segment must be an integer 0..{total_segments - 1}, got {show(segment)}"
                )
        validate_placeholders([filter, projection], names, values, ["condition", "projection"])
        after = self._encode_key(self._key_arg(start_key, "start_key")) if start_key else None
        paths = parse_projection(projection, names) if projection else None
        items: list[dict[str, Any]] = []
        scanned = 0
        nbytes = 0
        last_key = None
        while True:
            chunk = min(limit - scanned, 1000) if limit else 1000
            rows = self.env.state.transaction(
                functools.partial(_item_scan, table=self.name, after=after, limit=chunk), readonly=True
            )
            for pkb, skb, raw in rows:
                after = (pkb, skb)
                if (
                    total_segments
                    and int.from_bytes(hashlib.md5(pkb).digest()[:4], "big") % total_segments != segment
                ):
                    continue
                item = self._decode(raw)
                assert item is not None
                scanned += 1
                nbytes += len(raw)
                if filter is None or check_condition(filter, item, names, values):
                    items.append(project(item, paths) if paths else item)
                if (limit and scanned >= limit) or nbytes >= PAGE_BYTES:
                    last_key = self.key_of(item)
                    return Page(items, last_key, len(items), scanned)
            if len(rows) < chunk:
                return Page(items, None, len(items), scanned)

    def items(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item (scan with pagination followed)."""
        start = None
        while True:
            page = self.scan(start_key=start, **kwargs)
            yield from page.items
            if page.last_key is None:
                return
            start = page.last_key

    def count(self) -> int:
        return sum(1 for _ in self.items())

    # -- transaction actions
    def tx_put(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> Action:
        new = self._item_arg(item)
        return Action(
            self, "Put", self.key_of(new), item=new, condition=condition, names=names, values=values
        )

    def tx_update(
        self,
        key: Mapping[str, Any],
        update: str,
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> Action:
        return Action(
            self,
            "Update",
            self._key_arg(key),
            update=update,
            condition=condition,
            names=names,
            values=values,
        )

    def tx_delete(
        self,
        key: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> Action:
        return Action(self, "Delete", self._key_arg(key), condition=condition, names=names, values=values)

    def tx_check(
        self,
        key: Mapping[str, Any],
        condition: str,
        *,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> Action:
        return Action(
            self, "ConditionCheck", self._key_arg(key), condition=condition, names=names, values=values
        )

    def __repr__(self) -> str:
        return f"Table({self.name!r}, key={self.pk_name!r}, sort_key={self.sk_name!r})"


_quote = json.encoder.encode_basestring_ascii
_dumps = orjson.dumps
_NEW_VIEWS = ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")
_OLD_VIEWS = ("OLD_IMAGE", "NEW_AND_OLD_IMAGES")


def _item_range(
    txn: ItemTxn, *, table: str, pk: bytes, after: bytes | None, forward: bool, limit: int
) -> list[tuple[bytes, bytes]]:
    return txn.item_range(table, pk, after=after, forward=forward, limit=limit)


def _item_scan(
    txn: ItemTxn, *, table: str, after: tuple[bytes, bytes] | None, limit: int
) -> list[tuple[bytes, bytes, bytes]]:
    return txn.item_scan(table, after=after, limit=limit)


def _store(txn: ItemTxn, table: str, pkb: bytes, skb: bytes, raw: bytes, *, created: bool) -> None:
    """Write an item computed from its old version. One computed from its absence must not
    overwrite a row a concurrent writer created meanwhile (a read of a missing row locks
    nothing on PostgreSQL): the transaction is run again to compute from that row."""
    if not created:
        txn.item_put(table, pkb, skb, raw)
    elif not txn.item_insert(table, pkb, skb, raw):
        raise RetryTransaction(f"item of {table!r} created concurrently")


def _encodable(text: str) -> bool:
    """Whether ``text`` is valid Unicode (a lone surrogate is not, and no store can keep it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_limit(limit: Any) -> None:
    if limit is not None and (type(limit) is not int or limit < 1):
        raise ValidationError(f"limit must be a positive integer, got {show(limit)}")


def _check_return(value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValidationError(f"return_values must be one of {', '.join(allowed)}, got {show(value)}")


def _returned(
    mode: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    update: str = "",
    names: dict[str, str] | None = None,
) -> dict[str, Any] | None:
    if mode == "NONE":
        return None
    if mode == "ALL_OLD":
        return old
    if mode == "ALL_NEW":
        return new
    # UPDATED_*: the paths the expression names, not whole top-level attributes.
    src = old if mode == "UPDATED_OLD" else new
    return project(src, updated_paths(update, names, old)) if src else {}


def _fingerprint(actions: Sequence[Action]) -> str:
    """The request a token stands for, type-exact: every value in DynamoDB JSON (``{"B": ...}``
    is not ``{"S": ...}``, ``{"N": "1"}`` is not ``{"S": "1"}``), numbers and sets in their
    canonical text and order, maps by sorted key. Two requests DynamoDB would call the same
    get the same fingerprint, and any other request a different one, so a token reused for
    another request is refused instead of silently skipped."""
    doc = [
        [
            a.table.name,
            a.kind,
            _tagged(a.key, "key"),
            None if a.item is None else _tagged(a.item, "item"),
            a.update,
            a.condition,
            _names(a.names),
            None if a.values is None else _tagged(a.values, "values"),
        ]
        for a in actions
    ]
    text = json.dumps(doc, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _names(names: Mapping[str, str] | None) -> dict[str, str] | None:
    if names is not None and (
        not isinstance(names, Mapping) or not all(type(k) is str and type(v) is str for k, v in names.items())
    ):
        raise ValidationError("names must be a dict of #placeholder -> attribute name, all strings")
    return None if names is None else dict(names)


def _tagged(values: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A map of values as DynamoDB JSON, normalised first (an ``int`` and the ``Decimal`` it
    equals are one number); a value DynamoDB cannot hold is a ValidationError naming it."""
    if not isinstance(values, Mapping):
        raise ValidationError(f"{what} must be a dict, got {type(values).__name__}")
    return {str(k): to_dynamo(normalize(v, f"{what} {k}")) for k, v in values.items()}


def transact(env: Env, actions: Sequence[Action], token: str | None = None) -> None:
    """TransactWriteItems: all actions or none, with an idempotency token kept 10 minutes."""
    if not isinstance(actions, Sequence) or not 1 <= len(actions) <= MAX_TRANSACT_ACTIONS:
        raise ValidationError(
            f"transact takes 1-{MAX_TRANSACT_ACTIONS} actions, got "
            f"{len(actions) if isinstance(actions, Sequence) else show(actions)}"
        )
    if token is not None and (
        not isinstance(token, str) or not 1 <= len(token) <= 36 or not _encodable(token) or "\x00" in token
    ):
        raise ValidationError(
            f"token must be a string of 1-36 valid Unicode characters other than NUL, got {show(token)}"
        )
    seen: set[tuple[str, bytes, bytes]] = set()
    encoded = []
    for i, a in enumerate(actions):
        if not isinstance(a, Action):
            raise ValidationError(f"action {i} is not built by table.tx_put/tx_update/tx_delete/tx_check")
        if a.table.env.state is not env.state:
            raise ValidationError(f"action {i}: table {a.table.name!r} belongs to another state backend")
        validate_placeholders([a.update, a.condition], a.names, a.values, ["update", "condition"])
        pkb, skb = a.table._encode_key(a.key)
        if a.item is not None:
            a.table._check_size(a.item)
        ident = (a.table.name, pkb, skb)
        if ident in seen:
            raise ValidationError(
                "Transaction request cannot include multiple operations on one item "
                f"(action {i}, table {a.table.name!r}, key {a.key})"
            )
        seen.add(ident)
        encoded.append((a, pkb, skb))
    fingerprint = _fingerprint(actions) if token is not None else ""

    def run(txn: StateTxn) -> bool:
        now = env.clock.time()
        raw = None
        if token is not None:
            raw = txn.kv_get("txtoken", token, lock=True)
            if raw is not None:
                prev = json.loads(raw)
                if prev["exp"] > now:
                    if prev["h"] != fingerprint:
                        raise IdempotentParameterMismatch(
                            f"token {token!r} was used within the last 10 minutes for a different transaction"
                        )
                    return False
        olds = []
        reasons = []
        failed = False
        for a, pkb, skb in encoded:
            old = a.table._decode(txn.item_get(a.table.name, pkb, skb, lock=True))
            olds.append(old)
            ok = a.condition is None or check_condition(a.condition, old, a.names, a.values)
            if ok:
                reasons.append(CancellationReason(None))
            else:
                failed = True
                reasons.append(
                    CancellationReason("ConditionalCheckFailed", "The conditional request failed", old)
                )
        if failed:
            raise TransactionCanceled(reasons)
        news: list[dict[str, Any] | None] = []
        for (a, _, _), old in zip(encoded, olds, strict=True):
            if a.kind == "Put":
                news.append(a.item)
            elif a.kind == "Update":
                assert a.update is not None
                base = dict(old) if old is not None else dict(a.key)
                new = apply_update(
                    a.update,
                    base,
                    a.names,
                    a.values,
                    key_attributes=a.table.key_attributes,
                    item_exists=old is not None,
                )
                a.table._check_size(new)
                news.append(new)
            elif a.kind == "Delete":
                news.append(None)
            else:
                news.append(old)
        for (a, pkb, skb), old, written in zip(encoded, olds, news, strict=True):
            if a.kind == "ConditionCheck":
                continue
            if written is None:
                if old is not None:
                    txn.item_delete(a.table.name, pkb, skb)
            else:
                _store(txn, a.table.name, pkb, skb, a.table._encode(written), created=old is None)
            if a.table.stream_view is not None and old != written:
                a.table._emit(txn, old, written)
        if token is not None:
            doc = json.dumps({"h": fingerprint, "exp": now + TOKEN_TTL_S})
            if raw is not None:
                txn.kv_put("txtoken", token, doc)  # an expired token, locked above
            elif not txn.kv_insert("txtoken", token, doc):
                # A concurrent request with this token committed first: decide again from it.
                raise RetryTransaction(f"token {token!r} used concurrently")
        return True

    env.state.transaction(run)
