"""What makes a record deliverable, and the error path for one that is not.

A record that cannot be delivered goes under the delivery's ``error_prefix`` with Firehose's
error output type (``processing-failed``, ``partitioning-failed``,
``format-conversion-failed``) and one JSON document per record, in the shape Firehose
writes: ``attemptsMade``, ``arrivalTimestamp``, ``errorCode``, ``errorMessage``,
``attemptEndingTimestamp``, ``rawData`` (the record's bytes, base64), plus ``lambdaArn`` for
a transform failure and Firehose's format-conversion fields (``lastErrorCode``,
``lastErrorMessage``, ``subSequenceNumber``, ``dataCatalogTable``) for a Parquet conversion
failure. eventlake adds ``sequenceNumber`` and ``deliveryStreamName`` to every document, so
one reader handles every kind and finds the record in its stream.

The checks here are bounded so that no record, however built, makes the delivery raise: a
record nested deeper than :data:`MAX_DEPTH` levels is refused before any recursive parser
sees it.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from ..errors import RecordError

MAX_DEPTH = 256

_STRUCTURE = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def error_output_type(code: str) -> str:
    """The value of ``!{firehose:error-output-type}`` for an error code."""
    if code.startswith("Lambda."):
        return "processing-failed"
    if code.startswith("DynamicPartitioning."):
        return "partitioning-failed"
    return "format-conversion-failed"


def nesting_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (strings skipped), without recursion."""
    depth = top = 0
    for m in _STRUCTURE.finditer(data):
        c = m.group()
        if c in (b"[", b"{"):
            depth += 1
            top = max(top, depth)
        elif c in (b"]", b"}"):
            depth -= 1
    return top


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_record(data: bytes) -> Any:
    """The record as a JSON value, or RecordError saying why it is not one eventlake reads."""
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH:
        depth = nesting_depth(data)
        if depth > MAX_DEPTH:
            raise RecordError(
                "InvalidJSON", f"record nests {depth} levels deep; eventlake reads at most {MAX_DEPTH}"
            )
    try:
        return json.loads(data, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise RecordError("InvalidJSON", f"record is not valid JSON: {e}") from None


def text_problem(data: bytes, doc: Any) -> str | None:
    """Why a parsed record holds text Parquet cannot store (a lone surrogate, which UTF-8
    cannot encode), or None. Only records whose bytes hold a surrogate escape are walked."""
    if b"\\u" not in data or not _SURROGATE_ESCAPE.search(data):
        return None
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        bad = e.object[e.start : e.end]
        return f"the record holds a lone surrogate ({bad!r}) that UTF-8, and so Parquet, cannot store"
    return None


def compact(doc: Any) -> bytes:
    """One line of JSON for a record that spanned several; non-ASCII text kept as UTF-8
    unless the record holds a lone surrogate, which only an escape can carry."""
    try:
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(doc, separators=(",", ":")).encode()


def error_document(
    e: RecordError,
    seq: str,
    data: bytes,
    ts: float,
    *,
    delivery: str,
    lambda_arn: str | None = None,
    catalog_table: dict[str, str] | None = None,
) -> bytes:
    """One line under the error prefix (see the module docstring for the fields)."""
    ms = int(ts * 1000)
    doc: dict[str, Any] = {
        "attemptsMade": 1,
        "arrivalTimestamp": ms,
        "errorCode": e.code,
        "errorMessage": str(e),
        "attemptEndingTimestamp": ms,
        "rawData": base64.b64encode(data).decode(),
        "sequenceNumber": seq,
        "deliveryStreamName": delivery,
    }
    if e.code.startswith("Lambda.") and lambda_arn is not None:
        doc["lambdaArn"] = lambda_arn
    if e.code.startswith("DataFormatConversion.") and catalog_table is not None:
        doc["lastErrorCode"] = e.code
        doc["lastErrorMessage"] = str(e)
        doc["subSequenceNumber"] = 0
        doc["dataCatalogTable"] = catalog_table
    return json.dumps(doc).encode()
