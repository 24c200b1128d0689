"""Placeholder checks: DynamoDB refuses unused and undefined placeholders in a request."""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

from ..errors import ExpressionError, ValidationError
from .conditions import value_checks
from .parser import used_placeholders
from .values import _INT_LIMIT, normalize

_LABELS = {
    "update": "UpdateExpression",
    "projection": "ProjectionExpression",
    "condition": "ConditionExpression",
}


def validate_placeholders(
    expressions: list[str | None],
    names: dict[str, str] | None,
    values: dict[str, Any] | None,
    kinds: list[str] | None = None,
) -> None:
    """DynamoDB refuses unused and undefined placeholders across all expressions of a request."""
    _expression_types(expressions)
    if names is not None and type(names) is not dict and not isinstance(names, dict):
        raise ValidationError("names must be a dict of #placeholder -> attribute name")
    if values is not None and type(values) is not dict and not isinstance(values, dict):
        raise ValidationError("values must be a dict of :placeholder -> value")
    # A request repeats the same expressions and placeholder names call after call: remember
    # the combinations that passed, keyed as given, so a repeat is one set lookup.
    key = (
        tuple(expressions),
        tuple(kinds) if kinds else None,
        tuple(names) if names else None,
        tuple(values) if values else None,
    )
    if key not in _VALID:
        _check_map_keys(names, values)
        _check_empty(expressions, kinds)
        _validate_placeholders(
            key[0],
            key[1],
            tuple(sorted(names or ())),
            tuple(sorted(values or ())),
        )
        if len(_VALID) >= 4096:
            _VALID.clear()
        _VALID.add(key)
    if names:
        _check_names(names)
    if values:
        _check_values(expressions, kinds, values)


_VALID: set[tuple[Any, ...]] = set()


def validate_condition_placeholders(
    condition: str | None, names: dict[str, str] | None, values: dict[str, Any] | None
) -> None:
    """:func:`validate_placeholders` for a request with one condition (a put or a delete),
    which asks it on every call: the combination seen before is one set lookup."""
    if condition is not None and type(condition) is not str:
        _expression_types([condition])
    if (names is not None and type(names) is not dict) or (values is not None and type(values) is not dict):
        validate_placeholders([condition], names, values)  # the checks with their errors
        return
    key = (condition, tuple(names) if names else None, tuple(values) if values else None)
    if key not in _VALID_ONE:
        validate_placeholders([condition], names, values)  # includes the checks below
        if len(_VALID_ONE) >= 4096:
            _VALID_ONE.clear()
        _VALID_ONE.add(key)
        return
    if names:
        _check_names(names)
    if values:
        _check_values((condition,), ("condition",), values)


_VALID_ONE: set[tuple[Any, ...]] = set()


def _check_map_keys(names: dict[Any, Any] | None, values: dict[Any, Any] | None) -> None:
    for k in names or ():
        if type(k) is not str or not k.startswith("#") or len(k) < 2:
            raise ValidationError(
                f"ExpressionAttributeNames contains invalid key: {k!r}; keys are strings like '#name'"
            )
    for k in values or ():
        if type(k) is not str or not k.startswith(":") or len(k) < 2:
            raise ValidationError(
                f"ExpressionAttributeValues contains invalid key: {k!r}; keys are strings like ':value'"
            )


def _check_names(names: dict[str, Any]) -> None:
    """The attribute names a request's placeholders stand for (checked per request: the
    cached checks cover only the keys)."""
    for k, v in names.items():
        if type(v) is not str or not v:
            raise ValidationError(
                f"ExpressionAttributeNames contains invalid value: {v!r} for key {k}; "
                "an attribute name is a non-empty string"
            )


def _check_values(expressions: Any, kinds: Any, values: dict[str, Any]) -> None:
    """Every value of the request is valid, and each condition's constants have the types
    their operators take, whether or not evaluation reaches them. On every conditional put,
    so the common values (ASCII strings, integers) are recognised without normalising."""
    for k, v in values.items():
        t = type(v)
        if not ((t is str and v.isascii()) or (t is int and -_INT_LIMIT < v < _INT_LIMIT)):
            normalize(v, k)
    for i, e in enumerate(expressions):
        if e and (kinds[i] == "condition" if kinds else not _looks_like_update(e)):
            for name, ordered, check in value_checks(e):
                if name is None:
                    check(values)
                    continue
                v = values[name]
                t = type(v)
                if ordered and (t is str or t is int or t is Decimal or t is bytes):
                    continue  # a string, number or binary: what an ordering operator takes
                check(normalize(v, name))


def _check_empty(expressions: Any, kinds: Any) -> None:
    for i, e in enumerate(expressions):
        if e is not None and not e.strip():
            label = _LABELS.get(kinds[i] if kinds else "condition", "expression")
            raise ExpressionError(f"Invalid {label}: The expression can not be empty;", e, 0)


def _expression_types(expressions: list[Any]) -> None:
    for e in expressions:
        if e is not None and not isinstance(e, str):
            raise ValidationError(
                f'an expression must be a string (e.g. "attribute_not_exists(id)"), got '
                f"{type(e).__name__} {e!r:.60}"
            )


@functools.lru_cache(maxsize=4096)
def _validate_placeholders(
    expressions: tuple[str | None, ...],
    kinds: tuple[str, ...] | None,
    names: tuple[str, ...],
    values: tuple[str, ...],
) -> None:
    used_n: set[str] = set()
    used_v: set[str] = set()
    for i, e in enumerate(expressions):
        if not e:
            continue
        kind = kinds[i] if kinds else ("update" if _looks_like_update(e) else "condition")
        n, v = used_placeholders(e, kind)
        used_n |= n
        used_v |= v
    unused_v = sorted(set(values) - used_v)
    if unused_v:
        raise ValidationError(
            "Value provided in ExpressionAttributeValues unused in expressions: "
            f"keys: {{{', '.join(unused_v)}}}"
        )
    unused_n = sorted(set(names) - used_n)
    if unused_n:
        raise ValidationError(
            "Value provided in ExpressionAttributeNames unused in expressions: "
            f"keys: {{{', '.join(unused_n)}}}"
        )
    missing_v = sorted(used_v - set(values))
    if missing_v:
        raise ExpressionError(
            "An expression attribute value used in expression is not defined; "
            f"attribute value: {missing_v[0]}"
        )
    missing_n = sorted(used_n - set(names))
    if missing_n:
        raise ExpressionError(
            "An expression attribute name used in the document path is not defined; "
            f"attribute name: {missing_n[0]}"
        )


def _looks_like_update(e: str) -> bool:
    head = e.lstrip().split(None, 1)[0].upper() if e.strip() else ""
    return head in ("SET", "REMOVE", "ADD", "DELETE")
