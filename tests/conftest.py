"""Shared fixtures: every semantic test runs against SQLite and a real PostgreSQL.

PostgreSQL tests get a schema of their own (``search_path`` in the URL), so they are
isolated from each other without creating databases. A missing server is a failure, never
a skip: ``scripts/test`` starts it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from eventlake import App, ManualClock


PG_URL = os.environ.get("EVENTLAKE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_schema_url() -> Iterator[str]:
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/state.db"
    else:
        yield from _pg_schema_url()


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path}/state.db"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _pg_schema_url()


@pytest.fixture
def app_factory(state_url: str, tmp_path: Any) -> Iterator[Callable[..., App]]:
    """Apps on the parametrised backend; retry backoff is short so failure tests run fast."""
    from eventlake import App

    apps: list[App] = []

    def make(name: str = "test", **kwargs: Any) -> App:
        kwargs.setdefault("state_url", state_url)
        kwargs.setdefault("lake_url", f"file://{tmp_path}/lake")
        kwargs.setdefault("warehouse_path", f"{tmp_path}/warehouse-{name}.duckdb")
        kwargs.setdefault("retry_backoff_s", 0.001)
        kwargs.setdefault("retry_backoff_max_s", 0.01)
        kwargs.setdefault("lease_ttl_s", 5.0)
        a = App(name, **kwargs)
        apps.append(a)
        return a

    yield make
    for a in apps:
        a.close()


@pytest.fixture
def app(app_factory: Callable[..., App]) -> App:
    return app_factory()


@pytest.fixture
def clock() -> ManualClock:
    from eventlake import ManualClock

    return ManualClock()
