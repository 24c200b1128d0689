"""Functions and the invoker: Lambda's contract around a plain ``handler(event, context)``.

The invoker gives each call a Lambda context, enforces the timeout and reserved
concurrency, checks that the response is JSON (Lambda serialises it, so a response that is
not JSON fails there too), writes START/END/REPORT lines in Lambda's format and counts
invocations, errors, throttles and durations.

A timed-out handler cannot be killed in Python; it is abandoned on its thread and its result
discarded, as Lambda discards a timed-out invocation. Handlers that must not have effects
after a timeout should use ``atomic=True``: their table writes commit only with the checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import resource
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..errors import FunctionTimeout, HandlerError, TooManyRequests, ValidationError
from ..ports.state import RetryTransaction
from ..resources.env import Env, check_name
from .metrics import Metrics

Handler = Callable[[Any, Any], Any]


@dataclass
class Function:
    name: str
    handler: Handler
    timeout_s: float = 30.0
    memory_mb: int = 128
    reserved_concurrency: int | None = None
    atomic: bool = False
    _sem: threading.BoundedSemaphore | None = field(default=None, repr=False)
    _executor: ThreadPoolExecutor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_name("function", self.name)
        if not callable(self.handler):
            raise ValidationError(f"function {self.name!r}: handler must be callable")
        if not 0.001 <= self.timeout_s <= 900:
            raise ValidationError(f"function {self.name!r}: timeout_s must be 0.001-900 (Lambda's limit)")
        if not 128 <= self.memory_mb <= 10_240:
            raise ValidationError(f"function {self.name!r}: memory_mb must be 128-10240")
        if self.reserved_concurrency is not None:
            if not isinstance(self.reserved_concurrency, int) or self.reserved_concurrency < 0:
                raise ValidationError(
                    f"function {self.name!r}: reserved_concurrency must be a non-negative integer"
                )
            self._sem = threading.BoundedSemaphore(max(self.reserved_concurrency, 1))

    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix=f"fn-{self.name}")
        return self._executor


class _Encoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, Decimal):
            return int(o) if o == o.to_integral_value() else float(o)
        if isinstance(o, (set, frozenset)):
            return list(o)
        return super().default(o)


ABORTED_RERUNS = 2  # see Invoker._aborted


class Invoker:
    """Runs invocations; ``slot`` enforces reserved concurrency across worker processes."""

    def __init__(self, env: Env, metrics: Metrics) -> None:
        self.env = env
        self.metrics = metrics
        self.log = logging.getLogger("eventlake.functions")
        self._loggers: dict[str, logging.Logger] = {}
        self._aborts = threading.local()  # aborted reruns in a row, per worker thread

    @contextlib.contextmanager
    def slot(self, fn: Function) -> Iterator[None]:
        """Hold one of the function's ``reserved_concurrency`` slots, shared by every worker
        through leases in the state backend; raise :class:`TooManyRequests` when none is free.

        Taken by the pollers outside any transaction, so that an atomic handler's slot is not
        part of (and released with) its own transaction. A dead worker's slot frees itself
        when its lease (the function's timeout plus a margin) expires."""
        if not fn.reserved_concurrency:
            yield
            return
        from .leases import Leases

        leases = Leases(self.env, f"{fn.name}:{uuid.uuid4().hex}", fn.timeout_s + 5)
        for i in range(fn.reserved_concurrency):
            name = f"conc:{fn.name}:{i}"
            if leases.try_acquire(name):
                try:
                    yield
                finally:
                    leases.release(name)
                return
        self.metrics.throttled(fn.name)
        raise TooManyRequests(f"function {fn.name!r}: Rate Exceeded (reserved concurrency)")

    def _line(self, fn: Function, text: str, level: int = logging.INFO) -> None:
        logger = self._loggers.get(fn.name)
        if logger is None:
            logger = self._loggers[fn.name] = logging.getLogger(f"eventlake.functions.{fn.name}")
        logger.log(level, text)

    def _aborted(self, fn: Function, cause: BaseException | None) -> HandlerError:
        """An atomic handler's transaction was aborted by an error the handler caught (and
        returned, or raised another error): on PostgreSQL nearly always a conflict, as the
        table API checks its input before any SQL. The transaction runs again at once, up to
        ABORTED_RERUNS times in a row; after that it is the handler failing - its retries,
        bisection and dead-letter queue apply - rather than a worker stuck on one batch."""
        n = getattr(self._aborts, "n", 0)
        if n < ABORTED_RERUNS:
            self._aborts.n = n + 1
            self.metrics.add(f"{fn.name}.aborted_reruns")
            self._line(
                fn,
                "[WARNING] the handler caught an error that aborted its transaction; running "
                "the transaction again",
                logging.WARNING,
            )
            raise RetryTransaction(f"function {fn.name!r}: transaction aborted") from cause
        self._aborts.n = 0
        return HandlerError(
            f"the handler caught an error that aborted its transaction ({ABORTED_RERUNS + 1} "
            f"times in a row): {type(cause).__name__ + ': ' + str(cause) if cause else 'it returned'}"
            "; let database errors propagate out of atomic handlers",
            "Runtime.TransactionAborted",
        )

    def invoke(self, fn: Function, event: Any, *, inline: bool = False, records: int = 0) -> Any:
        """Run one invocation; raise :class:`HandlerError` (or a subclass) when it fails.

        ``inline`` runs on the caller's thread: atomic handlers need that, because their
        table writes must join the caller's open transaction.
        """
        from ..events.context import LambdaContext
        from ..events.logs import end_line, platform_json, report_line, start_line

        json_logs = self.env.settings.log_format == "json"

        if fn.reserved_concurrency == 0 or (fn._sem is not None and not fn._sem.acquire(blocking=False)):
            self.metrics.throttled(fn.name)
            raise TooManyRequests(f"function {fn.name!r}: Rate Exceeded (reserved concurrency)")
        try:
            ctx = LambdaContext(
                fn.name,
                timeout_s=fn.timeout_s,
                memory_mb=fn.memory_mb,
                region=self.env.settings.region,
                account=self.env.settings.account,
            )
            rid = ctx.aws_request_id
            self._line(fn, platform_json("platform.start", rid) if json_logs else start_line(rid))
            t0 = time.perf_counter()
            error: HandlerError | None = None
            result: Any = None
            try:
                if inline:
                    result = fn.handler(event, ctx)
                    if self.env.state.aborted():
                        raise self._aborted(fn, None)
                    self._aborts.n = 0
                    if time.perf_counter() - t0 > fn.timeout_s:
                        raise FunctionTimeout(f"Task timed out after {fn.timeout_s:.2f} seconds")
                else:
                    fut = fn.executor().submit(fn.handler, event, ctx)
                    try:
                        result = fut.result(timeout=fn.timeout_s)
                    except FutureTimeout:
                        raise FunctionTimeout(f"Task timed out after {fn.timeout_s:.2f} seconds") from None
                try:
                    if result is not None:
                        json.dumps(result, cls=_Encoder)
                except (TypeError, ValueError) as e:
                    raise HandlerError(f"Unable to marshal response: {e}", "Runtime.MarshalError") from None
            except HandlerError as e:
                error = e
            except Exception as e:  # the handler's own failure
                if inline and self.env.state.is_retryable(e):
                    # A conflict of the transaction the handler runs in (an atomic handler):
                    # the transaction runs again, which is not the handler failing.
                    raise
                if inline and self.env.state.aborted():
                    error = self._aborted(fn, e)  # (raises RetryTransaction while it may)
                else:
                    error = HandlerError(f"{type(e).__name__}: {e}", type(e).__name__)
                error.__cause__ = e
                tb = "".join(traceback.format_exception(type(e), e, e.__traceback__)[1:])
                self._line(fn, f"[ERROR] {type(e).__name__}: {e}\n{tb}".rstrip(), logging.ERROR)
            ms = (time.perf_counter() - t0) * 1000
            if isinstance(error, FunctionTimeout):
                self._line(fn, f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {rid} {error}", logging.ERROR)
            max_mb = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
            if json_logs:
                self._line(
                    fn,
                    platform_json(
                        "platform.report",
                        rid,
                        durationMs=round(ms, 3),
                        billedDurationMs=math.ceil(ms),
                        memorySizeMB=fn.memory_mb,
                        maxMemoryUsedMB=max_mb,
                        status="success"
                        if error is None
                        else ("timeout" if isinstance(error, FunctionTimeout) else "error"),
                    ),
                )
            else:
                self._line(fn, end_line(rid))
                self._line(
                    fn,
                    report_line(
                        rid,
                        duration_ms=ms,
                        billed_ms=math.ceil(ms),
                        memory_mb=fn.memory_mb,
                        max_memory_mb=max_mb,
                    ),
                )
            self.metrics.invoked(
                fn.name,
                ms,
                error=error is not None,
                timeout=isinstance(error, FunctionTimeout),
                records=records,
            )
            if error is not None:
                raise error
            return result
        finally:
            if fn._sem is not None:
                fn._sem.release()
