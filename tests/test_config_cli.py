"""Settings and the command line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from eventlake import App
from eventlake.cli import cli, load_app
from eventlake.config import Settings
from eventlake.errors import ConfigError, EventlakeError


def test_settings_layers(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "eventlake.toml"
    cfg.write_text('[eventlake]\nstate_url = "sqlite:///from-file.db"\nlease_ttl_s = 3\n')
    monkeypatch.setenv("EVENTLAKE_LEASE_TTL_S", "4")
    s = Settings.load(cfg, region="eu-west-1")
    assert s.state_url == "sqlite:///from-file.db"
    assert s.lease_ttl_s == 4.0 and s.region == "eu-west-1"


def test_unknown_and_bad_settings_are_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.load(stat_url="x")
    with pytest.raises(ConfigError, match="must be a number"):
        Settings.load(lease_ttl_s="soon")
    bad = tmp_path / "bad.toml"
    bad.write_text("state_url = [")
    with pytest.raises(ConfigError, match="invalid TOML"):
        Settings.load(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="worker_concurrency must be a whole number 1-1024, got 0"):
        Settings.load(worker_concurrency=0)
    with pytest.raises(ConfigError, match="worker_concurrency must be a whole number, got 'many'"):
        Settings.load(worker_concurrency="many")


def test_worker_concurrency_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("EVENTLAKE_WORKER_CONCURRENCY", "4")
    assert Settings.load().worker_concurrency == 4


def test_load_app_from_file_and_errors(tmp_path) -> None:
    f = tmp_path / "myapp.py"
    f.write_text(f"from eventlake import App\napp = App('x', state_url='sqlite:///{tmp_path}/s.db')\n")
    a = load_app(str(f))
    assert isinstance(a, App)
    a.close()
    with pytest.raises(EventlakeError, match="no such file"):
        load_app(str(tmp_path / "nope.py"))
    with pytest.raises(EventlakeError, match="not an eventlake App"):
        load_app(f"{f}:App")


def test_cli_run_for_a_duration(tmp_path) -> None:
    f = tmp_path / "runme.py"
    f.write_text(
        "from eventlake import App\n"
        f"app = App('x', state_url='sqlite:///{tmp_path}/s.db', lake_url='file://{tmp_path}/lake')\n"
        "s = app.stream('in')\n"
        "@app.on_stream(s)\n"
        "def h(event, context):\n"
        "    app.lake.put('out/done', b'1')\n"
        "s.put('x', 'k')\n"
    )
    result = CliRunner().invoke(cli, ["run", str(f), "--duration", "1.5"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "lake" / "out" / "done").read_bytes() == b"1"


def test_cli_errors_are_one_clean_line(tmp_path) -> None:
    missing = tmp_path / ("deep-" * 30) / "missing.py"  # longer than any terminal line
    result = CliRunner().invoke(cli, ["run", str(missing)])
    assert result.exit_code == 1
    assert result.output == f"error: {missing}: no such file\n"


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for args in (
        ["--help"],
        ["run", "--help"],
        ["demo", "--help"],
        ["leda", "--help"],
        ["sql", "--help"],
        ["leda", "run", "--help"],
        ["leda", "verify", "--help"],
    ):
        r = runner.invoke(cli, args)
        assert r.exit_code == 0 and "Usage" in r.output, args


def test_cli_sql_formats_and_read_only(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "eventlake.toml").write_text(
        f'[eventlake]\nstate_url = "sqlite:///{tmp_path}/s.db"\nlake_url = "file://{tmp_path}/lake"\n'
        f'warehouse_path = "{tmp_path}/w.duckdb"\n'
    )
    app = App("writer")
    s = app.stream("in")
    app.delivery("events", source=s, format="parquet", prefix="events/")
    s.put_many([{"data": {"n": i, "name": f"x{i}"}, "partition_key": str(i)} for i in range(3)])
    app.drain()
    app.close()
    runner = CliRunner()
    r = runner.invoke(cli, ["sql", "SELECT n, name FROM events ORDER BY n", "--format", "csv"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == ['"n","name"', '0,"x0"', '1,"x1"', '2,"x2"']
    r = runner.invoke(cli, ["sql", "SELECT count(*) AS c FROM events", "--format", "json"])
    assert r.output.strip() == '{"c": 3}'
    r = runner.invoke(cli, ["sql", "DROP TABLE events"])
    assert r.exit_code == 1 and "only SELECT" in r.output
    r = runner.invoke(cli, ["sql", "SELECT * FROM nowhere"])
    assert r.exit_code == 1 and "nowhere" in r.output and "Traceback" not in r.output
    out = tmp_path / "out.parquet"
    r = runner.invoke(cli, ["sql", "SELECT * FROM events", "--format", "parquet", "--output", str(out)])
    assert r.exit_code == 0 and out.stat().st_size > 0
