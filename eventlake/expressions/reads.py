"""The read side: key conditions of a query and projections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ExpressionError, ValidationError
from .conditions import MISSING, Env, comparable, compare, order_key, path_key
from .parser import Between, Bool, Cmp, Func, In, Path, Val, parse_condition, parse_projection_paths
from .updates import copy_value, document_order
from .values import type_name


@dataclass(frozen=True)
class KeyCondition:
    partition_value: Any
    sort_op: str | None = None
    sort_args: tuple[Any, ...] = ()

    def matches_sort(self, value: Any) -> bool:
        if self.sort_op is None:
            return True
        if value is None:
            return False
        if self.sort_op == "BETWEEN":
            lo, hi = self.sort_args
            return comparable(value, lo) and order_key(lo) <= order_key(value) <= order_key(hi)
        if self.sort_op == "begins_with":
            (prefix,) = self.sort_args
            if isinstance(value, str) and isinstance(prefix, str):
                return value.startswith(prefix)
            return isinstance(value, bytes) and isinstance(prefix, bytes) and value.startswith(prefix)
        return compare(self.sort_op, value, self.sort_args[0])


def parse_key_condition(
    expression: str,
    names: dict[str, str] | None,
    values: dict[str, Any] | None,
    partition_key: str,
    sort_key: str | None,
    sort_key_type: str | None = None,
) -> KeyCondition:
    """``sort_key_type`` (``"S"``, ``"N"`` or ``"B"``): the sort key condition's values must
    have it, as DynamoDB requires of every key condition."""
    tree, _, _ = parse_condition(expression, "KeyConditionExpression")
    env = Env(expression, names, values)
    parts = list(tree.args) if isinstance(tree, Bool) and tree.op == "AND" else [tree]
    if len(parts) > 2 or any(isinstance(p, Bool) for p in parts):
        raise ValidationError(
            "Invalid KeyConditionExpression: only AND of a partition key condition "
            "and one sort key condition is allowed"
        )
    pk_value: Any = MISSING
    sort: KeyCondition | None = None
    for node in parts:
        if isinstance(node, Func) and node.name == "begins_with":
            if not isinstance(node.args[0], Path) or not isinstance(node.args[1], Val):
                raise ValidationError(
                    "Invalid KeyConditionExpression: begins_with takes the sort key and a value: "
                    "begins_with(sk, :prefix)"
                )
            attr = path_key(env, node.args[0])
            if attr != (sort_key,):
                raise ValidationError(f"Query key condition not supported: begins_with on {attr[0]}")
            if sort is not None:
                raise ValidationError("KeyConditionExpressions must only contain one condition per key")
            prefix = env.value(node.args[1])
            _check_sort_value(prefix, sort_key_type, "begins_with")
            if type_name(prefix) == "N":
                raise ValidationError(
                    "Invalid KeyConditionExpression: Incorrect operand type for operator or function; "
                    "operator or function: begins_with, operand type: N"
                )
            sort = KeyCondition(None, "begins_with", (prefix,))
            continue
        if isinstance(node, Between):
            if not isinstance(node.x, Path) or not all(isinstance(b, Val) for b in (node.lo, node.hi)):
                raise ValidationError(
                    "Invalid KeyConditionExpression: BETWEEN takes the sort key and two values: "
                    "sk BETWEEN :lo AND :hi"
                )
            attr = path_key(env, node.x)
            if attr != (sort_key,):
                raise ValidationError(f"Query key condition not supported: BETWEEN on {attr[0]}")
            if sort is not None:
                raise ValidationError("KeyConditionExpressions must only contain one condition per key")
            lo, hi = env.value(node.lo), env.value(node.hi)
            _check_sort_value(lo, sort_key_type, "BETWEEN")
            _check_sort_value(hi, sort_key_type, "BETWEEN")
            if type_name(lo) != type_name(hi):
                raise ExpressionError(
                    "Invalid KeyConditionExpression: The BETWEEN operator requires same data type for "
                    f"lower and upper bounds; lower bound operand: {type_name(lo)}, "
                    f"upper bound operand: {type_name(hi)}"
                )
            if order_key(lo) > order_key(hi):
                raise ExpressionError(
                    "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be "
                    f"greater than or equal to lower bound; lower operand: {lo!r}, upper operand: {hi!r}"
                )
            sort = KeyCondition(None, "BETWEEN", (lo, hi))
            continue
        if isinstance(node, In):
            raise ValidationError("Invalid operator used in KeyConditionExpression: IN")
        if not isinstance(node, Cmp) or not isinstance(node.left, Path) or not isinstance(node.right, Val):
            raise ValidationError(
                "Invalid KeyConditionExpression: use key = :value, key < :value, ..., BETWEEN or begins_with"
            )
        attr = path_key(env, node.left)
        if attr == (partition_key,):
            if node.op != "=":
                raise ValidationError("Query key condition not supported: the partition key needs '='")
            if pk_value is not MISSING:
                raise ValidationError("KeyConditionExpressions must only contain one condition per key")
            pk_value = env.value(node.right)
        elif attr == (sort_key,):
            if node.op == "<>":
                raise ValidationError("Invalid operator used in KeyConditionExpression: <>")
            if sort is not None:
                raise ValidationError("KeyConditionExpressions must only contain one condition per key")
            bound = env.value(node.right)
            _check_sort_value(bound, sort_key_type, node.op)
            sort = KeyCondition(None, node.op, (bound,))
        else:
            raise ValidationError(
                f"Query condition missed key schema element: {partition_key}"
                if attr[0] != sort_key
                else f"unknown key attribute {attr[0]}"
            )
    if pk_value is MISSING:
        raise ValidationError(f"Query condition missed key schema element: {partition_key}")
    if sort is None:
        return KeyCondition(pk_value)
    return KeyCondition(pk_value, sort.sort_op, sort.sort_args)


def _check_sort_value(v: Any, want: str | None, op: str) -> None:
    t = type_name(v)
    if t not in ("S", "N", "B") or (want is not None and t != want):
        raise ValidationError(
            "One or more parameter values were invalid: Condition parameter type does not match "
            f"schema type; operator: {op}, value type: {t}"
            + (f", sort key type: {want}" if want else ", a sort key is S, N or B")
        )


def parse_projection(expression: str, names: dict[str, str] | None) -> list[tuple[Any, ...]]:
    """The projection's document paths; two that overlap (``a, a`` or ``a, a.b``) or conflict
    (``a[0], a.b``) are refused, as DynamoDB refuses them."""
    paths, _ = parse_projection_paths(expression)
    env = Env(expression, names, None)
    keys = [path_key(env, p) for p in paths]
    if len(keys) > 1:
        _check_paths_apart(keys, "ProjectionExpression")
        keys.sort(key=document_order)  # a list's elements come back in their order
    return keys


def _check_paths_apart(keys: list[tuple[Any, ...]], what: str) -> None:
    seen: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for key in sorted(keys, key=len):
        for n in range(1, len(key) + 1):
            other = seen.get(key[:n])
            if other is not None:
                raise ValidationError(
                    f"Invalid {what}: Two document paths overlap with each other; must remove or "
                    f"rewrite one of these paths; path one: {_shown(other)}, path two: {_shown(key)}"
                )
        seen[key] = key
    parents: dict[tuple[Any, ...], tuple[type, tuple[Any, ...]]] = {}
    for key in keys:
        for n in range(1, len(key)):
            kind = type(key[n])
            prev = parents.setdefault(key[:n], (kind, key))
            if prev[0] is not kind:
                raise ValidationError(
                    f"Invalid {what}: Two document paths conflict with each other; must remove or "
                    f"rewrite one of these paths; path one: {_shown(prev[1])}, path two: {_shown(key)}"
                )


def _shown(key: tuple[Any, ...]) -> str:
    return "[" + ", ".join(f"[{x}]" if isinstance(x, int) else str(x) for x in key) + "]"


def project(item: dict[str, Any], paths: list[tuple[Any, ...]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in paths:
        src: Any = item
        ok = True
        for part in key:
            if isinstance(part, int):
                ok = isinstance(src, list) and part < len(src)
                src = src[part] if ok else None
            else:
                ok = isinstance(src, dict) and part in src
                src = src[part] if ok else None
            if not ok:
                break
        if not ok:
            continue
        dst: Any = out
        for i, part in enumerate(key):
            last = i == len(key) - 1
            nxt_container: Any = [] if (not last and isinstance(key[i + 1], int)) else {}
            if isinstance(dst, list):
                if last:
                    dst.append(src)
                else:
                    dst.append(nxt_container)
                    dst = dst[-1]
            elif last:
                dst[part] = copy_value(src)
            else:
                dst = dst.setdefault(part, nxt_container)
    return out
