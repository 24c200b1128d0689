"""The change-record codec: both writers (the commonest insert, and every other write) leave
records that its one reader decodes to the same shape."""

from __future__ import annotations

from typing import Any

from eventlake.resources import changes


def _records(app: Any, table: Any) -> list[dict[str, Any]]:
    rows = app.env.state.transaction(lambda t: t.log_read(table.log, 0, 0, 100), readonly=True)
    return [changes.decode(r.data) for r in rows]


def test_every_write_leaves_a_record_the_reader_decodes(app: Any) -> None:
    t = app.table("t", key="id", stream="new_and_old_images")
    t.put({"id": "a", "n": 1})  # the commonest insert: a string key, one shard
    t.put({"id": "a", "n": 2})
    t.delete({"id": "a"})
    recs = _records(app, t)
    assert [r["e"] for r in recs] == ["INSERT", "MODIFY", "REMOVE"]
    assert all(r["k"] == {"id": {"S": "a"}} for r in recs)
    assert recs[0]["n"] == {"id": {"S": "a"}, "n": {"N": "1"}} and "o" not in recs[0]
    assert recs[1]["o"] == {"id": {"S": "a"}, "n": {"N": "1"}}
    assert recs[1]["n"] == {"id": {"S": "a"}, "n": {"N": "2"}}
    assert recs[2]["o"] == {"id": {"S": "a"}, "n": {"N": "2"}} and "n" not in recs[2]
    assert all(isinstance(r["s"], int) and r["s"] > 0 for r in recs)


def test_the_general_writer_builds_the_same_insert_record_as_the_fast_one(app: Any) -> None:
    fast = app.table("fast", key="id", stream="new_image")
    general = app.table("general", key="id", stream="new_image", stream_shards=2)
    fast.put({"id": "k", "v": "x"})
    general.put({"id": "k", "v": "x"})
    shard = next(
        s for s in range(2) if app.env.state.transaction(lambda t, s=s: t.log_read(general.log, s, 0, 9))
    )
    raw = app.env.state.transaction(lambda t: t.log_read(general.log, shard, 0, 9))[0].data
    assert changes.decode(raw) == _records(app, fast)[0]
