"""The App: declares resources, wires handlers to triggers, and runs them.

The App only assembles: resources get an :class:`Env` (backends, settings, clock), the
runtime gets the registrations. Nothing here knows which engine is underneath.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from .backends import StateBackend, open_state_backend, same_store
from .backends.objects import ObjectStore, open_object_store
from .backends.registry import open_url
from .config import Settings
from .errors import ValidationError
from .ports.log import LogStore
from .resources.env import Clock, Env
from .resources.lake import Lake
from .resources.queue import Queue
from .resources.stream import Stream
from .runtime.functions import Function
from .runtime.mappings import QueueMapping, StreamMapping
from .runtime.processes import run_workers
from .runtime.trigger import RuntimeHost, TriggerSpec, trigger_kind
from .runtime.worker import DrainReport, Runtime

if TYPE_CHECKING:
    from .resources.table import Action, Table
    from .runtime.sources import Source

_FUNCTION_OPTIONS = ("name", "timeout_s", "memory_mb", "reserved_concurrency", "atomic")
Handler = Callable[[Any, Any], Any]


T = TypeVar("T")
_INHERITED: list[Any] = []  # objects from before a fork, kept alive and never used


def _split(
    kind: str, options: dict[str, Any], mapping_cls: type | None, extra: Sequence[str] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    mapping_names = {f.name for f in fields(mapping_cls)} if mapping_cls else set()
    allowed = set(_FUNCTION_OPTIONS) | mapping_names | set(extra)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValidationError(
            f"{kind}: unknown option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(allowed))}"
        )
    fn_opts = {k: v for k, v in options.items() if k in _FUNCTION_OPTIONS}
    map_opts = {k: v for k, v in options.items() if k in mapping_names or k in extra}
    return fn_opts, map_opts


class App:
    """An event-driven application: ``App("name")``, declare resources, decorate handlers."""

    def __init__(
        self,
        name: str = "app",
        *,
        config: str | None = None,
        state_url: str | StateBackend | None = None,
        lake_url: str | ObjectStore | None = None,
        clock: Clock | None = None,
        **settings: Any,
    ) -> None:
        state_obj = state_url if isinstance(state_url, StateBackend) else None
        lake_obj = None if lake_url is None or isinstance(lake_url, str) else lake_url
        self.settings = Settings.load(
            config,
            state_url=None if state_obj else state_url,
            lake_url=None if lake_obj else lake_url,
            **settings,
        )
        self.name = name
        state = state_obj or open_state_backend(self.settings.state_url)
        streams: LogStore | None = None
        if self.settings.stream_url and not same_store(self.settings.stream_url, self.settings.state_url):
            streams = open_url("log", self.settings.stream_url, setting="stream_url")
        self.env = Env(name, state, self.settings, clock=clock or Clock(), streams=streams)
        self._lake_obj = lake_obj
        self._lake: Lake | None = None
        self._catalog: Any = None
        self._sql: Any = None
        self._streams: dict[str, Stream] = {}
        self._tables: dict[str, Table] = {}
        self._queues: dict[str, Queue] = {}
        self._functions: dict[str, Function] = {}
        self._registrations: list[TriggerSpec] = []
        self._runtime: Runtime | None = None
        self._built_for = -1
        self._lock = threading.Lock()

    # -- resources
    def stream(self, name: str, *, shards: int = 1, retention_hours: float = 24) -> Stream:
        s = self._streams.get(name)
        if s is not None:
            if (s.shards, s.retention_hours) != (shards, retention_hours):
                raise ValidationError(f"stream {name!r} is already declared with other settings")
            return s
        s = self._streams[name] = Stream(self.env, name, shards=shards, retention_hours=retention_hours)
        return s

    def table(
        self,
        name: str,
        *,
        key: str | tuple[str, str],
        sort_key: str | tuple[str, str] | None = None,
        stream: str | None = None,
        stream_shards: int = 1,
    ) -> Table:
        from .resources.table import Table

        t = self._tables.get(name)
        if t is not None:
            return t
        t = self._tables[name] = Table(
            self.env, name, key=key, sort_key=sort_key, stream=stream, stream_shards=stream_shards
        )
        return t

    def queue(self, name: str, **options: Any) -> Queue:
        q = self._queues.get(name)
        if q is not None:
            return q
        fifo = options.pop("fifo", name.endswith(".fifo"))
        try:
            q = Queue(self.env, name, fifo=fifo, **options)
        except TypeError as e:
            raise ValidationError(f"queue {name!r}: {e}") from None
        self._queues[name] = q
        return q

    @property
    def lake(self) -> Lake:
        if self._lake is None:
            store = self._lake_obj or open_object_store(self.settings.lake_url)
            self.env.lake = store
            self._lake = Lake(self.env, store)
        return self._lake

    @property
    def catalog(self) -> Any:
        """Tables over lake prefixes (Glue), shared by every worker through the state backend."""
        from .resources.catalog import Catalog

        if self._catalog is None:
            self.lake  # noqa: B018 - the catalog infers schemas from lake objects
            self._catalog = Catalog(self.env)
        return self._catalog

    def sql(self, query: str, *, readonly: bool = True) -> Any:
        """Run SQL (DuckDB) over the catalog's lake tables and the warehouse; see ``resources/sql.py``."""
        from .resources.sql import SqlEngine

        if self._sql is None:
            self._sql = SqlEngine(self.lake, self.catalog, self.settings)
        return self._sql.query(query, readonly=readonly)

    def create_table_as(self, name: str, query: str, *, prefix: str | None = None) -> Any:
        """CREATE TABLE AS back into the lake: the result as Parquet, registered in the catalog."""
        from .resources.sql import SqlEngine

        if self._sql is None:
            self._sql = SqlEngine(self.lake, self.catalog, self.settings)
        return self._sql.create_table_as(name, query, prefix=prefix)

    def delivery(self, name: str, *, source: Stream, **options: Any) -> Any:
        """Deliver ``source`` into the lake with Firehose semantics (see ``resources/delivery.py``):
        ``prefix``, ``error_prefix``, ``buffer_mb``, ``buffer_s``, ``format``, ``compression``,
        ``transform``."""
        from .resources.delivery import Delivery
        from .runtime.kinds import StreamConfig
        from .runtime.sources import RawStreamSource

        try:
            d = Delivery(self.env, name, source=source, lake=self.lake, catalog=self.catalog, **options)
        except TypeError as e:
            raise ValidationError(f"delivery {name!r}: {e}") from None
        fn_name = f"delivery-{name}"
        if fn_name in self._functions:
            raise ValidationError(f"a delivery named {name!r} is already declared")
        fn = Function(name=fn_name, handler=d.handle, timeout_s=300, memory_mb=128)
        self._functions[fn_name] = fn
        # Internal mapping: Firehose's buffering hints are wider than Lambda's ranges, so this
        # mapping is built directly rather than through the user-facing validation.
        mapping = StreamMapping(
            batch_size=10_000_000,
            batching_window_s=d.buffer_s,
            max_retry_attempts=-1,
            max_batch_bytes=d.buffer_bytes,
        )
        self._registrations.append(TriggerSpec("stream", fn, StreamConfig(mapping, RawStreamSource(source))))
        return d

    def transact(self, actions: Sequence[Action], *, token: str | None = None) -> None:
        """TransactWriteItems over any of this app's tables (build actions with ``tx_*``)."""
        from .resources.table import transact

        transact(self.env, actions, token)

    def atomically(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` so that every write it makes to this app's tables, queues and streams
        commits together or not at all (streams only while they live in the state backend:
        with ``stream_url`` set, a stream put is its own commit).

        They all live in one state backend, so the transactional outbox needs no outbox: a
        conditional put into a ledger table and the queue message it justifies are one commit,
        and a failed condition sends nothing. ``fn`` may run more than once (PostgreSQL retries
        on a serialization conflict), so it must not have effects outside the app.
        """
        if not callable(fn):
            raise ValidationError(f"atomically needs a function of no arguments, got {fn!r}")
        return self.env.state.transaction(lambda _txn: fn())

    # -- functions
    def _function(self, handler: Handler, fn_opts: dict[str, Any]) -> Function:
        if not callable(handler):
            raise ValidationError(f"a handler must be callable, got {handler!r}")
        try:
            params = inspect.signature(handler).parameters
        except (TypeError, ValueError):
            params = None
        if (
            params is not None
            and len(params) < 2
            and not any(p.kind == p.VAR_POSITIONAL for p in params.values())
        ):
            raise ValidationError(
                f"handler {getattr(handler, '__name__', handler)!r} must take (event, context)"
            )
        name = fn_opts.pop("name", None) or getattr(handler, "__name__", "")
        if name == "<lambda>":
            raise ValidationError("a lambda has no name: pass name=... to the decorator")
        if name in self._functions:
            raise ValidationError(f"a function named {name!r} is already registered; pass name=...")
        fn = Function(name=name, handler=handler, **fn_opts)
        self._functions[name] = fn
        return fn

    def _register(self, kind: str, config: object, fn_opts: dict[str, Any]) -> Callable[[Handler], Handler]:
        """The decorator every trigger returns: validate, create the function, register it."""
        trigger = trigger_kind(kind)

        def deco(handler: Handler) -> Handler:
            trigger.validate(config, str(fn_opts.get("name") or getattr(handler, "__name__", "?")))
            fn = self._function(handler, dict(fn_opts))
            self._registrations.append(TriggerSpec(kind, fn, config))
            return handler

        return deco

    def on_trigger(self, kind: str, config: object, **options: Any) -> Callable[[Handler], Handler]:
        """Invoke the handler from a trigger of ``kind``, a name given to
        :func:`~eventlake.runtime.trigger.register_kind`; ``config`` is that kind's own
        settings, ``options`` the function's (``name``, ``timeout_s``, ``memory_mb``,
        ``reserved_concurrency``, ``atomic``). The ``on_*`` decorators are this, with the
        settings of their kind spelled out."""
        fn_opts, _ = _split(f"on_trigger({kind!r})", options, None)
        return self._register(kind, config, fn_opts)

    def _stream_trigger(
        self, kind: str, source: Source, options: dict[str, Any]
    ) -> Callable[[Handler], Handler]:
        from .runtime.kinds import StreamConfig

        fn_opts, map_opts = _split(kind, options, StreamMapping)
        return self._register("stream", StreamConfig(StreamMapping(**map_opts), source), fn_opts)

    def on_stream(self, stream: Stream, **options: Any) -> Callable[[Handler], Handler]:
        """Invoke the handler with Kinesis events from ``stream`` (an event source mapping)."""
        from .runtime.sources import KinesisSource

        if not isinstance(stream, Stream):
            raise ValidationError(f"on_stream needs a Stream, got {stream!r}")
        deco = self._stream_trigger("on_stream", KinesisSource(stream), options)
        if not options.get("atomic"):
            return deco

        def atomic_deco(handler: Handler) -> Handler:
            stream.check_atomic(f"on_stream {options.get('name') or getattr(handler, '__name__', '?')!r}")
            return deco(handler)

        return atomic_deco

    def on_table_stream(self, table: Table, **options: Any) -> Callable[[Handler], Handler]:
        """Invoke the handler with DynamoDB Streams events from ``table``'s change stream."""
        from .resources.table import Table
        from .runtime.sources import TableStreamSource

        if not isinstance(table, Table):
            raise ValidationError(f"on_table_stream needs a Table, got {table!r}")
        if table.stream_view is None:
            raise ValidationError(
                f"table {table.name!r} has no change stream; declare it with "
                "stream='new_and_old_images' (or keys_only, new_image, old_image)"
            )
        return self._stream_trigger("on_table_stream", TableStreamSource(table), options)

    def on_queue(self, queue: Queue, **options: Any) -> Callable[[Handler], Handler]:
        """Invoke the handler with SQS events from ``queue``."""
        if not isinstance(queue, Queue):
            raise ValidationError(f"on_queue needs a Queue, got {queue!r}")
        from .runtime.kinds import QueueConfig

        fn_opts, map_opts = _split("on_queue", options, QueueMapping)
        return self._register("queue", QueueConfig(QueueMapping(**map_opts), queue), fn_opts)

    def on_object(
        self,
        *,
        prefix: str = "",
        suffix: str = "",
        events: Sequence[str] = ("ObjectCreated:*",),
        **options: Any,
    ) -> Callable[[Handler], Handler]:
        """Invoke the handler with S3 notifications for lake objects matching prefix/suffix.

        Like S3 → Lambda (an asynchronous invocation): two retries, then the failure
        destination (``on_failure``, or the function's ``<name>-dlq`` queue).
        """
        from .runtime.kinds import StreamConfig
        from .runtime.sources import ObjectSource

        fn_opts, extra = _split("on_object", options, None, extra=("on_failure",))
        on_failure = extra.get("on_failure")
        for e in events:
            if not (e.startswith("ObjectCreated:") or e.startswith("ObjectRemoved:")):
                raise ValidationError(
                    f"on_object: unknown event {e!r}; use ObjectCreated:* or ObjectRemoved:* (or a "
                    "specific one such as ObjectCreated:Put)"
                )
        mapping = StreamMapping(batch_size=1, max_retry_attempts=2, on_failure=on_failure)
        source = ObjectSource(self.lake, prefix, suffix, events)
        return self._register("stream", StreamConfig(mapping, source), fn_opts)

    def on_schedule(self, expression: str, **options: Any) -> Callable[[Handler], Handler]:
        """Invoke the handler on an EventBridge schedule: ``rate(5 minutes)``, ``cron(0 12 * * ? *)``."""
        from .runtime.kinds import ScheduleConfig
        from .schedule import parse_schedule

        parse_schedule(expression)  # fail at declaration, with the position of the error
        fn_opts, extra = _split("on_schedule", options, None, extra=("on_failure",))
        on_failure = extra.get("on_failure")
        mapping = StreamMapping(batch_size=1, max_retry_attempts=2, on_failure=on_failure)
        return self._register("schedule", ScheduleConfig(expression, mapping), fn_opts)

    # -- running
    def runtime_host(self) -> RuntimeHost:
        """What a runtime needs of this app (for tools that start workers themselves)."""
        return RuntimeHost(
            env=self.env,
            specs=tuple(self._registrations),
            queue=self.queue,
            maintain=self._trim_streams,
            after_fork=self._after_fork,
        )

    def _trim_streams(self) -> None:
        for s in list(self._streams.values()):
            s.trim()

    def runtime(self) -> Runtime:
        with self._lock:
            if self._runtime is None or self._built_for != len(self._registrations):
                if self._runtime is not None:
                    self._runtime.leases.release_all()
                self._runtime = Runtime(self.runtime_host())
                self._built_for = len(self._registrations)
            return self._runtime

    def drain(self, timeout_s: float = 60.0, *, flush_windows: bool = True) -> DrainReport:
        """Process until nothing is pending (records, messages, retries); for tests and scripts.

        ``flush_windows`` delivers partial batches at once instead of waiting for
        ``batching_window_s``; retry backoff and visibility timeouts are still honoured (a
        :class:`ManualClock` makes them instant).
        """
        return self.runtime().drain(timeout_s, flush_windows=flush_windows)

    def run(
        self, workers: int = 1, *, duration_s: float | None = None, stop: threading.Event | None = None
    ) -> None:
        """Run until stopped (Ctrl-C / SIGTERM), or for ``duration_s`` seconds."""
        if not isinstance(workers, int) or workers < 1:
            raise ValidationError(f"workers must be a positive integer, got {workers!r}")
        if workers == 1:
            self.runtime().run(stop or threading.Event(), duration_s=duration_s)
        else:
            run_workers(self, workers, duration_s=duration_s, stop=stop)

    def lag(self) -> dict[str, int]:
        """Per function: records or messages not yet processed (across all workers)."""
        return self.runtime().lag()

    def metrics(self) -> dict[str, Any]:
        """This process's invocation metrics (``drain`` and one in-process worker)."""
        return self.runtime().metrics.snapshot()

    def worker_metrics(self) -> dict[str, Any]:
        """Metrics of every worker process that ran on this state backend, merged; each worker
        publishes its own twice a second (a killed worker's last publication still counts)."""
        from .runtime.metrics import merge_snapshots

        rows = self.env.state.transaction(lambda t: t.kv_list("metrics"), readonly=True)
        return merge_snapshots([json.loads(v) for _, v in rows])

    @property
    def functions(self) -> dict[str, Function]:
        return dict(self._functions)

    def _after_fork(self) -> None:
        from .resources.env import Signals

        self.env.state.reset_after_fork()
        if self.env.streams is not None:
            self.env.streams.reset_after_fork()
        self.env.signals = Signals()
        self._runtime = None
        if self._sql is not None:
            # The parent's DuckDB instance must not be used here, nor freed: its destructor
            # would join threads that do not exist in this process. Keep it unreachable.
            _INHERITED.append(self._sql)
            self._sql = None

    def close(self) -> None:
        if self._sql is not None:
            self._sql.close()
            self._sql = None
        if self._runtime is not None:
            try:
                self._runtime.leases.leave()
            except Exception:
                pass
        self.env.state.close()
        if self.env.streams is not None:
            self.env.streams.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"App({self.name!r}, state={self.settings.state_url!r})"
