"""Placeholder checks: DynamoDB refuses unused and undefined placeholders in a request."""

from __future__ import annotations

import functools
from typing import Any

from ..errors import ExpressionError, ValidationError
from .parser import used_placeholders


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
    if key in _VALID:
        return
    _validate_placeholders(
        key[0],
        key[1],
        tuple(sorted(names or ())),
        tuple(sorted(values or ())),
    )
    if len(_VALID) >= 4096:
        _VALID.clear()
    _VALID.add(key)


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
        validate_placeholders([condition], names, values)
        if len(_VALID_ONE) >= 4096:
            _VALID_ONE.clear()
        _VALID_ONE.add(key)


_VALID_ONE: set[tuple[Any, ...]] = set()


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
