"""The SQL sandbox: user queries only read, only the lake and the warehouse, within limits.

Each escape found against the earlier first-keyword check has its own test; the state backend
plays no part, so these run on SQLite only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eventlake import App, EventlakeError, ValidationError
from eventlake.resources.sql import QueryError

Refused = (ValidationError, QueryError)


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., App]]:
    apps: list[App] = []

    def factory(**kwargs: Any) -> App:
        kwargs.setdefault("state_url", f"sqlite:///{tmp_path}/state.db")
        kwargs.setdefault("lake_url", f"file://{tmp_path}/lake")
        kwargs.setdefault("warehouse_path", f"{tmp_path}/wh/warehouse.duckdb")
        a = App("sandbox", **kwargs)
        apps.append(a)
        return a

    yield factory
    for a in apps:
        a.close()


@pytest.fixture
def lake_app(make: Callable[..., App]) -> App:
    """An app with one delivered Parquet object under a catalog table."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    app = make()
    buf = io.BytesIO()
    pq.write_table(pa.table({"amount": [1, 2, 3]}), buf)
    app.lake.put("orders/customer=c0/part-0.parquet", buf.getvalue())
    app.catalog.create_table("orders", prefix="orders/", partitions=["customer"])
    return app


def _object(app: App) -> bytes:
    return app.lake.get("orders/customer=c0/part-0.parquet")


def test_explain_analyze_copy_cannot_overwrite_a_lake_object(lake_app: App) -> None:
    root = lake_app.lake.store.root  # type: ignore[attr-defined]
    before = _object(lake_app)
    with pytest.raises(ValidationError, match="only SELECT"):
        lake_app.sql(
            f"EXPLAIN ANALYZE COPY (SELECT 999999 AS amount) TO '{root}/orders/customer=c0/part-0.parquet'"
        )
    assert _object(lake_app) == before
    assert lake_app.sql("SELECT sum(amount) FROM orders").rows() == [(6,)]


def test_explain_analyze_create_macro_leaves_later_queries_alone(lake_app: App) -> None:
    with pytest.raises(ValidationError, match="only SELECT"):
        lake_app.sql("EXPLAIN ANALYZE CREATE MACRO sum(x) AS 42")
    with pytest.raises(ValidationError, match="only SELECT"):
        lake_app.sql("EXPLAIN ANALYZE CREATE TEMP MACRO sum(x) AS 42")
    assert lake_app.sql("SELECT sum(amount) FROM orders").rows() == [(6,)]


@pytest.mark.parametrize(
    "query",
    [
        "EXPLAIN ANALYZE INSERT INTO t VALUES (1)",
        "EXPLAIN (FORMAT json) SELECT 1",
        "EXPLAIN EXPLAIN ANALYZE SELECT 1",
        "EXPLAIN ANALYZE SELECT 1; EXPLAIN ANALYZE CREATE MACRO m(x) AS 1",
        "EXPLAIN /* c */ ANALYZE CREATE TABLE t AS SELECT 1",
        "EXPLAIN ANALYZE SELECT * FROM enable_logging()",
    ],
)
def test_explain_runs_only_around_a_checked_select(lake_app: App, query: str) -> None:
    with pytest.raises(Refused):
        lake_app.sql(query)


def test_explain_of_a_select_still_works(lake_app: App) -> None:
    assert len(lake_app.sql("EXPLAIN SELECT sum(amount) FROM orders")) >= 1
    assert len(lake_app.sql("EXPLAIN ANALYZE SELECT sum(amount) FROM orders")) >= 1


@pytest.mark.parametrize(
    "query",
    [
        "ATTACH ':memory:' AS other",
        "ATTACH '{outside}/x.duckdb' AS other",
        "DETACH warehouse",
        "USE system",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET memory_limit='100GB'",
        "SET enable_external_access=true",
        "RESET memory_limit",
        "SET VARIABLE v = 1",
        "PRAGMA enable_profiling",
        "PRAGMA version",
        "CALL enable_logging()",
        "CALL pragma_version()",
        "CHECKPOINT",
        "PREPARE p AS SELECT 1",
        "EXECUTE p",
        "DEALLOCATE p",
        "COPY orders FROM '{lake}/orders/customer=c0/part-0.parquet'",
        "COPY (SELECT 1) TO '{outside}/out.csv'",
        "CREATE TABLE t AS SELECT 1",
        "CREATE TEMP VIEW v AS SELECT 1",
        "CREATE SECRET s (TYPE s3, KEY_ID 'x', SECRET 'y')",
        "INSERT INTO orders VALUES (1)",
        "DROP VIEW orders",
        "PIVOT (SELECT 1 AS a) ON a",
        "EXPORT DATABASE '{outside}/dump'",
        "VACUUM",
        "BEGIN TRANSACTION",
        "SELECT 1; COPY (SELECT 1) TO '{lake}/x.csv'",
        "SELECT * FROM enable_logging()",
        "SELECT * FROM checkpoint()",
        "SELECT * FROM force_checkpoint()",
        "SELECT * FROM query('SELECT 1')",
        "SELECT * FROM query_table('orders')",
        "SELECT * FROM json_execute_serialized_sql('{{}}')",
        "SELECT * FROM duckdb_secrets()",
        "SELECT * FROM range(3) t, LATERAL (SELECT * FROM system.main.enable_profiling())",
        "SELECT (SELECT count(*) FROM truncate_duckdb_logs())",
        "SELECT * FROM arrow_scan(1, 2, 3)",
    ],
)
def test_only_reads_reach_the_engine(lake_app: App, tmp_path: Path, query: str) -> None:
    root = lake_app.lake.store.root  # type: ignore[attr-defined]
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    with pytest.raises(Refused):
        lake_app.sql(query.format(lake=root, outside=outside))
    assert list(outside.iterdir()) == []
    assert lake_app.lake.keys() == ["orders/customer=c0/part-0.parquet"]
    assert lake_app.sql("SELECT sum(amount) FROM orders").rows() == [(6,)]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_text('{secret}')",
        "SELECT * FROM read_blob('{secret}')",
        "SELECT * FROM read_csv('{secret}')",
        "SELECT * FROM '{secret}'",
        "SELECT * FROM read_text('{lake}/../secret.txt')",
        "SELECT * FROM read_text('{lake}/link.txt')",
        "SELECT * FROM read_text('{lake}/dirlink/secret.txt')",
        "SELECT * FROM glob('{outside}/*')",
        "SELECT * FROM read_text('.tmp/x.txt')",
        "SELECT * FROM read_text('{cwd}/.tmp/x.txt')",
        "SELECT * FROM read_parquet('https://example.com/x.parquet')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_duckdb('{outside}/db.duckdb')",
    ],
)
def test_nothing_outside_the_lake_is_readable(
    lake_app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query: str
) -> None:
    root = Path(lake_app.lake.store.root)  # type: ignore[attr-defined]
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (outside / "secret.txt").write_text("secret")
    os.symlink(secret, root / "link.txt")
    os.symlink(tmp_path, root / "dirlink")
    # DuckDB used to add <cwd>/.tmp/ to the allowed folders of any instance.
    cwd = tmp_path / "cwd"
    (cwd / ".tmp").mkdir(parents=True)
    (cwd / ".tmp" / "x.txt").write_text("secret")
    monkeypatch.chdir(cwd)
    with pytest.raises(Refused):
        lake_app.sql(query.format(lake=root, outside=outside, secret=secret, cwd=cwd))


def test_reads_inside_the_lake_are_allowed(lake_app: App) -> None:
    root = lake_app.lake.store.root  # type: ignore[attr-defined]
    rows = lake_app.sql(f"SELECT count(*) FROM glob('{root}/**/*.parquet')").rows()
    assert rows == [(1,)]
    assert lake_app.sql("DESCRIBE orders").rows()[0][0] == "amount"
    assert len(lake_app.sql("SHOW TABLES")) >= 1
    assert lake_app.sql("SELECT 1 AS a; SELECT 2 AS b").rows() == [(2,)]


@pytest.mark.parametrize("query", ["SELECT 'a\ud800'", 5, None, b"SELECT 1", "  ", ";", "-- nothing"])
def test_queries_that_are_not_text_are_validation_errors(lake_app: App, query: Any) -> None:
    with pytest.raises(ValidationError):
        lake_app.sql(query)
    with pytest.raises(ValidationError):
        lake_app.create_table_as("t2", query)
    assert lake_app.catalog.get("t2") is None


def test_no_state_carries_from_one_query_to_the_next(lake_app: App) -> None:
    secret_frame = {"amount": [42]}  # noqa: F841 - a replacement scan would find this local
    with pytest.raises(QueryError):
        lake_app.sql("SELECT * FROM secret_frame")
    with pytest.raises(Refused):
        lake_app.sql("SET VARIABLE v = 1")
    assert lake_app.sql("SELECT getvariable('v')").rows() == [(None,)]


def test_create_table_as_runs_in_the_sandbox(lake_app: App, tmp_path: Path) -> None:
    root = lake_app.lake.store.root  # type: ignore[attr-defined]
    (tmp_path / "secret.txt").write_text("secret")
    with pytest.raises(QueryError):
        lake_app.create_table_as("leak", f"SELECT * FROM read_text('{tmp_path}/secret.txt')")
    with pytest.raises(Refused):
        lake_app.create_table_as(
            "leak", f"SELECT 1) TO '{root}/orders/customer=c0/part-0.parquet' (FORMAT csv); --"
        )
    with pytest.raises(Refused):
        lake_app.create_table_as("leak", "EXPLAIN ANALYZE CREATE MACRO sum(x) AS 42")
    assert lake_app.catalog.get("leak") is None
    assert lake_app.lake.keys() == ["orders/customer=c0/part-0.parquet"]
    t = lake_app.create_table_as("big", "SELECT amount * 10 AS amount FROM orders WHERE amount > 1")
    assert t.columns == [("amount", "BIGINT")]
    assert lake_app.sql("SELECT sum(amount) FROM big").rows() == [(50,)]


def test_the_warehouse_is_readable_not_writable(lake_app: App) -> None:
    lake_app.sql("CREATE TABLE daily (d VARCHAR, n BIGINT)", readonly=False)
    lake_app.sql("INSERT INTO daily VALUES ('2024-01-01', 3)", readonly=False)
    for query in (
        "INSERT INTO daily VALUES ('x', 1)",
        "EXPLAIN ANALYZE INSERT INTO daily VALUES ('x', 1)",
        "EXPLAIN ANALYZE DELETE FROM daily",
        "SELECT * FROM checkpoint()",
    ):
        with pytest.raises(Refused):
            lake_app.sql(query)
    assert lake_app.sql("SELECT * FROM daily").rows() == [("2024-01-01", 3)]
    assert lake_app.sql("SELECT sum(amount) FROM orders").rows() == [(6,)]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT count(*) FROM range(1000000000000)",
        "SELECT length(repeat('x', 2000000000))",
        " UNION ALL ".join(["SELECT 1"] * 20000),
    ],
    ids=["range-1e12", "repeat-2GB", "union-20k"],
)
def test_every_query_ends_within_its_limits(make: Callable[..., App], query: str) -> None:
    app = make(sql_timeout_s=3, sql_memory_limit_mb=256)
    with pytest.raises(QueryError, match=r"sql_timeout_s|sql_memory_limit_mb") as e:
        app.sql(query)
    assert "raise the setting" in str(e.value)
    assert app.sql("SELECT 1").rows() == [(1,)]  # the next query gets a fresh worker


def test_a_query_over_the_memory_cap_names_the_setting(make: Callable[..., App]) -> None:
    app = make(sql_timeout_s=120, sql_memory_limit_mb=64)
    with pytest.raises(QueryError, match="sql_memory_limit_mb=64"):
        app.sql("SELECT count(DISTINCT (i, i::VARCHAR)) FROM range(20000000) t(i)")


def test_trusted_queries_have_the_same_limits(make: Callable[..., App]) -> None:
    app = make(sql_timeout_s=1)
    with pytest.raises(QueryError, match="sql_timeout_s=1"):
        app.sql("SELECT count(*) FROM range(1000000000000)", readonly=False)


@pytest.mark.parametrize("setting", ["sql_timeout_s", "sql_memory_limit_mb"])
def test_limits_must_be_positive(make: Callable[..., App], setting: str) -> None:
    with pytest.raises(EventlakeError, match=setting):
        make(**{setting: 0})


# -- fuzzing: statements stitched from the pieces of the escapes above

_PREFIXES = ["", "EXPLAIN ", "EXPLAIN ANALYZE ", "EXPLAIN (FORMAT json) ", "WITH x AS (SELECT 1) ", "("]
_BODIES = [
    "SELECT sum(amount) FROM orders",
    "COPY (SELECT 999999 AS amount) TO '{lake}/orders/customer=c0/part-0.parquet'",
    "COPY orders TO '{lake}/orders/customer=c0/part-0.parquet' (FORMAT parquet)",
    "CREATE MACRO sum(x) AS 42",
    "CREATE OR REPLACE TEMP VIEW orders AS SELECT 42 AS amount",
    "INSERT INTO orders VALUES (42)",
    "SET VARIABLE v = 1",
    "ATTACH '{lake}/x.duckdb' AS x",
    "SELECT * FROM read_text('{lake}/../secret.txt')",
    "SELECT * FROM query('SELECT 1')",
    "SELECT * FROM enable_logging()",
    "PRAGMA enable_profiling",
    "CALL checkpoint()",
    "PREPARE p AS SELECT 1",
    "EXECUTE p",
    "DROP VIEW orders",
    "SELECT * FROM glob('{lake}/**')",
    "VALUES (1)",
]
_JOINS = ["; ", " ", ")", " UNION ALL ", ";\n-- ", " /* ", "' ", "; EXPLAIN ANALYZE "]


def test_fuzzed_statements_only_read(lake_app: App) -> None:
    """Only eventlake errors escape, and no statement changes the lake or a later query."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    root = lake_app.lake.store.root  # type: ignore[attr-defined]
    before = _object(lake_app)
    pieces = st.tuples(st.sampled_from(_PREFIXES), st.sampled_from(_BODIES))
    queries = st.lists(pieces, min_size=1, max_size=3).flatmap(
        lambda parts: st.lists(st.sampled_from(_JOINS), min_size=len(parts) - 1, max_size=len(parts) - 1).map(
            lambda joins: "".join(
                p + b + (joins[i] if i < len(joins) else "") for i, (p, b) in enumerate(parts)
            )
        )
    )

    @settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(queries)
    def run(query: str) -> None:
        try:
            lake_app.sql(query.format(lake=root))
        except (ValidationError, QueryError):
            pass
        assert lake_app.lake.keys() == ["orders/customer=c0/part-0.parquet"]
        assert _object(lake_app) == before
        assert lake_app.sql("SELECT sum(amount) FROM orders").rows() == [(6,)]

    run()
