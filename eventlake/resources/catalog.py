"""The catalog (Glue): tables over lake prefixes, with schemas inferred and evolved.

A table's definition lives in the state backend (kv namespace ``catalog``) so every worker
sees the same schema. Schemas are widened, never narrowed: a new field adds a nullable
column; an integer column that meets a float becomes DOUBLE; a value that fits no widening
(text in a number column) is not silently dropped or coerced — the record is reported under
the delivery's error prefix with the column and the value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ResourceNotFound, ValidationError
from ..ports.kv import KvTxn
from .env import Env

TYPES = ("BOOLEAN", "BIGINT", "DOUBLE", "VARCHAR")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_WIDEN = {("BIGINT", "DOUBLE"): "DOUBLE", ("DOUBLE", "BIGINT"): "DOUBLE"}


_PY_TYPES = {
    bool: "BOOLEAN",
    int: "BIGINT",
    float: "DOUBLE",
    str: "VARCHAR",
    dict: "VARCHAR",
    list: "VARCHAR",
}


def _arrow_types() -> dict[str, Any]:
    import pyarrow as pa

    return {"BOOLEAN": pa.bool_(), "BIGINT": pa.int64(), "DOUBLE": pa.float64(), "VARCHAR": pa.string()}


class _LazyArrowTypes(dict[str, Any]):
    """Catalog type → Arrow type, filled on first use so importing the catalog stays cheap."""

    def __missing__(self, key: str) -> Any:
        self.update(_arrow_types())
        return dict.__getitem__(self, key)

    def items(self) -> Any:
        if not self:
            self.update(_arrow_types())
        return super().items()


ARROW_TYPES: dict[str, Any] = _LazyArrowTypes()


def json_type(value: Any) -> str | None:
    """The column type a JSON value needs; None for null (it fits any column). Nested
    objects and arrays are kept as JSON text."""
    if value is None:
        return None
    t = _PY_TYPES.get(type(value), "VARCHAR")
    if t == "BIGINT" and not -(2**63) <= value < 2**63:
        return "DOUBLE"
    return t


@dataclass
class CatalogTable:
    name: str
    prefix: str
    format: str = "parquet"
    columns: list[tuple[str, str]] = field(default_factory=list)
    # Partition columns in path order. ``layout`` says how each one appears in an object's
    # path: ``"hive"`` (a ``k=v`` folder) or ``"path"`` (the whole folder is the value, as in
    # Firehose's ``yyyy/MM/dd/HH`` layout, which the original workshops use).
    partitions: list[str] = field(default_factory=list)
    layout: list[str] = field(default_factory=list)
    partition_types: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.layout) != len(self.partitions):
            self.layout = ["hive"] * len(self.partitions)

    def column_types(self) -> dict[str, str]:
        return dict(self.columns)

    def to_json(self) -> str:
        return json.dumps(
            {
                "prefix": self.prefix,
                "format": self.format,
                "columns": self.columns,
                "partitions": self.partitions,
                "layout": self.layout,
                "partition_types": self.partition_types,
            }
        )

    @classmethod
    def from_json(cls, name: str, raw: str) -> CatalogTable:
        d = json.loads(raw)
        return cls(
            name,
            d["prefix"],
            d["format"],
            [tuple(c) for c in d["columns"]],
            d["partitions"],
            d.get("layout", []),
            d.get("partition_types", {}),
        )


def check_column(name: str) -> str:
    if not isinstance(name, str) or not _COLUMN.match(name):
        raise ValidationError(
            f"column name {name!r}: use letters, digits and _ (starting with a letter or _), "
            "at most 128 characters"
        )
    return name


class Catalog:
    NS = "catalog"

    def __init__(self, env: Env) -> None:
        self.env = env

    def _raw(self, txn: KvTxn, name: str, *, lock: bool = False) -> str:
        raw = txn.kv_get(self.NS, name, lock=lock)
        if raw is None:
            raise ResourceNotFound(f"catalog table {name!r} does not exist (dropped meanwhile?)")
        return raw

    def get(self, name: str) -> CatalogTable | None:
        raw = self.env.state.transaction(lambda t: t.kv_get(self.NS, name), readonly=True)
        return CatalogTable.from_json(name, raw) if raw else None

    def table(self, name: str) -> CatalogTable:
        t = self.get(name)
        if t is None:
            raise ResourceNotFound(f"catalog table {name!r} does not exist")
        return t

    def tables(self) -> list[CatalogTable]:
        rows = self.env.state.transaction(lambda t: t.kv_list(self.NS), readonly=True)
        return [CatalogTable.from_json(k, v) for k, v in rows]

    def create_table(
        self,
        name: str,
        *,
        prefix: str,
        format: str = "parquet",
        columns: list[tuple[str, str]] | None = None,
        partitions: list[str] | None = None,
        layout: list[str] | None = None,
        partition_types: dict[str, str] | None = None,
    ) -> CatalogTable:
        """``partitions`` name the path segments under ``prefix`` in order; ``layout`` says per
        segment whether it is Hive style (``k=v``, the default) or a bare value (``"path"``,
        e.g. Firehose's ``2026/11/22/16/``)."""
        check_column(name)
        if format not in ("parquet", "jsonl"):
            raise ValidationError(f"catalog table {name!r}: format must be parquet or jsonl")
        if columns is None:
            columns = self._infer(prefix, format, partitions or [])
        cols = []
        for col, typ in columns:
            check_column(col)
            if typ not in TYPES:
                raise ValidationError(f"column {col!r}: type must be one of {', '.join(TYPES)}")
            cols.append((col, typ))
        parts = [check_column(p) for p in partitions or []]
        lay = list(layout or ["hive"] * len(parts))
        if len(lay) != len(parts) or any(x not in ("hive", "path") for x in lay):
            raise ValidationError(
                f"catalog table {name!r}: layout needs one of 'hive' or 'path' per partition {parts}"
            )
        ptypes = dict(partition_types or {})
        for p, typ in ptypes.items():
            if p not in parts or typ not in TYPES:
                raise ValidationError(f"catalog table {name!r}: bad partition type {p!r}: {typ!r}")
        table = CatalogTable(name, prefix, format, cols, parts, lay, ptypes)

        def run(txn: KvTxn) -> None:
            if not txn.kv_insert(self.NS, name, table.to_json()):
                existing = CatalogTable.from_json(name, self._raw(txn, name))
                if (existing.prefix, existing.format) != (prefix, format):
                    raise ValidationError(
                        f"catalog table {name!r} already exists over {existing.prefix!r} "
                        f"({existing.format}); use another name"
                    )

        self.env.state.transaction(run)
        return self.table(name)

    def _infer(
        self, prefix: str, format: str, partitions: list[str], sample: int = 5
    ) -> list[tuple[str, str]]:
        """A schema from the first objects already under ``prefix`` (a table declared over
        existing files, as a Glue crawler would): Parquet footers, or the first lines of JSON
        Lines objects. Empty when there is nothing yet; the first delivery fills it in."""
        store = self.env.lake
        if store is None:
            return []
        objects = []
        for o in store.list(prefix):
            if (o.key.endswith(".parquet") if format == "parquet" else ".jsonl" in o.key) and o.size:
                objects.append(o.key)
                if len(objects) >= sample:
                    break
        order: list[str] = []
        types: dict[str, str] = {}

        def learn(col: str, typ: str | None) -> None:
            if typ is None or col in partitions or not _COLUMN.match(col):
                return
            cur = types.get(col)
            if cur is None:
                types[col] = typ
                order.append(col)
            elif cur != typ:
                types[col] = _WIDEN.get((cur, typ), "VARCHAR")

        for key in objects:
            data = store.get(key)
            try:
                if format == "parquet":
                    import io

                    import pyarrow.parquet as pq

                    for f in pq.read_schema(io.BytesIO(data)):
                        learn(f.name, _arrow_to_catalog(f.type))
                else:
                    for line in _decompress(key, data).splitlines()[:100]:
                        doc = json.loads(line) if line.strip() else None
                        if isinstance(doc, dict):
                            for k, v in doc.items():
                                learn(k, json_type(v))
            except Exception as e:
                raise ValidationError(
                    f"cannot infer a schema from {key!r}: {type(e).__name__}: {e}; declare columns=[...]"
                ) from None
        return [(c, types[c]) for c in order]

    def evolve(self, name: str, docs: list[dict[str, Any]]) -> CatalogTable:
        """Widen ``name``'s schema so that ``docs`` fit, where a widening exists. The check is
        read-only; the write (under a row lock) happens only when something changes."""
        current = self.table(name)
        if not _needs_change(current.column_types(), docs):
            return current

        pairs: dict[tuple[str, str], None] = {}  # first-seen order, each pair once
        for doc in docs:
            for key, value in doc.items():
                vt = json_type(value)
                if vt is not None and _COLUMN.match(key):  # nulls teach nothing; bad names are
                    pairs[(key, vt)] = None  # reported at conversion
        return self.add_columns(name, list(pairs))

    def add_columns(self, name: str, columns: list[tuple[str, str]]) -> CatalogTable:
        """Add new columns (and widen BIGINT to DOUBLE where asked) under the row lock; the
        column-wise counterpart of :meth:`evolve`, for batches PyArrow has already typed."""

        def run(txn: KvTxn) -> CatalogTable:
            t = CatalogTable.from_json(name, self._raw(txn, name, lock=True))
            types = t.column_types()
            order = [c for c, _ in t.columns]
            changed = False
            for col, typ in columns:
                cur = types.get(col)
                if cur is None:
                    types[col] = typ
                    order.append(col)
                    changed = True
                elif cur != typ and (cur, typ) in _WIDEN:
                    types[col] = _WIDEN[(cur, typ)]
                    changed = True
            if changed:
                t.columns = [(c, types[c]) for c in order]
                txn.kv_put(self.NS, name, t.to_json())
            return t

        return self.env.state.transaction(run)


def _arrow_to_catalog(t: Any) -> str | None:
    import pyarrow as pa

    if pa.types.is_null(t):
        return None
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "DOUBLE"
    return "VARCHAR"  # text, and anything richer kept as text by conversions into this table


def _decompress(key: str, data: bytes) -> bytes:
    if key.endswith(".gz"):
        import gzip

        return gzip.decompress(data)
    if key.endswith(".zst"):
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def _needs_change(types: dict[str, str], docs: list[dict[str, Any]]) -> bool:
    py = _PY_TYPES
    for doc in docs:
        for key, value in doc.items():
            cur = types.get(key)
            if value is None:
                continue
            vt = py.get(type(value), "VARCHAR")
            if cur is None or (vt != cur and (cur, vt) in _WIDEN):
                if cur is None and not _COLUMN.match(key):
                    continue
                return True
    return False


def convert(table: CatalogTable, docs: list[dict[str, Any]]) -> tuple[Any, list[tuple[int, str]]]:
    """Records → an Arrow table with the catalog schema; returns (table, [(index, reason)]).

    Fast path: whole columns handed to PyArrow, which converts them in C++. Only when that
    fails (a value that does not fit, a field the table lacks) does the record-by-record
    path run, to find and report exactly the records at fault."""
    import pyarrow as pa

    arrow = {"BOOLEAN": pa.bool_(), "BIGINT": pa.int64(), "DOUBLE": pa.float64(), "VARCHAR": pa.string()}
    cols = table.columns
    schema = pa.schema([(c, arrow[t]) for c, t in cols])
    known = set(table.column_types())
    if all(k in known or v is None for doc in docs for k, v in doc.items()):
        try:
            arrays = []
            for c, t in cols:
                values = [doc.get(c) for doc in docs]
                if t == "VARCHAR" and any(isinstance(v, (dict, list)) for v in values):
                    raise TypeError("nested values")
                if t in ("BIGINT", "DOUBLE") and any(isinstance(v, bool) for v in values):
                    raise TypeError("booleans are not numbers here")
                arrays.append(pa.array(values, type=arrow[t]))
            return pa.Table.from_arrays(arrays, schema=schema), []
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            pass
    data: dict[str, list[Any]] = {c: [] for c, _ in cols}
    bad: list[tuple[int, str]] = []
    for i, doc in enumerate(docs):
        row = {}
        reason = None
        for key, value in doc.items():
            if key not in data and value is not None:
                reason = (
                    f"field {key!r} is not a valid column name"
                    if not _COLUMN.match(key)
                    else f"field {key!r} is not in table {table.name!r}"
                )
                break
        if reason is None:
            for col, typ in cols:
                v = doc.get(col)
                ok, cv = _coerce(v, typ)
                if not ok:
                    reason = f"field {col!r}: {v!r:.60} does not fit column type {typ}"
                    break
                row[col] = cv
        if reason is not None:
            bad.append((i, reason))
            continue
        for col, _ in cols:
            data[col].append(row[col])
    return pa.table(data, schema=schema), bad


def _coerce(v: Any, typ: str) -> tuple[bool, Any]:
    if v is None:
        return True, None
    if typ == "VARCHAR":
        if isinstance(v, str):
            return True, v
        if isinstance(v, (dict, list)):
            return True, json.dumps(v, separators=(",", ":"), ensure_ascii=False)
        return False, None
    if typ == "BOOLEAN":
        return (True, v) if isinstance(v, bool) else (False, None)
    if isinstance(v, bool):
        return False, None
    if typ == "BIGINT":
        return (True, v) if isinstance(v, int) and -(2**63) <= v < 2**63 else (False, None)
    if typ == "DOUBLE":
        return (True, float(v)) if isinstance(v, (int, float)) else (False, None)
    return False, None
