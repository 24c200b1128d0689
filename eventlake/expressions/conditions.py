"""Condition and filter expressions: evaluation against an item.

Two evaluators give the same answers: a walk of the parsed tree (the reference, and the one
the rarer forms use) and closures compiled once per expression for the common forms, since a
condition runs once per conditional write and once per item a filter reads.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ..errors import ExpressionError
from .parser import Between, Bool, Cmp, Func, In, Path, Size, Val, parse_condition
from .values import TYPES, normalize, type_name

MISSING: Any = object()


class Env:
    __slots__ = ("expr", "names", "values")

    def __init__(self, expr: str, names: dict[str, str] | None, values: dict[str, Any] | None) -> None:
        self.expr = expr
        self.names = names or {}
        self.values = values or {}

    def name(self, part: str, pos: int) -> str:
        if part.startswith("#"):
            if part not in self.names:
                raise ExpressionError(
                    f"An expression attribute name used in the document path is not defined; "
                    f"attribute name: {part}",
                    self.expr,
                    pos,
                )
            return self.names[part]
        return part

    def value(self, v: Val) -> Any:
        if v.name not in self.values:
            raise ExpressionError(
                f"An expression attribute value used in expression is not defined; attribute value: {v.name}",
                self.expr,
                v.pos,
            )
        return normalize(self.values[v.name], v.name)

    def resolve(self, item: dict[str, Any] | None, path: Path) -> Any:
        cur: Any = item if item is not None else MISSING
        for part in path.parts:
            if cur is MISSING:
                return MISSING
            if isinstance(part, int):
                cur = cur[part] if isinstance(cur, list) and part < len(cur) else MISSING
            else:
                key = self.name(part, path.pos)
                cur = cur.get(key, MISSING) if isinstance(cur, dict) else MISSING
        return cur

    def operand(self, item: dict[str, Any] | None, node: Any) -> Any:
        if isinstance(node, Val):
            return self.value(node)
        if isinstance(node, Path):
            return self.resolve(item, node)
        if isinstance(node, Size):
            v = self.resolve(item, node.path)
            if v is MISSING or isinstance(v, (bool, Decimal)) or v is None:
                return MISSING
            return Decimal(len(v))
        raise AssertionError(node)


def comparable(a: Any, b: Any) -> bool:
    ta, tb = type_name(a), type_name(b)
    return ta == tb and ta in ("S", "N", "B")


def order_key(v: Any) -> Any:
    return v.encode("utf-8") if isinstance(v, str) else v


def compare(op: str, a: Any, b: Any) -> bool:
    if a is MISSING or b is MISSING:
        return op == "<>"
    if op == "=":
        return type_name(a) == type_name(b) and a == b
    if op == "<>":
        return not (type_name(a) == type_name(b) and a == b)
    if not comparable(a, b):
        return False
    ka, kb = order_key(a), order_key(b)
    return {"<": ka < kb, "<=": ka <= kb, ">": ka > kb, ">=": ka >= kb}[op]


def _eval(env: Env, item: dict[str, Any] | None, node: Any) -> bool:
    if isinstance(node, Bool):
        if node.op == "AND":
            return _eval(env, item, node.args[0]) and _eval(env, item, node.args[1])
        if node.op == "OR":
            return _eval(env, item, node.args[0]) or _eval(env, item, node.args[1])
        return not _eval(env, item, node.args[0])
    if isinstance(node, Cmp):
        return compare(node.op, env.operand(item, node.left), env.operand(item, node.right))
    if isinstance(node, Between):
        x, lo, hi = (env.operand(item, n) for n in (node.x, node.lo, node.hi))
        if MISSING in (x, lo, hi) or not (comparable(x, lo) and comparable(x, hi)):
            return False
        if order_key(lo) > order_key(hi):
            raise ExpressionError(
                "Invalid ConditionExpression: The BETWEEN operator requires upper bound to be "
                f"greater than or equal to lower bound; lower operand: {lo}, upper operand: {hi}",
                env.expr,
                0,
            )
        return order_key(lo) <= order_key(x) <= order_key(hi)
    if isinstance(node, In):
        x = env.operand(item, node.x)
        return x is not MISSING and any(compare("=", x, env.operand(item, o)) for o in node.options)
    if isinstance(node, Func):
        target = env.resolve(item, node.args[0])
        if node.name == "attribute_exists":
            return target is not MISSING
        if node.name == "attribute_not_exists":
            return target is MISSING
        arg = env.operand(item, node.args[1])
        if node.name == "attribute_type":
            if not isinstance(arg, str) or arg not in TYPES:
                raise ExpressionError(
                    f"Invalid ConditionExpression: Invalid attribute type name found; type: {arg}, "
                    f"valid types: {{{', '.join(TYPES)}}}",
                    env.expr,
                    node.pos,
                )
            return target is not MISSING and type_name(target) == arg
        if target is MISSING or arg is MISSING:
            return False
        if node.name == "begins_with":
            same = (isinstance(target, str) and isinstance(arg, str)) or (
                isinstance(target, bytes) and isinstance(arg, bytes)
            )
            return same and target.startswith(arg)
        # contains
        if isinstance(target, str):
            return isinstance(arg, str) and arg in target
        if isinstance(target, (set, frozenset)):
            return arg in target
        if isinstance(target, list):
            return any(compare("=", x, arg) for x in target)
        if isinstance(target, bytes):
            return isinstance(arg, bytes) and arg in target
        return False
    raise AssertionError(node)


def check_condition(
    expression: str,
    item: dict[str, Any] | None,
    names: dict[str, str] | None,
    values: dict[str, Any] | None,
    what: str = "ConditionExpression",
) -> bool:
    """Evaluate a condition or filter expression against an item (``None``: no item)."""
    return _compiled(expression, what)(item, names, values)


def evaluate_condition(
    expression: str,
    item: dict[str, Any] | None,
    names: dict[str, str] | None,
    values: dict[str, Any] | None,
    what: str = "ConditionExpression",
) -> bool:
    """The reference evaluator: a walk of the parsed tree. :func:`check_condition` runs the
    same semantics compiled into closures; the tests hold the two to the same answers."""
    tree, _, _ = parse_condition(expression, what)
    return _eval(Env(expression, names, values), item, tree)


@functools.lru_cache(maxsize=4096)
def condition_on_missing(expression: str, what: str = "ConditionExpression") -> bool | None:
    """The condition's value for a missing item when it is fixed by the expression alone, else
    None. A put asks on every call whether the condition holds for a missing item (then it
    inserts first); for ``attribute_not_exists(id) OR ...`` the answer needs no evaluation.
    Only parts that touch no placeholder value are decided here, in the reference's order
    of evaluation, so an invalid value raises exactly when the reference would."""
    tree, _, _ = parse_condition(expression, what)
    return _on_missing(tree)


def _on_missing(node: Any) -> bool | None:
    if isinstance(node, Func) and node.name in ("attribute_exists", "attribute_not_exists"):
        return node.name == "attribute_not_exists"
    if isinstance(node, Cmp) and isinstance(node.left, Path) and isinstance(node.right, Path):
        return node.op == "<>"  # a missing attribute equals nothing
    if isinstance(node, Bool):
        first = _on_missing(node.args[0])
        if node.op == "NOT":
            return None if first is None else not first
        if first is None:
            return None
        if (node.op == "OR" and first) or (node.op == "AND" and not first):
            return first  # the second operand is never evaluated
        return _on_missing(node.args[1])
    return None


# -- compiled conditions
# Each closure takes ``(item, lazy)``; the Env is only made when a placeholder must be looked up.
Compiled = Any


@functools.lru_cache(maxsize=4096)
def _compiled(expression: str, what: str) -> Callable[[Any, Any, Any], bool]:
    tree, _, _ = parse_condition(expression, what)
    test = _compile_bool(tree)

    def run(item: dict[str, Any] | None, names: dict[str, str] | None, values: dict[str, Any] | None) -> bool:
        return test(item, _Lazy(expression, names, values))

    return run


class _Lazy:
    """The placeholders of one evaluation, resolved as they are needed."""

    __slots__ = ("expr", "names", "values")

    def __init__(self, expr: str, names: dict[str, str] | None, values: dict[str, Any] | None) -> None:
        self.expr = expr
        self.names = names
        self.values = values

    def env(self) -> Env:
        return Env(self.expr, self.names, self.values)


def _compile_operand(node: Any) -> Callable[[Any, _Lazy], Any]:
    if isinstance(node, Val):
        name = node.name

        def value(item: Any, lz: _Lazy) -> Any:
            values = lz.values
            if values is not None and name in values:
                return normalize(values[name], name)
            return lz.env().value(node)  # raises: not defined

        return value
    if isinstance(node, Path):
        return _compile_path(node)
    if isinstance(node, Size):
        path = _compile_path(node.path)

        def size(item: Any, lz: _Lazy) -> Any:
            v = path(item, lz)
            if v is MISSING or isinstance(v, (bool, Decimal)) or v is None:
                return MISSING
            return Decimal(len(v))

        return size
    raise AssertionError(node)


def _compile_path(path: Path) -> Callable[[Any, _Lazy], Any]:
    parts = path.parts
    if len(parts) == 1 and isinstance(parts[0], str) and not parts[0].startswith("#"):
        attr = parts[0]

        def top(item: Any, lz: _Lazy) -> Any:
            return MISSING if item is None else item.get(attr, MISSING)

        return top

    def nested(item: Any, lz: _Lazy) -> Any:
        return lz.env().resolve(item, path)

    return nested


_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _compile_compare(op: str, left: Any, right: Any) -> Callable[[Any, _Lazy], bool]:
    lf, rf = _compile_operand(left), _compile_operand(right)
    if op in _ORDER:
        order = _ORDER[op]

        def ordered(item: Any, lz: _Lazy) -> bool:
            a, b = lf(item, lz), rf(item, lz)
            t = type(a)
            if t is type(b) and (t is Decimal or t is str):
                # UTF-8 preserves code point order, so str order is DynamoDB's byte order.
                return order(a, b)
            return compare(op, a, b)

        return ordered
    if op == "=":

        def equal(item: Any, lz: _Lazy) -> bool:
            a, b = lf(item, lz), rf(item, lz)
            t = type(a)
            if t is type(b) and (t is Decimal or t is str):
                return a == b
            return compare(op, a, b)

        return equal

    def other(item: Any, lz: _Lazy) -> bool:
        return compare(op, lf(item, lz), rf(item, lz))

    return other


def _compile_bool(node: Any) -> Callable[[Any, _Lazy], bool]:
    if isinstance(node, Bool):
        parts = [_compile_bool(a) for a in node.args]
        if node.op == "AND":
            a_, b_ = parts
            return lambda item, lz: a_(item, lz) and b_(item, lz)
        if node.op == "OR":
            a_, b_ = parts
            return lambda item, lz: a_(item, lz) or b_(item, lz)
        (inner,) = parts
        return lambda item, lz: not inner(item, lz)
    if isinstance(node, Cmp):
        return _compile_compare(node.op, node.left, node.right)
    if isinstance(node, Func) and node.name in ("attribute_exists", "attribute_not_exists"):
        target = _compile_path(node.args[0])
        if node.name == "attribute_exists":
            return lambda item, lz: target(item, lz) is not MISSING
        return lambda item, lz: target(item, lz) is MISSING
    # The rarer forms evaluate their node with the reference walk, which raises the same
    # errors at the same moment.
    return lambda item, lz: _eval(lz.env(), item, node)


def path_key(env: Env, p: Path) -> tuple[Any, ...]:
    return tuple(x if isinstance(x, int) else env.name(x, p.pos) for x in p.parts)
