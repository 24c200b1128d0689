"""``eventlake.local.remove_local_data``: an embedded run's files go, a server is never touched."""

from __future__ import annotations

from pathlib import Path

from eventlake import App
from eventlake.local import remove_local_data


def test_removes_the_state_with_its_log_the_lake_and_the_warehouse(tmp_path: Path) -> None:
    state = f"sqlite:///{tmp_path}/state.db"
    lake = f"file://{tmp_path}/lake"
    (tmp_path / "warehouse.duckdb").write_bytes(b"DUCK")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "run.log").write_text("a line\n")
    with App("old", state_url=state, lake_url=lake) as app:
        app.table("t", key="id").put({"id": "x"})
        app.lake.put("raw/a.json", b"{}")
    # Removed once the app is closed (a process still writing would recreate its file); a
    # killed process leaves its write-ahead log and shared-memory index beside the file.
    (tmp_path / "state.db-wal").write_bytes(b"")
    (tmp_path / "state.db-shm").write_bytes(b"")
    kept = remove_local_data(
        state, lake, str(tmp_path / "warehouse.duckdb"), str(tmp_path / "logs"), str(tmp_path / "never")
    )
    assert kept == []
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    with App("new", state_url=state, lake_url=lake) as app:
        assert list(app.table("t", key="id").items()) == []


def test_a_server_is_left_alone_and_returned(postgres_url: str, tmp_path: Path) -> None:
    with App("kept", state_url=postgres_url) as app:
        app.table("t", key="id").put({"id": "x"})
    assert remove_local_data(postgres_url, f"sqlite:///{tmp_path}/s.db") == [postgres_url]
    with App("kept", state_url=postgres_url) as app:
        assert [i["id"] for i in app.table("t", key="id").items()] == ["x"]
