"""The URL registry: built-in schemes, schemes added in code, and schemes other packages
declare through the ``eventlake.backends`` entry-point group (a real installed distribution's
metadata, written to a folder on ``sys.path``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlake import App
from eventlake.backends import registry
from eventlake.backends.objects import FileStore, open_object_store
from eventlake.backends.sqlite import SqliteBackend
from eventlake.errors import ConfigError

PLUGIN = '''
"""A third-party engine package: eventlake is not edited to use it."""
from eventlake.backends.objects import FileStore
from eventlake.backends.sqlite import SqliteBackend


def open_state(url):
    return SqliteBackend("sqlite://" + url.split("://", 1)[1])


class Folder(FileStore):
    def __init__(self, url):
        super().__init__("file://" + url.split("://", 1)[1])
'''


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Schemes found or registered by a test stay in that test."""
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    monkeypatch.setattr(registry, "_STORE_KEYS", dict(registry._STORE_KEYS))
    yield


def _install(site: Path, name: str, entry_points: str, module: str | None = None) -> None:
    """What pip leaves behind for a distribution: its module and its ``.dist-info``."""
    dist = site / f"{name}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(entry_points)
    if module is not None:
        (site / f"{name}.py").write_text(module)


def test_a_package_adds_schemes_through_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_registry: None
) -> None:
    site = tmp_path / "site"
    _install(
        site,
        "el_plugin",
        "[eventlake.backends]\nstate.plugdb = el_plugin:open_state\nobjects.plugdir = el_plugin:Folder\n",
        PLUGIN,
    )
    with pytest.raises(ConfigError, match="unknown scheme 'plugdb'"):
        App("p", state_url=f"plugdb:///{tmp_path}/state.db")
    monkeypatch.syspath_prepend(str(site))
    assert "plugdb" in registry.schemes("state")
    assert "plugdir" in registry.schemes("objects")
    with App("p", state_url=f"plugdb:///{tmp_path}/state.db", lake_url=f"plugdir://{tmp_path}/lake") as app:
        assert isinstance(app.env.state, SqliteBackend)
        table = app.table("t", key="id")
        table.put({"id": "a"})
        assert table.get({"id": "a"}) == {"id": "a"}
        app.lake.put("k", b"v")
        assert (tmp_path / "lake" / "k").read_bytes() == b"v"


def test_a_scheme_registered_in_code_wins_over_an_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_registry: None
) -> None:
    _install(tmp_path / "site", "el_plugin2", "[eventlake.backends]\nobjects.file = el_nowhere:Store\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert isinstance(open_object_store(f"file://{tmp_path}/lake"), FileStore)
    registry.register("objects", "mine", lambda url: FileStore(f"file://{tmp_path}/mine"))
    assert open_object_store("mine://anything").root == (tmp_path / "mine").resolve()  # type: ignore[attr-defined]


def test_a_misnamed_entry_point_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_registry: None
) -> None:
    _install(tmp_path / "site", "el_bad", "[eventlake.backends]\nkafka = el_bad:Kafka\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ConfigError, match=r"entry point 'kafka' = 'el_bad:Kafka'.*'<kind>\.<scheme>'"):
        registry.open_url("log", "kafka://broker", setting="stream_url")


def test_an_entry_point_that_does_not_load_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_registry: None
) -> None:
    _install(tmp_path / "site", "el_gone", "[eventlake.backends]\nlog.gone = el_gone_missing:Log\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ConfigError, match="backend 'el_gone_missing:Log' cannot be loaded"):
        registry.open_url("log", "gone://x", setting="stream_url")


def test_a_scheme_of_another_kind_says_what_it_provides(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^lake_url 'sqlite:///x.db': unknown scheme 'sqlite' "
        r"\(sqlite:// provides only log, state\); use one of file://",
    ):
        open_object_store("sqlite:///x.db")
    with pytest.raises(
        ConfigError,
        match=r"^state_url 'file://lake': unknown scheme 'file' \(file:// provides only objects\)",
    ):
        App("x", state_url="file://lake")


def test_same_store_knows_two_spellings_of_one_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert registry.same_store(f"sqlite:///{tmp_path}/a.db", "sqlite:///a.db")
    assert not registry.same_store(f"sqlite:///{tmp_path}/a.db", "sqlite:///b.db")
