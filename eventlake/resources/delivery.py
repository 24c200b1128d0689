"""Delivery of a stream into the lake, with Kinesis Data Firehose semantics.

A delivery is an internal consumer of its source stream, run by the same poller as stream
triggers: records are buffered until ``buffer_mb`` or ``buffer_s`` is reached (Firehose's
buffering hints), optionally transformed by a function that receives Firehose's
transformation event, grouped by their evaluated prefix, and written as JSON Lines objects
(gzip-compressed by default). Records that fail (not JSON, a failed transform, a missing
partition field) are written under ``error_prefix`` with the reason; the rest are delivered.

Exactly once into the lake: an object's name is derived from the range of sequence numbers
it holds (and the poller replays exactly that range after a crash), so a retry rewrites the
same object with the same bytes instead of adding a second copy.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import ValidationError
from .env import check_name

DEFAULT_PREFIX = "!{timestamp:yyyy/MM/dd/HH}/"
_EXPR = re.compile(r"!\{([^}]*)\}")
_TIME_TOKENS = [("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S")]
_FIELD = re.compile(r"^[A-Za-z0-9_.-]+$")


class RecordError(Exception):
    """A record that cannot be delivered; ``code`` is Firehose's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _time_format(fmt: str, expr: str) -> str:
    out = fmt
    for token, directive in _TIME_TOKENS:
        out = out.replace(token, directive)
    if re.search(r"[A-Za-z]", re.sub(r"%[YmdHMS]", "", out)):
        raise ValidationError(
            f"prefix expression {expr!r}: unsupported timestamp format {fmt!r}; use yyyy MM dd HH mm ss"
        )
    return out


def compile_prefix(prefix: str, what: str = "prefix") -> list[tuple[str, str]]:
    """Split a Firehose prefix into literal text and ``!{namespace:value}`` expressions."""
    if not isinstance(prefix, str):
        raise ValidationError(f"{what} must be a string, got {prefix!r}")
    parts: list[tuple[str, str]] = []
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


_TIME_NAMES = {"yyyy": "year", "MM": "month", "dd": "day", "HH": "hour", "mm": "minute", "ss": "second"}


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
        return _strftime(fmt, int(cur))
    except (OverflowError, OSError, ValueError):
        raise RecordError(
            "DynamicPartitioning.MetadataExtractionFailed",
            f"partition key {name!r}: {cur!r} is not a usable time",
        ) from None


@functools.lru_cache(maxsize=4096)
def _strftime(fmt: str, second: int) -> str:
    return time.strftime(fmt, time.gmtime(second))


def render_prefix(
    parts: list[tuple[str, str]],
    ts: float,
    doc: Any,
    error_type: str = "",
    keys: dict[str, Callable[[Any], Any]] | None = None,
) -> str:
    out = []
    for kind, value in parts:
        if kind == "text":
            out.append(value)
        elif kind == "time":
            out.append(_strftime(value, int(ts)))
        elif kind == "firehose":
            out.append(error_type if value == "error-output-type" else "0")
        else:
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
                    "DynamicPartitioning.MetadataExtractionFailed",
                    f"field {value!r} is not a scalar value",
                )
            text = str(cur).lower() if isinstance(cur, bool) else str(cur)
            if "/" in text or text in ("", ".", ".."):
                raise RecordError(
                    "DynamicPartitioning.MetadataExtractionFailed",
                    f"field {value!r} has a value that cannot be a key segment: {text!r}",
                )
            out.append(text)
    return "".join(out)


class Delivery:
    """``app.delivery(...)``: a stream delivered into the lake (Kinesis Data Firehose)."""

    kind = "delivery"

    def __init__(
        self,
        app: Any,
        name: str,
        *,
        source: Any,
        prefix: str | None = None,
        error_prefix: str = "errors/!{firehose:error-output-type}/",
        buffer_mb: float = 5,
        buffer_s: float = 300,
        format: str = "jsonl",
        compression: str | None = "gzip",
        transform: Callable[[Any, Any], Any] | None = None,
        table: str | None = None,
        partition_keys: dict[str, Any] | None = None,
    ) -> None:
        from .stream import Stream

        check_name("delivery", name)
        if not isinstance(source, Stream):
            raise ValidationError(f"delivery {name!r}: source must be a Stream, got {source!r}")
        if not 1 <= buffer_mb <= 128:
            raise ValidationError(f"delivery {name!r}: buffer_mb must be 1-128 (Firehose's range)")
        if not 0 <= buffer_s <= 900:
            raise ValidationError(f"delivery {name!r}: buffer_s must be 0-900 (Firehose's range)")
        if format not in ("jsonl", "parquet"):
            raise ValidationError(f"delivery {name!r}: format must be 'jsonl' or 'parquet', got {format!r}")
        if compression not in ("gzip", "zstd", None):
            raise ValidationError(f"delivery {name!r}: compression must be 'gzip', 'zstd' or None")
        if transform is not None and not callable(transform):
            raise ValidationError(f"delivery {name!r}: transform must be a function (event, context)")
        self.app = app
        self.name = name
        self.source = source
        self.prefix_parts = compile_prefix(prefix if prefix is not None else DEFAULT_PREFIX)
        self.error_parts = compile_prefix(error_prefix, "error_prefix")
        if any(k == "field" for k, _ in self.error_parts):
            raise ValidationError("error_prefix cannot use partitionKeyFromQuery")
        self.keys = compile_keys(partition_keys, f"delivery {name!r}") if partition_keys is not None else None
        if self.keys is not None:
            for kind, value in self.prefix_parts:
                if kind == "field" and value not in self.keys:
                    raise ValidationError(
                        f"delivery {name!r}: the prefix uses !{{partitionKeyFromQuery:{value}}} but "
                        f"partition_keys defines only {sorted(self.keys)}"
                    )
        self.buffer_bytes = int(buffer_mb * 1024 * 1024)
        self.buffer_s = float(buffer_s)
        self.compression = compression
        self.format = format
        self.transform = transform
        self.table = table or (name.replace("-", "_") if format == "parquet" else None)
        static = prefix if prefix is not None else DEFAULT_PREFIX
        head = static.split("!{", 1)[0]
        self.table_prefix = head[: head.rfind("/") + 1]  # the folder every object lands under
        self.partitions, self.layout, self.partition_types = partition_layout(
            static[len(self.table_prefix) :]
        )
        self.delivered = 0
        self.failed = 0

    @property
    def suffix(self) -> str:
        if self.format == "parquet":
            return ".parquet"
        return {"gzip": ".jsonl.gz", "zstd": ".jsonl.zst", None: ".jsonl"}[self.compression]

    # -- the internal handler
    def handle(self, event: dict[str, Any], context: Any) -> None:
        """Deliver one batch of stored stream rows (``{"shard", "rows"}``, see RawStreamSource)."""
        from .stream import format_seq

        rows = event["rows"]
        if not rows:
            return
        name = (
            f"{self.name}-1-"
            + time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(rows[0].ts))
            + f"-{event['shard'][-4:]}-{format_seq(rows[0].seq)}-{format_seq(rows[-1].seq)}"
        )
        if self.transform is None:
            fast = self._fast_parquet if self.format == "parquet" else self._fast_jsonl
            if fast(rows, name):
                return
        items = [(format_seq(r.seq), r.data, r.ts) for r in rows]
        outputs = (
            self._transform(items, context)
            if self.transform
            else [(seq, "Ok", data, ts, "") for seq, data, ts in items]
        )
        groups: dict[str, list[Any]] = {}
        errors: dict[str, list[bytes]] = {}
        parquet = self.format == "parquet"
        for seq, result, data, ts, reason in outputs:
            if result == "Dropped":
                continue
            try:
                if result != "Ok":
                    raise RecordError("Lambda.FunctionError", reason or "the transform failed the record")
                try:
                    doc = json.loads(data)
                except (UnicodeDecodeError, json.JSONDecodeError) as e:
                    raise RecordError("InvalidJSON", f"record is not valid JSON: {e}") from None
                key = render_prefix(self.prefix_parts, ts, doc, keys=self.keys)
                if parquet:
                    if not isinstance(doc, dict):
                        raise RecordError(
                            "DataFormatConversion.NotAnObject",
                            "a record must be a JSON object to become a Parquet row",
                        )
                    groups.setdefault(key, []).append((seq, data, ts, doc))
                else:
                    # Firehose delivers the bytes it was given; only a record that spans lines
                    # is re-serialised, so that the object stays one record per line.
                    if b"\n" in data or b"\r" in data:
                        data = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
                    groups.setdefault(key, []).append(data)
            except RecordError as e:
                self._error(errors, e, seq, data, ts)
        if parquet:
            if groups:
                self._write_parquet(groups, errors, name)
        else:
            for key, lines in sorted(groups.items()):
                self._write(f"{key}{name}{self.suffix}", lines)
                self.delivered += len(lines)
        for key, lines in sorted(errors.items()):
            # Error records are always JSON Lines, whatever the delivery's format.
            err_suffix = ".jsonl.gz" if self.format == "parquet" else self.suffix
            self._write(f"{key}{name}{err_suffix}", lines, "gzip" if self.format == "parquet" else None)
            self.failed += len(lines)

    def _error(
        self, errors: dict[str, list[bytes]], e: RecordError, seq: str, data: bytes, ts: float
    ) -> None:
        if e.code == "Lambda.FunctionError":
            etype = "processing-failed"
        elif e.code.startswith("DynamicPartitioning"):
            etype = "partitioning-failed"
        else:
            etype = "format-conversion-failed"
        ekey = render_prefix(self.error_parts, ts, None, etype)
        errors.setdefault(ekey, []).append(
            json.dumps(
                {
                    "attemptsMade": 1,
                    "arrivalTimestamp": int(ts * 1000),
                    "errorCode": e.code,
                    "errorMessage": str(e),
                    "attemptEndingTimestamp": int(ts * 1000),
                    "rawData": base64.b64encode(data).decode(),
                    "sequenceNumber": seq,
                    "deliveryStreamName": self.name,
                }
            ).encode()
        )

    def _create_table(self) -> None:
        assert self.table is not None
        self.app.catalog.create_table(
            self.table,
            prefix=self.table_prefix,
            format="parquet",
            partitions=self.partitions,
            layout=self.layout,
            partition_types=self.partition_types,
        )

    @staticmethod
    def _parse_batch(rows: list[Any], schema: Any = None) -> Any:
        """The batch as one Arrow table parsed by PyArrow, or None when it cannot be parsed
        whole (a record over several lines, bad JSON, a value that does not fit ``schema``)."""
        import io

        import pyarrow as pa
        import pyarrow.json as pj

        buf = b"\n".join([r.data for r in rows])
        if buf.count(b"\n") != len(rows) - 1 or b"\r" in buf:
            return None  # one record per line is what makes the batch parseable as a whole
        parse = pj.ParseOptions(newlines_in_values=False)
        if schema is not None:
            parse = pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="infer", newlines_in_values=False
            )
        try:
            parsed = pj.read_json(
                io.BytesIO(buf),
                # Blocks of a few MiB let PyArrow parse on every core.
                read_options=pj.ReadOptions(block_size=max(1 << 20, min(len(buf) // 4 + 1, 16 << 20))),
                parse_options=parse,
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
            return None
        return parsed if parsed.num_rows == len(rows) else None

    def _fast_parquet(self, rows: list[Any], name: str) -> bool:
        """The whole batch parsed and converted by PyArrow in C++, when every record is a plain
        one-line JSON object whose values fit the catalog. Anything unusual (a bad record, a
        value that needs widening or reporting, a nested or date-like new field, a missing
        partition key) returns False and the record-by-record path handles the batch, so both
        paths produce the same lake; this one is only faster."""
        import io

        import pyarrow as pa
        import pyarrow.parquet as pq

        from .catalog import _COLUMN, ARROW_TYPES

        catalog = self.app.catalog
        assert self.table is not None
        current = catalog.get(self.table)
        known = {c: ARROW_TYPES[t] for c, t in current.columns} if current else {}
        parsed = self._parse_batch(rows, pa.schema(list(known.items())))
        if parsed is None:
            return False
        names = {v: k for k, v in ARROW_TYPES.items()}
        new_cols = []
        for f in parsed.schema:
            if f.name in known:
                continue
            if pa.types.is_null(f.type):
                continue  # all null: nothing to learn, nothing to store
            if f.type not in names or not _COLUMN.match(f.name):
                return False
            new_cols.append((f.name, names[f.type]))
        if current is None:
            self._create_table()
        table_def = catalog.add_columns(self.table, new_cols) if new_cols or current is None else current
        columns = parsed.column_names
        arrays = []
        for col, typ in table_def.columns:
            want = ARROW_TYPES[typ]
            if col not in columns:
                arrays.append(pa.nulls(len(rows), want))
                continue
            arr = parsed.column(col)
            if arr.type != want:
                if not (pa.types.is_integer(arr.type) and typ == "DOUBLE") and not pa.types.is_null(arr.type):
                    return False  # another worker changed the schema meanwhile: take the slow path
                arr = arr.cast(want)
            arrays.append(arr)
        table = pa.Table.from_arrays(
            arrays, schema=pa.schema([(c, ARROW_TYPES[t]) for c, t in table_def.columns])
        )
        keys = self._batch_keys(parsed, rows)
        if keys is None:
            return False
        groups: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            groups.setdefault(k, []).append(i)

        def write(item: tuple[str, list[int]]) -> int:
            key, idx = item
            part = table if len(groups) == 1 else table.take(pa.array(idx, pa.int64()))
            out = io.BytesIO()
            pq.write_table(part, out, compression=self.compression or "none")
            self.app.lake.put(f"{key}{name}{self.suffix}", out.getvalue())
            return int(part.num_rows)

        # Compression runs in C++ without the GIL: one partition per core at a time.
        items = sorted(groups.items())
        if len(items) > 1:
            with ThreadPoolExecutor(min(len(items), os.cpu_count() or 1, 8)) as pool:
                written = list(pool.map(write, items))
        else:
            written = [write(i) for i in items]
        self.delivered += sum(written)
        return True

    def _fast_jsonl(self, rows: list[Any], name: str) -> bool:
        """JSON Lines without a transform: the bytes are delivered as they came, so the batch
        only needs validating and, for dynamic partitions, its key fields — both done by
        PyArrow in one pass. Anything it will not parse goes record by record."""

        parsed = self._parse_batch(rows)
        if parsed is None:
            return False
        keys = self._batch_keys(parsed, rows)
        if keys is None:
            return False
        groups: dict[str, list[bytes]] = {}
        for r, k in zip(rows, keys, strict=True):
            groups.setdefault(k, []).append(r.data)
        for key, lines in sorted(groups.items()):
            self._write(f"{key}{name}{self.suffix}", lines)
            self.delivered += len(lines)
        return True

    def _batch_keys(self, parsed: Any, rows: list[Any]) -> list[str] | None:
        """Each record's evaluated prefix, column-wise; None when a record needs the careful path."""
        import pyarrow as pa

        per_part: list[Any] = []
        for kind, value in self.prefix_parts:
            if kind == "text":
                per_part.append(value)
            elif kind == "time":
                per_part.append([_strftime(value, int(r.ts)) for r in rows])
            elif kind == "firehose":
                return None
            else:
                field, fmt = value, None
                if self.keys is not None:
                    fn = self.keys[value]
                    if not isinstance(fn, functools.partial) or len(fn.args[0]) != 1:
                        return None  # a Python function or a nested path: record by record
                    field, fmt = fn.args[0][0], fn.args[1]
                elif "." in value:
                    return None
                if field not in parsed.column_names:
                    return None
                col = parsed.column(field)
                t = col.type
                scalar = pa.types.is_string(t) or pa.types.is_integer(t) or pa.types.is_boolean(t)
                if col.null_count or not (scalar or pa.types.is_floating(t)):
                    return None  # missing, nested or date-like values: the careful path says why
                values = col.to_pylist()
                if fmt is not None:
                    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
                        return None
                    text = [_strftime(fmt, int(v)) for v in values]
                elif pa.types.is_boolean(col.type):
                    text = ["true" if v else "false" for v in values]
                elif pa.types.is_floating(col.type):
                    text = [str(v) for v in values]
                else:
                    text = [v if isinstance(v, str) else str(v) for v in values]
                if any(not t or "/" in t or t in (".", "..") for t in set(text)):
                    return None
                per_part.append(text)
        if all(isinstance(p, str) for p in per_part):
            return ["".join(per_part)] * len(rows)
        cols = [p if isinstance(p, list) else [p] * len(rows) for p in per_part]
        return ["".join(t) for t in zip(*cols, strict=True)]

    def _write_parquet(self, groups: dict[str, list[Any]], errors: dict[str, list[bytes]], name: str) -> None:
        import io

        import pyarrow.parquet as pq

        from .catalog import convert

        catalog = self.app.catalog
        assert self.table is not None
        if catalog.get(self.table) is None:
            self._create_table()
        docs = [doc for rows in groups.values() for (_, _, _, doc) in rows]
        table_def = catalog.evolve(self.table, docs)
        for key, rows in sorted(groups.items()):
            arrow, bad = convert(table_def, [doc for (_, _, _, doc) in rows])
            for i, reason in bad:
                seq, data, ts, _ = rows[i]
                self._error(errors, RecordError("DataFormatConversion.Malformed", reason), seq, data, ts)
            if arrow.num_rows:
                buf = io.BytesIO()
                pq.write_table(arrow, buf, compression=self.compression or "none")
                self.app.lake.put(f"{key}{name}{self.suffix}", buf.getvalue())
                self.delivered += arrow.num_rows

    def _write(self, key: str, lines: list[bytes], compression: str | None = None) -> None:
        body = b"\n".join(lines) + b"\n"
        compression = compression or self.compression
        if compression == "gzip":
            body = gzip.compress(body, mtime=0)  # no timestamp inside: a rewrite is byte-identical
        elif compression == "zstd":
            import zstandard

            body = zstandard.ZstdCompressor().compress(body)
        self.app.lake.put(key, body)

    def _transform(
        self, items: list[tuple[str, bytes, float]], context: Any
    ) -> list[tuple[str, str, bytes, float, str]]:
        s = self.app.settings
        arn = f"arn:aws:firehose:{s.region}:{s.account}:deliverystream/{self.name}"
        event = {
            "invocationId": f"{self.name}-{items[0][0]}",
            "deliveryStreamArn": arn,
            "region": s.region,
            "records": [
                {
                    "recordId": seq,
                    "approximateArrivalTimestamp": int(ts * 1000),
                    "data": base64.b64encode(data).decode(),
                }
                for seq, data, ts in items
            ],
        }
        try:
            resp = self.transform(event, context)  # type: ignore[misc]
        except Exception as e:
            return [
                (seq, "ProcessingFailed", data, ts, f"transform raised {type(e).__name__}: {e}")
                for seq, data, ts in items
            ]
        by_id = {seq: (data, ts) for seq, data, ts in items}
        problem = _check_response(resp, by_id)
        if problem:
            return [(seq, "ProcessingFailed", data, ts, problem) for seq, data, ts in items]
        out = []
        for r in resp["records"]:
            _, ts = by_id[r["recordId"]]
            data = base64.b64decode(r["data"]) if r["result"] == "Ok" else by_id[r["recordId"]][0]
            out.append((r["recordId"], r["result"], data, ts, "the transform returned ProcessingFailed"))
        return out


def _check_response(resp: Any, by_id: dict[str, Any]) -> str | None:
    """Why a transform response is unusable (as Firehose checks it), or None."""
    if not isinstance(resp, dict) or not isinstance(resp.get("records"), list):
        return "the transform must return {'records': [...]}"
    seen = set()
    for r in resp["records"]:
        if not isinstance(r, dict):
            return "each returned record must be an object"
        rid = r.get("recordId")
        if rid not in by_id:
            return f"the transform returned an unknown recordId {rid!r}"
        if rid in seen:
            return f"the transform returned recordId {rid!r} twice"
        seen.add(rid)
        if r.get("result") not in ("Ok", "Dropped", "ProcessingFailed"):
            return f"record {rid}: result must be Ok, Dropped or ProcessingFailed, got {r.get('result')!r}"
        if r["result"] == "Ok":
            try:
                base64.b64decode(r.get("data", ""), validate=True)
            except (ValueError, TypeError):
                return f"record {rid}: data is not valid base64"
    if seen != set(by_id):
        return f"the transform returned {len(seen)} of {len(by_id)} records; every record must come back"
    return None
