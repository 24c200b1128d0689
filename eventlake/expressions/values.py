"""DynamoDB values: normalisation, DynamoDB JSON, item size, key ordering.

Items are plain Python values as boto3's resource layer uses them: ``str``, ``Decimal`` (every
number), ``bool``, ``None``, ``bytes``, sets of str/Decimal/bytes, ``list`` and ``dict``.
"""

from __future__ import annotations

import base64
import json
import math
from decimal import Context, Decimal, InvalidOperation
from typing import Any

import orjson

from ..errors import ValidationError
from .shapes import compiled as _compiled
from .shapes import seen as _seen

_MAX = Decimal("9.9999999999999999999999999999999999999E+125")
_MIN = Decimal("1E-130")
_CTX = Context(prec=38)
# Decimal.normalize() rounds to the *current* context (28 digits by default), which would
# silently change 29-38 digit numbers; every normalisation here names a wide-enough context.
_WIDE = Context(prec=1000, Emax=999_999, Emin=-999_999)
TYPES = ("S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M")


def _number(v: Any, path: str) -> Decimal:
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ValidationError(f"{path or 'value'}: NaN and Infinity are not DynamoDB numbers")
        v = Decimal(repr(v))
    elif isinstance(v, int):
        v = Decimal(v)
    if not v.is_finite():
        raise ValidationError(f"{path or 'value'}: NaN and Infinity are not DynamoDB numbers")
    if not v:
        return v
    # Cheap checks first: a short text cannot hold 39 digits; as_tuple() counts trailing
    # zeros too, so <= 38 there is enough.
    if len(str(v)) > 38 and len(v.as_tuple().digits) > 38:
        digits = len(v.normalize(_WIDE).as_tuple().digits)
        if digits > 38:
            raise ValidationError(
                f"{path or 'value'}: number {v} has {digits} significant digits; DynamoDB allows 38"
            )
    if not -130 <= v.adjusted() <= 125:
        raise ValidationError(f"{path or 'value'}: number {v} is outside DynamoDB's range 1E-130..1E+126")
    return v


MAX_DEPTH = 32  # DynamoDB's limit on nested lists and maps
_INT_LIMIT = 10**38


def normalize(value: Any, path: str = "", depth: int = 0) -> Any:
    """Canonical form of a value, or a :class:`ValidationError` naming where it is wrong."""
    t = type(value)
    if t is str:
        if not value.isascii():
            _utf8_len(value, path)
        return value
    if t is bool or value is None:
        return value
    if t is int and -_INT_LIMIT < value < _INT_LIMIT:
        return Decimal(value)  # at most 38 digits and inside the range: nothing to check
    if t is dict and depth < MAX_DEPTH:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                if not isinstance(k, str):
                    raise ValidationError(f"{path or 'item'}: map keys must be strings, got {k!r}")
                k = str.__str__(k)  # a str subclass (a str Enum member): its plain string
            if not k:
                _empty_name(path)
            if not k.isascii():
                _utf8_len(k, path)
            out[k] = normalize(v, f"{path}.{k}" if path else k, depth + 1)
        return out
    if isinstance(value, str):
        return normalize(str.__str__(value), path, depth)  # a str Enum: its value, not "K.A"
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, Decimal)):
        return _number(value, path)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple, dict)) and depth >= MAX_DEPTH:
        raise ValidationError(
            f"{path or 'item'}: nesting of lists and maps exceeds DynamoDB's limit of {MAX_DEPTH} levels"
        )
    if isinstance(value, (list, tuple)):
        return [normalize(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValidationError(f"{path or 'item'}: map keys must be strings, got {k!r}")
            k = normalize(str.__str__(k), path)
            if not k:
                _empty_name(path)
            out[k] = normalize(v, f"{path}.{k}" if path else k, depth + 1)
        return out
    if isinstance(value, (set, frozenset)):
        if not value:
            raise ValidationError(f"{path or 'value'}: an empty set is not allowed in DynamoDB")
        kinds = {type(normalize(v, path)).__name__ for v in value}
        if len(kinds) != 1 or kinds - {"str", "Decimal", "bytes"}:
            raise ValidationError(
                f"{path or 'value'}: a set must hold only strings, only numbers or only binary"
            )
        return {normalize(v, path) for v in value}
    raise ValidationError(f"{path or 'value'}: type {type(value).__name__} cannot be stored")


def _empty_name(path: str) -> None:
    raise ValidationError(
        f"{path or 'item'}: Empty attribute name; DynamoDB refuses an empty name for an "
        "attribute and for a map key at any depth"
    )


def normalize_item(item: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ValidationError(f"an item must be a dict, got {type(item).__name__}")
    return normalize(item)


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "S"
    if isinstance(value, Decimal):
        return "N"
    if isinstance(value, bytes):
        return "B"
    if isinstance(value, list):
        return "L"
    if isinstance(value, dict):
        return "M"
    if isinstance(value, (set, frozenset)):
        first = next(iter(value))
        return {"str": "SS", "Decimal": "NS", "bytes": "BS"}[type(first).__name__]
    raise ValidationError(f"type {type(value).__name__} is not a DynamoDB type")


def number_text(n: Decimal) -> str:
    """The canonical text DynamoDB returns for a number: no exponent, no trailing zeros."""
    if not n:
        return "0"
    t = str(n)
    if "E" in t:
        return format(n.normalize(_CTX), "f")
    if "." in t:
        t = t.rstrip("0").rstrip(".")
    return t


def to_dynamo(value: Any) -> dict[str, Any]:
    t = type_name(value)
    if t == "S":
        return {"S": value}
    if t == "N":
        return {"N": number_text(value)}
    if t == "B":
        return {"B": base64.b64encode(value).decode()}
    if t == "BOOL":
        return {"BOOL": value}
    if t == "NULL":
        return {"NULL": True}
    if t == "SS":
        return {"SS": sorted(value)}
    if t == "NS":
        return {"NS": [number_text(v) for v in sorted(value)]}
    if t == "BS":
        return {"BS": [base64.b64encode(v).decode() for v in sorted(value)]}
    if t == "L":
        return {"L": [to_dynamo(v) for v in value]}
    return {"M": {k: to_dynamo(v) for k, v in value.items()}}


def from_dynamo(av: Any) -> Any:
    if not isinstance(av, dict) or len(av) != 1:
        raise ValidationError(f"malformed DynamoDB attribute value: {av!r:.80}")
    ((t, v),) = av.items()
    try:
        if t == "S":
            return str(v)
        if t == "N":
            return Decimal(v)
        if t == "B":
            return base64.b64decode(v)
        if t == "BOOL":
            return bool(v)
        if t == "NULL":
            return None
        if t == "SS":
            return set(v)
        if t == "NS":
            return {Decimal(x) for x in v}
        if t == "BS":
            return {base64.b64decode(x) for x in v}
        if t == "L":
            return [from_dynamo(x) for x in v]
        if t == "M":
            return {k: from_dynamo(x) for k, x in v.items()}
    except (InvalidOperation, ValueError, TypeError) as e:
        raise ValidationError(f"malformed DynamoDB {t} value {v!r:.80}: {e}") from None
    raise ValidationError(f"unknown DynamoDB type {t!r}")


def dump_avs(avs: dict[str, Any]) -> bytes:
    """Stored form of DynamoDB JSON: compact UTF-8, written by orjson because every table write
    and change record goes through it."""
    return orjson.dumps(avs)


def load_avs(raw: bytes | str) -> Any:
    """DynamoDB JSON from its stored form. ``json`` reads what orjson refuses (an escaped lone
    surrogate), so nothing a store holds becomes unreadable."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def serialize_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: to_dynamo(v) for k, v in item.items()}


def deserialize_item(avs: dict[str, Any]) -> dict[str, Any]:
    """An item from DynamoDB JSON. Strings, numbers and maps - nearly every stored value - are
    read here directly; the rest, and anything malformed, go through :func:`from_dynamo`."""
    out: dict[str, Any] = {}
    for k, av in avs.items():
        if type(av) is dict and len(av) == 1:
            v = av.get("S")
            if type(v) is str:
                out[k] = v
                continue
            v = av.get("N")
            if type(v) is str and v[-1:].isdigit():
                try:
                    out[k] = Decimal(v)
                    continue
                except InvalidOperation:
                    pass
            v = av.get("M")
            if type(v) is dict:
                out[k] = deserialize_item(v)
                continue
        out[k] = from_dynamo(av)
    return out


def _digits_size(text: str) -> int:
    """Bytes DynamoDB charges for a number, from its canonical text: one per two significant
    digits, plus one (cheaper than normalising the Decimal with a wide context)."""
    digits = len(text.replace("-", "").replace(".", "").strip("0")) or 1
    return (digits + 1) // 2 + 1


def _text_len(s: str) -> int:
    return len(s) if s.isascii() else _utf8_len(s, "")


def _utf8_len(s: str, where: str) -> int:
    """UTF-8 length of a string, which must be encodable: DynamoDB strings are UTF-8, and a
    lone surrogate (from a bad decode upstream) would fail far from its origin."""
    try:
        return len(s.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValidationError(
            f"{where or 'value'}: string {s!r:.60} is not valid Unicode (it holds a lone surrogate); "
            "DynamoDB strings are UTF-8 - decode the source with errors='replace' or store it as binary"
        ) from None


def _value_size(v: Any) -> int:
    t = type(v)
    if t is str:
        return _text_len(v)
    if t is Decimal:
        return _digits_size(number_text(v))
    if t is dict:
        return 3 + sum(1 + _text_len(k) + _value_size(x) for k, x in v.items())
    if t is list:
        return 3 + sum(1 + _value_size(x) for x in v)
    if t is bool or v is None:
        return 1
    if t is bytes:
        return len(v)
    if t in (set, frozenset):
        return sum(_value_size(x) for x in v)
    type_name(v)  # raises for a type DynamoDB cannot hold
    raise AssertionError("unreachable")


def encode_value(v: Any) -> tuple[dict[str, Any], int]:
    """DynamoDB JSON and size of a normalised value in one walk: a write needs both, on the
    path of every conditional put."""
    t = type(v)
    if t is str:
        return {"S": v}, _text_len(v)
    if t is Decimal:
        text = number_text(v)
        return {"N": text}, _digits_size(text)
    if t is dict:
        out = {}
        size = 3
        for k, x in v.items():
            av, n = encode_value(x)
            out[k] = av
            size += 1 + _text_len(k) + n
        return {"M": out}, size
    if t is list:
        items = []
        size = 3
        for x in v:
            av, n = encode_value(x)
            items.append(av)
            size += 1 + n
        return {"L": items}, size
    return to_dynamo(v), _value_size(v)


def encode_item(item: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """(DynamoDB JSON attributes, item size) of a normalised item."""
    out = {}
    size = 0
    for k, v in item.items():
        av, n = encode_value(v)
        out[k] = av
        size += _text_len(k) + n
    return out, size


def prepare_item(item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], int]:
    """(normalised item, DynamoDB JSON attributes, item size) in one walk of a caller's item.

    A put needs all three, and this is the hottest code of a table write. The walk handles
    the common types with as little Python per value as it can: keys and string values are
    checked and measured together in C (``str.join``), and the item is copied only when a
    value changes form (an int becomes a Decimal). Anything unusual - a float, bytes, a
    set, a Decimal with an exponent, a value that is wrong - sends the whole item down the
    careful path (:func:`normalize`, then :func:`encode_item`), which is the reference and
    names the first error by its path. ``tests/expressions/test_expressions.py`` checks both agree."""
    if type(item) is not dict:
        raise ValidationError(f"an item must be a dict, got {type(item).__name__}")
    if "" in item:  # the fast walks below take an empty name for their list wrapper's
        _empty_name("")
    keys = tuple(item)
    encoder = _compiled.get(keys)
    if encoder is not None:  # code written for this shape (see shapes.py)
        done = encoder(item)
        if done is not None:
            return done
    texts: list[str] = []
    try:
        norm, avs, size = _fast_map(item, 1, texts)
        joined = "".join(texts)  # TypeError: a key that is not a string
        size += len(joined) if joined.isascii() else len(joined.encode("utf-8"))
    except (_Unusual, TypeError, UnicodeEncodeError):
        norm = normalize(item)
        avs, size = encode_item(norm)
        return norm, avs, size
    if encoder is None:
        _seen(keys, item)
    return norm, avs, size


class _Unusual(Exception):
    """Raised by the fast walk for anything it leaves to the careful path."""


def _fast_map(
    value: dict[Any, Any], depth: int, texts: list[str]
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """The map's attribute values and size, less its keys and strings, which go to ``texts``
    to be measured (and checked to be valid strings) together by the caller."""
    avs: dict[str, Any] = {}
    out: dict[str, Any] | None = None  # a copy of ``value``, made when a value changes form
    texts.extend(value)
    size = 0
    for k, x in value.items():
        if type(k) is not str:
            raise _Unusual  # a str subclass (an Enum) is made plain by normalize; others fail
        t = type(x)
        if t is str:
            avs[k] = {"S": x}
            texts.append(x)
            continue
        if t is Decimal:
            text = str(x)
            if len(text) > 38 or "E" in text or not text[-1].isdigit():
                raise _Unusual  # an exponent, 39+ characters, NaN or Infinity
            if "." in text:
                text = text.rstrip("0").rstrip(".")
                if text == "-0":
                    text = "0"
            elif not x:
                text = "0"
            avs[k] = {"N": text}
            size += ((len(text.replace(".", "").strip("0-")) or 1) + 1) // 2 + 1
        elif t is int:
            if not -_INT_LIMIT < x < _INT_LIMIT:
                raise _Unusual
            text = str(x)
            avs[k] = {"N": text}
            size += ((len(text.strip("0-")) or 1) + 1) // 2 + 1
            if out is None:
                out = dict(value)
            out[k] = Decimal(x)
        elif t is dict:
            if depth >= MAX_DEPTH or "" in x:
                raise _Unusual
            inner, inner_avs, n = _fast_map(x, depth + 1, texts)
            avs[k] = {"M": inner_avs}
            size += 3 + len(x) + n  # a map: 3 bytes plus 1 per element
            if inner is not x:
                if out is None:
                    out = dict(value)
                out[k] = inner
        elif t is bool:
            avs[k] = {"BOOL": x}
            size += 1
        elif x is None:
            avs[k] = {"NULL": True}
            size += 1
        elif t is list:
            if depth >= MAX_DEPTH:
                raise _Unusual
            inner_list, inner_avs_list, n = _fast_list(x, depth + 1, texts)
            avs[k] = {"L": inner_avs_list}
            size += n
            if inner_list is not x:
                if out is None:
                    out = dict(value)
                out[k] = inner_list
        else:
            raise _Unusual
    return (value if out is None else out), avs, size


def _fast_list(value: list[Any], depth: int, texts: list[str]) -> tuple[list[Any], list[Any], int]:
    """A list walked as :func:`_fast_map` walks a map: 3 bytes plus 1 per element."""
    avs: list[Any] = []
    out: list[Any] | None = None
    size = 3 + len(value)
    for i, x in enumerate(value):
        t = type(x)
        if t is str:
            avs.append({"S": x})
            texts.append(x)
        elif t is dict or t is list or t is int or t is Decimal or t is bool or x is None:
            # One element through the map walk (as the value of an empty key, which adds
            # nothing to the size): the same rules, the same depth.
            norm, item_avs, n = _fast_map({"": x}, depth, texts)
            avs.append(item_avs[""])
            size += n
            if norm[""] is not x:
                if out is None:
                    out = list(value)
                out[i] = norm[""]
        else:
            raise _Unusual
    return (value if out is None else out), avs, size


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: per attribute, the UTF-8 length of its name plus its value's size
    (strings: UTF-8 bytes; numbers: one byte per two significant digits, plus one; binary:
    bytes; booleans and nulls: 1; lists and maps: 3 bytes plus 1 per element plus contents)."""
    return sum(_text_len(k) + _value_size(v) for k, v in item.items())


def sort_key_bytes(value: Any) -> bytes:
    """Bytes whose memcmp order is DynamoDB's key order: strings and binary by their bytes,
    numbers by value. A number is encoded as sign, exponent and digits, negatives inverted."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    if isinstance(value, Decimal):
        if not value:
            return b"\x80"
        sign, digits, exp = value.normalize(_WIDE).as_tuple()
        assert isinstance(exp, int)
        adjusted = exp + len(digits)  # value = 0.d1d2... × 10^adjusted
        body = (adjusted + 1000).to_bytes(2, "big") + bytes(d + 1 for d in digits) + b"\x00"
        if sign:
            return b"\x7f" + bytes(255 - b for b in body)
        return b"\x81" + body
    raise ValidationError(f"key attributes must be strings, numbers or binary, not {type_name(value)}")
