"""SQS's rules for what a message may carry: bodies, message attributes, FIFO and entry ids,
and the number-of-seconds arguments, each refused with SQS's wording when broken; and the
stored form of message attributes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..errors import ValidationError
from .stream import show


def _body_text(body: Any) -> str:
    if isinstance(body, str):
        text = body
    elif isinstance(body, (dict, list)):
        from .stream import to_json

        text = to_json(body, "message body")
    else:
        raise ValidationError(
            f"message body must be str, dict or list, not {type(body).__name__} "
            "(SQS bodies are text; base64-encode binary data)"
        )
    if not text:
        raise ValidationError("message body must not be empty")
    bad = _bad_char(text)
    if bad is not None:
        raise InvalidMessageContents(
            f"message body contains the character U+{bad:04X} at position {text.index(chr(bad))}, "
            "which SQS does not allow; base64-encode binary data"
        )
    return text


class InvalidMessageContents(ValidationError):
    """A body or attribute value holds a character SQS refuses (SQS's InvalidMessageContents)."""


# SQS's allowed characters: #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF.
_BAD_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _bad_char(text: str) -> int | None:
    """The first character SQS refuses in a body or string value, or None."""
    if text.isascii() and text.isprintable():
        return None
    m = _BAD_CHARS.search(text)
    return None if m is None else ord(m.group())


# Message attribute names: A-Z a-z 0-9 _ - . (no leading, trailing or doubled period), up to 256.
_ATTR_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_DATA_TYPE = re.compile(r"(String|Number|Binary)(\..*)?", re.DOTALL)
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
# MessageGroupId and MessageDeduplicationId: 1-128 of alphanumerics and ASCII punctuation.
_FIFO_ID = re.compile(r"[\x21-\x7e]{1,128}")
# SendMessageBatch entry ids: 1-80 of alphanumerics, hyphens and underscores.
_ENTRY_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")


def _attrs_size(attrs: Mapping[str, Any] | None) -> int:
    """Bytes the attributes add to a message's size (names, types and values, as SQS counts);
    they are validated already, so every part is a str or bytes."""
    if not attrs:
        return 0
    n = 0
    for k, v in attrs.items():
        n += len(k) + len(v["DataType"].encode())
        if "StringValue" in v:
            n += len(v["StringValue"].encode())
        else:
            n += len(v["BinaryValue"])
    return n


def _check_attrs(attrs: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Message attributes, each checked by SQS's rules and given as
    ``{"DataType": ..., "StringValue" | "BinaryValue": ...}``; a str, a number or bytes is
    shorthand for a String, Number or Binary attribute."""
    if attrs is None:
        return None
    if not isinstance(attrs, Mapping):
        raise ValidationError(f"attributes must be a dict of name -> value, got {type(attrs).__name__}")
    if len(attrs) > 10:
        raise ValidationError(f"Number of message attributes [{len(attrs)}] exceeds the allowed maximum [10]")
    out = {}
    for k, v in attrs.items():
        _check_attr_name(k)
        out[k] = _check_attr_value(k, v)
    return out


def _check_attr_name(name: Any) -> None:
    if not isinstance(name, str):
        raise ValidationError(f"message attribute names are strings, got {show(name)}")
    if not name:
        raise ValidationError("The request must contain non-empty message attribute name.")
    if len(name) > 256:
        raise ValidationError(
            f"Message (user) attribute name {name[:40]!r}... is {len(name)} characters long; "
            "SQS allows at most 256"
        )
    if _ATTR_NAME.fullmatch(name) is None:
        raise ValidationError(
            f"Message (user) attribute name {name!r:.300} is invalid: use only A-Z, a-z, 0-9, "
            "underscore (_), hyphen (-) and period (.), with no period at the start, at the end "
            "or next to another"
        )
    if name.lower().startswith(("aws.", "amazon.")):
        raise ValidationError(
            f"Message (user) attribute name {name!r} is invalid: the prefixes AWS. and Amazon. "
            "(in any case) are reserved for use by AWS"
        )


def _check_attr_value(name: str, v: Any) -> dict[str, Any]:
    if isinstance(v, str):
        v = {"DataType": "String", "StringValue": v}
    elif isinstance(v, (int, float, Decimal)) and not isinstance(v, bool):
        v = {"DataType": "Number", "StringValue": str(v)}
    elif isinstance(v, (bytes, bytearray, memoryview)):
        v = {"DataType": "Binary", "BinaryValue": bytes(v)}
    if not isinstance(v, Mapping):
        raise ValidationError(
            f"message attribute {name!r}: give a str, number, bytes or "
            "{'DataType': ..., 'StringValue'|'BinaryValue': ...}, "
            f"got {type(v).__name__}"
        )
    unknown = set(v) - {"DataType", "StringValue", "BinaryValue"}
    if unknown:
        raise ValidationError(
            f"message attribute {name!r}: unknown field(s) {sorted(map(str, unknown))}; "
            "use DataType and StringValue or BinaryValue"
        )
    dtype = v.get("DataType")
    if not dtype:
        raise ValidationError(
            f"The message attribute {name!r} must contain non-empty message attribute type."
        )
    if not isinstance(dtype, str):
        raise ValidationError(f"message attribute {name!r}: DataType must be a string, got {show(dtype)}")
    if len(dtype) > 256 or _bad_char(dtype) is not None:
        raise ValidationError(
            f"message attribute {name!r}: DataType must be at most 256 characters SQS allows in a body"
        )
    if _DATA_TYPE.fullmatch(dtype) is None:
        raise ValidationError(
            f"The message attribute {name!r} has an invalid message attribute type, the set of "
            "supported type prefixes is Binary, Number, and String."
        )
    base = dtype.split(".", 1)[0]
    field = "BinaryValue" if base == "Binary" else "StringValue"
    other = "StringValue" if base == "Binary" else "BinaryValue"
    if other in v:
        raise ValidationError(
            f"The message attribute {name!r} with type {base!r} must use field {field!r}, not {other!r}."
        )
    value = v.get(field)
    if base == "Binary":
        if isinstance(value, (bytearray, memoryview)):
            value = bytes(value)
        if value is not None and not isinstance(value, bytes):
            raise ValidationError(
                f"message attribute {name!r}: BinaryValue must be bytes, got {type(value).__name__}"
            )
    elif value is not None and not isinstance(value, str):
        raise ValidationError(
            f"message attribute {name!r}: StringValue must be a str, got {type(value).__name__}; "
            "SQS carries numbers as text too (give str(value))"
        )
    if not value:
        raise ValidationError(
            f"Message (user) attribute {name!r} must contain a non-empty value of type {base!r}."
        )
    if isinstance(value, str):
        bad = _bad_char(value)
        if bad is not None:
            raise InvalidMessageContents(
                f"Message (user) attribute {name!r} value contains the character U+{bad:04X}, "
                "which SQS does not allow; use a Binary attribute for binary data"
            )
        if base == "Number":
            _check_number(name, value)
    return {"DataType": dtype, field: value}


def _check_number(name: str, text: str) -> None:
    """SQS numbers: up to 38 significant digits, between 10^-128 and 10^+126 in magnitude."""
    if _NUMBER.fullmatch(text) is None:
        raise ValidationError(f"Can't cast the value of message (user) attribute {name!r} to a number.")
    n = Decimal(text)
    if not n:
        return
    significant = len("".join(map(str, n.as_tuple().digits)).strip("0"))
    if significant > 38:
        raise ValidationError(
            f"Message (user) attribute {name!r}: the number {text:.60} has {significant} significant "
            "digits; SQS allows 38"
        )
    if not -128 <= n.adjusted() <= 125:
        raise ValidationError(
            f"Message (user) attribute {name!r}: the number {text:.60} is outside SQS's range "
            "(10^-128 to 10^+126 in magnitude)"
        )


def _encode_attrs(attrs: dict[str, Any] | None) -> str | None:
    if not attrs:
        return None
    import base64

    return json.dumps(
        {
            k: (
                {**v, "BinaryValue": base64.b64encode(v["BinaryValue"]).decode()} if "BinaryValue" in v else v
            )
            for k, v in attrs.items()
        }
    )


def _decode_attrs(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    import base64

    return {
        k: ({**v, "BinaryValue": base64.b64decode(v["BinaryValue"])} if "BinaryValue" in v else v)
        for k, v in json.loads(raw).items()
    }


def _seconds(value: Any, what: str, high: float, low: float = 0) -> float:
    """A number of seconds within SQS's bounds, or a ValidationError naming the argument."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, Decimal))
    if ok:
        try:
            ok = low <= value <= high  # False for NaN; a Decimal NaN raises InvalidOperation
        except ArithmeticError:
            ok = False
    if not ok:
        raise ValidationError(f"{what} must be a number of seconds {low:g}-{high:g}, got {show(value)}")
    return float(value)
