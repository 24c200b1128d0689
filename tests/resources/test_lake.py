"""The lake: a folder with atomic writes, safe keys, and object events."""

from __future__ import annotations

import pytest

from eventlake import App, ValidationError
from eventlake.errors import ResourceNotFound


def test_put_get_list_delete(app: App) -> None:
    info = app.lake.put("raw/2024/a.json", {"a": 1})
    assert info.size == 7 and len(info.etag) == 32
    app.lake.put("raw/2024/b.json", b"{}")
    app.lake.put("other/c", "text")
    assert app.lake.keys("raw/") == ["raw/2024/a.json", "raw/2024/b.json"]
    assert app.lake.get("raw/2024/a.json") == b'{"a":1}'
    assert app.lake.delete("raw/2024/a.json")
    assert not app.lake.delete("raw/2024/a.json")
    with pytest.raises(ResourceNotFound):
        app.lake.get("raw/2024/a.json")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "dir/", "a/./b", "..", "x\x00y"])
def test_unsafe_keys_are_refused(app: App, key: str) -> None:
    with pytest.raises(ValidationError):
        app.lake.put(key, b"x")


def test_object_events_are_logged_for_created_and_removed(app: App) -> None:
    from eventlake.resources.lake import EVENTS_LOG

    app.lake.put("k", b"1")
    app.lake.delete("k")
    rows = app.env.state.transaction(lambda t: t.log_read(EVENTS_LOG, 0, 0, 10))
    assert [r.data.count(b"ObjectCreated") for r in rows] == [1, 0]
    assert b"ObjectRemoved:Delete" in rows[1].data


def test_unknown_lake_scheme(tmp_path) -> None:
    from eventlake.errors import ConfigError

    app = App("x", state_url=f"sqlite:///{tmp_path}/s.db", lake_url="ftp://nowhere")
    with pytest.raises(ConfigError, match="unknown scheme 'ftp'"):
        _ = app.lake
    app.close()
