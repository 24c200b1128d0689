"""Tables: DynamoDB item semantics, conditions, updates, transactions, queries."""

from __future__ import annotations

from decimal import Decimal

import pytest

from eventlake import App, ConditionalCheckFailed, ManualClock, TransactionCanceled, ValidationError
from eventlake.errors import ExpressionError, IdempotentParameterMismatch, SizeLimitExceeded
from eventlake.expressions import normalize


@pytest.fixture
def t(app: App):
    return app.table("items", key="id")


def test_put_get_delete_round_trip_with_decimal_numbers(t) -> None:
    t.put({"id": "a", "n": 1, "f": 1.5, "s": {"x", "y"}, "m": {"l": [1, None, True]}, "b": b"\x00"})
    item = t.get({"id": "a"})
    assert item == {
        "id": "a",
        "n": Decimal(1),
        "f": Decimal("1.5"),
        "s": {"x", "y"},
        "m": {"l": [Decimal(1), None, True]},
        "b": b"\x00",
    }
    assert t.delete({"id": "a"}, return_values="ALL_OLD")["n"] == 1
    assert t.get({"id": "a"}) is None


def test_put_refuses_bad_placeholder_maps_and_keys(t) -> None:
    with pytest.raises(ValidationError, match="names must be a dict"):
        t.put({"id": "a"}, names=[])  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="unused in expressions"):
        t.put({"id": "a"}, values={":v": 1})
    with pytest.raises(ValidationError, match="Missing the key id"):
        t.put({"other": "a"})
    with pytest.raises(ValidationError, match="Type mismatch for key id expected: S actual: N"):
        t.put({"id": 5})
    with pytest.raises(ValidationError, match="cannot contain an empty string value"):
        t.put({"id": ""})
    assert t.count() == 0


def test_conditional_put_attribute_not_exists(t) -> None:
    t.put({"id": "a", "v": 1}, condition="attribute_not_exists(id)")
    with pytest.raises(ConditionalCheckFailed) as e:
        t.put({"id": "a", "v": 2}, condition="attribute_not_exists(id)")
    assert e.value.item == {"id": "a", "v": 1}
    assert t.get({"id": "a"})["v"] == 1


def test_version_condition_accepts_newer_and_refuses_stale(t) -> None:
    cond = "attribute_not_exists(id) OR Version < :v"
    t.put({"id": "a", "Version": 2, "x": "v2"}, condition=cond, values={":v": 2})
    t.put({"id": "a", "Version": 3, "x": "v3"}, condition=cond, values={":v": 3})
    with pytest.raises(ConditionalCheckFailed):
        t.put({"id": "a", "Version": 1, "x": "stale"}, condition=cond, values={":v": 1})
    with pytest.raises(ConditionalCheckFailed):
        t.put({"id": "a", "Version": 3, "x": "dup"}, condition=cond, values={":v": 3})
    assert t.get({"id": "a"})["x"] == "v3"


def test_update_expressions_and_return_values(t) -> None:
    assert t.update(
        {"id": "a"}, "SET c = :z, l = :l", values={":z": 0, ":l": [1]}, return_values="ALL_NEW"
    ) == {"id": "a", "c": 0, "l": [1]}
    out = t.update(
        {"id": "a"},
        "SET c = c + :one, l = list_append(l, :more) ADD s :s REMOVE gone",
        values={":one": 1, ":more": [2], ":s": {"x"}},
        return_values="UPDATED_NEW",
    )
    assert out == {"c": 1, "l": [1, 2], "s": {"x"}}
    assert (
        t.update({"id": "a"}, "SET n = if_not_exists(n, :d)", values={":d": 5}, return_values="UPDATED_OLD")
        == {}
    )
    with pytest.raises(ValidationError, match="key"):
        t.update({"id": "a"}, "SET id = :x", values={":x": "b"})


def test_update_with_condition_and_names(t) -> None:
    t.put({"id": "a", "Value": 5})
    t.update({"id": "a"}, "ADD #v :d", condition="#v >= :d", names={"#v": "Value"}, values={":d": 3})
    assert t.get({"id": "a"})["Value"] == 8
    with pytest.raises(ConditionalCheckFailed):
        t.update({"id": "a"}, "ADD #v :d", condition="#v > :d", names={"#v": "Value"}, values={":d": 100})


def test_bad_expressions_report_position(t) -> None:
    with pytest.raises(ExpressionError) as e:
        t.put({"id": "a"}, condition="attribute_not_exists(id) AND AND")
    assert e.value.position is not None
    with pytest.raises(ExpressionError):
        t.put({"id": "a"}, condition="v = :missing")


def test_key_validation(t, app: App) -> None:
    with pytest.raises(ValidationError, match="Missing the key id"):
        t.put({"x": 1})
    with pytest.raises(ValidationError, match="Type mismatch"):
        t.put({"id": 1})
    with pytest.raises(ValidationError, match="empty string"):
        t.put({"id": ""})
    with pytest.raises(ValidationError, match="does not match the schema"):
        t.get({"id": "a", "extra": 1})
    with pytest.raises(ValidationError, match="key schema cannot change"):
        App("other", state_url=app.settings.state_url).table("items", key="other")


def test_item_size_limit(t) -> None:
    t.put({"id": "a", "blob": "x" * (399 * 1024)})
    with pytest.raises(SizeLimitExceeded, match="400 KB"):
        t.put({"id": "b", "blob": "x" * (401 * 1024)})
    assert t.get({"id": "b"}) is None


def test_query_with_sort_key_conditions_and_pagination(app: App) -> None:
    t = app.table("events", key="user", sort_key=("ts", "N"))
    for ts in [5, -1, 10, 2.5, 100]:
        t.put({"user": "u", "ts": ts, "kind": "a" if ts < 10 else "b"})
    t.put({"user": "other", "ts": 1})
    page = t.query("#u = :u", names={"#u": "user"}, values={":u": "u"})
    assert [i["ts"] for i in page] == [Decimal(-1), Decimal("2.5"), Decimal(5), Decimal(10), Decimal(100)]
    page = t.query(
        "#u = :u AND ts BETWEEN :a AND :b",
        names={"#u": "user"},
        values={":u": "u", ":a": 0, ":b": 10},
        forward=False,
    )
    assert [i["ts"] for i in page] == [10, 5, Decimal("2.5")]
    first = t.query("#u = :u", names={"#u": "user"}, values={":u": "u"}, limit=2)
    assert len(first) == 2 and first.last_key == {"user": "u", "ts": Decimal("2.5")}
    rest = t.query("#u = :u", names={"#u": "user"}, values={":u": "u"}, start_key=first.last_key)
    assert [i["ts"] for i in rest] == [5, 10, 100]
    filtered = t.query("#u = :u", filter="kind = :k", names={"#u": "user"}, values={":u": "u", ":k": "b"})
    assert filtered.count == 2 and filtered.scanned_count == 5


def test_scan_pagination_segments_and_filter(t) -> None:
    for i in range(25):
        t.put({"id": f"k{i:02d}", "n": i})
    seen = []
    start = None
    while True:
        page = t.scan(limit=10, start_key=start)
        seen += [i["id"] for i in page]
        start = page.last_key
        if start is None:
            break
    assert sorted(seen) == [f"k{i:02d}" for i in range(25)]
    parts = [t.scan(segment=s, total_segments=3).items for s in range(3)]
    assert sum(len(p) for p in parts) == 25
    assert t.scan(filter="n >= :x", values={":x": 20}).count == 5


def test_transaction_all_or_nothing_with_reasons(app: App) -> None:
    a = app.table("a", key="id")
    b = app.table("b", key="id")
    a.put({"id": "1", "v": 1})
    with pytest.raises(TransactionCanceled) as e:
        app.transact(
            [
                a.tx_update({"id": "1"}, "SET v = :v", values={":v": 2}),
                b.tx_put({"id": "x"}, condition="attribute_exists(id)"),
            ]
        )
    assert [r.code for r in e.value.reasons] == [None, "ConditionalCheckFailed"]
    assert a.get({"id": "1"})["v"] == 1 and b.get({"id": "x"}) is None
    a.put({"id": "2"})
    app.transact(
        [
            a.tx_update({"id": "1"}, "SET v = :v", values={":v": 2}),
            b.tx_put({"id": "x"}),
            a.tx_check({"id": "2"}, "attribute_exists(id)"),
        ]
    )
    assert a.get({"id": "1"})["v"] == 2 and b.get({"id": "x"}) == {"id": "x"}


def test_transaction_rules(app: App) -> None:
    a = app.table("a", key="id")
    with pytest.raises(ValidationError, match="multiple operations on one item"):
        app.transact([a.tx_put({"id": "1"}), a.tx_delete({"id": "1"})])
    with pytest.raises(ValidationError, match="1-100"):
        app.transact([a.tx_put({"id": str(i)}) for i in range(101)])
    app.transact([a.tx_put({"id": str(i)}) for i in range(100)])
    assert a.count() == 100


def test_idempotency_token_applies_once_for_ten_minutes(app_factory, clock: ManualClock) -> None:
    app = app_factory("tok", clock=clock)
    agg = app.table("agg", key="id")

    def add(n: int):
        return [agg.tx_update({"id": "x"}, "ADD v :n", values={":n": n})]

    app.transact(add(5), token="batch-1")
    app.transact(add(5), token="batch-1")  # a retry: not applied again
    assert agg.get({"id": "x"})["v"] == 5
    with pytest.raises(IdempotentParameterMismatch):
        app.transact(add(6), token="batch-1")
    clock.advance(601)
    app.transact(add(5), token="batch-1")  # the token expired: a new request
    assert agg.get({"id": "x"})["v"] == 10


def test_stream_record_is_written_with_the_item_or_not_at_all(app: App) -> None:
    t = app.table("s", key="id", stream="new_image")
    t.put({"id": "a", "v": 1})
    with pytest.raises(ConditionalCheckFailed):
        t.put({"id": "a", "v": 2}, condition="attribute_not_exists(id)")
    rows = app.env.state.transaction(lambda x: x.log_read(t.log, 0, 0, 100))
    assert len(rows) == 1


def test_projection(t) -> None:
    t.put({"id": "a", "x": {"y": 1, "z": 2}, "l": [1, 2, 3], "w": 0})
    assert t.get({"id": "a"}, projection="x.y, l[1]") == {"x": {"y": 1}, "l": [2]}


def _together(n: int, rounds: int, step) -> None:
    """``step(thread, round)`` on ``n`` threads, every round started by all of them at once."""
    import threading

    start = threading.Barrier(n)

    def run(i: int) -> None:
        for k in range(rounds):
            start.wait()
            step(i, k)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def test_concurrent_creates_of_one_item_let_exactly_one_win(app: App) -> None:
    """Eight threads put the same new key with attribute_not_exists at once, for 30 keys: one
    put per key succeeds, the others get ConditionalCheckFailed, and the change stream holds
    one INSERT per key. (On engines with concurrent writers a read of a missing row locks
    nothing; the insert must decide.)"""
    t = app.table("race", key="id", stream="new_image")
    keys = 30
    outcomes: list[tuple[int, str]] = []

    def create(i: int, k: int) -> None:
        try:
            t.put({"id": f"k{k}", "by": i}, condition="attribute_not_exists(id)")
            outcomes.append((k, "ok"))
        except ConditionalCheckFailed:
            outcomes.append((k, "failed"))

    _together(8, keys, create)
    wins = sorted(k for k, o in outcomes if o == "ok")
    assert wins == list(range(keys)) and len(outcomes) == 8 * keys
    rows = app.env.state.transaction(lambda x: x.log_read(t.log, 0, 0, 1000))
    assert len(rows) == keys and all(r.data.startswith(b'{"e":"INSERT"') for r in rows)


def test_put_of_an_existing_item_reads_it_for_the_condition_and_the_old_image(app: App) -> None:
    t = app.table("versions", key="id", stream="new_and_old_images")
    cond = "attribute_not_exists(id) OR Version < :v"
    t.put({"id": "a", "Version": 1, "v": "one"}, condition=cond, values={":v": 1})
    with pytest.raises(ConditionalCheckFailed) as stale:
        t.put({"id": "a", "Version": 1, "v": "again"}, condition=cond, values={":v": 1})
    assert stale.value.item == {"id": "a", "Version": 1, "v": "one"}
    old = t.put(
        {"id": "a", "Version": 2, "v": "two"}, condition=cond, values={":v": 2}, return_values="ALL_OLD"
    )
    assert old == {"id": "a", "Version": 1, "v": "one"}
    assert t.put({"id": "b", "Version": 1}, return_values="ALL_OLD") is None
    import json

    docs = [json.loads(r.data) for r in app.env.state.transaction(lambda x: x.log_read(t.log, 0, 0, 100))]
    assert [d["e"] for d in docs] == ["INSERT", "MODIFY", "INSERT"]
    assert docs[1]["o"]["v"] == {"S": "one"} and docs[1]["n"]["v"] == {"S": "two"}


def test_concurrent_updates_creating_an_item_lose_no_increment(app: App) -> None:
    """ADD on a missing item creates it; eight threads doing so at once must not overwrite
    each other's first increments (a read of a missing row locks nothing)."""
    t = app.table("counts", key="id")
    rounds = 30

    def bump(_: int, k: int) -> None:
        t.update({"id": f"c{k}"}, "ADD n :one", values={":one": 1})
        app.transact([t.tx_update({"id": f"t{k}"}, "ADD n :one", values={":one": 1})])

    _together(8, rounds, bump)
    assert {i["id"]: i["n"] for i in t.items()} == {
        **{f"c{k}": 8 for k in range(rounds)},
        **{f"t{k}": 8 for k in range(rounds)},
    }


def test_concurrent_transactions_with_one_token_apply_once(app: App) -> None:
    """A retried TransactWriteItems racing its original (same token) must apply once."""
    t = app.table("tokened", key="id")
    rounds = 20

    def send(_: int, k: int) -> None:
        app.transact([t.tx_update({"id": "x"}, "ADD n :one", values={":one": 1})], token=f"tok-{k}")

    _together(6, rounds, send)
    assert t.get({"id": "x"})["n"] == rounds


def test_the_short_path_for_new_items_writes_the_general_change_record(app: App) -> None:
    """New items of a string-keyed, one-shard table get their change record from a short
    path; it must be byte for byte what the general path (_emit) writes."""
    import json

    fast = app.table("fast", key="id", stream="new_and_old_images")
    general = app.table("general", key="id", stream="new_and_old_images")
    general._insert_record = False
    items = [{"id": "a", "n": 1}, {"id": "ü-key", "m": {"x": [1, "y"]}}, {"id": "b" * 300, "s": "é"}]
    for item in items:
        fast.put(item)
        general.put(item)
        app.atomically(lambda item=item: fast.put({**item, "id": item["id"] + "-2"}))
        app.atomically(lambda item=item: general.put({**item, "id": item["id"] + "-2"}))

    def records(t):
        rows = app.env.state.transaction(lambda x: x.log_read(t.log, 0, 0, 100))
        return [(r.pkey, json.loads(r.data), r.data) for r in rows]

    got, want = records(fast), records(general)
    assert [(p, d) for p, d, _ in got] == [(p, d) for p, d, _ in want]
    assert [raw for _, _, raw in got] == [raw for _, _, raw in want]


def test_put_with_a_bad_condition_fails_cleanly_and_writes_nothing(app: App) -> None:
    t = app.table("bad_conditions", key="id")
    t.put({"id": "old", "v": 1})
    for key in ("old", "new"):
        with pytest.raises(ValidationError, match="an expression must be a string"):
            t.put({"id": key, "v": 2}, condition=123)  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="attribute type"):
            t.put({"id": key, "v": 2}, condition="attribute_type(v, :t)", values={":t": "XX"})
    assert t.get({"id": "old"}) == {"id": "old", "v": 1}
    assert t.get({"id": "new"}) is None


def test_a_token_with_a_set_of_numbers_in_values_applies_once(app: App) -> None:
    t = app.table("sets", key="id")
    add = [t.tx_update({"id": "x"}, "ADD s :s", values={":s": {1, 2}})]
    app.transact(add, token="with-a-set")
    app.transact([t.tx_update({"id": "x"}, "ADD s :s", values={":s": {Decimal(2), 1}})], token="with-a-set")
    assert t.get({"id": "x"})["s"] == {1, 2}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (b"ab", "6162"),  # binary is not its hex text
        (Decimal(1), "1"),  # a number is not its text
        ("1", Decimal(1)),
        (True, Decimal(1)),
        ([1, 2], [2, 1]),  # a list keeps its order
        ({"S": "a"}, "a"),  # a map that looks like DynamoDB JSON is still a map
        ({"a"}, ["a"]),  # a set is not a list
        (None, "None"),
    ],
    ids=[
        "bytes-hex",
        "number-text",
        "text-number",
        "bool-number",
        "list-order",
        "map-json",
        "set-list",
        "null",
    ],
)
def test_a_token_reused_for_another_request_is_refused(app: App, first, second) -> None:
    """DynamoDB: the same ClientRequestToken with different parameters within ten minutes is an
    IdempotentParameterMismatch, never a silent no-op."""
    t = app.table("fp", key="id")
    app.transact([t.tx_put({"id": "a", "v": first})], token="reused")
    with pytest.raises(IdempotentParameterMismatch, match="reused"):
        app.transact([t.tx_put({"id": "a", "v": second})], token="reused")
    with pytest.raises(IdempotentParameterMismatch):
        app.transact([t.tx_update({"id": "a"}, "SET v = :v", values={":v": second})], token="reused")
    app.transact([t.tx_update({"id": "b"}, "SET v = :v", values={":v": first})], token="in-values")
    with pytest.raises(IdempotentParameterMismatch):
        app.transact([t.tx_update({"id": "b"}, "SET v = :v", values={":v": second})], token="in-values")
    assert t.get({"id": "a"})["v"] == normalize(first)
    assert t.get({"id": "b"})["v"] == normalize(first)


def test_a_token_retried_with_the_same_request_in_another_spelling_is_applied_once(app: App) -> None:
    """Requests DynamoDB sees as identical (a number written as int or Decimal, a map's keys
    in another order, a set built in another order) are one request for the token."""
    t = app.table("same", key="id")

    def req(n, m, s):
        return [t.tx_update({"id": "x"}, "ADD n :n SET m = :m, s = :s", values={":n": n, ":m": m, ":s": s})]

    app.transact(req(1, {"a": 1, "b": "x"}, {"p", "q"}), token="spelled")
    app.transact(req(Decimal("1.0"), {"b": "x", "a": Decimal(1)}, {"q", "p"}), token="spelled")
    assert t.get({"id": "x"})["n"] == 1


def test_the_token_rules_of_transact_write_items(app_factory, clock: ManualClock) -> None:
    """ClientRequestToken: 1-36 characters; valid for ten minutes after the request completes;
    a different table, action kind or expression under the same token is a mismatch."""
    app = app_factory("rules", clock=clock)
    t = app.table("t", key="id")
    u = app.table("u", key="id")
    for bad in ("", "x" * 37, 5):
        with pytest.raises(ValidationError, match="1-36"):
            app.transact([t.tx_put({"id": "a"})], token=bad)
    app.transact([t.tx_put({"id": "a"})], token="t" * 36)
    for other in (
        [u.tx_put({"id": "a"})],
        [t.tx_delete({"id": "a"})],
        [t.tx_put({"id": "a"}, condition="attribute_not_exists(id)")],
        [t.tx_put({"id": "a"}), t.tx_put({"id": "b"})],
    ):
        with pytest.raises(IdempotentParameterMismatch):
            app.transact(other, token="t" * 36)
    assert u.get({"id": "a"}) is None and t.get({"id": "b"}) is None
    clock.advance(599)
    with pytest.raises(IdempotentParameterMismatch):
        app.transact([u.tx_put({"id": "a"})], token="t" * 36)
    clock.advance(2)
    app.transact([u.tx_put({"id": "a"})], token="t" * 36)  # expired: a new request
    assert u.get({"id": "a"}) == {"id": "a"}


@pytest.mark.parametrize(
    "key", [["a"], "a", 5, None, ("id", "a")], ids=["list", "str", "int", "none", "tuple"]
)
def test_a_key_that_is_not_a_dict_is_a_validation_error(t, key) -> None:
    t.put({"id": "a", "v": 1})
    calls = [
        lambda: t.get(key),
        lambda: t.update(key, "SET v = :v", values={":v": 2}),
        lambda: t.delete(key),
        lambda: t.tx_update(key, "SET v = :v", values={":v": 2}),
        lambda: t.tx_delete(key),
        lambda: t.tx_check(key, "attribute_exists(id)"),
        lambda: t.tx_put(key),
        lambda: t.scan(start_key=key or 1),
    ]
    for call in calls:
        with pytest.raises(ValidationError, match="must be a dict"):
            call()
    assert list(t.items()) == [{"id": "a", "v": 1}]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"limit": "x"}, "limit"),
        ({"limit": True}, "limit"),
        ({"limit": 0}, "limit"),
        ({"segment": "a", "total_segments": 2}, "segment"),
        ({"segment": 0, "total_segments": "2"}, "total_segments"),
        ({"segment": 2, "total_segments": 2}, "segment"),
    ],
)
def test_scan_arguments_of_the_wrong_type_are_validation_errors(t, kwargs, match) -> None:
    with pytest.raises(ValidationError, match=match):
        t.scan(**kwargs)


@pytest.mark.parametrize(
    "item",
    [
        {"id": "a", "": 1},
        {"id": "a", "m": {"": 1}},
        {"id": "a", "m": {"x": {"": "deep"}}},
        {"id": "a", "l": [{"": 1}]},
        {"id": "a", "l": [1, [{"ok": 1, "": 2}]]},
        {"id": "a", "f": 1.5, "m": {"": 1}},  # the careful path (a float)
    ],
    ids=["top", "map", "map-in-map", "map-in-list", "map-in-list-in-list", "careful-path"],
)
def test_an_empty_attribute_name_is_refused_at_any_depth(t, item) -> None:
    """DynamoDB: "Empty attribute name" for an attribute or a map key at any depth."""
    for _ in range(5):  # a shape seen again gets a compiled encoder: it must refuse too
        t.put({"id": "warm", "m": {"x": {"y": 1}}, "l": [{"ok": 1}], "f": Decimal(1)})
    with pytest.raises(ValidationError, match="Empty attribute name"):
        t.put(item)
    with pytest.raises(ValidationError, match="Empty attribute name"):
        t.update({"id": "a"}, "SET v = :v", values={":v": {"": 1}})
    with pytest.raises(ValidationError, match="Empty attribute name"):
        t.tx_put(item)
    assert t.get({"id": "a"}) is None
