"""App commands plug into the ``eventlake`` command through the ``eventlake.apps`` entry-point
group; the core command names no app, so a third-party app's commands appear the same way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ACME = '''
import typer

cli = typer.Typer(help="The acme pipeline.", no_args_is_help=True)


@cli.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    typer.echo(f"acme says hello to {name}")


@cli.command()
def other() -> None:
    """A second command, so hello stays a subcommand."""


not_commands = 42
'''


def _install(site: Path, entry_points: str) -> None:
    """A distribution as pip leaves it: a module and a ``*.dist-info`` naming its entry points."""
    (site / "acme_pipeline.py").write_text(ACME)
    info = site / "acme_pipeline-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-pipeline\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)


def _eventlake(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "eventlake", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_a_third_party_app_registered_by_entry_point_gets_its_commands(tmp_path: Path) -> None:
    _install(tmp_path, "[eventlake.apps]\nacme = acme_pipeline:cli\n")
    out = _eventlake(tmp_path, "acme", "hello", "--name", "Ada")
    assert (out.returncode, out.stdout, out.stderr) == (0, "acme says hello to Ada\n", "")
    listing = _eventlake(tmp_path, "--help")
    commands = [line.split()[1] for line in listing.stdout.splitlines() if line.startswith("│ ")]
    assert {"acme", "leda", "inventory", "run", "sql", "demo", "version"} <= set(commands)
    assert "The acme pipeline." in listing.stdout


def test_an_app_whose_commands_cannot_load_is_reported_and_the_rest_work(tmp_path: Path) -> None:
    _install(
        tmp_path,
        "[eventlake.apps]\nbroken = acme_missing:cli\nnumber = acme_pipeline:not_commands\n"
        "run = acme_pipeline:cli\n",
    )
    out = _eventlake(tmp_path, "version")
    assert out.returncode == 0 and out.stdout == "0.1.0\n"
    warnings = out.stderr.replace("\n", " ")
    group = "entry point group eventlake.apps"
    assert f"warning: app 'broken' (acme_missing:cli, {group}) failed to load:" in warnings
    assert "No module named 'acme_missing'" in warnings
    assert f"app 'number' (acme_pipeline:not_commands, {group}) is not a typer.Typer but a int" in warnings
    assert f"app 'run' (acme_pipeline:cli, {group}): the name is taken" in warnings
    assert _eventlake(tmp_path, "leda", "--help").returncode == 0


def test_the_reference_apps_are_found_through_their_entry_points() -> None:
    from importlib.metadata import entry_points

    found = {ep.name: ep.value for ep in entry_points(group="eventlake.apps")}
    assert found == {"leda": "eventlake.apps.leda.cli:cli", "inventory": "eventlake.apps.inventory.cli:cli"}
