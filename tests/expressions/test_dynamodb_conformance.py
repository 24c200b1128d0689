"""DynamoDB expression conformance: one table of cases per expression kind, run through a real
table (SQLite), each with DynamoDB's outcome - the result, or the exact eventlake error class
(``ExpressionError`` for a ValidationException about the expression, ``ValidationError`` for
one about the data or the request, ``ConditionalCheckFailed`` for a failed condition).

The cases follow the rules of the DynamoDB Developer Guide ("Condition and filter
expressions", "Update expressions", "Key condition expressions", "Projection expressions",
"Expression attribute names/values") and the UpdateItem/Query API reference, and the
behaviours that test suites run against real DynamoDB record where the guide is silent
(operand types of constants, BETWEEN bounds, function arguments, redundant parentheses,
REMOVE of invalid paths, UPDATED_NEW). docs/reference/dynamodb-conformance.md counts them.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from eventlake import App, ConditionalCheckFailed
from eventlake.errors import EventlakeError, ExpressionError, ValidationError
from eventlake.resources.table import Table

D = Decimal
V = ValidationError
X = ExpressionError
FAIL = ConditionalCheckFailed

ITEM: dict[str, Any] = {
    "id": "a",
    "n": D(5),
    "two": D(2),
    "s": "hello",
    "s2": "hellohi",
    "b": b"hi there",
    "l": [D(1), D(2), D(3)],
    "mp": {"a": D(1), "b": D(2), "c": {"d": "deep"}},
    "ss": {"x", "y"},
    "ns": {D(2), D(4), D(7)},
    "bs": {b"\x01"},
    "t": True,
    "nul": None,
    "lo": D(9),
    "hi": D(1),
    "e": ["hi", {D(1), D(2)}, [D(3), D(4)]],
    "Version": D(3),
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    root: Path = tmp_path_factory.mktemp("conformance")
    a = App("conformance", state_url=f"sqlite:///{root}/state.db", lake_url=f"file://{root}/lake")
    yield a
    a.close()


@pytest.fixture(scope="module")
def table(app: App) -> Table:
    t = app.table("items", key="id")
    t.put(ITEM)
    return t


@pytest.fixture(scope="module")
def sorted_table(app: App) -> Table:
    t = app.table("events", key="p", sort_key=("c", "N"))
    for c in range(1, 8):
        t.put({"p": "p", "c": c, "x": c * 10})
    return t


@pytest.fixture(scope="module")
def text_sorted_table(app: App) -> Table:
    t = app.table("names", key="p", sort_key="c")
    for c in ("a", "ab", "abc", "b", "ba"):
        t.put({"p": "p", "c": c})
    return t


def outcome(call: Any) -> Any:
    try:
        return call()
    except EventlakeError as e:
        return type(e)


# -- ConditionExpression (and the same grammar as FilterExpression) --------------------------
# (expression, names, values, True | FAIL | error class)
CONDITIONS: list[tuple[str, dict[str, str] | None, dict[str, Any] | None, Any]] = [
    # comparators on each orderable type; different types are unequal and unordered
    ("n = :v", None, {":v": 5}, True),
    ("n = :v", None, {":v": "5"}, FAIL),
    ("n <> :v", None, {":v": "5"}, True),
    ("n <> :v", None, {":v": 5}, FAIL),
    ("n < :v", None, {":v": 6}, True),
    ("n <= :v", None, {":v": 5}, True),
    ("n > :v", None, {":v": 5}, FAIL),
    ("n >= :v", None, {":v": 5}, True),
    ("s < :v", None, {":v": "help"}, True),
    ("s > :v", None, {":v": "hella"}, True),
    ("b < :v", None, {":v": b"hj"}, True),
    ("n < :v", None, {":v": "17"}, FAIL),
    ("n < two", None, None, FAIL),
    ("two < n", None, None, True),
    ("ss = :v", None, {":v": {"y", "x"}}, True),
    ("mp = :v", None, {":v": {"a": 1, "b": 2, "c": {"d": "deep"}}}, True),
    ("l = :v", None, {":v": [1, 2, 3]}, True),
    ("t = :v", None, {":v": True}, True),
    ("nul = :v", None, {":v": None}, True),
    # an absent attribute: never equal, never ordered, always <>
    ("absent = :v", None, {":v": 1}, FAIL),
    ("absent <> :v", None, {":v": 1}, True),
    ("absent < :v", None, {":v": 1}, FAIL),
    ("absent < absent2", None, None, FAIL),
    ("absent <> absent2", None, None, True),
    (":v < absent", None, {":v": "17"}, FAIL),
    # a constant of a type the operator cannot order is a request error, not a false condition
    ("n < :v", None, {":v": [1, 2]}, X),
    (":v < n", None, {":v": [1, 2]}, X),
    ("n >= :v", None, {":v": {"a": 1}}, X),
    ("n > :v", None, {":v": True}, X),
    ("n <= :v", None, {":v": None}, X),
    ("n < :v", None, {":v": {"x"}}, X),
    ("l < :v", None, {":v": 1}, FAIL),  # the wrong type from the item: false
    (":v < l", None, {":v": 1}, FAIL),
    # BETWEEN
    ("n BETWEEN :a AND :b", None, {":a": 0, ":b": 5}, True),
    ("n BETWEEN :a AND :b", None, {":a": 5, ":b": 5}, True),
    ("n BETWEEN :a AND :b", None, {":a": 6, ":b": 7}, FAIL),
    ("s BETWEEN :a AND :b", None, {":a": "aardvark", ":b": "zebra"}, True),
    ("b BETWEEN :a AND :b", None, {":a": b"a", ":b": b"z"}, True),
    ("n BETWEEN :a AND :b", None, {":a": "0", ":b": "9"}, FAIL),
    ("absent BETWEEN :a AND :b", None, {":a": 0, ":b": 9}, FAIL),
    ("n between two and lo", None, None, True),
    ("n BETWEEN lo AND hi", None, None, FAIL),  # bounds from the item out of order: false
    ("n BETWEEN two AND :v", None, {":v": 1}, FAIL),
    ("n BETWEEN :v AND two", None, {":v": 3}, FAIL),
    ("n BETWEEN two AND :v", None, {":v": "dog"}, FAIL),
    ("l BETWEEN :a AND :b", None, {":a": 0, ":b": 9}, FAIL),
    ("n BETWEEN :a AND :b", None, {":a": 9, ":b": 1}, X),  # constant bounds out of order
    ("n BETWEEN :a AND :b", None, {":a": 1, ":b": "z"}, X),  # constant bounds of two types
    ("n BETWEEN :a AND :b", None, {":a": [1], ":b": [2]}, X),
    ("n BETWEEN :a AND :b", None, {":a": True, ":b": True}, X),
    # IN
    ("n IN (:a, :b)", None, {":a": 1, ":b": 5}, True),
    ("s IN (:a)", None, {":a": "nope"}, FAIL),
    ("n IN (two, lo)", None, None, FAIL),
    ("ss IN (:a)", None, {":a": {"x", "y"}}, True),
    ("absent IN (:a)", None, {":a": 1}, FAIL),
    ("n IN (" + ", ".join(f":v{i}" for i in range(101)) + ")", None, {f":v{i}": i for i in range(101)}, X),
    # attribute_exists / attribute_not_exists
    ("attribute_exists(n)", None, None, True),
    ("attribute_exists(nul)", None, None, True),
    ("attribute_exists(absent)", None, None, FAIL),
    ("attribute_not_exists(absent)", None, None, True),
    ("attribute_exists(mp.c.d)", None, None, True),
    ("attribute_exists(l[2])", None, None, True),
    ("attribute_exists(l[3])", None, None, FAIL),
    ("attribute_exists(#n)", {"#n": "n"}, None, True),
    ("attribute_exists(:v)", None, {":v": 1}, X),  # needs a document path
    ("attribute_exists(n, s)", None, None, X),
    # attribute_type
    ("attribute_type(n, :t)", None, {":t": "N"}, True),
    ("attribute_type(ss, :t)", None, {":t": "SS"}, True),
    ("attribute_type(ns, :t)", None, {":t": "NS"}, True),
    ("attribute_type(bs, :t)", None, {":t": "BS"}, True),
    ("attribute_type(l, :t)", None, {":t": "L"}, True),
    ("attribute_type(mp, :t)", None, {":t": "M"}, True),
    ("attribute_type(t, :t)", None, {":t": "BOOL"}, True),
    ("attribute_type(nul, :t)", None, {":t": "NULL"}, True),
    ("attribute_type(b, :t)", None, {":t": "B"}, True),
    ("attribute_type(n, :t)", None, {":t": "S"}, FAIL),
    ("attribute_type(absent, :t)", None, {":t": "S"}, FAIL),
    ("attribute_type(:v, :t)", None, {":v": "x", ":t": "S"}, True),  # a value as first operand
    ("attribute_type(n, s)", None, None, X),  # the type must be a value
    ("attribute_type(n, :t)", None, {":t": "DOG"}, X),
    ("attribute_type(n, :t)", None, {":t": 1}, X),
    # begins_with
    ("begins_with(s, :v)", None, {":v": "hell"}, True),
    ("begins_with(s, :v)", None, {":v": "dog"}, FAIL),
    ("begins_with(b, :v)", None, {":v": b"hi"}, True),
    ("begins_with(s2, s)", None, None, True),  # two attributes
    ("begins_with(:v, s)", None, {":v": "hello world"}, True),  # a value first
    ("begins_with(n, :v)", None, {":v": "5"}, FAIL),  # the item's number: false
    ("begins_with(s, :v)", None, {":v": 2}, X),  # a number constant: refused
    ("begins_with(absent, :v)", None, {":v": 2}, X),
    ("begins_with(s, :v)", None, {":v": ["h"]}, X),
    # contains
    ("contains(s, :v)", None, {":v": "ell"}, True),
    ("contains(s, :v)", None, {":v": "dog"}, FAIL),
    ("contains(ss, :v)", None, {":v": "x"}, True),
    ("contains(ns, :v)", None, {":v": 4}, True),
    ("contains(ns, :v)", None, {":v": "4"}, FAIL),
    ("contains(l, :v)", None, {":v": 2}, True),
    ("contains(b, :v)", None, {":v": b"here"}, True),
    ("contains(b, :v)", None, {":v": {1, 2}}, FAIL),
    ("contains(e, :v)", None, {":v": {1, 2}}, True),  # a list holds a set
    ("contains(e, :v)", None, {":v": [3, 4]}, True),
    ("contains(ss, :v)", None, {":v": ["x"]}, FAIL),  # a list is never a set's element
    ("contains(ss, :v)", None, {":v": {"a": "x"}}, FAIL),
    ("contains(ns, :v)", None, {":v": {2}}, FAIL),
    ("contains(s2, s)", None, None, True),
    ("contains(s, s)", None, None, X),  # the same attribute twice
    ("contains(absent, :v)", None, {":v": "x"}, FAIL),
    # size
    ("size(s) = :v", None, {":v": 5}, True),
    ("size(b) = :v", None, {":v": 8}, True),
    ("size(ss) = :v", None, {":v": 2}, True),
    ("size(l) = :v", None, {":v": 3}, True),
    ("size(mp) = :v", None, {":v": 3}, True),
    ("size(n) = :v", None, {":v": 1}, FAIL),  # no size for a number in the item: false
    ("size(absent) < :v", None, {":v": 1}, FAIL),
    ("size(:s) = :v", None, {":s": "abc", ":v": 3}, True),
    ("size(:s) = :v", None, {":s": 123, ":v": 3}, X),  # a number constant has no size
    ("size(size(s)) = :v", None, {":v": 1}, X),
    ("size(l) > size(s)", None, None, FAIL),
    # logic, precedence, parentheses
    ("n = :v AND s = :s", None, {":v": 5, ":s": "hello"}, True),
    ("n = :v AND s = :s", None, {":v": 5, ":s": "x"}, FAIL),
    ("n = :v OR s = :s", None, {":v": 0, ":s": "hello"}, True),
    ("NOT n = :v", None, {":v": 5}, FAIL),
    ("NOT NOT n = :v", None, {":v": 5}, True),
    ("n = :z OR n = :v AND s = :z", None, {":v": 5, ":z": 0}, FAIL),  # AND before OR
    ("(n = :z OR n = :v) AND s = :s", None, {":v": 5, ":z": 0, ":s": "hello"}, True),
    ("NOT n = :z AND s = :s", None, {":z": 0, ":s": "hello"}, True),  # NOT before AND
    ("n BETWEEN :a AND :b AND s = :s", None, {":a": 1, ":b": 9, ":s": "hello"}, True),
    ("(n = :v)", None, {":v": 5}, True),
    ("((n = :v) AND s = :s)", None, {":v": 5, ":s": "hello"}, True),
    ("((n = :v))", None, {":v": 5}, X),  # redundant parentheses
    ("n = :v AND ((s = :s))", None, {":v": 5, ":s": "hello"}, X),
    ("n and s", None, None, X),
    ("n", None, None, X),
    ("size(s)", None, None, X),
    ("attribute_exists(n) = :v", None, {":v": True}, X),
    ("n = :v OR", None, {":v": 1}, X),
    ("n != :v", None, {":v": 1}, X),
    ("f(n)", None, None, X),
    ("", None, None, X),
    ("   ", None, None, X),
    # names, reserved words, placeholders
    ("#s = :v", {"#s": "s"}, {":v": "hello"}, True),
    ("#m.#c.d = :v", {"#m": "mp", "#c": "c"}, {":v": "deep"}, True),
    ("Version = :v", None, {":v": 3}, True),
    ("size = :v", None, {":v": 1}, X),  # a reserved word needs a #name
    ("#s = :v", {"#s": "s", "#x": "n"}, {":v": "hello"}, V),  # an unused name
    ("s = :v", None, {":v": "hello", ":w": 1}, V),  # an unused value
    ("s = :v", None, None, X),  # an undefined value
    ("#s = :v", None, {":v": 1}, X),  # an undefined name
    ("#s = :v", {"#s": ""}, {":v": 1}, V),  # an empty attribute name
    ("#s = :v", {"#s": 5}, {":v": 1}, V),
    ("s = :v", None, {":v": float("nan")}, V),
    ("s = :v", None, {":v": set()}, V),  # an empty set is not a value
    ("s = :v", None, {":v": object()}, V),
    ("attribute_exists(\ud800)", None, None, X),  # a lone surrogate
    ("n=:z OR " * 495 + "n=:v", None, {":v": 5, ":z": 0}, True),  # 496 terms, under 4 KB
    ("a=b OR " * 495 + "a=b", None, None, FAIL),
    ("n=:z AND " * 400 + "n=:v", None, {":v": 5, ":z": 0}, FAIL),
]


@pytest.mark.parametrize(("expr", "names", "values", "expected"), CONDITIONS)
def test_condition_expression(table: Table, expr: str, names: Any, values: Any, expected: Any) -> None:
    got = outcome(lambda: table.put(ITEM, condition=expr, names=names, values=values) or True)
    assert got is expected, (expr, values)
    assert table.get({"id": "a"}) == ITEM


# Constants are validated before the item is read: even when the condition is decided by an
# earlier operand (a new item, ``attribute_not_exists(id) OR ...``), a bad constant fails.
DECIDED_EARLY: list[tuple[str, dict[str, Any], Any]] = [
    ("attribute_not_exists(id) OR Version < :v", {":v": 1}, True),
    ("attribute_not_exists(id) OR Version < :v", {":v": [1]}, X),
    ("attribute_not_exists(id) OR Version < :v", {":v": float("nan")}, V),
    ("attribute_not_exists(id) OR n BETWEEN :a AND :b", {":a": 2, ":b": 1}, X),
    ("attribute_not_exists(id) OR begins_with(s, :p)", {":p": 1}, X),
    ("attribute_exists(id) AND attribute_type(n, :t)", {":t": "DOG"}, X),
    ("attribute_exists(id) AND size(:s) > :n", {":s": 5, ":n": 1}, X),
]


@pytest.mark.parametrize(("expr", "values", "expected"), DECIDED_EARLY)
def test_constants_are_validated_when_the_condition_is_decided_early(
    app: App, expr: str, values: dict[str, Any], expected: Any
) -> None:
    table = app.table("early", key="id")
    got = outcome(lambda: table.put({"id": "new", "x": 1}, condition=expr, values=values) or True)
    assert got is expected, (expr, values)
    if expected is True:
        table.delete({"id": "new"})
    assert table.get({"id": "new"}) is None


# -- FilterExpression -----------------------------------------------------------------------
FILTERS: list[tuple[str | None, dict[str, Any] | None, Any]] = [
    ("x > :v", {":v": 40}, [5, 6, 7]),
    ("x BETWEEN :a AND :b", {":a": 20, ":b": 30}, [2, 3]),
    ("attribute_exists(absent)", None, []),
    ("c = :v", {":v": 1}, [1]),  # a filter may read key attributes in a scan
    ("", None, X),  # refused before any item is read
    ("x < :v", {":v": [1]}, X),
    ("x > :v", {":v": 40, ":w": 1}, V),
]


@pytest.mark.parametrize(("expr", "values", "expected"), FILTERS)
def test_filter_expression(sorted_table: Table, expr: str, values: Any, expected: Any) -> None:
    def run() -> list[int]:
        return [int(i["c"]) for i in sorted_table.scan(filter=expr, values=values).items]

    assert outcome(run) == expected


def test_an_empty_filter_is_refused_on_an_empty_table(app: App) -> None:
    empty = app.table("empty", key="id")
    assert outcome(lambda: empty.scan(filter="")) is X
    assert outcome(lambda: empty.query("id = :v", values={":v": "a"}, filter="")) is X


# -- UpdateExpression -----------------------------------------------------------------------
BASE: dict[str, Any] = {
    "id": "u",
    "n": D(5),
    "s": "hello",
    "l": [D(1), D(2), D(3)],
    "mp": {"a": D(1), "b": D(2)},
    "ss": {"x", "y"},
    "ns": {D(1), D(2)},
}

# (update, names, values, the changed attributes of the new item | error class)
UPDATES: list[tuple[str, dict[str, str] | None, dict[str, Any] | None, Any]] = [
    # SET
    ("SET a = :v", None, {":v": 1}, {"a": D(1)}),
    ("SET n = n + :v", None, {":v": 2}, {"n": D(7)}),
    ("SET n = n - :v", None, {":v": 2}, {"n": D(3)}),
    ("SET n = :v + n", None, {":v": 2}, {"n": D(7)}),
    ("SET a = s", None, None, {"a": "hello"}),
    ("SET n = s + :v", None, {":v": 1}, V),
    ("SET n = absent + :v", None, {":v": 1}, V),  # a absent operand
    ("SET a = absent", None, None, V),
    ("SET a = :v, b = :w", None, {":v": 1, ":w": 2}, {"a": D(1), "b": D(2)}),
    ("SET mp.c = :v", None, {":v": 3}, {"mp": {"a": D(1), "b": D(2), "c": D(3)}}),
    ("SET mp.a.b = :v", None, {":v": 3}, V),  # a sub-path of a number
    ("SET absent.a = :v", None, {":v": 3}, V),
    ("SET l[0] = :v", None, {":v": 9}, {"l": [D(9), D(2), D(3)]}),
    ("SET l[7] = :v", None, {":v": 9}, {"l": [D(1), D(2), D(3), D(9)]}),  # beyond the end: appended
    ("SET l[9] = :a, l[5] = :b", None, {":a": "a", ":b": "b"}, {"l": [D(1), D(2), D(3), "b", "a"]}),
    (
        "SET l[84] = :a, l[37] = :b, l[50] = :c",
        None,
        {":a": 1, ":b": 2, ":c": 3},
        {"l": [D(1), D(2), D(3), D(2), D(3), D(1)]},
    ),
    ("SET s[0] = :v", None, {":v": 1}, V),
    ("SET l = list_append(l, :v)", None, {":v": [4]}, {"l": [D(1), D(2), D(3), D(4)]}),
    ("SET l = list_append(:v, l)", None, {":v": [0]}, {"l": [D(0), D(1), D(2), D(3)]}),
    ("SET l = list_append(l, :v)", None, {":v": 4}, V),
    ("SET l = list_append(list_append(l, :a), :b)", None, {":a": [4], ":b": [5]}, X),
    ("SET a = list_append(if_not_exists(a, :e), :v)", None, {":e": [], ":v": [1]}, {"a": [D(1)]}),
    ("SET a = if_not_exists(a, :v)", None, {":v": 1}, {"a": D(1)}),
    ("SET n = if_not_exists(n, :v)", None, {":v": 1}, {}),
    ("SET a = if_not_exists(b, if_not_exists(n, :v))", None, {":v": 1}, {"a": D(5)}),
    ("SET a = if_not_exists(:v, :v)", None, {":v": 1}, X),  # the first operand is a path
    ("SET a = if_not_exists(n, :v) + :w", None, {":v": 1, ":w": 2}, {"a": D(7)}),
    ("SET a = if_not_exists(n, :v + :w)", None, {":v": 1, ":w": 2}, X),
    ("SET a = f(n)", None, None, X),
    ("SET a = size(s)", None, None, X),
    ("SET #k = :v", {"#k": "s"}, {":v": "x"}, {"s": "x"}),
    ("SET id = :v", None, {":v": "x"}, V),  # a key attribute
    ("SET a = :v, a = :w", None, {":v": 1, ":w": 2}, V),  # the same path twice
    ("SET mp = :v, mp.a = :w", None, {":v": {}, ":w": 2}, V),  # overlapping paths
    ("SET a = :v SET b = :v", None, {":v": 1}, X),  # a clause twice
    ("SET a :v", None, {":v": 1}, X),
    ("set a = :v remove n", None, {":v": 1}, {"a": D(1), "n": None}),  # keywords in any case
    # REMOVE
    ("REMOVE n", None, None, {"n": None}),
    ("REMOVE absent", None, None, {}),
    ("REMOVE mp.a", None, None, {"mp": {"b": D(2)}}),
    ("REMOVE mp.z", None, None, {}),  # a absent leaf: nothing to do
    ("REMOVE l[1], l[0]", None, None, {"l": [D(3)]}),
    ("REMOVE l[7]", None, None, {}),  # beyond the end: nothing to do
    ("REMOVE n.x", None, None, V),  # a sub-path of a number
    ("REMOVE absent.x", None, None, V),
    ("REMOVE absent[0]", None, None, V),  # an index into a absent list
    ("REMOVE s[0]", None, None, V),
    ("REMOVE mp[0]", None, None, V),
    ("REMOVE l.a", None, None, V),
    ("REMOVE n SET a = n", None, None, {"n": None, "a": D(5)}),  # right sides read the old item
    ("SET n = :v REMOVE n", None, {":v": 1}, V),
    # ADD
    ("ADD n :v", None, {":v": 2}, {"n": D(7)}),
    ("ADD a :v", None, {":v": 2}, {"a": D(2)}),
    ("ADD ss :v", None, {":v": {"z"}}, {"ss": {"x", "y", "z"}}),
    ("ADD a :v", None, {":v": {"z"}}, {"a": {"z"}}),
    ("ADD n :v", None, {":v": "x"}, V),
    ("ADD s :v", None, {":v": 1}, V),
    ("ADD ss :v", None, {":v": {1}}, V),
    ("ADD l :v", None, {":v": [1]}, V),
    # DELETE
    ("DELETE ss :v", None, {":v": {"x"}}, {"ss": {"y"}}),
    ("DELETE ss :v", None, {":v": {"x", "y"}}, {"ss": None}),  # an empty set is removed
    ("DELETE absent :v", None, {":v": {"x"}}, {}),
    ("DELETE ss :v", None, {":v": "x"}, V),
    ("DELETE ns :v", None, {":v": {"x"}}, V),
    # placeholders
    ("SET a = :v", None, {":v": 1, ":w": 2}, V),
    ("SET a = :v", {"#x": "y"}, {":v": 1}, V),
    ("SET a = :v", None, None, X),
    ("", None, None, X),
    ("SET a = :v", None, {":v": float("inf")}, V),
    ("SET a = :v", None, {1: 1, ":v": 1}, V),
]


@pytest.mark.parametrize(("update", "names", "values", "expected"), UPDATES)
def test_update_expression(app: App, update: str, names: Any, values: Any, expected: Any) -> None:
    t = app.table("updates", key="id")
    t.put(BASE)
    got = outcome(lambda: t.update({"id": "u"}, update, names=names, values=values, return_values="ALL_NEW"))
    if isinstance(expected, type):
        assert got is expected, (update, values)
        assert t.get({"id": "u"}) == BASE  # nothing changes on error
        return
    want = {k: v for k, v in {**BASE, **expected}.items() if v is not None}
    assert got == want, (update, values)
    assert t.get({"id": "u"}) == want


def test_remove_of_an_invalid_path_is_ignored_on_an_item_the_update_creates(app: App) -> None:
    t = app.table("created", key="id")
    t.update({"id": "n1"}, "REMOVE x.y")
    t.update({"id": "n2"}, "REMOVE x[0]")
    assert t.get({"id": "n1"}) == {"id": "n1"}
    assert outcome(lambda: t.update({"id": "n1"}, "REMOVE x.y")) is V  # the item exists now


def test_update_results_nested_deeper_than_put_allows_are_refused(app: App) -> None:
    t = app.table("deep", key="id")
    doc: Any = D(1)
    while True:  # the deepest map a put accepts
        deeper = {"d": doc}
        if outcome(lambda deeper=deeper: t.put({"id": "probe", "m": deeper})) is not None:
            break
        doc = deeper
    t.put({"id": "x", "m": {"k": D(1)}})
    assert outcome(lambda: t.update({"id": "x"}, "SET m = :v", values={":v": doc})) == None  # noqa: E711
    assert outcome(lambda: t.update({"id": "x"}, "SET m.k = :v", values={":v": doc})) is V
    assert (
        outcome(lambda: t.update({"id": "x"}, "SET l = list_append(:v, :w)", values={":v": [doc], ":w": []}))
        is V
    )
    assert t.get({"id": "x"}) == {"id": "x", "m": doc}


# UPDATED_OLD / UPDATED_NEW return the updated paths only
RETURNS: list[tuple[str, dict[str, Any] | None, str, Any]] = [
    ("SET mp.b = :v", {":v": 5}, "UPDATED_NEW", {"mp": {"b": D(5)}}),
    ("SET mp.b = :v", {":v": 5}, "UPDATED_OLD", {"mp": {"b": D(2)}}),
    ("SET mp.z = :v", {":v": 5}, "UPDATED_OLD", {}),
    ("SET n = :v", {":v": 6}, "UPDATED_NEW", {"n": D(6)}),
    ("SET n = :v", {":v": 6}, "UPDATED_OLD", {"n": D(5)}),
    ("SET l[1] = :v", {":v": 9}, "UPDATED_NEW", {"l": [D(9)]}),
    ("SET l[7] = :v", {":v": 9}, "UPDATED_NEW", {"l": [D(9)]}),  # where the element landed
    ("SET l[9] = :a, l[5] = :b", {":a": "a", ":b": "b"}, "UPDATED_NEW", {"l": ["b", "a"]}),
    ("SET l[7] = :v", {":v": 9}, "UPDATED_OLD", {}),
    ("REMOVE n", None, "UPDATED_OLD", {"n": D(5)}),
    ("REMOVE n", None, "UPDATED_NEW", {}),
    ("ADD ss :v", {":v": {"z"}}, "UPDATED_NEW", {"ss": {"x", "y", "z"}}),
    ("SET a = :v, mp.a = :w", {":v": 1, ":w": 2}, "UPDATED_NEW", {"a": D(1), "mp": {"a": D(2)}}),
    ("SET n = :v", {":v": 6}, "ALL_OLD", BASE),
    ("SET n = :v", {":v": 6}, "NONE", None),
]


@pytest.mark.parametrize(("update", "values", "mode", "expected"), RETURNS)
def test_update_return_values(app: App, update: str, values: Any, mode: str, expected: Any) -> None:
    t = app.table("returns", key="id")
    t.put(BASE)
    assert t.update({"id": "u"}, update, values=values, return_values=mode) == expected


# -- KeyConditionExpression -----------------------------------------------------------------
KEYS: list[tuple[str, dict[str, Any], Any]] = [
    ("p = :p", {":p": "p"}, [1, 2, 3, 4, 5, 6, 7]),
    ("p = :p AND c = :c", {":p": "p", ":c": 3}, [3]),
    ("p = :p AND c < :c", {":p": "p", ":c": 3}, [1, 2]),
    ("p = :p AND c <= :c", {":p": "p", ":c": 3}, [1, 2, 3]),
    ("p = :p AND c > :c", {":p": "p", ":c": 5}, [6, 7]),
    ("p = :p AND c >= :c", {":p": "p", ":c": 5}, [5, 6, 7]),
    ("p = :p AND c BETWEEN :a AND :b", {":p": "p", ":a": 2, ":b": 4}, [2, 3, 4]),
    ("c = :c AND p = :p", {":p": "p", ":c": 3}, [3]),  # either order
    ("(p = :p) AND (c = :c)", {":p": "p", ":c": 3}, [3]),
    ("((p = :p) AND (c = :c))", {":p": "p", ":c": 3}, [3]),
    ("((p = :p) AND ((c = :c)))", {":p": "p", ":c": 3}, X),  # redundant parentheses
    ("p = :p AND c BETWEEN :a AND :b", {":p": "p", ":a": 4, ":b": 2}, X),  # bounds out of order
    ("p = :p AND c BETWEEN :a AND :b", {":p": "p", ":a": 1, ":b": "z"}, X),  # of two types
    ("p = :p AND c BETWEEN :a AND :b", {":p": "p", ":a": "a", ":b": "z"}, V),  # not the key's type
    ("p = :p AND c = :c", {":p": "p", ":c": "3"}, V),
    ("p = :p AND c < :c", {":p": "p", ":c": [1]}, X),
    ("p = :p AND begins_with(c, :c)", {":p": "p", ":c": 1}, X),  # begins_with on a number
    ("p = :p AND c <> :c", {":p": "p", ":c": 3}, V),
    ("p = :p AND c IN (:c)", {":p": "p", ":c": 3}, V),
    ("p = :p OR c = :c", {":p": "p", ":c": 3}, V),
    ("NOT p = :p", {":p": "p"}, V),
    ("p = :p AND c > :a AND c < :b", {":p": "p", ":a": 1, ":b": 3}, V),
    ("p = :p AND p = :q", {":p": "p", ":q": "q"}, V),
    ("p < :p", {":p": "p"}, V),
    ("c = :c", {":c": 3}, V),  # the partition key is required
    ("p = :p AND x = :c", {":p": "p", ":c": 3}, V),  # not a key attribute
    ("p = :p AND attribute_exists(c)", {":p": "p"}, V),
    ("p = :p AND begins_with(:c, c)", {":p": "p", ":c": "x"}, V),
    ("p = :p", {":p": "p", ":x": 1}, V),  # an unused value
    ("p = :p AND c = :c", {":p": "p"}, X),  # an undefined value
    ("", {":p": "p"}, X),
]


@pytest.mark.parametrize(("expr", "values", "expected"), KEYS)
def test_key_condition_expression(sorted_table: Table, expr: str, values: Any, expected: Any) -> None:
    def run() -> list[int]:
        return [int(i["c"]) for i in sorted_table.query(expr, values=values).items]

    assert outcome(run) == expected


TEXT_KEYS: list[tuple[str, dict[str, Any], Any]] = [
    ("p = :p AND begins_with(c, :c)", {":p": "p", ":c": "a"}, ["a", "ab", "abc"]),
    ("p = :p AND begins_with(c, :c)", {":p": "p", ":c": "ab"}, ["ab", "abc"]),
    ("p = :p AND c BETWEEN :a AND :b", {":p": "p", ":a": "ab", ":b": "b"}, ["ab", "abc", "b"]),
    ("p = :p AND c < :c", {":p": "p", ":c": "b"}, ["a", "ab", "abc"]),
    ("p = :p AND begins_with(c, :c)", {":p": "p", ":c": b"a"}, V),  # binary on a string key
    ("p = :p AND c > :c", {":p": "p", ":c": 1}, V),
]


@pytest.mark.parametrize(("expr", "values", "expected"), TEXT_KEYS)
def test_key_condition_expression_on_a_string_sort_key(
    text_sorted_table: Table, expr: str, values: Any, expected: Any
) -> None:
    def run() -> list[str]:
        return [i["c"] for i in text_sorted_table.query(expr, values=values).items]

    assert outcome(run) == expected


# -- ProjectionExpression -------------------------------------------------------------------
PROJECTIONS: list[tuple[str, dict[str, str] | None, Any]] = [
    ("n", None, {"n": D(5)}),
    ("n, s", None, {"n": D(5), "s": "hello"}),
    ("mp.a", None, {"mp": {"a": D(1)}}),
    ("mp.a, mp.c.d", None, {"mp": {"a": D(1), "c": {"d": "deep"}}}),
    ("l[0], l[2]", None, {"l": [D(1), D(3)]}),
    ("l[2], l[0]", None, {"l": [D(1), D(3)]}),  # elements in list order
    ("e[2][1]", None, {"e": [[D(4)]]}),
    ("absent", None, {}),
    ("l[9]", None, {}),
    ("#k", {"#k": "s"}, {"s": "hello"}),
    ("#m.#k", {"#m": "mp", "#k": "b"}, {"mp": {"b": D(2)}}),
    ("", None, X),  # empty
    ("n, n", None, V),  # the same path twice
    ("mp, mp.a", None, V),  # overlapping paths
    ("l[0], l.a", None, V),  # conflicting paths
    ("n,", None, X),
    ("size", None, X),  # a reserved word
    ("#k", None, X),  # an undefined name
    ("n", {"#k": "s"}, V),  # an unused name
    ("#k", {"#k": ""}, V),
]


@pytest.mark.parametrize(("expr", "names", "expected"), PROJECTIONS)
def test_projection_expression(
    table: Table, sorted_table: Table, expr: str, names: Any, expected: Any
) -> None:
    assert outcome(lambda: table.get({"id": "a"}, projection=expr, names=names)) == expected
    scanned = outcome(lambda: table.scan(projection=expr, names=names).items)
    assert scanned == (expected if isinstance(expected, type) else [expected])


def test_projection_of_a_query(sorted_table: Table) -> None:
    page = sorted_table.query("p = :p AND c = :c", values={":p": "p", ":c": 2}, projection="x")
    assert page.items == [{"x": D(20)}]
    assert outcome(lambda: sorted_table.query("p = :p", values={":p": "p"}, projection="x, x")) is V


def test_the_conformance_page_counts_these_cases() -> None:
    """docs/reference/dynamodb-conformance.md states how many cases each kind has."""
    import re

    counts = {
        "ConditionExpression": len(CONDITIONS) + len(DECIDED_EARLY),
        "FilterExpression": len(FILTERS) + 1,
        "UpdateExpression": len(UPDATES) + len(RETURNS) + 2,
        "KeyConditionExpression": len(KEYS) + len(TEXT_KEYS),
        "ProjectionExpression": len(PROJECTIONS) + 1,
    }
    page = (Path(__file__).parents[2] / "docs" / "reference" / "dynamodb-conformance.md").read_text()
    stated = {k: int(v) for k, v in re.findall(r"^\| (\w+Expression) \| (\d+) \|$", page, re.M)}
    assert stated == counts
    total = re.search(r"^\| \*\*total\*\* \| \*\*(\d+)\*\* \|$", page, re.M)
    assert total is not None and int(total.group(1)) == sum(counts.values())
