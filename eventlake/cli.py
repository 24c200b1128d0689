"""The command line: a thin layer that loads an app and calls the library.

Library errors become one clean line on stderr and exit code 2 (usage) or 1 (runtime);
nothing here holds logic a Python user could not reach.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from . import __version__
from .errors import EventlakeError
from .workers import log_to_file

cli = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="eventlake: event-driven pipelines with AWS semantics, embedded or at scale.",
)
err = Console(stderr=True, soft_wrap=True)  # an error names paths whole: never wrapped mid-path


def load_app(target: str) -> Any:
    """``path/to/file.py[:attr]`` or ``package.module[:attr]``; ``attr`` defaults to the App."""
    from .app import App

    ref, _, attr = target.partition(":")
    if ref.endswith(".py") or Path(ref).is_file():
        path = Path(ref)
        if not path.is_file():
            raise EventlakeError(f"{ref}: no such file")
        sys.path.insert(0, str(path.parent.resolve()))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(ref)
        except ModuleNotFoundError as e:
            raise EventlakeError(f"cannot import {ref!r}: {e}") from None
    if attr:
        obj = getattr(module, attr, None)
        if not isinstance(obj, App):
            raise EventlakeError(f"{target}: {attr!r} is not an eventlake App")
        return obj
    apps = [v for v in vars(module).values() if isinstance(v, App)]
    if len(apps) != 1:
        raise EventlakeError(f"{ref}: found {len(apps)} App objects; name one with {ref}:NAME")
    return apps[0]


def _fail(e: Exception) -> None:
    err.print(f"[bold red]error:[/] {e}", highlight=False)
    raise typer.Exit(1)


@cli.command()
def run(
    target: Annotated[str, typer.Argument(help="file.py[:app] or package.module[:app]")],
    workers: Annotated[int, typer.Option(help="worker processes sharing the work via leases")] = 1,
    duration: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO",
) -> None:
    """Run an app until Ctrl-C (or for --duration seconds)."""
    logging.basicConfig(level=log_level.upper(), format="%(message)s")
    try:
        app = load_app(target)
        app.run(workers=workers, duration_s=duration)
    except EventlakeError as e:
        _fail(e)
    except KeyboardInterrupt:
        pass


@cli.command()
def demo(
    records: Annotated[int, typer.Option(help="click events to generate")] = 20_000,
    rate: Annotated[float, typer.Option(help="events per second to produce")] = 4_000.0,
    live: Annotated[bool, typer.Option(help="show the live view (off: plain progress lines)")] = True,
    state_url: Annotated[str | None, typer.Option(help="state backend URL")] = None,
) -> None:
    """Run the demo pipeline end to end and check that every count is exact."""
    from .demo import run_demo

    log_to_file(".eventlake/logs/demo.log")
    try:
        ok = run_demo(records=records, rate=rate, live=live and sys.stdout.isatty(), state_url=state_url)
    except EventlakeError as e:
        _fail(e)
    raise typer.Exit(0 if ok else 1)


@cli.command()
def sql(
    query: Annotated[str, typer.Argument(help="a SELECT over catalog tables and the warehouse")],
    format: Annotated[str, typer.Option(help="table, csv, json or parquet")] = "table",
    output: Annotated[str | None, typer.Option(help="write here instead of standard output")] = None,
    state_url: Annotated[str | None, typer.Option(help="state backend (holds the catalog)")] = None,
    lake_url: Annotated[str | None, typer.Option(help="the lake")] = None,
    warehouse: Annotated[str | None, typer.Option(help="the DuckDB warehouse file")] = None,
) -> None:
    """Query the lake and the warehouse with SQL (read-only; the backends come from eventlake.toml,
    EVENTLAKE_* variables or these options)."""
    from .app import App

    if format not in ("table", "csv", "json", "parquet"):
        err.print(f"[bold red]error:[/] --format must be table, csv, json or parquet, not {format!r}")
        raise typer.Exit(2)
    if format == "parquet" and not output:
        err.print("[bold red]error:[/] --format parquet needs --output FILE")
        raise typer.Exit(2)
    try:
        overrides: dict[str, Any] = {"warehouse_path": warehouse} if warehouse else {}
        app = App("sql", state_url=state_url, lake_url=lake_url, **overrides)
        result = app.sql(query)
    except EventlakeError as e:
        _fail(e)
    table = result.arrow()
    if format == "table":
        from rich.table import Table as RichTable

        t = RichTable(show_header=True)
        for c in result.columns:
            t.add_column(c)
        for row in result.rows():
            t.add_row(*("NULL" if v is None else str(v) for v in row))
        Console(file=open(output, "w") if output else None).print(t)  # noqa: SIM115
        return
    if format == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, output)
        return
    import io

    buf = io.BytesIO()
    if format == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, buf)
        text = buf.getvalue().decode()
    else:
        import json

        text = "\n".join(
            json.dumps(dict(zip(result.columns, row, strict=True)), default=str) for row in result.rows()
        ) + ("\n" if len(result) else "")
    if output:
        Path(output).write_text(text)
    else:
        sys.stdout.write(text)


APPS_GROUP = "eventlake.apps"


def _register_apps() -> None:
    """Add the commands of every installed app (entry points in the ``eventlake.apps`` group,
    each a ``typer.Typer``), so ``eventlake NAME ...`` runs them; this module names no app.

    An app whose commands cannot be loaded is reported in one line and left out: the core
    commands and the other apps keep working."""
    taken = {c.name or c.callback.__name__.replace("_", "-") for c in cli.registered_commands if c.callback}
    for ep in sorted(entry_points(group=APPS_GROUP), key=lambda e: e.name):
        where = escape(f"app {ep.name!r} ({ep.value}, entry point group {APPS_GROUP})")
        if ep.name in taken:
            err.print(f"[yellow]warning:[/] {where}: the name is taken; its commands are left out")
            continue
        try:
            commands = ep.load()
        except Exception as e:
            err.print(f"[yellow]warning:[/] {where} failed to load: {escape(str(e))}", highlight=False)
            continue
        if not isinstance(commands, typer.Typer):
            err.print(f"[yellow]warning:[/] {where} is not a typer.Typer but a {type(commands).__name__}")
            continue
        taken.add(ep.name)
        cli.add_typer(commands, name=ep.name)


@cli.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


_register_apps()


def main() -> None:
    # The commands of apps report bad settings the same way as the core commands: the
    # message and exit status 1, not a traceback.
    try:
        cli()
    except EventlakeError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
