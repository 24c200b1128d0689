"""Fuzzing the expression language through a real table: random expressions (built from the
grammar's pieces, and raw text), placeholder maps of any shape and hostile values. Whatever
the input, only eventlake errors escape, and a call that fails changes nothing.

Seeded (``derandomize``) and bounded by example count, so a CI run is repeatable and takes
seconds; raise ``max_examples`` locally to search longer.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlake import App
from eventlake.errors import EventlakeError
from eventlake.expressions import apply_update, check_condition, parse_projection, project
from eventlake.resources.table import Table

FUZZ = settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TABLE_FUZZ = settings(FUZZ, max_examples=60)  # each example writes to SQLite

ITEM: dict[str, Any] = {
    "id": "a",
    "n": Decimal(5),
    "s": "hello",
    "l": [Decimal(1), "two", [Decimal(3)]],
    "mp": {"a": Decimal(1), "b": {"c": "d"}},
    "ss": {"x", "y"},
    "ns": {Decimal(1), Decimal(2)},
    "b": b"\x00\x01",
    "t": True,
    "z": None,
}


def nested(depth: int) -> Any:
    v: Any = 1
    for _ in range(depth):
        v = [v]
    return v


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.sampled_from(["\ud800", "S", "N", "SS", "DOG", "", "x"]),
    st.binary(max_size=4),
)
values_st = (
    st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.one_of(st.text(max_size=3), st.integers()), inner, max_size=3),
            st.frozensets(st.one_of(st.integers(), st.text(max_size=3)), max_size=3).map(set),
        ),
        max_leaves=6,
    )
    | st.integers(0, 1200).map(nested)
    | st.just(object())
)

PATHS = [
    "n",
    "s",
    "l",
    "l[0]",
    "l[2][0]",
    "l[9]",
    "mp",
    "mp.a",
    "mp.b.c",
    "ss",
    "ns",
    "b",
    "t",
    "z",
    "#a",
    "#b",
    "#a.#b",
    "absent",
    "id",
    "absent.x",
    "n.x",
    "s[0]",
]
OPERANDS = [*PATHS, ":v", ":w", "size(n)", "size(:v)", "size(s)"]
path_st = st.sampled_from(PATHS)
operand_st = st.sampled_from(OPERANDS)


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.integers(0, 9 if depth < 3 else 6))
    if kind == 0:
        op = draw(st.sampled_from(["=", "<>", "<", "<=", ">", ">="]))
        return f"{draw(operand_st)} {op} {draw(operand_st)}"
    if kind == 1:
        return f"{draw(operand_st)} BETWEEN {draw(operand_st)} AND {draw(operand_st)}"
    if kind == 2:
        opts = draw(st.lists(operand_st, min_size=1, max_size=3))
        return f"{draw(operand_st)} IN ({', '.join(opts)})"
    if kind == 3:
        fn = draw(st.sampled_from(["attribute_exists", "attribute_not_exists"]))
        return f"{fn}({draw(operand_st)})"
    if kind in (4, 5):
        fn = draw(st.sampled_from(["attribute_type", "begins_with", "contains", "size", "nofunc"]))
        return f"{fn}({draw(operand_st)}, {draw(operand_st)})"
    if kind == 6:
        return draw(st.text(alphabet="ab:#()[].,=<> \ud800ANDORNOT0123456789", max_size=30))
    if kind == 7:
        return f"NOT {draw(conditions(depth + 1))}"
    if kind == 8:
        return f"({draw(conditions(depth + 1))})"
    joiner = draw(st.sampled_from([" AND ", " OR "]))
    parts = draw(st.lists(conditions(depth + 1), min_size=2, max_size=4))
    return joiner.join(parts)


@st.composite
def updates(draw: st.DrawFn) -> str:
    clauses = []
    for kw in draw(st.lists(st.sampled_from(["SET", "REMOVE", "ADD", "DELETE"]), min_size=1, max_size=3)):
        actions = []
        for _ in range(draw(st.integers(1, 3))):
            p = draw(path_st)
            if kw == "SET":
                rhs = draw(
                    st.sampled_from(
                        [
                            ":v",
                            ":w",
                            "n",
                            "n + :v",
                            ":v - n",
                            "list_append(l, :v)",
                            "list_append(:v, :w)",
                            "if_not_exists(absent, :v)",
                            "if_not_exists(:v, :w)",
                            "list_append(list_append(l, :v), :w)",
                            "size(s)",
                            "#a",
                        ]
                    )
                )
                actions.append(f"{p} = {rhs}")
            elif kw == "REMOVE":
                actions.append(p)
            else:
                actions.append(f"{p} {draw(st.sampled_from([':v', ':w', 'n']))}")
        clauses.append(f"{kw} {', '.join(actions)}")
    text = " ".join(clauses)
    return draw(st.one_of(st.just(text), st.text(alphabet="SETREMOV ab=:v,[]0.#+\ud800", max_size=25)))


names_st = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["#a", "#b", "#c", "a", 1, ""]),
        st.one_of(
            st.sampled_from(["n", "s", "mp", "l", "b", "c", "id", ""]), st.integers(), st.just("\ud800")
        ),
        max_size=3,
    ),
)
vals_st = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from([":v", ":w", ":x", "v", 1]), values_st, max_size=3),
)
projection_st = st.one_of(
    st.lists(path_st, min_size=1, max_size=4).map(", ".join),
    st.text(alphabet="ab,.[]0#\ud800 ", max_size=12),
)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Table]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    app = App("fuzz", state_url=f"sqlite:///{root}/state.db", lake_url=f"file://{root}/lake")
    t = app.table("items", key="id")
    t.put(ITEM)
    yield t
    app.close()


def only_eventlake_errors(call: Any) -> bool:
    """True when the call succeeded, False when it raised an eventlake error; anything else
    propagates and fails the test."""
    try:
        call()
    except EventlakeError:
        return False
    return True


@TABLE_FUZZ
@given(expr=conditions(), names=names_st, values=vals_st, exists=st.booleans())
def test_conditional_writes_raise_only_eventlake_errors_and_change_nothing_on_error(
    table: Table, expr: str, names: Any, values: Any, exists: bool
) -> None:
    key = {"id": "a" if exists else "new"}
    before = table.get(key)
    item = {**ITEM, **key, "w": 1}
    if not only_eventlake_errors(lambda: table.put(item, condition=expr, names=names, values=values)):
        assert table.get(key) == before
    table.put(ITEM)
    table.delete({"id": "new"})
    if not only_eventlake_errors(lambda: table.delete(key, condition=expr, names=names, values=values)):
        assert table.get(key) == (ITEM if exists else None)
    table.put(ITEM)


@TABLE_FUZZ
@given(
    update=updates(),
    condition=st.none() | conditions(),
    names=names_st,
    values=vals_st,
    exists=st.booleans(),
    mode=st.sampled_from(["NONE", "ALL_NEW", "UPDATED_OLD", "UPDATED_NEW"]),
)
def test_updates_raise_only_eventlake_errors_and_change_nothing_on_error(
    table: Table, update: str, condition: Any, names: Any, values: Any, exists: bool, mode: str
) -> None:
    key = {"id": "a" if exists else "new"}
    before = table.get(key)

    def run() -> None:
        table.update(key, update, condition=condition, names=names, values=values, return_values=mode)

    if not only_eventlake_errors(run):
        assert table.get(key) == before
    table.put(ITEM)
    table.delete({"id": "new"})


@TABLE_FUZZ
@given(filter=st.none() | conditions(), projection=st.none() | projection_st, names=names_st, values=vals_st)
def test_reads_raise_only_eventlake_errors(
    table: Table, filter: Any, projection: Any, names: Any, values: Any
) -> None:
    only_eventlake_errors(
        lambda: table.scan(filter=filter, projection=projection, names=names, values=values)
    )
    only_eventlake_errors(lambda: table.get({"id": "a"}, projection=projection, names=names))
    only_eventlake_errors(
        lambda: table.query(
            "id = :k",
            filter=filter,
            projection=projection,
            names=names,
            values={**(values or {}), ":k": "a"} if isinstance(values, dict) or values is None else values,
        )
    )
    assert table.get({"id": "a"}) == ITEM


@FUZZ
@given(expr=conditions(), names=names_st, values=vals_st, item=st.none() | st.just(ITEM))
def test_the_evaluators_raise_only_eventlake_errors(expr: str, names: Any, values: Any, item: Any) -> None:
    """The expression functions themselves, without the table's up-front checks."""
    only_eventlake_errors(lambda: check_condition(expr, item, names, values))
    only_eventlake_errors(lambda: project(ITEM, parse_projection(expr, names)))


@FUZZ
@given(update=updates(), names=names_st, values=vals_st)
def test_apply_update_raises_only_eventlake_errors_and_never_mutates(
    update: str, names: Any, values: Any
) -> None:
    item = {**ITEM, "l": list(ITEM["l"]), "mp": dict(ITEM["mp"])}
    only_eventlake_errors(lambda: apply_update(update, item, names, values, key_attributes=("id",)))
    assert item == ITEM
