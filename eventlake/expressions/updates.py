"""Update expressions: SET, REMOVE, ADD and DELETE applied to a copy of the item."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..errors import ValidationError
from .conditions import MISSING, Env, path_key
from .parser import Arith, Func, Path, parse_update
from .values import _CTX, MAX_DEPTH, normalize, type_name


def _update_value(env: Env, item: dict[str, Any], node: Any) -> Any:
    if isinstance(node, Arith):
        a, b = _update_value(env, item, node.left), _update_value(env, item, node.right)
        if not isinstance(a, Decimal) or not isinstance(b, Decimal) or isinstance(a, bool):
            raise ValidationError(
                "Invalid UpdateExpression: Incorrect operand type for operator or function; "
                f"operator: {node.op}, operand type: {type_name(a) if a is not MISSING else 'missing'}"
            )
        return normalize(_CTX.add(a, b) if node.op == "+" else _CTX.subtract(a, b))
    if isinstance(node, Func):
        if node.name == "if_not_exists":
            cur = env.resolve(item, node.args[0])
            return cur if cur is not MISSING else _update_value(env, item, node.args[1])
        a, b = _update_value(env, item, node.args[0]), _update_value(env, item, node.args[1])
        if not isinstance(a, list) or not isinstance(b, list):
            raise ValidationError(
                "Invalid UpdateExpression: Incorrect operand type for operator or function; "
                "operator or function: list_append, operand type: "
                f"{type_name(a) if a is not MISSING else 'missing'}"
            )
        return a + b
    v = env.operand(item, node)
    if v is MISSING:
        raise ValidationError(
            "The provided expression refers to an attribute that does not exist in the item"
        )
    return v


def _container(item: dict[str, Any], key: tuple[Any, ...], expr: str) -> Any:
    cur: Any = item
    for part in key[:-1]:
        nxt = (
            cur[part]
            if isinstance(cur, list) and isinstance(part, int) and part < len(cur)
            else (cur.get(part) if isinstance(cur, dict) and isinstance(part, str) else None)
        )
        if not isinstance(nxt, (dict, list)):
            raise ValidationError("The document path provided in the update expression is invalid for update")
        cur = nxt
    last = key[-1]
    if (isinstance(last, int) and not isinstance(cur, list)) or (
        isinstance(last, str) and not isinstance(cur, dict)
    ):
        raise ValidationError("The document path provided in the update expression is invalid for update")
    return cur


def copy_value(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: copy_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [copy_value(x) for x in v]
    if isinstance(v, set):
        return set(v)
    return v


def apply_update(
    expression: str,
    item: dict[str, Any],
    names: dict[str, str] | None,
    values: dict[str, Any] | None,
    key_attributes: tuple[str, ...] = (),
    item_exists: bool = True,
) -> dict[str, Any]:
    """Apply an update expression; returns a new item and never mutates the input. Every
    right-hand side is evaluated against the item as it was before the update, as DynamoDB does.
    ``item_exists=False`` (the update creates the item): a REMOVE of a path that cannot exist
    is ignored, as DynamoDB ignores it; on an existing item it is a ValidationError."""
    clauses, _, _ = parse_update(expression)
    env = Env(expression, names, values)
    planned: list[tuple[str, tuple[Any, ...], Any]] = []
    for kind, actions in clauses.items():
        for action in actions:
            p = action[0]
            key = path_key(env, p)
            if key[0] in key_attributes:
                raise ValidationError(f"Cannot update attribute {key[0]}. This attribute is part of the key")
            if kind == "SET":
                planned.append(("SET", key, _update_value(env, item, action[1])))
            elif kind == "REMOVE":
                planned.append(("REMOVE", key, None))
            else:
                planned.append((kind, key, env.operand(item, action[1])))
    keys = [k for _, k, _ in planned]
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            n = min(len(a), len(b))
            if a[:n] == b[:n]:
                raise ValidationError(
                    "Invalid UpdateExpression: Two document paths overlap with each other; must remove "
                    f"or rewrite one of these paths; path one: {_show(a)}, path two: {_show(b)}"
                )
    new = copy_value(item)
    removals: list[tuple[Any, ...]] = []
    # Elements set beyond a list's end are appended in element-number order.
    planned.sort(key=_element_order)
    for kind, key, value in planned:
        if kind == "REMOVE":
            removals.append(key)
            continue
        cont = _container(new, key, expression)
        last = key[-1]
        cur = (
            (cont[last] if last < len(cont) else MISSING)
            if isinstance(last, int)
            else cont.get(last, MISSING)
        )
        if kind == "SET":
            if isinstance(last, int) and last >= len(cont):
                cont.append(value)
            else:
                cont[last] = value
        elif kind == "ADD":
            if isinstance(value, Decimal) and not isinstance(value, bool):
                if cur is MISSING:
                    result: Any = value
                elif isinstance(cur, Decimal) and not isinstance(cur, bool):
                    result = normalize(_CTX.add(cur, value))
                else:
                    raise ValidationError(
                        "Invalid UpdateExpression: Incorrect operand type for operator or function; "
                        f"operator: ADD, operand type: {type_name(cur)}"
                    )
            elif isinstance(value, set):
                if cur is MISSING:
                    result = set(value)
                elif isinstance(cur, set) and type_name(cur) == type_name(value):
                    result = cur | value
                else:
                    raise ValidationError("An operand in the update expression has an incorrect data type")
            else:
                raise ValidationError(
                    "Invalid UpdateExpression: Incorrect operand type for operator or function; "
                    f"operator: ADD, operand type: {type_name(value)}"
                )
            _assign(cont, last, result)
        else:  # DELETE
            if not isinstance(value, set):
                raise ValidationError(
                    "Invalid UpdateExpression: Incorrect operand type for operator or function; "
                    f"operator: DELETE, operand type: {type_name(value)}"
                )
            if cur is MISSING:
                continue
            if not isinstance(cur, set) or type_name(cur) != type_name(value):
                raise ValidationError("An operand in the update expression has an incorrect data type")
            rest = cur - value
            if rest:
                _assign(cont, last, rest)
            else:
                del cont[last]
    # List elements go last to first, so earlier indexes stay valid.
    for key in sorted(removals, key=lambda k: [(-x if isinstance(x, int) else 0) for x in k]):
        try:
            cont = _container(new, key, expression)
        except ValidationError:
            if item_exists:
                raise
            continue
        last = key[-1]
        if isinstance(last, int):
            if last < len(cont):
                del cont[last]
        else:
            cont.pop(last, None)
    for top in {key[0] for kind, key, _ in planned if kind != "REMOVE"}:
        value = new.get(top)
        if isinstance(value, (dict, list)) and _nesting(value) > MAX_ATTRIBUTE_NESTING:
            raise ValidationError(
                f"The update would nest attribute {top} more than {MAX_ATTRIBUTE_NESTING} levels of "
                f"lists and maps, beyond DynamoDB's limit of {MAX_DEPTH} (an item's put refuses it too)"
            )
    return new


# An attribute's value sits one level under the item, so it may hold one level fewer.
MAX_ATTRIBUTE_NESTING = MAX_DEPTH - 1


def _nesting(value: Any) -> int:
    """Levels of lists and maps in a value, without recursion (a value may be deep)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, level = stack.pop()
        if level > deepest:
            deepest = level
        children = v.values() if isinstance(v, dict) else v
        stack.extend((c, level + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def _element_order(action: tuple[str, tuple[Any, ...], Any]) -> tuple[tuple[int, Any], ...]:
    return document_order(action[1])


def document_order(key: tuple[Any, ...]) -> tuple[tuple[int, Any], ...]:
    """Sorts document paths so that a list's elements come in element-number order (paths
    that do not overlap can only tie on a prefix with list indexes under one parent)."""
    return tuple((0, x) if isinstance(x, int) else (1, x) for x in key)


def updated_paths(
    expression: str, names: dict[str, str] | None, item: dict[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    """The document paths an update expression writes or removes: what ``UPDATED_OLD`` and
    ``UPDATED_NEW`` return. Given the item before the update, an element set beyond a
    list's end is named where it lands (appended, in element-number order)."""
    clauses, _, _ = parse_update(expression)
    env = Env(expression, names, None)
    keys = [path_key(env, action[0]) for actions in clauses.values() for action in actions]
    if item is None or "SET" not in clauses:
        return sorted(keys, key=document_order)
    beyond: dict[tuple[Any, ...], list[int]] = {}
    for action in clauses["SET"]:
        key = path_key(env, action[0])
        if isinstance(key[-1], int):
            parent = env.resolve(item, Path(action[0].parts[:-1], action[0].pos))
            if isinstance(parent, list) and key[-1] >= len(parent):
                beyond.setdefault(key[:-1], []).append(key[-1])
    if not beyond:
        return keys
    landed: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for parent_key, indexes in beyond.items():
        size = len(env.resolve(item, Path(parent_key, 0)))
        for rank, index in enumerate(sorted(indexes)):
            landed[(*parent_key, index)] = (*parent_key, size + rank)
    return sorted((landed.get(k, k) for k in keys), key=document_order)


def _assign(cont: Any, last: Any, value: Any) -> None:
    if isinstance(last, int) and last >= len(cont):
        cont.append(value)
    else:
        cont[last] = value


def _show(key: tuple[Any, ...]) -> str:
    out = ""
    for k in key:
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else k)
    return out or f"[{', '.join(str(k) for k in key)}]"
