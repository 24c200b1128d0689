"""A trigger kind defined outside eventlake runs through the ordinary runtime: one
``register_kind`` call, no edit to the runtime's loop, ``lag`` or ``drain``."""

from __future__ import annotations

import collections
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from eventlake import App, ValidationError
from eventlake.errors import HandlerError
from eventlake.runtime.functions import Function
from eventlake.runtime.trigger import (
    AnyTrigger,
    PollResult,
    PullTrigger,
    PushTrigger,
    Trigger,
    TriggerContext,
    TriggerSpec,
    register_kind,
    trigger_kind,
)

# -- a pull kind: an in-process inbox, read in batches of two under a lease


@dataclass
class Inbox:
    items: collections.deque[str] = field(default_factory=collections.deque)
    kept: list[int] = field(default_factory=list)  # how often keep() ran


class InboxTrigger(PullTrigger):
    def __init__(self, ctx: TriggerContext, fn: Function, inbox: Inbox) -> None:
        self.ctx = ctx
        self.fn = fn
        self.inbox = inbox
        self.name = f"inbox:{fn.name}"
        self.lease = self.name
        self.wake_names = ()

    def keep(self) -> None:
        self.inbox.kept.append(1)

    def pending(self) -> bool:
        return bool(self.inbox.items)

    def lag(self) -> dict[str, int]:
        return {self.fn.name: len(self.inbox.items)}

    def poll_once(self, *, flush: bool = False) -> PollResult:
        if not self.ctx.leases.holds(self.name) or not self.inbox.items:
            return PollResult(False, None)
        batch = [self.inbox.items[0]] + ([self.inbox.items[1]] if len(self.inbox.items) > 1 else [])
        try:
            self.ctx.invoker.invoke(self.fn, {"Records": batch}, records=len(batch))
        except HandlerError:
            return PollResult(True)  # left in the inbox: retried on the next poll
        for _ in batch:
            self.inbox.items.popleft()
        return PollResult(True)


class InboxKind:
    name = "test-inbox"

    def validate(self, config: object, function: str) -> None:
        if not isinstance(config, Inbox):
            raise ValidationError(f"function {function!r}: test-inbox needs an Inbox, got {config!r}")

    def build(self, specs: Sequence[TriggerSpec], ctx: TriggerContext) -> Sequence[AnyTrigger]:
        return [InboxTrigger(ctx, s.function, s.config) for s in specs if isinstance(s.config, Inbox)]


# -- a push kind: a line server on a local TCP port, one invocation per line


@dataclass
class LineServer:
    port: int = 0  # set by start()
    events: list[str] = field(default_factory=list)  # lifecycle, in order
    fail_start: bool = False  # as a port in use would
    fail_serving: int = 0  # how many times serve raises before it serves


class LineTrigger(PushTrigger):
    def __init__(self, ctx: TriggerContext, fn: Function, server: LineServer) -> None:
        self.ctx = ctx
        self.fn = fn
        self.server = server
        self.name = f"lines:{fn.name}"
        self.sock: socket.socket | None = None
        self.inflight = 0

    def start(self) -> None:
        if self.server.fail_start:
            raise OSError("address already in use")
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.server.port = self.sock.getsockname()[1]
        self.server.events.append("start")

    def stop(self) -> None:
        assert self.sock is not None
        self.sock.close()
        self.server.events.append("stop")

    def pending(self) -> bool:
        return self.inflight > 0

    def serve(self, stop: threading.Event) -> None:
        assert self.sock is not None
        self.server.events.append("serve")
        if self.server.fail_serving:
            self.server.fail_serving -= 1
            raise RuntimeError("the server broke")
        while not stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.inflight += 1
            with conn, conn.makefile("rwb") as f:
                line = f.readline().decode().strip()
                resp = self.ctx.invoker.invoke(self.fn, {"body": line})
                f.write(f"{resp}\n".encode())
            self.inflight -= 1


class LineKind:
    name = "test-lines"

    def validate(self, config: object, function: str) -> None:
        pass

    def build(self, specs: Sequence[TriggerSpec], ctx: TriggerContext) -> Sequence[AnyTrigger]:
        return [LineTrigger(ctx, s.function, s.config) for s in specs if isinstance(s.config, LineServer)]


INBOX = InboxKind()
LINES = LineKind()
register_kind(INBOX)
register_kind(LINES)


def test_a_pull_kind_is_drained_and_lagged_by_the_runtime(app_factory) -> None:
    app: App = app_factory("pull")
    inbox = Inbox(collections.deque(["a", "b", "c", "d", "e"]))
    got: list[list[str]] = []
    failed_once: list[str] = []

    @app.on_trigger("test-inbox", inbox)
    def fn(event: dict[str, Any], context: Any) -> None:
        if event["Records"][0] == "c" and not failed_once:
            failed_once.append("c")
            raise RuntimeError("first try fails")
        got.append(event["Records"])

    assert app.lag() == {"fn": 5}
    report = app.drain(timeout_s=30)
    assert got == [["a", "b"], ["c", "d"], ["e"]]
    assert (report.invocations, report.errors) == (4, 1)
    assert app.lag() == {"fn": 0}
    assert inbox.kept  # drain runs the triggers' periodic work
    assert app.runtime().leases.holds("inbox:fn")  # drain took the lease it declared


def test_a_pull_kind_runs_in_a_worker(app_factory) -> None:
    app: App = app_factory("pullrun")
    inbox = Inbox(collections.deque(["x", "y", "z"]))
    got: list[str] = []

    @app.on_trigger("test-inbox", inbox, name="reader")
    def fn(event: dict[str, Any], context: Any) -> None:
        got.extend(event["Records"])

    stop = threading.Event()
    th = threading.Thread(target=app.run, kwargs={"stop": stop})
    th.start()
    try:
        deadline = time.monotonic() + 30
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        th.join(30)
    assert got == ["x", "y", "z"]


def test_a_push_kind_is_served_by_a_running_worker(app_factory) -> None:
    app: App = app_factory("push")
    server = LineServer()

    @app.on_trigger("test-lines", server, name="echo")
    def echo(event: dict[str, Any], context: Any) -> str:
        return event["body"].upper()

    stop = threading.Event()
    th = threading.Thread(target=app.run, kwargs={"stop": stop})
    th.start()
    try:
        deadline = time.monotonic() + 30
        while "serve" not in server.events and time.monotonic() < deadline:
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as c, c.makefile("rwb") as f:
            f.write(b"hello\n")
            f.flush()
            assert f.readline() == b"HELLO\n"
    finally:
        stop.set()
        th.join(30)
    assert server.events == ["start", "serve", "stop"]
    assert app.metrics()["functions"]["echo"]["invocations"] == 1


def test_a_push_trigger_that_fails_serving_serves_again(app_factory) -> None:
    app: App = app_factory("pushfail")
    server = LineServer(fail_serving=1)

    @app.on_trigger("test-lines", server, name="echo")
    def echo(event: dict[str, Any], context: Any) -> str:
        return event["body"][::-1]

    stop = threading.Event()
    th = threading.Thread(target=app.run, kwargs={"stop": stop})
    th.start()
    try:
        deadline = time.monotonic() + 30
        while server.events.count("serve") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as c, c.makefile("rwb") as f:
            f.write(b"abc\n")
            f.flush()
            assert f.readline() == b"cba\n"
    finally:
        stop.set()
        th.join(30)
    assert server.events == ["start", "serve", "serve", "stop"]


def test_a_trigger_that_cannot_start_fails_the_run_and_stops_the_started_ones(app_factory) -> None:
    app: App = app_factory("pushstart")
    first, second = LineServer(), LineServer(fail_start=True)

    @app.on_trigger("test-lines", first, name="one")
    def one(event: Any, context: Any) -> None:
        pass

    @app.on_trigger("test-lines", second, name="two")
    def two(event: Any, context: Any) -> None:
        pass

    with pytest.raises(OSError, match="address already in use"):
        app.run(stop=threading.Event())
    assert first.events == ["start", "stop"] and second.events == []


def test_drain_does_not_serve_push_triggers(app_factory) -> None:
    app: App = app_factory("pushdrain")
    server = LineServer()
    inbox = Inbox(collections.deque(["a"]))
    seen: list[Any] = []

    @app.on_trigger("test-lines", server, name="echo")
    def echo(event: dict[str, Any], context: Any) -> None:
        seen.append(event)

    @app.on_trigger("test-inbox", inbox, name="reader")
    def reader(event: dict[str, Any], context: Any) -> None:
        seen.append(event)

    app.drain(timeout_s=30)
    assert seen == [{"Records": ["a"]}]
    assert server.events == []  # no port was opened


def test_an_unknown_kind_is_refused_at_declaration(app_factory) -> None:
    app: App = app_factory("unknown")
    with pytest.raises(ValidationError, match=r"unknown trigger kind 'nope'; known kinds: .*queue.*stream"):
        app.on_trigger("nope", None)


def test_a_kind_validates_its_declaration(app_factory) -> None:
    app: App = app_factory("invalid")
    with pytest.raises(ValidationError, match="test-inbox needs an Inbox"):

        @app.on_trigger("test-inbox", "not an inbox")
        def fn(event: Any, context: Any) -> None:
            pass

    assert app.functions == {}


def test_a_kind_name_is_registered_once() -> None:
    register_kind(INBOX)  # the same kind again: nothing changes
    with pytest.raises(ValidationError, match="'test-inbox' is registered already"):
        register_kind(InboxKind())
    assert trigger_kind("test-inbox") is INBOX


class Neither(Trigger):
    name = "neither"

    def pending(self) -> bool:
        return False


class NeitherKind:
    name = "test-neither"

    def validate(self, config: object, function: str) -> None:
        pass

    def build(self, specs: Sequence[TriggerSpec], ctx: TriggerContext) -> Sequence[AnyTrigger]:
        return [Neither()]  # type: ignore[list-item]


register_kind(NeitherKind())


def test_a_trigger_that_neither_polls_nor_serves_is_refused(app_factory) -> None:
    app: App = app_factory("neither")

    @app.on_trigger("test-neither", None)
    def fn(event: Any, context: Any) -> None:
        pass

    with pytest.raises(
        ValidationError,
        match=r"neither a pull trigger \(it lacks poll_once, wake_names\) nor a push trigger "
        r"\(it lacks serve\)",
    ):
        app.drain()


class Bare:
    """Shaped like a pull trigger, but written without the protocol's defaults."""

    name = "bare"
    wake_names = ()

    def poll_once(self, *, flush: bool = False) -> PollResult:
        return PollResult()

    def pending(self) -> bool:
        return False


class BareKind:
    name = "test-bare"

    def validate(self, config: object, function: str) -> None:
        pass

    def build(self, specs: Sequence[TriggerSpec], ctx: TriggerContext) -> Sequence[AnyTrigger]:
        return [Bare()]  # type: ignore[list-item]


register_kind(BareKind())


def test_the_error_names_what_a_trigger_lacks(app_factory) -> None:
    app: App = app_factory("bare")

    @app.on_trigger("test-bare", None)
    def fn(event: Any, context: Any) -> None:
        pass

    with pytest.raises(ValidationError, match=r"it lacks lease, start, stop, keep, lag\) nor"):
        app.drain()
