"""A table's items: its key schema, the checks and encodings of keys and items, the size limit.

:class:`KeySchema` is the part of :class:`~eventlake.resources.table.Table` that needs only
the key schema, so these checks read the same on every path that takes a key or an item
(writes, reads, transaction actions). The errors are DynamoDB's, word for word where
DynamoDB's callers match on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import SizeLimitExceeded, ValidationError
from ..expressions import (
    deserialize_item,
    dump_avs,
    encode_item,
    item_size,
    load_avs,
    normalize,
    normalize_item,
    serialize_item,
    sort_key_bytes,
    type_name,
)
from ..ports.items import ItemTxn
from ..ports.state import RetryTransaction

MAX_ITEM_BYTES = 400 * 1024
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


class KeySchema:
    """Key and item checks of a table, given its name and key schema."""

    name: str
    pk_name: str
    pk_type: str
    sk_name: str | None
    sk_type: str | None
    key_attributes: tuple[str, ...]

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


def _store(txn: ItemTxn, table: str, pkb: bytes, skb: bytes, raw: bytes, *, created: bool) -> None:
    """Write an item computed from its old version. One computed from its absence must not
    overwrite a row a concurrent writer created meanwhile (a read of a missing row locks
    nothing on PostgreSQL): the transaction is run again to compute from that row."""
    if not created:
        txn.item_put(table, pkb, skb, raw)
    elif not txn.item_insert(table, pkb, skb, raw):
        raise RetryTransaction(f"item of {table!r} created concurrently")
