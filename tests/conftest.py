"""Shared fixtures: every semantic test runs against SQLite, a real PostgreSQL and memory://.

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


def _state_url(kind: str, tmp_path: Any) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path}/state.db"
    elif kind == "postgres":
        yield from _pg_schema_url()
    else:
        from eventlake.backends.memory import drop

        # Named, so an App closed and opened again in the test finds its data.
        url = f"memory://test-{uuid.uuid4().hex[:12]}"
        try:
            yield url
        finally:
            drop(url)


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def state_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """Every state backend; the semantic tests run on each."""
    yield from _state_url(request.param, tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def shared_state_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """The state backends several processes can share, for tests that start workers."""
    yield from _state_url(request.param, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path}/state.db"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _pg_schema_url()


def _apps(state_url: str, tmp_path: Any) -> Iterator[Callable[..., App]]:
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
def app_factory(state_url: str, tmp_path: Any) -> Iterator[Callable[..., App]]:
    """Apps on the parametrised backend; retry backoff is short so failure tests run fast."""
    yield from _apps(state_url, tmp_path)


@pytest.fixture
def shared_app_factory(shared_state_url: str, tmp_path: Any) -> Iterator[Callable[..., App]]:
    """Apps on the backends several worker processes can share."""
    yield from _apps(shared_state_url, tmp_path)


@pytest.fixture
def app(app_factory: Callable[..., App]) -> App:
    return app_factory()


@pytest.fixture
def clock() -> ManualClock:
    from eventlake import ManualClock

    return ManualClock()
