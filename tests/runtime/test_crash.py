"""Crash test: kill -9 worker processes mid-batch, over and over.

Afterwards every record was processed at least once (plain handler) and exactly once
(``atomic=True``: effects and checkpoint in one commit). Workers run as real processes of
``eventlake run --workers 2``; the supervisor restarts the killed ones and leases move the
shards to survivors.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlake import App

APP = textwrap.dedent(
    """
    import base64, os, time
    from eventlake import App

    app = App("crash", lease_ttl_s=1.0, retry_backoff_s=0.01, poll_interval_s=0.01)
    stream = app.stream("in", shards=4)
    seen = app.table("seen", key="id")

    @app.on_stream(stream, batch_size=25, atomic=os.environ["CRASH_ATOMIC"] == "1")
    def handle(event, context):
        for r in event["Records"]:
            rid = base64.b64decode(r["kinesis"]["data"]).decode()
            seen.update({"id": rid}, "ADD n :one", values={":one": 1})
            time.sleep(0.0005)  # widen the window in which a kill lands mid-batch
    """
)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.extend(int(x) for x in text)
    return out


@contextlib.contextmanager
def supervisor(app_file: Path, env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``eventlake run APP --workers 2`` as a real process tree; stopped with SIGTERM after."""
    log = (tmp_path / "supervisor.log").open("w")
    sup = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eventlake.cli",
            "run",
            str(app_file),
            "--workers",
            "2",
            "--log-level",
            "WARNING",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        yield sup
    finally:
        sup.send_signal(signal.SIGTERM)
        try:
            sup.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sup.kill()
            sup.wait()
        log.close()


def kill_one(sup: subprocess.Popen[bytes], rng: random.Random) -> int:
    kids = _children(sup.pid)
    if kids:
        os.kill(rng.choice(kids), signal.SIGKILL)
        return 1
    return 0


@pytest.mark.parametrize("atomic", [False, True], ids=["at-least-once", "atomic"])
def test_kill_9_workers_mid_batch(shared_state_url: str, tmp_path: Path, atomic: bool) -> None:
    state_url = shared_state_url
    (tmp_path / "crashapp.py").write_text(APP)
    env = {
        **os.environ,
        "EVENTLAKE_STATE_URL": state_url,
        "CRASH_ATOMIC": "1" if atomic else "0",
        "EVENTLAKE_LAKE_URL": f"file://{tmp_path}/lake",
    }
    n = 3000
    producer = App("crash", state_url=state_url, lake_url=f"file://{tmp_path}/lake")
    stream = producer.stream("in", shards=4)
    seen = producer.table("seen", key="id")
    rng = random.Random(42)
    kills = 0
    with supervisor(tmp_path / "crashapp.py", env, tmp_path) as sup:
        for i in range(0, n, 100):
            stream.put_many([{"data": str(j), "partition_key": str(j)} for j in range(i, i + 100)])
            time.sleep(0.05)
            if i % 300 == 0:
                kills += kill_one(sup, rng)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and seen.count() < n:
            if rng.random() < 0.3 and kills < 25:
                kills += kill_one(sup, rng)
            time.sleep(0.3)
    assert kills >= 5
    counts = {item["id"]: int(item["n"]) for item in seen.items()}
    missing = [str(j) for j in range(n) if str(j) not in counts]
    assert not missing, f"{len(missing)} records never processed, e.g. {missing[:5]}"
    if atomic:
        dupes = {k: v for k, v in counts.items() if v != 1}
        assert not dupes, f"{len(dupes)} records applied more than once: {list(dupes.items())[:5]}"
    else:
        assert all(v >= 1 for v in counts.values())
    producer.close()


DELIVERY_APP = textwrap.dedent(
    """
    from eventlake import App

    app = App("crash", lease_ttl_s=1.0, retry_backoff_s=0.01, poll_interval_s=0.01)
    stream = app.stream("in", shards=2)
    app.delivery("raw", source=stream, prefix="out/", buffer_s=0.2)
    """
)


def _lake_records(lake: Path) -> list[int]:
    import gzip
    import json

    out = []
    for f in (lake / "out").rglob("*.jsonl.gz"):
        out += [json.loads(line)["i"] for line in gzip.decompress(f.read_bytes()).decode().splitlines()]
    return out


def test_kill_9_during_delivery_leaves_no_duplicate_in_the_lake(sqlite_url: str, tmp_path: Path) -> None:
    (tmp_path / "deliveryapp.py").write_text(DELIVERY_APP)
    lake = tmp_path / "lake"
    env = {**os.environ, "EVENTLAKE_STATE_URL": sqlite_url, "EVENTLAKE_LAKE_URL": f"file://{lake}"}
    producer = App("crash", state_url=sqlite_url, lake_url=f"file://{lake}")
    stream = producer.stream("in", shards=2)
    rng = random.Random(7)
    n, kills = 2000, 0
    with supervisor(tmp_path / "deliveryapp.py", env, tmp_path) as sup:
        deadline = time.monotonic() + 30
        while not _children(sup.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # wait for the workers before producing, so kills land mid-work
        for i in range(0, n, 50):
            stream.put_many([{"data": {"i": j}, "partition_key": str(j)} for j in range(i, i + 50)])
            time.sleep(0.03)
            if rng.random() < 0.3:
                kills += kill_one(sup, rng)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (len(set(_lake_records(lake))) < n or kills < 5):
            if kills < 5:
                kills += kill_one(sup, rng)
            time.sleep(0.3)
    assert kills >= 5
    got = _lake_records(lake)
    assert sorted(set(got)) == list(range(n)), "records missing from the lake"
    assert len(got) == n, f"{len(got) - n} duplicate records in the lake"
    producer.close()


def test_workers_exit_when_their_supervisor_is_killed(sqlite_url: str, tmp_path: Path) -> None:
    (tmp_path / "idle.py").write_text("from eventlake import App\napp = App('idle')\napp.stream('s')\n")
    env = {**os.environ, "EVENTLAKE_STATE_URL": sqlite_url, "EVENTLAKE_LAKE_URL": f"file://{tmp_path}/lake"}
    sup = subprocess.Popen(
        [sys.executable, "-m", "eventlake.cli", "run", str(tmp_path / "idle.py"), "--workers", "2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    kids: list[int] = []
    while len(kids) < 2 and time.monotonic() < deadline:
        kids = _children(sup.pid)
        time.sleep(0.05)
    assert len(kids) == 2
    sup.kill()
    sup.wait()
    deadline = time.monotonic() + 15
    while any(Path(f"/proc/{k}").exists() for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [
        k
        for k in kids
        if Path(f"/proc/{k}/status").exists() and "zombie" not in Path(f"/proc/{k}/status").read_text()
    ]
    assert not alive, f"orphaned workers still running: {alive}"


CONCURRENCY_APP = textwrap.dedent(
    """
    import base64, os, time
    from eventlake import App

    app = App("conc", lease_ttl_s=2.0, retry_backoff_s=0.01, poll_interval_s=0.01)
    stream = app.stream("in", shards=4)
    spans = app.table("spans", key="id")

    @app.on_stream(stream, batch_size=5, reserved_concurrency=1)
    def single(event, context):
        start = time.time()
        time.sleep(0.03)
        rid = base64.b64decode(event["Records"][0]["kinesis"]["data"]).decode()
        spans.put({"id": rid, "start": str(start), "end": str(time.time()), "pid": os.getpid()})
    """
)


def test_reserved_concurrency_holds_across_worker_processes(shared_state_url: str, tmp_path: Path) -> None:
    state_url = shared_state_url
    (tmp_path / "concapp.py").write_text(CONCURRENCY_APP)
    env = {**os.environ, "EVENTLAKE_STATE_URL": state_url, "EVENTLAKE_LAKE_URL": f"file://{tmp_path}/lake"}
    producer = App("conc", state_url=state_url, lake_url=f"file://{tmp_path}/lake")
    stream = producer.stream("in", shards=4)
    spans = producer.table("spans", key="id")
    n = 200
    stream.put_many([{"data": str(j), "partition_key": str(j)} for j in range(n)])
    with supervisor(tmp_path / "concapp.py", env, tmp_path):
        deadline = time.monotonic() + 90
        batches = 0
        while time.monotonic() < deadline:
            items = list(spans.items())
            if items and sum(1 for _ in items) == batches:
                break  # no new batch since the last look: done
            batches = len(items)
            time.sleep(1.5)
    items = sorted(spans.items(), key=lambda i: float(i["start"]))
    assert len({i["pid"] for i in items}) == 2, "both workers should have run the function"
    for a, b in itertools.pairwise(items):
        assert float(b["start"]) >= float(a["end"]) - 0.001, f"overlap: {a} and {b}"
    producer.close()
