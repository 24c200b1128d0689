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
            return _size(self.expr, node, self.operand(item, node.arg))
        raise AssertionError(node)


_ORDERED = frozenset(("S", "N", "B"))


def _size(expr: str, node: Size, v: Any) -> Any:
    if v is MISSING or v is None or isinstance(v, (bool, Decimal)):
        if isinstance(node.arg, Val):  # a constant of the request: the request is wrong
            raise _operand_error(expr, "size", v, node.pos)
        return MISSING  # an attribute of the item: the comparison is false
    return Decimal(len(v))


def _operand_error(expr: str, op: str, v: Any, pos: int = 0) -> ExpressionError:
    return ExpressionError(
        "Invalid ConditionExpression: Incorrect operand type for operator or function; "
        f"operator or function: {op}, operand type: {type_name(v)}",
        expr,
        pos,
    )


def _check_ordered(expr: str, op: str, node: Any, v: Any) -> None:
    """A constant compared by order must be a string, number or binary: DynamoDB refuses the
    request (a value from the item of another type only makes the comparison false)."""
    if isinstance(node, Val) and type_name(v) not in _ORDERED:
        raise _operand_error(expr, op, v, node.pos)


def _check_bounds(expr: str, node: Between, lo: Any, hi: Any) -> None:
    """BETWEEN with both bounds constants: they must be one type, and in order."""
    if isinstance(node.lo, Val) and isinstance(node.hi, Val):
        if type_name(lo) != type_name(hi):
            raise ExpressionError(
                "Invalid ConditionExpression: The BETWEEN operator requires same data type for lower "
                f"and upper bounds; lower bound operand: {type_name(lo)}, "
                f"upper bound operand: {type_name(hi)}",
                expr,
                node.lo.pos,
            )
        if order_key(lo) > order_key(hi):
            raise ExpressionError(
                "Invalid ConditionExpression: The BETWEEN operator requires upper bound to be "
                f"greater than or equal to lower bound; lower operand: {lo}, upper operand: {hi}",
                expr,
                node.lo.pos,
            )


def _check_literal_bounds(expr: str, node: Between, vals: dict[str, Any]) -> None:
    lo, hi = node.lo.name, node.hi.name
    _check_bounds(expr, node, normalize(vals[lo], lo), normalize(vals[hi], hi))


def _check_prefix(expr: str, node: Any, v: Any) -> None:
    if isinstance(node, Val) and not isinstance(v, (str, bytes)):
        raise _operand_error(expr, "begins_with", v, node.pos)


def _check_type_name(expr: str, node: Func, arg: Any) -> None:
    if not isinstance(arg, str) or arg not in TYPES:
        raise ExpressionError(
            f"Invalid ConditionExpression: Invalid attribute type name found; type: {arg}, "
            f"valid types: {{{', '.join(TYPES)}}}",
            expr,
            node.pos,
        )


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
            return all(_eval(env, item, a) for a in node.args)
        if node.op == "OR":
            return any(_eval(env, item, a) for a in node.args)
        return not _eval(env, item, node.args[0])
    if isinstance(node, Cmp):
        a, b = env.operand(item, node.left), env.operand(item, node.right)
        if node.op in _ORDER:
            _check_ordered(env.expr, node.op, node.left, a)
            _check_ordered(env.expr, node.op, node.right, b)
        return compare(node.op, a, b)
    if isinstance(node, Between):
        x, lo, hi = (env.operand(item, n) for n in (node.x, node.lo, node.hi))
        for n, v in ((node.x, x), (node.lo, lo), (node.hi, hi)):
            _check_ordered(env.expr, "BETWEEN", n, v)
        _check_bounds(env.expr, node, lo, hi)
        if any(v is MISSING for v in (x, lo, hi)) or not (comparable(x, lo) and comparable(x, hi)):
            return False
        # Bounds from the item in the wrong order select nothing, as in DynamoDB.
        return order_key(lo) <= order_key(x) <= order_key(hi)
    if isinstance(node, In):
        x = env.operand(item, node.x)
        return x is not MISSING and any(compare("=", x, env.operand(item, o)) for o in node.options)
    if isinstance(node, Func):
        target = env.operand(item, node.args[0])
        if node.name == "attribute_exists":
            return target is not MISSING
        if node.name == "attribute_not_exists":
            return target is MISSING
        arg = env.operand(item, node.args[1])
        if node.name == "attribute_type":
            _check_type_name(env.expr, node, arg)
            return target is not MISSING and type_name(target) == arg
        if node.name == "begins_with":
            _check_prefix(env.expr, node.args[0], target)
            _check_prefix(env.expr, node.args[1], arg)
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
            # Only a scalar can be an element; a list or map is never one (and is unhashable).
            return isinstance(arg, (str, bytes, Decimal)) and arg in target
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
        if node.op == "NOT":
            first = _on_missing(node.args[0])
            return None if first is None else not first
        decisive = node.op == "OR"  # the value that ends the chain: later operands are not evaluated
        for arg in node.args:
            v = _on_missing(arg)
            if v is None:
                return None
            if v is decisive:
                return v
        return not decisive
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
        inner = _compile_operand(node.arg)

        def size(item: Any, lz: _Lazy) -> Any:
            return _size(lz.expr, node, inner(item, lz))

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
            _check_ordered(lz.expr, op, left, a)
            _check_ordered(lz.expr, op, right, b)
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
            if len(parts) == 2:
                a_, b_ = parts
                return lambda item, lz: a_(item, lz) and b_(item, lz)
            return lambda item, lz: all(p(item, lz) for p in parts)
        if node.op == "OR":
            if len(parts) == 2:
                a_, b_ = parts
                return lambda item, lz: a_(item, lz) or b_(item, lz)
            return lambda item, lz: any(p(item, lz) for p in parts)
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


# -- checks of the request's constants
# (placeholder, True when the rule only asks for a string, number or binary, the check of
# the normalised value); a placeholder None: the check takes all of the normalised values.
ValueCheck = tuple[str | None, bool, Callable[[Any], None]]


@functools.lru_cache(maxsize=4096)
def value_checks(expression: str) -> tuple[ValueCheck, ...]:
    """The rules the condition puts on its constants (``:v``), as checks of one request's
    values. DynamoDB validates every constant before it reads the item, so a condition
    decided early (``attribute_not_exists(id) OR n < :v`` on a new item) still refuses
    ``:v = [1]``; evaluation raises the same errors when it reaches them."""
    tree, _, _ = parse_condition(expression)
    checks: list[ValueCheck] = []

    def on_value(node: Any, ordered: bool, check: Callable[[Any], None]) -> None:
        if isinstance(node, Val):
            checks.append((node.name, ordered, check))

    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Bool):
            stack.extend(node.args)
        elif isinstance(node, Cmp):
            if node.op in _ORDER:
                for side in (node.left, node.right):
                    on_value(side, True, functools.partial(_check_ordered, expression, node.op, side))
            stack += [node.left, node.right]
        elif isinstance(node, Size):
            on_value(node.arg, False, functools.partial(_size, expression, node))
            stack.append(node.arg)
        elif isinstance(node, Between):
            for n in (node.x, node.lo, node.hi):
                on_value(n, True, functools.partial(_check_ordered, expression, "BETWEEN", n))
            if isinstance(node.lo, Val) and isinstance(node.hi, Val):
                checks.append((None, False, functools.partial(_check_literal_bounds, expression, node)))
            stack += [node.x, node.lo, node.hi]
        elif isinstance(node, In):
            stack += [node.x, *node.options]
        elif isinstance(node, Func):
            if node.name == "begins_with":
                for arg in node.args:
                    on_value(arg, False, functools.partial(_check_prefix, expression, arg))
            elif node.name == "attribute_type":
                on_value(node.args[1], False, functools.partial(_check_type_name, expression, node))
            stack += node.args
    return tuple(checks)
