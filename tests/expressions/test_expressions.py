"""DynamoDB expressions and values, against the documented semantics."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from eventlake.errors import ExpressionError, ValidationError
from eventlake.expressions import (
    apply_update,
    check_condition,
    deserialize_item,
    item_size,
    normalize,
    parse_key_condition,
    serialize_item,
    sort_key_bytes,
    to_dynamo,
    validate_placeholders,
)

ITEM = {
    "id": "a",
    "n": Decimal(5),
    "s": "hello",
    "tags": {"x", "y"},
    "nums": {Decimal(1), Decimal(2)},
    "l": [Decimal(1), "two", None],
    "m": {"child": {"deep": Decimal(3)}},
    "flag": True,
    "nothing": None,
    "b": b"\x01\x02",
}


def c(expr: str, values: dict | None = None, names: dict | None = None, item: dict | None = ITEM) -> bool:
    return check_condition(expr, item, names, values)


@pytest.mark.parametrize(
    ("expr", "values", "expected"),
    [
        ("n = :v", {":v": 5}, True),
        ("n <> :v", {":v": 5}, False),
        ("n < :v", {":v": 6}, True),
        ("n >= :v", {":v": 5}, True),
        ("s > :v", {":v": "hella"}, True),
        ("n = :v", {":v": "5"}, False),  # different types are never equal
        ("n < :v", {":v": "9"}, False),  # nor ordered
        ("absent = :v", {":v": 1}, False),
        ("absent <> :v", {":v": 1}, True),  # a missing attribute is not equal to anything
        ("absent < :v", {":v": 1}, False),
        ("n BETWEEN :a AND :b", {":a": 5, ":b": 5}, True),  # inclusive
        ("n BETWEEN :a AND :b", {":a": 6, ":b": 9}, False),
        ("n IN (:a, :b)", {":a": 1, ":b": 5}, True),
        ("s IN (:a)", {":a": "nope"}, False),
        ("size(s) = :v", {":v": 5}, True),
        ("size(tags) = :v", {":v": 2}, True),
        ("size(l) > :v", {":v": 2}, True),
        ("size(absent) = :v", {":v": 0}, False),
        ("m.child.deep = :v", {":v": 3}, True),
        ("l[1] = :v", {":v": "two"}, True),
        ("l[9] = :v", {":v": "two"}, False),
    ],
)
def test_comparisons(expr: str, values: dict, expected: bool) -> None:
    assert c(expr, values) is expected


@pytest.mark.parametrize(
    ("expr", "values", "expected"),
    [
        ("attribute_exists(n)", None, True),
        ("attribute_exists(nothing)", None, True),  # NULL exists
        ("attribute_not_exists(absent)", None, True),
        ("attribute_exists(m.child.deep)", None, True),
        ("attribute_type(tags, :t)", {":t": "SS"}, True),
        ("attribute_type(nums, :t)", {":t": "NS"}, True),
        ("attribute_type(flag, :t)", {":t": "BOOL"}, True),
        ("attribute_type(nothing, :t)", {":t": "NULL"}, True),
        ("begins_with(s, :p)", {":p": "he"}, True),
        ("begins_with(b, :p)", {":p": b"\x01"}, True),
        ("begins_with(n, :p)", {":p": "5"}, False),
        ("contains(s, :p)", {":p": "ell"}, True),
        ("contains(tags, :p)", {":p": "x"}, True),
        ("contains(l, :p)", {":p": "two"}, True),
        ("contains(l, :p)", {":p": "three"}, False),
    ],
)
def test_functions(expr: str, values: dict | None, expected: bool) -> None:
    assert c(expr, values) is expected


def test_precedence_not_and_or_and_case_insensitive_keywords() -> None:
    v = {":one": 1, ":five": 5}
    # OR binds weakest: false AND false OR true == true
    assert c("n = :one and n = :one OR n = :five", v)
    assert not c("n = :one AND (n = :one OR n = :five)", v)
    assert c("NOT n = :one AND n = :five", v)
    assert not c("not (n = :five)", v)


def test_no_item_means_nothing_exists() -> None:
    assert check_condition("attribute_not_exists(id)", None, None, None)
    assert not check_condition("attribute_exists(id) OR id = :v", None, None, {":v": "a"})


def test_names_placeholders_and_reserved_words() -> None:
    assert c("#s = :v", {":v": "hello"}, {"#s": "s"})
    with pytest.raises(ExpressionError, match="reserved keyword; reserved keyword: Value") as e:
        c("Value = :v", {":v": 1})
    assert e.value.position == 0
    assert c("Version = :v", {":v": 1}, item={"Version": Decimal(1)})  # not reserved


@pytest.mark.parametrize(
    ("expr", "pos"),
    [("n = ", 4), ("n = :v AND", 10), ("(n = :v", 7), ("n == :v", 3), ("foo(n)", 0), ("n = :v $", 7)],
)
def test_syntax_errors_report_the_position(expr: str, pos: int) -> None:
    with pytest.raises(ExpressionError) as e:
        c(expr, {":v": 1})
    assert e.value.position == pos
    assert "Invalid ConditionExpression" in str(e.value)


def test_update_set_arithmetic_and_functions() -> None:
    new = apply_update(
        "SET n = n + :one, s2 = if_not_exists(s2, :d), l = list_append(l, :more), m.child.x = :x",
        ITEM,
        None,
        {":one": 1, ":d": "default", ":more": ["z"], ":x": 9},
    )
    assert new["n"] == 6 and new["s2"] == "default" and new["l"][-1] == "z"
    assert new["m"]["child"] == {"deep": 3, "x": 9}
    assert ITEM["n"] == 5  # the input is never mutated


def test_update_right_hand_sides_see_the_item_before_the_update() -> None:
    new = apply_update("SET a = b, b = a", {"a": Decimal(1), "b": Decimal(2)}, None, None)
    assert new == {"a": 2, "b": 1}


def test_update_remove_add_delete() -> None:
    new = apply_update(
        "REMOVE s, l[0] ADD n :two, tags :t, newcount :one DELETE nums :gone",
        ITEM,
        None,
        {":two": 2, ":t": {"z"}, ":one": 1, ":gone": {Decimal(1), Decimal(2)}},
    )
    assert "s" not in new and new["l"] == ["two", None]
    assert new["n"] == 7 and new["tags"] == {"x", "y", "z"} and new["newcount"] == 1
    assert "nums" not in new  # deleting every element removes the attribute


def test_set_list_index_past_the_end_appends() -> None:
    assert apply_update("SET l[10] = :v", {"l": [Decimal(1)]}, None, {":v": "x"})["l"] == [1, "x"]


@pytest.mark.parametrize(
    ("expr", "values", "message"),
    [
        ("SET a = :v, a = :v", {":v": 1}, "overlap"),
        ("SET m.child = :v REMOVE m.child.deep", {":v": 1}, "overlap"),
        ("SET s = s + :v", {":v": 1}, "operand type"),
        ("ADD s :v", {":v": 1}, "operand type"),
        ("ADD tags :v", {":v": {Decimal(1)}}, "incorrect data type"),
        ("SET absent.x = :v", {":v": 1}, "document path"),
        ("SET id = :v", {":v": "b"}, "part of the key"),
        ("SET a = nope", None, "does not exist"),
    ],
)
def test_update_errors(expr: str, values: dict | None, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        apply_update(expr, ITEM, None, values, key_attributes=("id",))


def test_update_clauses_only_once() -> None:
    with pytest.raises(ExpressionError, match="only be used once"):
        apply_update("SET a = :v SET b = :v", {}, None, {":v": 1})


def test_placeholders_must_be_used_and_defined() -> None:
    with pytest.raises(ValidationError, match=r"unused in expressions: keys: \{:extra\}"):
        validate_placeholders(["a = :v"], None, {":v": 1, ":extra": 2})
    with pytest.raises(ValidationError, match="ExpressionAttributeNames unused"):
        validate_placeholders(["a = :v"], {"#n": "x"}, {":v": 1})
    with pytest.raises(ExpressionError, match="not defined; attribute value: :v"):
        validate_placeholders(["a = :v"], None, None)
    validate_placeholders(
        ["SET #a = :v", "attribute_exists(#a)"], {"#a": "x"}, {":v": 1}, ["update", "condition"]
    )


def test_key_conditions() -> None:
    kc = parse_key_condition(
        "pk = :p AND begins_with(sk, :pre)", None, {":p": "u", ":pre": "2024"}, "pk", "sk"
    )
    assert kc.partition_value == "u" and kc.matches_sort("2024-01") and not kc.matches_sort("2023")
    kc = parse_key_condition(
        "pk = :p AND sk BETWEEN :a AND :b", None, {":p": "u", ":a": Decimal(1), ":b": Decimal(3)}, "pk", "sk"
    )
    assert kc.matches_sort(Decimal(3)) and not kc.matches_sort(Decimal(4))
    with pytest.raises(ValidationError, match="missed key schema element: pk"):
        parse_key_condition("sk = :a", None, {":a": 1}, "pk", "sk")
    with pytest.raises(ValidationError, match="partition key needs '='"):
        parse_key_condition("pk > :a", None, {":a": 1}, "pk", "sk")


def test_values_normalize_and_refuse_bad_input() -> None:
    assert normalize(1.5) == Decimal("1.5") and normalize((1, 2)) == [1, 2]
    for bad, msg in [
        (float("nan"), "NaN"),
        (set(), "empty set"),
        ({1, "a"}, "only strings"),
        (Decimal("1" * 39), "38"),
        (Decimal("1e200"), "range"),
        (object(), "cannot be stored"),
        ({1: "x"}, "map keys"),
    ]:
        with pytest.raises(ValidationError, match=msg):
            normalize(bad)


def test_dynamodb_json_round_trip() -> None:
    av = serialize_item(ITEM)
    assert av["n"] == {"N": "5"} and av["b"] == {"B": "AQI="} and av["nothing"] == {"NULL": True}
    assert to_dynamo(Decimal("1.50")) == {"N": "1.5"} and to_dynamo(Decimal("1E+2")) == {"N": "100"}
    assert deserialize_item(av) == ITEM
    with pytest.raises(ValidationError, match="malformed"):
        deserialize_item({"x": {"N": "not a number"}})


def test_item_size_follows_the_documented_rules() -> None:
    assert item_size({"a": "abc"}) == 1 + 3
    assert item_size({"n": Decimal("12345")}) == 1 + 4  # 5 digits -> 3 bytes + 1
    assert item_size({"flag": True}) == 4 + 1
    assert item_size({"m": {"k": "v"}}) == 1 + 3 + 1 + 1 + 1


def test_sort_key_bytes_orders_numbers_by_value() -> None:
    rng = random.Random(5)
    nums = [Decimal(0), Decimal("1E-130"), Decimal("-1E-130"), Decimal("9.99E+125"), Decimal("-9.99E+125")]
    nums += [Decimal(rng.randint(-(10**6), 10**6)) / Decimal(10) ** rng.randint(0, 8) for _ in range(2000)]
    by_value = sorted(nums)
    by_bytes = sorted(nums, key=sort_key_bytes)
    assert [str(x) for x in by_bytes] == [str(x) for x in by_value] or all(
        a == b for a, b in zip(by_bytes, by_value, strict=True)
    )
    assert sort_key_bytes("a") < sort_key_bytes("b") < sort_key_bytes("ü")


def test_numbers_keep_38_digits_through_arithmetic() -> None:
    big = Decimal("1234567890123456789012345678901234567")  # 37 digits
    new = apply_update("ADD n :d SET m = n + :d", {"n": big}, None, {":d": Decimal(1)})
    plus_one = Decimal("1234567890123456789012345678901234568")
    assert new["n"] == plus_one and new["m"] == plus_one
    assert sort_key_bytes(big) < sort_key_bytes(plus_one)


def test_hostile_expressions_get_clear_errors() -> None:
    with pytest.raises(ExpressionError, match="4 KB"):
        c("(" * 3000 + "attribute_exists(n)" + ")" * 3000)
    with pytest.raises(ExpressionError, match="nested more than 64"):
        c("(" * 100 + "attribute_exists(n)" + ")" * 100)
    with pytest.raises(ExpressionError, match="nested more than 64"):
        c("NOT " * 100 + "attribute_exists(n)")
    nested = "attribute_exists(n)"
    for _ in range(20):
        nested = f"(attribute_exists(n) AND {nested})"
    assert c(nested)
    with pytest.raises(ExpressionError, match="redundant parentheses"):  # DynamoDB refuses "((x))"
        c("(" * 20 + "attribute_exists(n)" + ")" * 20)


def test_documents_nested_deeper_than_32_levels_are_refused() -> None:
    doc: dict = {"leaf": 1}
    for _ in range(40):
        doc = {"d": doc}
    with pytest.raises(ValidationError, match="32 levels"):
        normalize({"id": "a", "m": doc})


def test_number_sizes_from_text_match_significant_digits() -> None:
    """Item sizes count one byte per two significant digits plus one; the fast text-based
    count must agree with counting the digits of the normalised Decimal, for any number."""
    import random
    from decimal import Context, Decimal

    from eventlake.expressions.values import _digits_size, encode_item, item_size, number_text, serialize_item

    wide = Context(prec=1000, Emax=999_999, Emin=-999_999)
    rng = random.Random(3)
    samples = [Decimal(0), Decimal("1E+125"), Decimal("-1E-130"), Decimal("1000"), Decimal("100.0500")]
    for _ in range(3000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 38)))
        samples.append(Decimal(f"{rng.choice(['', '-'])}{digits}E{rng.randint(-100, 80)}"))
    for n in samples:
        expected_digits = len(n.normalize(wide).as_tuple().digits) if n else 1
        assert _digits_size(number_text(n)) == (expected_digits + 1) // 2 + 1, n
    item = {"id": "ü-1", "n": Decimal("12.50"), "m": {"a": [Decimal(1), "x", None, True]}, "b": b"\x00\x01"}
    avs, size = encode_item(item)
    # id: 2 + 4 (ü is two bytes); n: 1 + 3; m: 1 + (3 + 1 + 1 + (3 + 3 + 2 + 2 + 2)); b: 1 + 2
    assert avs == serialize_item(item) and size == item_size(item) == 6 + 4 + 18 + 3


def _prepare_agrees_with_reference(item: dict) -> bool:
    """prepare_item gives normalize + encode_item's result, or raises its error; True when the
    item was valid."""
    from eventlake.expressions.values import encode_item, prepare_item

    try:
        expected = normalize(item)
    except ValidationError as e:
        with pytest.raises(ValidationError) as got:
            prepare_item(item)
        assert str(got.value) == str(e), item
        return False
    assert prepare_item(item) == (expected, *encode_item(expected)), item
    return True


def test_prepare_item_agrees_with_normalise_then_encode() -> None:
    """The one-walk put path must store exactly what normalising and then encoding stored."""

    rng = random.Random(11)

    def value(depth: int) -> object:
        kind = rng.randrange(11 if depth < 4 else 7)
        return [
            lambda: "".join(rng.choice("aü€x") for _ in range(rng.randint(1, 6))),
            lambda: rng.randint(-(10**40), 10**40) if rng.random() < 0.1 else rng.randint(-999, 999),
            lambda: rng.random() * 10 ** rng.randint(-5, 5),
            lambda: Decimal(rng.randint(-(10**6), 10**6)) / Decimal(10) ** rng.randint(0, 8),
            lambda: rng.choice([True, False, None]),
            lambda: bytes(rng.randrange(256) for _ in range(rng.randint(1, 4))),
            lambda: {"s", "t"} if rng.random() < 0.5 else {Decimal(1), Decimal("2.5")},
            lambda: [value(depth + 1) for _ in range(rng.randint(0, 3))],
            lambda: tuple(value(depth + 1) for _ in range(rng.randint(0, 2))),
            lambda: {f"k{i}": value(depth + 1) for i in range(rng.randint(0, 3))},
            lambda: {"nested": {"deeper": value(depth + 1)}},
        ][kind]()

    checked = 0
    for _ in range(1500):
        item = {"id": "x", **{f"a{i}": value(0) for i in range(rng.randint(0, 5))}}
        checked += _prepare_agrees_with_reference(item)
    assert checked > 1000


def test_prepare_item_agrees_with_normalise_then_encode_on_number_and_text_edges() -> None:
    """The put path's shortcut for plain Decimals and ASCII text must give the careful path's
    answer (or its error) for zeros, exponents, 38+ digits, NaN, and strings that are not
    valid Unicode."""
    from eventlake.expressions.values import prepare_item

    texts = ["0", "-0", "0.000", "-0.0", "12.50", "100", "1E+3", "1E-7", "0.000001", "-12.340",
             "1" * 38, "1" * 39, "0." + "1" * 37, "9.9999999999999999999999999999999999999E+125",
             "1E+126", "1E-131", "NaN", "-Infinity", "sNaN", "123456789012345678901234567890123.45"]
    values: list[object] = [Decimal(t) for t in texts]
    values += ["ascii", "ünï", "bad \udc80 half", "\ud800", 10**38 - 1, -(10**38), 1.5, float("inf")]
    for v in values:
        for item in ({"id": "x", "v": v}, {"id": "x", "m": {"v": v}}, {"id": "x", "l": [v]}):
            _prepare_agrees_with_reference(item)
    with pytest.raises(ValidationError, match=r"^m\.k: string .* is not valid Unicode"):
        prepare_item({"id": "x", "m": {"k": "\udc80"}})
    with pytest.raises(ValidationError, match=r"^m: string .* is not valid Unicode"):
        prepare_item({"id": "x", "m": {"\udc80": 1}})


def test_prepare_item_errors_name_the_path() -> None:
    from eventlake.expressions.values import prepare_item

    with pytest.raises(ValidationError, match=r"^m\.l\[1\]: NaN"):
        prepare_item({"m": {"l": [1, float("nan")]}})
    with pytest.raises(ValidationError, match=r"^m: map keys must be strings"):
        prepare_item({"m": {1: "x"}})
    with pytest.raises(ValidationError, match="an item must be a dict"):
        prepare_item([1])  # type: ignore[arg-type]
    doc: dict = {"leaf": 1}
    for _ in range(40):
        doc = {"d": doc}
    with pytest.raises(ValidationError, match="32 levels"):
        prepare_item({"id": "a", "m": doc})


def test_compiled_conditions_agree_with_the_reference_walk() -> None:
    """check_condition runs conditions compiled into closures; on random conditions over
    random items it must give the tree walk's answer, or raise the same error."""
    from eventlake.expressions.conditions import evaluate_condition

    rng = random.Random(5)
    attrs = ["id", "n", "s", "l[0]", "m.child", "absent", "#a", "flag"]
    values = [Decimal(1), Decimal(5), "a", "hello", "é", True, None, b"\x01", {"x"}, [Decimal(1)]]

    def operand() -> str:
        return rng.choice([*attrs, ":v", ":w"])

    def cond(depth: int = 0) -> str:
        r = rng.random()
        if depth < 3 and r < 0.3:
            return f"({cond(depth + 1)}) {rng.choice(['AND', 'OR'])} {cond(depth + 1)}"
        if depth < 3 and r < 0.4:
            return f"NOT {cond(depth + 1)}"
        kind = rng.randrange(6)
        if kind == 0:
            return f"{rng.choice(['attribute_exists', 'attribute_not_exists'])}({rng.choice(attrs)})"
        if kind == 1:
            return f"{rng.choice(attrs)} BETWEEN :v AND :w"
        if kind == 2:
            return f"{rng.choice(attrs)} IN (:v, :w)"
        if kind == 3:
            return f"{rng.choice(['begins_with', 'contains'])}({rng.choice(attrs)}, :v)"
        if kind == 4:
            return f"size({rng.choice(attrs)}) {rng.choice(['=', '<', '>='])} :v"
        return f"{operand()} {rng.choice(['=', '<>', '<', '<=', '>', '>='])} {operand()}"

    seen: set[object] = set()
    for _ in range(3000):
        expr = cond()
        item = rng.choice([None, ITEM, {"id": "b", "n": rng.choice(values[:5]), "a": rng.choice(values)}])
        vals = {":v": rng.choice(values), ":w": rng.choice(values)}
        names = rng.choice([{"#a": "n"}, {"#a": "s"}, None])
        try:
            expected: object = evaluate_condition(expr, item, names, vals)
        except (ExpressionError, ValidationError) as e:
            expected = (type(e), str(e))
        try:
            got: object = check_condition(expr, item, names, vals)
        except (ExpressionError, ValidationError) as e:
            got = (type(e), str(e))
        assert got == expected, (expr, item, names, vals)
        seen.add(expected if isinstance(expected, bool) else "error")
    assert seen == {True, False, "error"}


def test_a_conditions_value_for_a_missing_item_is_known_without_values_when_it_can_be() -> None:
    from eventlake.expressions import condition_on_missing
    from eventlake.expressions.conditions import evaluate_condition

    fixed = {
        "attribute_not_exists(id)": True,
        "attribute_exists(id)": False,
        "attribute_not_exists(id) OR Version < :v": True,
        "attribute_exists(id) AND Version < :v": False,
        "NOT attribute_exists(id)": True,
        "a = b": False,
        "a <> b": True,
        "(attribute_exists(a) OR attribute_not_exists(b)) AND attribute_not_exists(c)": True,
    }
    for expr, want in fixed.items():
        assert condition_on_missing(expr) is want, expr
        assert evaluate_condition(expr, None, None, {":v": 1}) is want, expr
    # A value is evaluated before the answer is known: left to the evaluator (it may raise).
    for expr in ("Version < :v OR attribute_not_exists(id)", ":v = :v", "attribute_exists(id) OR a = :v"):
        assert condition_on_missing(expr) is None, expr


def test_encoders_compiled_per_shape_agree_with_the_reference() -> None:
    """Items of a recurring shape are encoded by code written for that shape; for any values
    (including ones of other types, wrong ones and non-ASCII text) the result must be the
    careful path's, or its error."""
    from eventlake.expressions import shapes

    rng = random.Random(23)
    pool: list[object] = [
        "s", "ü", "\udc80", "", Decimal("12.50"), Decimal("0.00"), Decimal("-0"), Decimal("1E+5"),
        Decimal("NaN"), Decimal("1" * 39), 0, -7, 10**38, True, False, None, 1.5, b"x", [1], {"k": 1},
    ]
    templates = [
        {"id": "", "v": Decimal(1), "n": 1, "t": Decimal(1), "h": {"a": "", "b": "", "c": ""}},
        {"id": "", "flag": True, "none": None, "m": {"deep": {"n": 1, "s": ""}}},
        {"pk": "", "ü-name": "", "count": 1},
    ]
    compiled_used = 0
    for _ in range(3000):
        template = rng.choice(templates)

        def fill(doc: dict) -> dict:
            out = {}
            for k, v in doc.items():
                if isinstance(v, dict):
                    out[k] = fill(v)
                elif rng.random() < 0.06:
                    out[k] = rng.choice(pool)  # a value of another type, or a bad one
                elif isinstance(v, str):
                    out[k] = rng.choice(["a", "bc", "ünï", "x" * 20])
                elif isinstance(v, bool):
                    out[k] = rng.choice([True, False])
                elif isinstance(v, int):
                    out[k] = rng.randint(-(10**6), 10**6)
                elif isinstance(v, Decimal):
                    out[k] = Decimal(rng.randint(-(10**8), 10**8)) / Decimal(10) ** rng.randint(0, 6)
                else:
                    out[k] = v
            return out

        item = fill(template)
        encoder = shapes.compiled.get(tuple(item))
        compiled_used += encoder is not None and encoder(item) is not None
        _prepare_agrees_with_reference(item)
    assert compiled_used > 1000  # the compiled encoders did much of the work


def test_item_decoding_agrees_with_the_value_by_value_reference() -> None:
    """deserialize_item reads strings, numbers and maps directly; for any stored document it
    must give from_dynamo's answer, or its error."""
    from eventlake.expressions.values import from_dynamo

    rng = random.Random(31)
    avs: list[object] = [
        {"S": "x"}, {"S": ""}, {"N": "12.5"}, {"N": "-0"}, {"N": "1E+5"}, {"N": "NaN"}, {"N": "abc"},
        {"N": 5}, {"S": 5}, {"B": "AQI="}, {"BOOL": True}, {"NULL": True}, {"SS": ["a"]},
        {"NS": ["1", "2"]}, {"L": [{"S": "a"}, {"N": "1"}]}, {"M": {"k": {"S": "v"}}},
        {"M": {"k": {"N": "x"}}}, {"S": "a", "N": "1"}, {}, "bare", None,
    ]
    for _ in range(2000):
        doc = {f"a{i}": rng.choice(avs) for i in range(rng.randint(1, 5))}
        if rng.random() < 0.3:
            doc["m"] = {"M": {f"b{i}": rng.choice(avs) for i in range(rng.randint(0, 3))}}
        try:
            expected: object = {k: from_dynamo(v) for k, v in doc.items()}
        except ValidationError as e:
            expected = str(e)
        try:
            got: object = deserialize_item(doc)
        except ValidationError as e:
            got = str(e)
        assert repr(got) == repr(expected), doc  # repr: Decimal("NaN") is not equal to itself


def test_lambda_request_ids_are_version_4_uuids() -> None:
    import uuid

    from eventlake.events.context import LambdaContext, request_id

    for _ in range(500):
        rid = request_id()
        u = uuid.UUID(rid)
        assert str(u) == rid and u.version == 4 and u.variant == uuid.RFC_4122
    ctx = LambdaContext("f", region="eu-west-1", account="42")
    assert ctx.invoked_function_arn == "arn:aws:lambda:eu-west-1:42:function:f"
    assert ctx.log_group_name == "/aws/lambda/f" and "[$LATEST]" in ctx.log_stream_name


def test_str_subclass_keys_and_values_are_stored_as_their_plain_strings() -> None:
    """A str Enum member (or any str subclass) as an attribute name or value is its string
    value - what boto3 would send - on every path: first sight, compiled shapes, nested."""
    import enum

    from eventlake.expressions import shapes
    from eventlake.expressions.values import prepare_item

    class Field(str, enum.Enum):  # noqa: UP042 - the mixin whose str() is not its value
        NAME = "name"
        KIND = "kind"

    plain = {"id": "x", "name": "a", "m": {"kind": "b", "n": 1}}
    for _ in range(shapes.SIGHTINGS + 1):  # the plain shape gets its compiled encoder
        prepare_item(dict(plain))
    odd = {"id": "x", Field.NAME: Field.KIND, "m": {Field.KIND: "b", "n": 1}}
    for _ in range(shapes.SIGHTINGS + 1):
        norm, avs, size = prepare_item(odd)
        assert norm == {"id": "x", "name": "kind", "m": {"kind": "b", "n": Decimal(1)}}
        m = {"M": {"kind": {"S": "b"}, "n": {"N": "1"}}}
        assert avs == {"id": {"S": "x"}, "name": {"S": "kind"}, "m": m}
        assert all(type(k) is str for k in avs) and all(type(k) is str for k in avs["m"]["M"])
        assert size == prepare_item(plain | {"name": "kind"})[2]
        assert _prepare_agrees_with_reference(odd)
    with pytest.raises(ValidationError, match="map keys must be strings"):
        prepare_item({"id": "x", 5: "y"})


def test_shapes_too_large_or_too_deep_to_compile_take_the_general_walk() -> None:
    from eventlake.expressions import shapes
    from eventlake.expressions.values import MAX_DEPTH, prepare_item

    wide = {f"a{i}": i for i in range(shapes.MAX_VALUES + 10)}
    deep: dict = {"leaf": "x"}
    for _ in range(MAX_DEPTH - 1):
        deep = {"d": deep}
    for item in (wide, deep):
        for _ in range(shapes.SIGHTINGS + 2):
            assert _prepare_agrees_with_reference(item)
    assert tuple(wide) not in shapes.compiled  # too many values: never compiled
    too_deep = {"d": deep}
    with pytest.raises(ValidationError, match="nesting"):
        prepare_item(too_deep)


def test_an_expression_that_is_not_a_string_is_a_validation_error() -> None:
    from eventlake.expressions.placeholders import validate_condition_placeholders, validate_placeholders

    for bad in (123, ["a = :v"], b"a = :v"):
        with pytest.raises(ValidationError, match="an expression must be a string"):
            validate_condition_placeholders(bad, None, {":v": 1})  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="an expression must be a string"):
            validate_placeholders(["SET a = :v", bad], None, {":v": 1})  # type: ignore[list-item]
