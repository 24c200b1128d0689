"""The read side: key conditions of a query and projections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ValidationError
from .conditions import MISSING, Env, comparable, compare, order_key, path_key
from .parser import Between, Bool, Cmp, Func, Path, Val, parse_condition, parse_projection_paths
from .updates import copy_value


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
) -> KeyCondition:
    tree, _, _ = parse_condition(expression, "KeyConditionExpression")
    env = Env(expression, names, values)
    parts = [tree.args[0], tree.args[1]] if isinstance(tree, Bool) and tree.op == "AND" else [tree]
    if any(isinstance(p, Bool) for p in parts):
        raise ValidationError(
            "Invalid KeyConditionExpression: only AND of a partition key condition "
            "and one sort key condition is allowed"
        )
    pk_value: Any = MISSING
    sort: KeyCondition | None = None
    for node in parts:
        if isinstance(node, Func) and node.name == "begins_with":
            attr = path_key(env, node.args[0])
            if attr != (sort_key,):
                raise ValidationError(f"Query key condition not supported: begins_with on {attr[0]}")
            sort = KeyCondition(None, "begins_with", (env.operand(None, node.args[1]),))
            continue
        if isinstance(node, Between):
            attr = path_key(env, node.x)
            if attr != (sort_key,):
                raise ValidationError(f"Query key condition not supported: BETWEEN on {attr[0]}")
            sort = KeyCondition(None, "BETWEEN", (env.operand(None, node.lo), env.operand(None, node.hi)))
            continue
        if not isinstance(node, Cmp) or not isinstance(node.left, Path) or not isinstance(node.right, Val):
            raise ValidationError(
                "Invalid KeyConditionExpression: use key = :value, key < :value, ..., BETWEEN or begins_with"
            )
        attr = path_key(env, node.left)
        if attr == (partition_key,):
            if node.op != "=":
                raise ValidationError("Query key condition not supported: the partition key needs '='")
            pk_value = env.value(node.right)
        elif attr == (sort_key,):
            if node.op == "<>":
                raise ValidationError("Query key condition not supported: '<>' on the sort key")
            sort = KeyCondition(None, node.op, (env.value(node.right),))
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


def parse_projection(expression: str, names: dict[str, str] | None) -> list[tuple[Any, ...]]:
    paths, _ = parse_projection_paths(expression)
    env = Env(expression, names, None)
    return [path_key(env, p) for p in paths]


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
