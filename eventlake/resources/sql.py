"""SQL over the lake and a warehouse (Athena and Redshift), with DuckDB.

Every catalog table becomes a view over its lake prefix (Parquet or JSON Lines, Hive
partitions pruned by DuckDB, files of older schemas read by column name). Native warehouse
tables live in a persistent DuckDB file. User-facing queries (``readonly=True``: the CLI, and
HTTP later) may only read: one or more SELECT statements, and DuckDB is locked so that no file
outside the lake and no network can be reached from a query.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..errors import EventlakeError, ValidationError

_DUCK_TYPES = {
    "BOOLEAN": "BOOLEAN",
    "BIGINT": "BIGINT",
    "INTEGER": "BIGINT",
    "SMALLINT": "BIGINT",
    "TINYINT": "BIGINT",
    "HUGEINT": "BIGINT",
    "UBIGINT": "BIGINT",
    "DOUBLE": "DOUBLE",
    "FLOAT": "DOUBLE",
}


class QueryError(EventlakeError):
    """DuckDB refused or failed a query; the message is DuckDB's, with the query."""


class SqlResult:
    """A query result: ``rows()``, ``arrow()``, ``df()`` (pandas) or ``pl()`` (polars)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    @property
    def columns(self) -> list[str]:
        return list(self._table.column_names)

    def arrow(self) -> Any:
        return self._table

    def rows(self) -> list[tuple[Any, ...]]:
        cols = [c.to_pylist() for c in self._table.columns]
        return list(zip(*cols, strict=True)) if cols else []

    def df(self) -> Any:
        try:
            return self._table.to_pandas()
        except ImportError:
            raise ValidationError("df() needs pandas: pip install pandas") from None

    def pl(self) -> Any:
        try:
            import polars
        except ImportError:
            raise ValidationError("pl() needs polars: pip install polars") from None
        return polars.from_arrow(self._table)

    def __len__(self) -> int:
        return int(self._table.num_rows)

    def __repr__(self) -> str:
        return f"SqlResult({len(self)} rows, columns={self.columns})"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class SqlEngine:
    def __init__(self, app: Any) -> None:
        self.app = app
        store = app.lake.store
        root = getattr(store, "root", None)
        if root is None:
            raise ValidationError(
                f"SQL over the lake needs a local lake folder for now; lake_url {app.settings.lake_url!r} "
                "is not one"
            )
        self.root = str(root)
        self.path = app.settings.warehouse_path
        self._base: Any = None
        self._lock = threading.Lock()

    def _sandbox(self) -> Any:
        """One locked-down in-memory DuckDB per engine. Starting DuckDB costs tens of
        milliseconds, more than a typical lake query; a cursor on this instance costs almost
        nothing and keeps its own temporary views, so every query still sees the current
        catalog and no query sees another's state."""
        import duckdb

        with self._lock:
            if self._base is None:
                base = duckdb.connect()
                base.execute(f"SET allowed_directories=[{_quote_str(self.root + '/')}]")
                base.execute("SET enable_external_access=false")
                base.execute("SET lock_configuration=true")
                self._base = base
            return self._base.cursor()

    def close(self) -> None:
        with self._lock:
            if self._base is not None:
                self._base.close()
                self._base = None

    def _connect(self, readonly: bool) -> Any:
        import duckdb

        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if readonly and not os.path.exists(self.path):
            # Lake-only: no warehouse file to attach, so the shared sandbox will do.
            con = self._sandbox()
            for t in self.app.catalog.tables():
                con.execute(self._view_sql(t))
            return con
        else:
            con = duckdb.connect(self.path, read_only=readonly)
        for t in self.app.catalog.tables():
            con.execute(self._view_sql(t))
        if readonly:
            con.execute(f"SET allowed_directories=[{_quote_str(self.root + '/')}]")
            con.execute("SET enable_external_access=false")
            con.execute("SET lock_configuration=true")
        return con

    def _view_sql(self, t: Any) -> str:
        name = _quote_ident(t.name)
        ext = ".parquet" if t.format == "parquet" else ".jsonl*"
        files = [
            o.key
            for o in self.app.lake.list(t.prefix)
            if (o.key.endswith(".parquet") if t.format == "parquet" else ".jsonl" in o.key)
        ]
        if not files:
            cols = (
                ", ".join(f"CAST(NULL AS {typ}) AS {_quote_ident(c)}" for c, typ in t.columns)
                or "NULL AS empty"
            )
            return f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {cols} WHERE false"
        glob = _quote_str(f"{self.root}/{t.prefix}**/*{ext}")
        opts = "hive_partitioning=true, union_by_name=true"
        if t.format == "parquet":
            src = f"read_parquet({glob}, {opts}"
        else:
            src = f"read_json_auto({glob}, format='newline_delimited', {opts}"
        extra = self._path_columns(t, files)
        if not extra:
            return f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {src})"
        return (
            f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * EXCLUDE (filename), "
            f"{', '.join(extra)} FROM {src}, filename=true)"
        )

    def _path_columns(self, t: Any, files: list[str]) -> list[str]:
        """Columns for bare-value partition folders (Firehose's ``2026/11/22/16/`` layout), cut
        out of each file's path. DuckDB pushes filters on them down to the file list, so a
        query on ``hour = 16`` opens only that hour's files, as it does for Hive folders."""
        data_columns = {c for c, _ in t.columns}
        offset = len(f"{self.root}/{t.prefix}") + 1  # DuckDB strings are 1-based
        out = []
        for i, (col, kind) in enumerate(zip(t.partitions, t.layout, strict=True)):
            if kind != "path" or col in data_columns:
                continue  # a field of the record itself wins over its copy in the path
            typ = t.partition_types.get(col)
            if typ is None:
                values = {k[len(t.prefix) :].split("/")[i] for k in files if k.count("/") > i}
                typ = "BIGINT" if values and all(v.isdigit() and len(v) < 18 for v in values) else "VARCHAR"
            part = f"string_split(filename[{offset}:], '/')[{i + 1}]"
            out.append(f"TRY_CAST({part} AS {typ}) AS {_quote_ident(col)}")
        return out

    @staticmethod
    def _check_readonly(query: str) -> None:
        import duckdb

        try:
            statements = duckdb.extract_statements(query)
        except duckdb.Error as e:
            raise QueryError(f"{e}\n  in: {query.strip()[:200]}") from None
        if not statements:
            raise ValidationError("empty query")
        for st in statements:
            if st.type not in (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN):
                raise ValidationError(
                    f"only SELECT queries are allowed here, not {st.type.name}; "
                    "use app.sql(query, readonly=False) from trusted code to change the warehouse"
                )

    def query(self, query: str, *, readonly: bool = True) -> SqlResult:
        import duckdb
        import pyarrow as pa

        if not isinstance(query, str) or not query.strip():
            raise ValidationError("query must be a non-empty string")
        if readonly:
            self._check_readonly(query)
        con = self._connect(readonly)
        try:
            rel = con.sql(query)
            table = rel.to_arrow_table() if rel is not None else pa.table({})
            return SqlResult(table)
        except duckdb.Error as e:
            raise QueryError(f"{e}\n  in: {query.strip()[:200]}") from None
        finally:
            con.close()

    def create_table_as(self, name: str, query: str, *, prefix: str | None = None) -> Any:
        """The query's result written into the lake as Parquet and registered in the catalog."""
        import duckdb

        from .catalog import check_column

        check_column(name)
        self._check_readonly(query)
        prefix = prefix or f"tables/{name}/"
        con = self._connect(readonly=False)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "part-0.parquet")
                try:
                    con.execute(f"COPY ({query}) TO {_quote_str(out)} (FORMAT parquet)")
                    desc = con.execute(f"DESCRIBE SELECT * FROM read_parquet({_quote_str(out)})").fetchall()
                except duckdb.Error as e:
                    raise QueryError(f"{e}\n  in: {query.strip()[:200]}") from None
                data = Path(out).read_bytes()
        finally:
            con.close()
        columns = [(c[0], _DUCK_TYPES.get(str(c[1]).split("(")[0], "VARCHAR")) for c in desc]
        for old in self.app.lake.keys(prefix):
            self.app.lake.delete(old)
        self.app.lake.put(f"{prefix}part-0.parquet", data)
        catalog = self.app.catalog
        if catalog.get(name) is None:
            catalog.create_table(name, prefix=prefix, format="parquet", columns=columns)
        return catalog.table(name)
