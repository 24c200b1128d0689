"""memory://: what differs from the engines on disk (the shared semantics are the contract
suites, which run on it through the ``state_url`` fixture)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from eventlake import App
from eventlake.backends import open_state_backend
from eventlake.backends.memory import drop
from eventlake.errors import ConfigError
from eventlake.runtime.runner import Supervisor


def test_an_unnamed_store_is_new_each_time_and_a_named_one_is_kept_until_dropped() -> None:
    a = open_state_backend("memory://")
    a.transaction(lambda t: t.kv_put("ns", "k", "v"))
    assert open_state_backend("memory://").transaction(lambda t: t.kv_get("ns", "k")) is None

    with App("shop", state_url="memory://shop-test") as app:
        app.table("t", key="id").put({"id": "1"})
    try:
        with App("shop", state_url="memory://shop-test") as again:
            assert again.table("t", key="id").get({"id": "1"}) == {"id": "1"}
    finally:
        drop("memory://shop-test")
    with App("shop", state_url="memory://shop-test") as fresh:
        assert fresh.table("t", key="id").get({"id": "1"}) is None
    drop("memory://shop-test")


def test_worker_processes_refuse_a_state_store_in_this_process(tmp_path: Path) -> None:
    app = App("w", state_url="memory://", lake_url=f"file://{tmp_path}/lake")
    try:
        with pytest.raises(ConfigError, match=r"^2 worker processes: state_url 'memory://' keeps its data"):
            app.run(workers=2, stop=threading.Event())
        with pytest.raises(ConfigError, match="run one worker"):
            Supervisor(app, 3)
    finally:
        app.close()


def test_worker_processes_refuse_a_stream_store_in_this_process(tmp_path: Path) -> None:
    app = App(
        "w",
        state_url=f"sqlite:///{tmp_path}/state.db",
        stream_url="memory://",
        lake_url=f"file://{tmp_path}/l",
    )
    try:
        with pytest.raises(ConfigError, match=r"^2 worker processes: stream_url 'memory://' keeps its data"):
            app.run(workers=2, stop=threading.Event())
    finally:
        app.close()
