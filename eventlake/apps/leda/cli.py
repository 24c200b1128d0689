"""``eventlake leda run`` and ``eventlake leda verify``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table as RichTable

from eventlake.local import remove_local_data
from eventlake.workers import log_to_file

from .app import MODES, aggregates, build_app, rejected
from .generator import COUNT_KEY, Generator
from .runner import LedaRun
from .verify import score_round

cli = typer.Typer(help="The leda exactly-once aggregation lab.", no_args_is_help=True)
console = Console()
LAST_RUN = Path(".eventlake/leda-last.json")


def _view(app: Any, gen: Generator, run: LedaRun, started: float) -> Group:
    agg = aggregates(app)
    m = app.worker_metrics()["functions"]
    lag = app.lag()
    elapsed = max(time.monotonic() - started, 1e-6)
    produced = gen.rounds * gen.records_per_round()
    head = (
        f"mode [bold]{run.mode}[/]  round {len(run.results) + (0 if len(run.results) == run.rounds else 1)}"
        f"/{run.rounds}  produced {produced:,}  message_count {int(agg.get(COUNT_KEY, 0)):,}"
        f" / expected {gen.effects:,}  {produced / elapsed:,.0f} records/s  kills {run.kills}"
    )
    bad = len(rejected(app))
    if bad:
        head += f"  [yellow]rejected {bad:,}[/] (see RejectedRecords)"
    t = RichTable(expand=True)
    for col in ("function", "invocations", "errors (retries)", "lag"):
        t.add_column(col, justify="right" if col != "function" else "left")
    for fn in ("state", "map", "reduce"):
        f = m.get(fn, {})
        t.add_row(fn, f"{f.get('invocations', 0):,}", f"{f.get('errors', 0):,}", f"{lag.get(fn, 0):,}")
    totals = RichTable(title="aggregates", expand=True)
    totals.add_column("key")
    totals.add_column("value", justify="right")
    for k in sorted(k for k in agg if k != COUNT_KEY and k.count(":") < 2):
        totals.add_row(k, f"{agg[k]:,.2f}")
    scores = " ".join(f"[{'green' if r.score.ok else 'red'}]{r.score.score}[/]" for r in run.results)
    return Group(Panel(head + (f"\nscores: {scores}" if scores else ""), title="leda"), t, totals)


@cli.command()
def run(
    rounds: Annotated[int, typer.Option(help="rounds to generate and score")] = 1,
    hard: Annotated[bool, typer.Option(help="duplicates and stale/newer versions")] = False,
    failures: Annotated[bool, typer.Option(help="inject the workshop's failures")] = False,
    chaos: Annotated[bool, typer.Option(help="kill -9 worker processes at random moments")] = False,
    mode: Annotated[str, typer.Option(help="lab1 | lab2 | atomic")] = "lab2",
    workers: Annotated[int, typer.Option(help="worker processes")] = 1,
    batches: Annotated[int, typer.Option(help="batches per round (workshop: 250)")] = 250,
    per_batch: Annotated[int, typer.Option(help="records per batch (workshop: 40)")] = 40,
    seed: Annotated[int, typer.Option(help="generator seed")] = 1,
    state_url: Annotated[str | None, typer.Option(help="state backend URL")] = None,
    stream_url: Annotated[
        str | None,
        typer.Option(help="backend for the stream's records (default: a second SQLite file)"),
    ] = None,
    map_window: Annotated[float, typer.Option(help="map batching window, seconds")] = 3.0,
    live: Annotated[bool, typer.Option(help="live view")] = True,
) -> None:
    """Run rounds of the lab and score each one; exit 1 if any round scores 0."""
    if mode not in MODES:
        console.print(f"[red]error:[/] --mode must be one of {', '.join(MODES)}")
        raise typer.Exit(2)
    log_to_file(".eventlake/logs/leda.log")
    if state_url is None:
        # The embedded default: tables and checkpoints in one SQLite file, the stream's records
        # in a second, so the generator's puts never wait for the pipeline's write lock.
        state_url = "sqlite:///.eventlake/leda.db"
        stream_url = stream_url or "sqlite:///.eventlake/leda-streams.db"
    # A run is scored from empty tables. A SQLite file under a relative path is the lab's own
    # working file and starts afresh; one given by absolute path, or a server, is the user's.
    own = [u for u in (state_url, stream_url) if u and u.startswith("sqlite:///")]
    remove_local_data(*(u for u in own if not u.startswith("sqlite:////")))
    r = LedaRun(
        mode=mode,
        rounds=rounds,
        hard=hard,
        failures=failures,
        chaos=chaos,
        workers=workers,
        batches=batches,
        per_batch=per_batch,
        seed=seed,
        state_url=state_url,
        map_window_s=map_window,
        settings={"poll_interval_s": 0.01, "stream_url": stream_url},
    )
    started = time.monotonic()
    use_live = live and console.is_terminal
    holder: dict[str, Any] = {"last": 0.0}
    live_ctx = Live(console=console, refresh_per_second=4) if use_live else None

    def progress(app: Any, gen: Generator, run: LedaRun) -> None:
        now = time.monotonic()
        # A finished round is always shown: the live view's last frame must not be older
        # than the score printed under it.
        if now - holder["last"] < 0.25 and len(run.results) == holder.get("rounds", 0):
            return
        holder["last"] = now
        holder["rounds"] = len(run.results)
        if live_ctx is not None:
            live_ctx.update(_view(app, gen, run, started))

    if live_ctx:
        live_ctx.__enter__()
    try:
        results = r.run(progress)
    finally:
        if live_ctx:
            live_ctx.__exit__(None, None, None)
    for res in results:
        rate = res.records / res.seconds if res.seconds else 0
        colour = "green" if res.score.ok else "red"
        console.print(
            f"round {res.round}: [{colour}]score {res.score.score}[/] — {res.records:,} records "
            f"in {res.seconds:.1f}s ({rate:,.0f}/s); message_count "
            f"{res.score.actual_count:,} / expected {res.score.expected_count:,}"
        )
    last = results[-1].score
    console.print(last.table())
    if chaos:
        console.print(f"worker processes killed: {r.kills}")
    LAST_RUN.parent.mkdir(parents=True, exist_ok=True)
    LAST_RUN.write_text(
        json.dumps(
            {
                "state_url": state_url,
                "stream_url": stream_url,
                "mode": mode,
                "seed": seed,
                "hard": hard,
                "rounds": rounds,
                "batches": batches,
                "per_batch": per_batch,
            }
        )
    )
    raise typer.Exit(0 if all(x.score.ok for x in results) else 1)


@cli.command()
def verify(
    state_url: Annotated[str | None, typer.Option(help="state backend URL (default: the last run's)")] = None,
    stream_url: Annotated[
        str | None,
        typer.Option(help="the stream backend that state was run with (default: the last run's)"),
    ] = None,
) -> None:
    """Re-score the last run's AggregateTable against the generator's expected totals."""
    if not LAST_RUN.exists():
        console.print("[red]error:[/] no leda run found; run `eventlake leda run` first")
        raise typer.Exit(2)
    last = json.loads(LAST_RUN.read_text())
    gen = Generator(
        seed=last["seed"], hard=last["hard"], batches=last["batches"], per_batch=last["per_batch"]
    )
    for _ in range(last["rounds"]):
        for _batch in gen.round():
            pass
    if stream_url is None and (state_url is None or state_url == last["state_url"]):
        stream_url = last.get("stream_url")
    app = build_app(last["mode"], state_url=state_url or last["state_url"], stream_url=stream_url)
    score = score_round(gen.expected(), aggregates(app), gen.effects)
    console.print(score.table())
    app.close()
    raise typer.Exit(0 if score.ok else 1)
