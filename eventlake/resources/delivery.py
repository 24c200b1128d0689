"""Delivery of a stream into the lake, with Kinesis Data Firehose semantics.

A delivery is an internal consumer of its source stream, run by the same poller as stream
triggers: records are buffered until ``buffer_mb`` or ``buffer_s`` is reached (Firehose's
buffering hints), optionally transformed by a function that receives Firehose's
transformation event, grouped by their evaluated prefix, and written as JSON Lines objects
(gzip-compressed by default) or Parquet rows of a catalog table.

A bad record never stops a delivery: one that is not JSON, fails its transform, yields a
partition value that cannot be a key, or cannot become a Parquet row goes under
``error_prefix`` with Firehose's error code and the reason (``delivery_records.py``), and
the rest of the batch is delivered. A bad prefix is refused when the delivery is declared
(``prefixes.py``). Only a failure of the lake itself makes the batch retry.

Exactly once into the lake: an object's name is derived from the range of sequence numbers
it holds (and the poller replays exactly that range after a crash), so a retry rewrites the
same object with the same bytes instead of adding a second copy.

Two paths produce the same lake. A batch of plain one-line JSON objects is parsed,
checked and partitioned by PyArrow column-wise; anything unusual in it sends the whole
batch down the record-by-record path, which is the reference and the one that reports.
"""

from __future__ import annotations

import base64
import errno
import functools
import gzip
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import RecordError, ValidationError
from ..events.arns import function_arn
from ..events.firehose import check_response, transformation_event
from .delivery_records import (
    MAX_DEPTH,
    compact,
    error_document,
    error_output_type,
    nesting_depth,
    parse_record,
    text_problem,
)
from .env import Env, check_name
from .prefixes import (
    DEFAULT_PREFIX,
    check_prefix,
    compile_keys,
    key_problem,
    partition_layout,
    render_prefix,
    strftime,
    value_problem,
)

# An outcome per record: (sequence number, data, arrival, failure or None); Dropped ones are gone.
Outcome = tuple[str, bytes, float, RecordError | None]
_FUNCTION = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Delivery:
    """``app.delivery(...)``: a stream delivered into the lake (Kinesis Data Firehose)."""

    def __init__(
        self,
        env: Env,
        name: str,
        *,
        source: Any,
        lake: Any,
        catalog: Any,
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
        where = f"delivery {name!r}"
        if not isinstance(source, Stream):
            raise ValidationError(f"{where}: source must be a Stream, got {source!r}")
        if not 1 <= buffer_mb <= 128:
            raise ValidationError(f"{where}: buffer_mb must be 1-128 (Firehose's range)")
        if not 0 <= buffer_s <= 900:
            raise ValidationError(f"{where}: buffer_s must be 0-900 (Firehose's range)")
        if format not in ("jsonl", "parquet"):
            raise ValidationError(f"{where}: format must be 'jsonl' or 'parquet', got {format!r}")
        if compression not in ("gzip", "zstd", None):
            raise ValidationError(f"{where}: compression must be 'gzip', 'zstd' or None")
        if transform is not None and not callable(transform):
            raise ValidationError(f"{where}: transform must be a function (event, context)")
        self.env = env
        self.name = name
        self.source = source
        self.lake = lake
        self.catalog = catalog
        static = prefix if prefix is not None else DEFAULT_PREFIX
        self.prefix_parts = check_prefix(static, "prefix", where, name)
        self.error_parts = check_prefix(error_prefix, "error_prefix", where, name)
        self.dynamic = any(k == "field" for k, _ in self.prefix_parts)
        self.keys = compile_keys(partition_keys, where) if partition_keys is not None else None
        if self.keys is not None:
            for kind, value in self.prefix_parts:
                if kind == "field" and value not in self.keys:
                    raise ValidationError(
                        f"{where}: the prefix uses !{{partitionKeyFromQuery:{value}}} but "
                        f"partition_keys defines only {sorted(self.keys)}"
                    )
        self.buffer_bytes = int(buffer_mb * 1024 * 1024)
        self.buffer_s = float(buffer_s)
        self.compression = compression
        self.format = format
        self.transform = transform
        self.table = table or (name.replace("-", "_") if format == "parquet" else None)
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
            outcomes: list[Outcome] = [(format_seq(r.seq), r.data, r.ts, None) for r in rows]
        else:
            outcomes = self._transform(rows, event["shard"], context)
        self._deliver(outcomes, name)

    def _deliver(self, outcomes: list[Outcome], name: str) -> None:
        """The record-by-record path: every record is delivered or goes to the error prefix."""
        groups: dict[str, list[tuple[str, bytes, float, Any]]] = {}
        errors: list[tuple[RecordError, str, bytes, float]] = []
        parquet = self.format == "parquet"
        tail = len(name.encode()) + len(self.suffix)
        for seq, data, ts, failure in outcomes:
            try:
                if failure is not None:
                    raise failure
                doc = parse_record(data)
                key = render_prefix(self.prefix_parts, ts, doc, keys=self.keys)
                problem = key_problem(key, tail) if self.dynamic else None
                if problem:
                    raise RecordError("DynamicPartitioning.MetadataExtractionFailed", problem)
                if parquet:
                    if not isinstance(doc, dict):
                        raise RecordError(
                            "DataFormatConversion.NotAnObject",
                            "a record must be a JSON object to become a Parquet row",
                        )
                    problem = text_problem(data, doc)
                    if problem:
                        raise RecordError("DataFormatConversion.Malformed", problem)
                    groups.setdefault(key, []).append((seq, data, ts, doc))
                else:
                    # Firehose delivers the bytes it was given; only a record that spans lines
                    # is re-serialised, so that the object stays one record per line.
                    line = compact(doc) if b"\n" in data or b"\r" in data else data
                    groups.setdefault(key, []).append((seq, data, ts, line))
            except RecordError as e:
                errors.append((e, seq, data, ts))
        if parquet:
            if groups:
                self._write_parquet(groups, errors, name)
        else:
            for key, recs in sorted(groups.items()):
                body = self._encode([line for (_, _, _, line) in recs])
                if self._put(f"{key}{name}{self.suffix}", body, recs, errors):
                    self.delivered += len(recs)
        self._write_errors(errors, name)

    def _put(
        self,
        key: str,
        body: bytes,
        recs: list[tuple[str, bytes, float, Any]],
        errors: list[tuple[RecordError, str, bytes, float]],
    ) -> bool:
        """Write one object; a key the lake refuses sends its records to the error prefix
        (when it came from the records' values) instead of failing the batch for ever."""
        try:
            self.lake.put(key, body)
            return True
        except (ValidationError, OSError) as e:
            if not self.dynamic or (
                isinstance(e, OSError) and e.errno not in (errno.ENAMETOOLONG, errno.EILSEQ)
            ):
                raise
            for seq, data, ts, _ in recs:
                errors.append(
                    (
                        RecordError(
                            "DynamicPartitioning.MetadataExtractionFailed",
                            f"the lake refused key {key[:200]!r}: {e}",
                        ),
                        seq,
                        data,
                        ts,
                    )
                )
            return False

    def _write_errors(self, errors: list[tuple[RecordError, str, bytes, float]], name: str) -> None:
        s = self.env.settings
        arn = None
        if self.transform is not None:
            fn = getattr(self.transform, "__name__", "")
            fn = fn if _FUNCTION.match(fn) else f"{self.name}-transform"
            arn = function_arn(fn, region=s.region, account=s.account)
        table = None
        if self.format == "parquet" and self.table is not None:
            table = {
                "catalogId": s.account,
                "databaseName": self.env.app_name,
                "tableName": self.table,
                "region": s.region,
            }
        by_key: dict[str, list[bytes]] = {}
        for e, seq, data, ts in errors:
            ekey = render_prefix(self.error_parts, ts, None, error_output_type(e.code))
            doc = error_document(e, seq, data, ts, delivery=self.name, lambda_arn=arn, catalog_table=table)
            by_key.setdefault(ekey, []).append(doc)
        # Error records are always JSON Lines, whatever the delivery's format.
        compression = "gzip" if self.format == "parquet" else self.compression
        suffix = ".jsonl.gz" if self.format == "parquet" else self.suffix
        for key, lines in sorted(by_key.items()):
            self.lake.put(f"{key}{name}{suffix}", self._encode(lines, compression))
            self.failed += len(lines)

    def _create_table(self) -> None:
        assert self.table is not None
        self.catalog.create_table(
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

        datas = [r.data for r in rows]
        buf = b"\n".join(datas)
        if buf.count(b"\n") != len(rows) - 1 or b"\r" in buf:
            return None  # one record per line is what makes the batch parseable as a whole
        if max(map(len, datas)) > 2 * MAX_DEPTH:  # a shorter record cannot nest too deep
            for d in datas:
                crowded = len(d) > 2 * MAX_DEPTH and d.count(b"[") + d.count(b"{") > MAX_DEPTH
                if crowded and nesting_depth(d) > MAX_DEPTH:
                    return None  # PyArrow would take minutes; the careful path refuses it
        if b"NaN" in buf or b"Infinity" in buf:
            return None  # PyArrow reads these; they are not JSON, and the careful path says so
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
            if not buf.isascii():
                parsed.validate(full=True)  # PyArrow's JSON reader passes invalid UTF-8 through
            names = parsed.column_names
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError, UnicodeDecodeError):
            return None
        if parsed.num_rows != len(rows):
            return None
        return parsed if len(set(names)) == len(names) else None

    def _fast_parquet(self, rows: list[Any], name: str) -> bool:
        """The whole batch parsed and converted by PyArrow in C++, when every record is a plain
        one-line JSON object whose values fit the catalog. Anything unusual (a bad record, a
        value that needs widening or reporting, a nested or date-like new field, a missing
        partition key) returns False and the record-by-record path handles the batch, so both
        paths produce the same lake; this one is only faster."""
        import io

        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        from .catalog import _COLUMN, ARROW_TYPES

        catalog = self.catalog
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
            if pa.types.is_floating(arr.type) and pc.any(pc.is_inf(arr)).as_py():
                return False  # 1e400 or a 400-digit integer: only the record's text tells them apart
            if arr.type != want:
                if not (pa.types.is_integer(arr.type) and typ == "DOUBLE") and not pa.types.is_null(arr.type):
                    return False  # another worker changed the schema meanwhile: take the slow path
                arr = arr.cast(want)
            arrays.append(arr)
        table = pa.Table.from_arrays(
            arrays, schema=pa.schema([(c, ARROW_TYPES[t]) for c, t in table_def.columns])
        )
        keys = self._batch_keys(parsed, rows, name)
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
            self.lake.put(f"{key}{name}{self.suffix}", out.getvalue())
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
        keys = self._batch_keys(parsed, rows, name)
        if keys is None:
            return False
        groups: dict[str, list[bytes]] = {}
        for r, k in zip(rows, keys, strict=True):
            groups.setdefault(k, []).append(r.data)
        for key, lines in sorted(groups.items()):
            self.lake.put(f"{key}{name}{self.suffix}", self._encode(lines))
            self.delivered += len(lines)
        return True

    def _batch_keys(self, parsed: Any, rows: list[Any], name: str) -> list[str] | None:
        """Each record's evaluated prefix, column-wise; None when a record needs the careful path."""
        import pyarrow as pa

        per_part: list[Any] = []
        for kind, value in self.prefix_parts:
            if kind == "text":
                per_part.append(value)
            elif kind == "time":
                per_part.append([strftime(value, int(r.ts)) for r in rows])
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
                    try:
                        text = [strftime(fmt, int(v)) for v in values]
                    except (OverflowError, OSError, ValueError):
                        return None
                elif pa.types.is_boolean(col.type):
                    text = ["true" if v else "false" for v in values]
                elif pa.types.is_floating(col.type):
                    return None  # "1e+20" or "100000000000000000000": the record's text decides
                else:
                    text = [v if isinstance(v, str) else str(v) for v in values]
                if any(value_problem(t) for t in set(text)):
                    return None
                per_part.append(text)
        if all(isinstance(p, str) for p in per_part):
            keys = ["".join(per_part)] * len(rows)
        else:
            cols = [p if isinstance(p, list) else [p] * len(rows) for p in per_part]
            keys = ["".join(t) for t in zip(*cols, strict=True)]
        if self.dynamic:
            tail = len(name.encode()) + len(self.suffix)
            if any(key_problem(k, tail) for k in set(keys)):
                return None
        return keys

    def _write_parquet(
        self,
        groups: dict[str, list[tuple[str, bytes, float, Any]]],
        errors: list[tuple[RecordError, str, bytes, float]],
        name: str,
    ) -> None:
        import io

        import pyarrow.parquet as pq

        assert self.table is not None
        if self.catalog.get(self.table) is None:
            self._create_table()
        docs = [doc for recs in groups.values() for (_, _, _, doc) in recs]
        table_def = self.catalog.evolve(self.table, docs)
        for key, recs in sorted(groups.items()):
            arrow, bad = _convert(table_def, [doc for (_, _, _, doc) in recs])
            for i, reason in bad:
                seq, data, ts, _ = recs[i]
                errors.append((RecordError("DataFormatConversion.Malformed", reason), seq, data, ts))
            if arrow.num_rows:
                bad_rows = {i for i, _ in bad}
                good = [r for i, r in enumerate(recs) if i not in bad_rows]

                buf = io.BytesIO()
                pq.write_table(arrow, buf, compression=self.compression or "none")
                if self._put(f"{key}{name}{self.suffix}", buf.getvalue(), good, errors):
                    self.delivered += arrow.num_rows

    def _encode(self, lines: list[bytes], compression: str | None = None) -> bytes:
        body = b"\n".join(lines) + b"\n"
        compression = compression or self.compression
        if compression == "gzip":
            return gzip.compress(body, mtime=0)  # no timestamp inside: a rewrite is byte-identical
        if compression == "zstd":
            import zstandard

            return bytes(zstandard.ZstdCompressor().compress(body))
        return body

    def _transform(self, rows: list[Any], shard: str, context: Any) -> list[Outcome]:
        """Firehose's data transformation: the function sees the batch as Firehose's event and
        answers per record Ok (with new data), Dropped or ProcessingFailed."""
        s = self.env.settings
        event = transformation_event(
            rows,
            delivery_name=self.name,
            stream_name=self.source.name,
            shard_id=shard,
            region=s.region,
            account=s.account,
        )
        given = [(r["recordId"], row.data, row.ts) for r, row in zip(event["records"], rows, strict=True)]
        try:
            resp = self.transform(event, context)  # type: ignore[misc]
            problem = check_response(resp, {seq for seq, _, _ in given})
        except Exception as e:
            problem = ("Lambda.FunctionError", f"transform raised {type(e).__name__}: {e}")
        if problem:
            return [(seq, data, ts, RecordError(*problem)) for seq, data, ts in given]
        by_id = {r["recordId"]: r for r in resp["records"]}
        out: list[Outcome] = []
        for seq, data, ts in given:
            r = by_id[seq]
            if r["result"] == "Ok":
                out.append((seq, base64.b64decode(r.get("data", "")), ts, None))
            elif r["result"] == "ProcessingFailed":
                failed = RecordError(
                    "Lambda.ProcessingFailedStatus", "ProcessingFailed status set for record"
                )
                out.append((seq, data, ts, failed))
        return out


def _convert(table_def: Any, docs: list[dict[str, Any]]) -> tuple[Any, list[tuple[int, str]]]:
    """The catalog's conversion, with a record it cannot handle reported rather than raised:
    when the batch raises, each record is converted alone to find the ones at fault."""
    from .catalog import convert

    try:
        return convert(table_def, docs)
    except Exception:
        pass
    bad: list[tuple[int, str]] = []
    good: list[dict[str, Any]] = []
    for i, doc in enumerate(docs):
        try:
            _, b = convert(table_def, [doc])
        except Exception as e:
            bad.append((i, f"{type(e).__name__}: {str(e)[:200]}"))
            continue
        if b:
            bad.append((i, b[0][1]))
        else:
            good.append(doc)
    arrow, _ = convert(table_def, good)
    return arrow, bad
