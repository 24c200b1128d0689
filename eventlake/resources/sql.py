"""SQL over the lake and a warehouse (Athena and Redshift), with DuckDB.

Every catalog table becomes a view over its lake prefix (Parquet or JSON Lines, Hive
partitions pruned by DuckDB, files of older schemas read by column name). Native warehouse
tables live in a persistent DuckDB file. User-facing queries (``readonly=True``: the CLI, and
HTTP later) run in the sandbox of ``sql_sandbox.py``: reads only, of the lake and the
warehouse only, within ``sql_timeout_s`` and ``sql_memory_limit_mb``. Trusted code may change
the warehouse with ``readonly=False``; that runs in this process, under the same limits.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import QueryError, ResourceNotFound, ValidationError
from . import sql_sandbox

if TYPE_CHECKING:
    from ..config import Settings
    from .catalog import Catalog, CatalogTable
    from .lake import Lake


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
    """Queries over the catalog's lake tables and the warehouse; needs the lake, the catalog and
    the settings, nothing of the App."""

    def __init__(self, lake: Lake, catalog: Catalog, settings: Settings) -> None:
        self.lake = lake
        self.catalog = catalog
        self.settings = settings
        self.path = settings.warehouse_path
        self._mirror: str | None = None
        self._mirrored: dict[str, tuple[int, str, float]] = {}
        self._mirror_lock = threading.Lock()

    def close(self) -> None:
        """Remove the copy of a lake without a folder; sandbox workers are shared by the
        process and hold no app state."""
        with self._mirror_lock:
            if self._mirror is not None:
                shutil.rmtree(self._mirror, ignore_errors=True)
                self._mirror, self._mirrored = None, {}

    @contextmanager
    def _lake_root(self) -> Iterator[tuple[str, bool]]:
        """The folder DuckDB reads the lake from, and whether the sandbox may keep an instance
        for it. A store without a local folder (``memory://``) is mirrored into a private one,
        brought up to date before each query and held while it runs: the sandbox process cannot
        see this process's memory, and DuckDB reads files natively."""
        root = self.lake.store.local_root()
        if root is not None:
            yield root, True
            return
        with self._mirror_lock:
            yield self._sync_mirror(), True

    def _sync_mirror(self) -> str:
        if self._mirror is None:
            self._mirror = tempfile.mkdtemp(prefix="eventlake-sql-")
        mirror = self._mirror
        seen: dict[str, tuple[int, str, float]] = {}
        for info in self.lake.list():
            stamp = (info.size, info.etag, info.modified)
            seen[info.key] = stamp
            if self._mirrored.get(info.key) == stamp:
                continue
            path = os.path.join(mirror, info.key)
            try:
                data = self.lake.get(info.key)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                tmp = f"{path}.{os.getpid()}.part"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except ResourceNotFound:
                del seen[info.key]  # deleted since the listing
            except OSError as e:
                raise QueryError(
                    f"lake object {info.key!r} cannot be copied for SQL ({e.strerror}): SQL reads "
                    "objects as files, so no key may be a folder of another or have a segment "
                    "over 255 bytes"
                ) from None
        for key in set(self._mirrored) - set(seen):
            try:
                os.unlink(os.path.join(mirror, key))
            except OSError:
                pass
        self._mirrored = seen
        return mirror

    def _sandboxed(self, query: str) -> Any:
        """The query's result (an Arrow table) from the sandbox; eventlake errors only."""
        timeout = float(self.settings.sql_timeout_s)
        memory = int(self.settings.sql_memory_limit_mb)
        warehouse = os.path.abspath(self.path) if os.path.exists(self.path) else None
        try:
            with self._lake_root() as (root, lasting):
                request = {
                    "query": query,
                    "roots": [root + "/"],
                    "warehouse": warehouse,
                    "setup": [self._view_sql(t, root) for t in self.catalog.tables()],
                    "cache": lasting,
                }
                return sql_sandbox.sandbox(memory, 0).run(request, timeout)
        except sql_sandbox.SandboxError as e:
            where = f"\n  in: {query.strip()[:200]}"
            if e.kind == "refused":
                raise ValidationError(f"{e}{where}") from None
            if e.kind == "timeout":
                raise QueryError(
                    f"query stopped: it ran longer than sql_timeout_s={timeout:g} seconds; "
                    f"raise the setting sql_timeout_s to allow longer queries{where}"
                ) from None
            if e.kind in ("memory", "died"):
                likely = "most likely " if e.kind == "died" else ""
                raise QueryError(
                    f"query stopped: {likely}it needed more memory than sql_memory_limit_mb={memory} "
                    f"allows ({str(e).splitlines()[0]}); raise the setting sql_memory_limit_mb{where}"
                ) from None
            if e.kind == "start":
                raise QueryError(f"{e}; is eventlake importable by {sys.executable}?") from None
            raise QueryError(f"{e}{where}") from None

    def _trusted(self, query: str) -> Any:
        """Trusted code changing the warehouse: in this process, with the same settings enforced
        by DuckDB (``memory_limit``, an interrupt at the timeout), which cannot cut short work it
        does not interrupt; only the sandbox's process can be killed."""
        import duckdb
        import pyarrow as pa

        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        memory = int(self.settings.sql_memory_limit_mb)
        timeout = float(self.settings.sql_timeout_s)
        con = duckdb.connect(self.path, config={"memory_limit": f"{memory}MB"})
        timer = threading.Timer(timeout, con.interrupt)
        try:
            with self._lake_root() as (root, _):
                for t in self.catalog.tables():
                    con.execute(self._view_sql(t, root))
                timer.start()
                rel = con.sql(query)
                return rel.to_arrow_table() if rel is not None else pa.table({})
        except duckdb.InterruptException:
            raise QueryError(
                f"query stopped: it ran longer than sql_timeout_s={timeout:g} seconds; "
                f"raise the setting sql_timeout_s to allow longer queries\n  in: {query.strip()[:200]}"
            ) from None
        except duckdb.OutOfMemoryException as e:
            raise QueryError(
                f"query stopped: it needed more memory than sql_memory_limit_mb={memory} allows "
                f"({str(e).splitlines()[0]}); "
                f"raise the setting sql_memory_limit_mb\n  in: {query.strip()[:200]}"
            ) from None
        except duckdb.Error as e:
            raise QueryError(f"{e}\n  in: {query.strip()[:200]}") from None
        finally:
            timer.cancel()
            con.close()

    def _view_sql(self, t: Any, root: str) -> str:
        name = _quote_ident(t.name)
        ext = ".parquet" if t.format == "parquet" else ".jsonl*"
        files = [
            o.key
            for o in self.lake.list(t.prefix)
            if (o.key.endswith(".parquet") if t.format == "parquet" else ".jsonl" in o.key)
        ]
        if not files:
            cols = (
                ", ".join(f"CAST(NULL AS {typ}) AS {_quote_ident(c)}" for c, typ in t.columns)
                or "NULL AS empty"
            )
            return f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {cols} WHERE false"
        glob = _quote_str(f"{root}/{t.prefix}**/*{ext}")
        opts = "hive_partitioning=true, union_by_name=true"
        if t.format == "parquet":
            src = f"read_parquet({glob}, {opts}"
        else:
            src = f"read_json_auto({glob}, format='newline_delimited', {opts}"
        extra = self._path_columns(t, files, root)
        if not extra:
            return f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {src})"
        return (
            f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * EXCLUDE (filename), "
            f"{', '.join(extra)} FROM {src}, filename=true)"
        )

    def _path_columns(self, t: Any, files: list[str], root: str) -> list[str]:
        """Columns for bare-value partition folders (Firehose's ``2026/11/22/16/`` layout), cut
        out of each file's path. DuckDB pushes filters on them down to the file list, so a
        query on ``hour = 16`` opens only that hour's files, as it does for Hive folders."""
        data_columns = {c for c, _ in t.columns}
        offset = len(f"{root}/{t.prefix}") + 1  # DuckDB strings are 1-based
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
    def _check_query(query: object) -> str:
        if not isinstance(query, str) or not query.strip():
            raise ValidationError("query must be a non-empty string")
        try:
            query.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValidationError(
                f"query is not valid text: a lone surrogate at position {e.start}; "
                "write the character it stands for, or an escape such as chr(...)"
            ) from None
        return query

    def query(self, query: str, *, readonly: bool = True) -> SqlResult:
        self._check_query(query)
        return SqlResult(self._sandboxed(query) if readonly else self._trusted(query))

    def create_table_as(self, name: str, query: str, *, prefix: str | None = None) -> CatalogTable:
        """The query's result written into the lake as Parquet and registered in the catalog. The
        query is a user's read like any other, so it runs in the sandbox; only the writing of its
        result, by this process, touches the lake."""
        import pyarrow.parquet as pq

        from .catalog import _arrow_to_catalog, check_column

        check_column(name)
        self._check_query(query)
        prefix = prefix or f"tables/{name}/"
        table = self._sandboxed(query)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        columns = [(f.name, _arrow_to_catalog(f.type) or "VARCHAR") for f in table.schema]
        for old in self.lake.keys(prefix):
            self.lake.delete(old)
        self.lake.put(f"{prefix}part-0.parquet", buf.getvalue())
        if self.catalog.get(name) is None:
            self.catalog.create_table(name, prefix=prefix, format="parquet", columns=columns)
        return self.catalog.table(name)
