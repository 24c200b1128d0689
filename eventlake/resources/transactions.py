"""TransactWriteItems across tables, and the client request tokens that make it idempotent.

A transaction reads every item it names under a row lock, checks every condition, and only
then writes, so a failed condition cancels the whole transaction with a reason per action.
A token is kept with the fingerprint of the request it was used for: the same request again
within the window is a no-op, another request with it is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from ..errors import (
    CancellationReason,
    IdempotentParameterMismatch,
    TransactionCanceled,
    ValidationError,
)
from ..expressions import apply_update, check_condition, normalize, to_dynamo, validate_placeholders
from ..ports.items import ItemTxn
from ..ports.state import RetryTransaction, StateTxn
from .env import Env
from .stream import show
from .table_items import KeySchema, _store

MAX_TRANSACT_ACTIONS = 100
TOKEN_TTL_S = 600.0


class TxTable(Protocol):
    """What a transaction needs of a table: its key schema and codecs, where it lives, and its
    change stream. A Protocol, so that this module does not import the Table that imports it."""

    env: Env
    name: str
    stream_view: str | None
    key_attributes: tuple[str, ...]

    def _encode_key(self, key: Mapping[str, Any]) -> tuple[bytes, bytes]: ...
    def _check_size(self, item: Mapping[str, Any]) -> int: ...
    def _encode(self, item: Mapping[str, Any]) -> bytes: ...
    def _decode(self, raw: bytes | None) -> dict[str, Any] | None: ...
    def _emit(self, txn: ItemTxn, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None: ...


@dataclass
class Action:
    """One action of :meth:`App.transact` (build them with ``table.tx_put`` and friends)."""

    table: TxTable
    kind: str  # Put | Update | Delete | ConditionCheck
    key: dict[str, Any]
    item: dict[str, Any] | None = None
    update: str | None = None
    condition: str | None = None
    names: dict[str, str] | None = None
    values: dict[str, Any] | None = None
    fingerprint: str = field(default="", repr=False)


class TableActions(KeySchema):
    """The actions a table builds for :func:`transact`, checked as its own writes are.
    Only :class:`~eventlake.resources.table.Table` derives from it, so ``self`` is a Table."""

    def _action(self, kind: str, key: dict[str, Any], **fields: Any) -> Action:
        # Only a Table derives from this class, and a Table is a TxTable.
        return Action(cast(TxTable, self), kind, key, **fields)

    def tx_put(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> Action:
        new = self._item_arg(item)
        return self._action(
            "Put",
            self.key_of(new),
            item=new,
            condition=condition,
            names=names,
            values=values,
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
        return self._action(
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
        return self._action(
            "Delete",
            self._key_arg(key),
            condition=condition,
            names=names,
            values=values,
        )

    def tx_check(
        self,
        key: Mapping[str, Any],
        condition: str,
        *,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> Action:
        return self._action(
            "ConditionCheck",
            self._key_arg(key),
            condition=condition,
            names=names,
            values=values,
        )


def _encodable(text: str) -> bool:
    """Whether ``text`` is valid Unicode (a lone surrogate is not, and no store can keep it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
