"""Settings: ``eventlake.toml``, then ``EVENTLAKE_*`` environment variables, then keyword arguments.

Backends are named by URL so that application code never changes between the embedded
default and real engines. Unknown keys are errors, not silently ignored, because a typo in
a production setting (``stat_url``) would otherwise run the app on the wrong backend.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError


@dataclass
class Settings:
    state_url: str = "sqlite:///.eventlake/state.db"
    # Where streams keep their records; unset, in the state backend. Any state backend URL
    # works (a second SQLite file spares the streams' writers the state database's write lock).
    stream_url: str | None = None
    lake_url: str = "file://./lake"
    warehouse_path: str = ".eventlake/warehouse.duckdb"
    region: str = "us-east-1"
    account: str = "123456789012"
    # Retry backoff for failed stream batches and async invocations, in seconds: base and cap.
    retry_backoff_s: float = 0.2
    retry_backoff_max_s: float = 10.0
    # Leases that let several worker processes share shards and schedules.
    lease_ttl_s: float = 10.0
    # How often an idle poller looks for new work when no in-process signal wakes it.
    poll_interval_s: float = 0.02
    # Invocations one worker process runs at a time. Python handlers share one interpreter
    # lock, so running several at once only slows each; and an atomic handler holds the
    # database's write lock while it runs, which a competing thread stretches for everyone.
    # Raise it for handlers that spend their time waiting on the network.
    worker_concurrency: int = 1
    # Limits of every SQL query (app.sql, create_table_as, the CLI): a query that runs longer,
    # or needs more memory, is stopped with an error that names the setting to raise.
    sql_timeout_s: float = 60.0
    sql_memory_limit_mb: int = 2048
    log_format: str = "text"  # "text" (Lambda's classic lines) or "json" (Lambda's JSON format)
    log_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
        values: dict[str, Any] = {}
        toml_path = Path(path) if path else Path("eventlake.toml")
        if toml_path.exists():
            try:
                doc = tomllib.loads(toml_path.read_text())
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(f"{toml_path}: invalid TOML: {e}") from e
            values.update(doc.get("eventlake", doc))
        elif path:
            raise ConfigError(f"configuration file {toml_path} does not exist")
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        for name in known:
            env = os.environ.get(f"EVENTLAKE_{name.upper()}")
            if env is not None:
                values[name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; known settings: {', '.join(known)}")
        out: dict[str, Any] = {}
        for name, value in values.items():
            default = getattr(cls, name, None)
            if isinstance(default, int) and not isinstance(default, bool) and not isinstance(value, int):
                try:
                    value = int(value)
                except (TypeError, ValueError):
                    raise ConfigError(f"setting {name} must be a whole number, got {value!r}") from None
            if isinstance(default, float) and not isinstance(value, float):
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise ConfigError(f"setting {name} must be a number, got {value!r}") from None
            out[name] = value
        concurrency = out.get("worker_concurrency", 1)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 1024:
            raise ConfigError(
                f"setting worker_concurrency must be a whole number 1-1024, got {concurrency!r}"
            )
        for name in ("sql_timeout_s", "sql_memory_limit_mb"):
            if name in out and (isinstance(out[name], bool) or not out[name] > 0):
                raise ConfigError(f"setting {name} must be a positive number, got {out[name]!r}")
        if out.get("log_format", "text") not in ("text", "json"):
            raise ConfigError(f"setting log_format must be 'text' or 'json', got {out['log_format']!r}")
        return cls(**out)
