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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import ConditionalCheckFailed, ValidationError
from ..expressions import (
    apply_update,
    check_condition,
    condition_on_missing,
    item_size,
    normalize,
    parse_key_condition,
    parse_projection,
    prepare_item,
    project,
    serialize_item,
    sort_key_bytes,
    updated_paths,
    validate_condition_placeholders,
    validate_placeholders,
)
from ..ports.items import ItemTxn
from ..ports.kv import KvTxn
from . import changes
from .env import Env, check_name
from .stream import shard_for, show
from .table_items import KEY_TYPES as KEY_TYPES
from .table_items import MAX_ITEM_BYTES, _key_spec, _store
from .transactions import MAX_TRANSACT_ACTIONS as MAX_TRANSACT_ACTIONS
from .transactions import TOKEN_TTL_S as TOKEN_TTL_S
from .transactions import Action as Action
from .transactions import TableActions
from .transactions import transact as transact

PAGE_BYTES = 1024 * 1024
VIEW_TYPES = {
    "keys_only": "KEYS_ONLY",
    "new_image": "NEW_IMAGE",
    "old_image": "OLD_IMAGE",
    "new_and_old_images": "NEW_AND_OLD_IMAGES",
}


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


class Table(TableActions):
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
    # -- keys and item checks: KeySchema (table_items.py); transaction actions: TableActions

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
        bytes: serialising an item again for its stream record would double the cost of a write."""
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
