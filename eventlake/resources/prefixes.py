"""Firehose's prefix language (``!{namespace:value}``), partition keys, and the key rules.

A delivery decides each record's object key from data it does not control, so the rules
are checked twice: the static text of ``prefix`` and ``error_prefix`` when the delivery is
declared (a bad prefix would fail every batch), and every evaluated prefix per record (a
bad value sends that record to the error prefix, never stops the delivery).

The rules: a key is relative (no leading ``/``), has no empty, ``.`` or ``..`` folder, no
NUL or other control character, no lone surrogate (it must be UTF-8), folders of at most
255 bytes (what a filesystem allows, so the lake behaves the same on a folder and on S3),
an evaluated prefix of at most 512 characters (Firehose's limit), and a whole key of at
most 1,024 bytes (S3's limit).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from typing import Any

from ..errors import RecordError, ValidationError

DEFAULT_PREFIX = "!{timestamp:yyyy/MM/dd/HH}/"
MAX_PREFIX_CHARS = 512
MAX_FOLDER_BYTES = 255
MAX_KEY_BYTES = 1024
# The longest object name a delivery appends: "<name>-1-<19-char time>-<4>-<21>-<21>" + suffix.
NAME_OVERHEAD = 3 + 19 + 1 + 4 + 1 + 21 + 1 + 21 + len(".jsonl.gz") + 1

_EXPR = re.compile(r"!\{([^}]*)\}")
_TIME_TOKENS = [("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S")]
_TIME_NAMES = {"yyyy": "year", "MM": "month", "dd": "day", "HH": "hour", "mm": "minute", "ss": "second"}
_FIELD = re.compile(r"^[A-Za-z0-9_.-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ERROR_TYPES = ("processing-failed", "partitioning-failed", "format-conversion-failed")
RULES = (
    "a prefix is a relative key: no leading '/', no empty, '.' or '..' folder, no NUL or other "
    f"control character, valid UTF-8, folders of at most {MAX_FOLDER_BYTES} bytes, "
    f"at most {MAX_PREFIX_CHARS} characters"
)

Parts = list[tuple[str, str]]


def _time_format(fmt: str, expr: str) -> str:
    out = fmt
    for token, directive in _TIME_TOKENS:
        out = out.replace(token, directive)
    if re.search(r"[A-Za-z]", re.sub(r"%[YmdHMS]", "", out)):
        raise ValidationError(
            f"prefix expression {expr!r}: unsupported timestamp format {fmt!r}; use yyyy MM dd HH mm ss"
        )
    return out


def compile_prefix(prefix: str, what: str = "prefix") -> Parts:
    """Split a Firehose prefix into literal text and ``!{namespace:value}`` expressions."""
    if not isinstance(prefix, str):
        raise ValidationError(f"{what} must be a string, got {prefix!r}")
    parts: Parts = []
    pos = 0
    for m in _EXPR.finditer(prefix):
        parts.append(("text", prefix[pos : m.start()]))
        ns, _, value = m.group(1).partition(":")
        if ns == "timestamp":
            parts.append(("time", _time_format(value, m.group(0))))
        elif ns == "partitionKeyFromQuery":
            if not _FIELD.match(value):
                raise ValidationError(f"{what} {prefix!r}: bad field name in {m.group(0)}")
            parts.append(("field", value))
        elif ns == "firehose" and value in ("error-output-type", "random-string"):
            parts.append(("firehose", value))
        else:
            raise ValidationError(
                f"{what} {prefix!r}: unknown expression {m.group(0)}; use !{{timestamp:...}}, "
                "!{partitionKeyFromQuery:field} or !{firehose:error-output-type}"
            )
        pos = m.end()
    parts.append(("text", prefix[pos:]))
    if "!{" in prefix[pos:]:
        raise ValidationError(f"{what} {prefix!r}: unterminated expression")
    return [p for p in parts if p != ("text", "")]


def check_prefix(prefix: str, option: str, where: str, name: str) -> Parts:
    """Compile ``prefix`` and refuse, at declaration, what could only fail every batch later:
    the static text must follow the key rules, and its longest evaluation (every time field
    and error type at full width, plus the object name) must fit a key."""
    parts = compile_prefix(prefix, f"{where}: {option}")

    def refuse(why: str) -> ValidationError:
        return ValidationError(f"{where}: {option} {prefix!r} {why}; {RULES}")

    has_type = ("firehose", "error-output-type") in parts
    if option == "prefix" and has_type:
        raise refuse("uses !{firehose:error-output-type}, which only error_prefix may use")
    if option == "error_prefix":
        if any(k == "field" for k, _ in parts):
            raise refuse("uses partitionKeyFromQuery, which only prefix may use")
        if any(k != "text" for k, _ in parts) and not has_type:
            raise refuse("has expressions but no !{firehose:error-output-type}")
    text = "".join(v for k, v in parts if k == "text")
    control = _CONTROL.search(text)
    if control:
        raise refuse(f"holds a control character ({control.group()!r})")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise refuse("is not valid UTF-8 (it holds a lone surrogate)") from None
    if prefix.startswith("/"):
        raise refuse("starts with '/'")
    widest = render_prefix(parts, 0, None, max(_ERROR_TYPES, key=len), placeholder="x")
    for folder in widest.split("/")[:-1]:
        if folder in ("", ".", ".."):
            raise refuse(f"has a folder {folder!r}")
        if len(folder.encode()) > MAX_FOLDER_BYTES:
            raise refuse(f"has a folder of {len(folder.encode())} bytes")
    if len(widest) > MAX_PREFIX_CHARS:
        raise refuse(f"evaluates to {len(widest)} characters")
    if len(widest.encode()) + len(name.encode()) + NAME_OVERHEAD > MAX_KEY_BYTES:
        raise refuse(f"leaves no room for the object name within {MAX_KEY_BYTES} bytes")
    return parts


def key_problem(prefix: str, name_bytes: int) -> str | None:
    """Why an evaluated prefix cannot hold an object, or None; ``name_bytes`` is the length
    of the object name that follows it."""
    if len(prefix) > MAX_PREFIX_CHARS:
        return f"the evaluated prefix is {len(prefix)} characters; at most {MAX_PREFIX_CHARS}"
    try:
        raw = prefix.encode("utf-8")
    except UnicodeEncodeError:
        return "the evaluated prefix is not valid UTF-8 (a lone surrogate)"
    if len(raw) + name_bytes > MAX_KEY_BYTES:
        return f"the object key would be {len(raw) + name_bytes} bytes; at most {MAX_KEY_BYTES}"
    for folder in raw.split(b"/")[:-1]:
        if len(folder) > MAX_FOLDER_BYTES:
            return f"a folder of the evaluated prefix is {len(folder)} bytes; at most {MAX_FOLDER_BYTES}"
    return None


def partition_layout(tail: str) -> tuple[list[str], list[str], dict[str, str]]:
    """The partition columns a prefix (below the table's folder) makes: ``k=!{...}`` folders are
    Hive columns; a folder that is exactly one expression is a bare-value column named after
    the key (``!{partitionKeyFromQuery:year}`` → ``year``) or the time field
    (``!{timestamp:yyyy/MM}`` → ``year``, ``month``). Reading stops at the first folder that is
    neither, so a column is never guessed."""

    def expand(m: re.Match[str]) -> str:
        ns, _, value = m.group(1).partition(":")
        if ns == "timestamp":
            out = value
            for token, name in _TIME_NAMES.items():
                out = out.replace(token, "\x00" + name + "\x01")
            return out
        if ns == "partitionKeyFromQuery":
            return "\x00" + value.rsplit(".", 1)[-1] + "\x01"
        return "\x00?\x01"

    names: list[str] = []
    layout: list[str] = []
    types: dict[str, str] = {}  # left to the SQL engine, which types values it sees
    for seg in _EXPR.sub(expand, tail).split("/")[:-1]:
        hive = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=\x00([A-Za-z_][A-Za-z0-9_]*)\x01", seg)
        bare = re.fullmatch(r"\x00([A-Za-z_][A-Za-z0-9_]*)\x01", seg)
        if hive:
            name, kind = hive.group(1), "hive"
        elif bare:
            name, kind = bare.group(1), "path"
        else:
            break
        if name in names:
            break
        names.append(name)
        layout.append(kind)
    return names, layout, types


_JQ = re.compile(r'^\s*((?:\.[A-Za-z_][A-Za-z0-9_]*)+)\s*(?:\|\s*strftime\(\s*"([^"]*)"\s*\)\s*)?$')


def compile_keys(keys: Any, where: str) -> dict[str, Callable[[Any], Any]]:
    """Firehose's metadata extraction: ``{"year": '.check_timestamp | strftime("%Y")'}`` (the
    jq subset Firehose examples use: a field path, optionally piped into ``strftime`` of epoch
    seconds) or a Python function of the record."""
    if not isinstance(keys, dict) or not keys:
        raise ValidationError(f"{where}: partition_keys must be a non-empty dict of name -> query")
    out: dict[str, Callable[[Any], Any]] = {}
    for name, q in keys.items():
        if not isinstance(name, str) or not _FIELD.match(name):
            raise ValidationError(f"{where}: partition key name {name!r} must be letters, digits, _ . -")
        if callable(q):
            out[name] = q
            continue
        m = _JQ.match(q) if isinstance(q, str) else None
        if not m:
            raise ValidationError(
                f"{where}: partition key {name!r}: query {q!r} is not supported; use '.field', "
                "'.a.b', '.field | strftime(\"%Y\")' or a Python function of the record"
            )
        path = m.group(1).split(".")[1:]
        fmt = m.group(2)
        out[name] = functools.partial(_jq_eval, path, fmt, name)
    return out


def _jq_eval(path: list[str], fmt: str | None, name: str, doc: Any) -> Any:
    cur = doc
    for part in path:
        if not isinstance(cur, dict) or part not in cur:
            raise RecordError(
                "DynamicPartitioning.MetadataExtractionFailed",
                f"partition key {name!r}: field {'.'.join(path)!r} is missing from the record",
            )
        cur = cur[part]
    if fmt is None:
        return cur
    if isinstance(cur, bool) or not isinstance(cur, (int, float)):
        raise RecordError(
            "DynamicPartitioning.MetadataExtractionFailed",
            f"partition key {name!r}: strftime needs epoch seconds, got {cur!r:.40}",
        )
    try:
        return strftime(fmt, int(cur))
    except (OverflowError, OSError, ValueError):
        raise RecordError(
            "DynamicPartitioning.MetadataExtractionFailed",
            f"partition key {name!r}: {cur!r:.40} is not a usable time",
        ) from None


@functools.lru_cache(maxsize=4096)
def strftime(fmt: str, second: int) -> str:
    return time.strftime(fmt, time.gmtime(second))


def value_problem(text: str) -> str | None:
    """Why a partition value cannot be one folder of a key, or None."""
    if "/" in text or text in ("", ".", ".."):
        return "cannot be a key folder (empty, '.', '..' or holding '/')"
    if _CONTROL.search(text):
        return "holds a NUL or other control character"
    return None


def render_prefix(
    parts: Parts,
    ts: float,
    doc: Any,
    error_type: str = "",
    keys: dict[str, Callable[[Any], Any]] | None = None,
    placeholder: str | None = None,
) -> str:
    """The evaluated prefix for one record; ``placeholder`` stands for every field (used to
    check a declaration's static text)."""
    out = []
    for kind, value in parts:
        if kind == "text":
            out.append(value)
        elif kind == "time":
            out.append(strftime(value, int(ts)))
        elif kind == "firehose":
            out.append(error_type if value == "error-output-type" else "0")
        elif placeholder is not None:
            out.append(placeholder)
        else:
            out.append(_field_text(value, doc, keys))
    return "".join(out)


def _field_text(value: str, doc: Any, keys: dict[str, Callable[[Any], Any]] | None) -> str:
    if keys is not None:
        try:
            cur = keys[value](doc)
        except RecordError:
            raise
        except Exception as e:
            raise RecordError(
                "DynamicPartitioning.MetadataExtractionFailed",
                f"partition key {value!r}: {type(e).__name__}: {e}",
            ) from None
    else:
        cur = doc
        for part in value.split("."):
            if not isinstance(cur, dict) or part not in cur:
                raise RecordError(
                    "DynamicPartitioning.MetadataExtractionFailed",
                    f"field {value!r} is missing from the record",
                )
            cur = cur[part]
    if isinstance(cur, (dict, list)) or cur is None:
        raise RecordError(
            "DynamicPartitioning.MetadataExtractionFailed", f"field {value!r} is not a scalar value"
        )
    try:
        text = str(cur).lower() if isinstance(cur, bool) else str(cur)
    except Exception as e:  # a 5,000-digit integer, an object whose str() fails
        raise RecordError(
            "DynamicPartitioning.MetadataExtractionFailed", f"field {value!r}: {type(e).__name__}: {e}"
        ) from None
    problem = value_problem(text)
    if problem:
        raise RecordError(
            "DynamicPartitioning.MetadataExtractionFailed",
            f"field {value!r} has the value {text[:60]!r}, which {problem}",
        )
    return text
