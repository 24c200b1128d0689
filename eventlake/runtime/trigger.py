"""The trigger protocol: the one interface through which the runtime drives every trigger kind.

A trigger turns something outside a handler (a log, a queue, a clock, an HTTP request) into
invocations of one function. It comes in one of two shapes:

* **pull** (:class:`PullTrigger`): the runtime calls ``poll_once`` in its loop. ``poll_once``
  never blocks; it says whether it worked, or when it next wants to run, and ``wake_names``
  name the resources whose writes should wake it early. Streams, table streams, queues,
  lake object events and schedules are pull triggers.
* **push** (:class:`PushTrigger`): the trigger owns a server. ``start`` acquires what it holds
  for its lifetime (binds a port), ``serve`` runs on a thread of its own until the stop event
  is set, ``stop`` releases. HTTP is a push trigger.

Both shapes share ``start``/``stop``, ``keep`` (periodic work that needs no lease: a schedule
claims its due tick there), ``pending``, ``lease`` (the name this trigger must hold to work, or
``None``) and ``lag`` (the backlog of each function it invokes). A trigger reports its metrics
into the worker's :class:`~eventlake.runtime.metrics.Metrics`, which :class:`TriggerContext`
hands it, as the invoker does for every invocation.

The App records each trigger declaration as a :class:`TriggerSpec` (a kind's name, the
function, the kind's own configuration). A :class:`TriggerKind`, registered once under its
name with :func:`register_kind`, builds the triggers of all its specs for a worker (all at
once, so that one HTTP server can serve every route). The runtime knows
nothing else of a kind: a new one is new modules and one ``register_kind`` call
(``docs/how-to/add-a-trigger-kind.md``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..errors import ValidationError

if TYPE_CHECKING:
    from ..resources.env import Env
    from ..resources.queue import Queue
    from ..resources.stream import Stream
    from .functions import Function, Invoker
    from .leases import Leases
    from .metrics import Metrics

    Destination = Queue | Stream


@dataclass
class PollResult:
    """What one ``poll_once`` did: ``worked`` (poll again at once), else ``wake_at`` (clock
    time at which it wants to run again; ``None``: when one of its ``wake_names`` is written,
    or after ``poll_interval_s``)."""

    worked: bool = False
    wake_at: float | None = None


class TriggerContext(Protocol):
    """What a worker gives the triggers it runs (the runtime implements it)."""

    @property
    def env(self) -> Env: ...

    @property
    def invoker(self) -> Invoker: ...

    @property
    def leases(self) -> Leases: ...

    @property
    def metrics(self) -> Metrics: ...

    def destination_for(self, fn: Function, configured: Destination | None) -> Destination:
        """The failure destination, or the function's own dead-letter queue."""
        ...


class Trigger(Protocol):
    """What every trigger has, pull or push. Subclass it to inherit the defaults.

    ``name`` is unique within a worker (shown when a drain times out); ``lease`` is the lease
    this trigger must hold to work, shared out among the workers by the runtime (``None``:
    every worker runs it)."""

    name: str
    lease: str | None = None

    def start(self) -> None:
        """Called by ``run`` before any poll or serve (``drain`` calls neither)."""
        return None

    def stop(self) -> None:
        """Called by ``run`` after every loop and server of the worker has ended."""
        return None

    def keep(self) -> None:
        """Periodic work that needs no lease, about every ``lease_ttl_s / 4`` (at most every
        half second) in a running worker, and once per pass of ``drain``."""
        return None

    def pending(self) -> bool:
        """Whether work is waiting: ``drain`` returns only when no trigger has any."""
        ...

    def lag(self) -> Mapping[str, int]:
        """Per function it invokes: records or messages not processed yet, read from the
        backends so that it counts every worker's progress. The runtime adds up what its
        triggers report, so triggers that share one backlog (a queue's pollers) report it
        once; a trigger with no backlog (a server) reports nothing."""
        return {}


@runtime_checkable
class PullTrigger(Trigger, Protocol):
    wake_names: tuple[str, ...]  # resources whose writes wake it (see ``Signals``)

    def poll_once(self, *, flush: bool = False) -> PollResult:
        """Do at most one batch of work without blocking. ``flush``: deliver a partial batch
        now rather than wait for its batching window (``drain`` does)."""
        ...


@runtime_checkable
class PushTrigger(Trigger, Protocol):
    def serve(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set (on a thread of its own). Raising logs the error and
        serves again after half a second."""
        ...


AnyTrigger = PullTrigger | PushTrigger


@dataclass(frozen=True)
class TriggerSpec:
    """One trigger declaration of an App: which kind, which function, the kind's settings."""

    kind: str
    function: Function
    config: object


class TriggerKind(Protocol):
    """A kind of trigger: validates its declarations and builds their triggers for a worker."""

    @property
    def name(self) -> str: ...

    def validate(self, config: object, function: str) -> None:
        """Raise :class:`~eventlake.errors.ValidationError` for a bad declaration, when the
        handler is decorated."""
        ...

    def build(self, specs: Sequence[TriggerSpec], ctx: TriggerContext) -> Sequence[AnyTrigger]:
        """The triggers that serve ``specs`` (every declaration of this kind, in declaration
        order) in one worker: one per shard and slot of a stream, one server for all routes."""
        ...


@dataclass(frozen=True)
class RuntimeHost:
    """What the App hands its runtime; the runtime reads nothing else of the App."""

    env: Env
    specs: Sequence[TriggerSpec]
    queue: Callable[[str], Queue]  # declare (or find) a queue: functions' dead-letter queues
    maintain: Callable[[], None]  # every few minutes in a running worker: trims streams
    after_fork: Callable[[], None]  # in a new worker process, before its runtime is built


_KINDS: dict[str, TriggerKind] = {}
_lock = threading.Lock()


def register_kind(kind: TriggerKind) -> None:
    """Make a trigger kind available to ``App.on_trigger`` and the runtime, under its name."""
    with _lock:
        known = _KINDS.get(kind.name)
        if known is not None and known is not kind:
            raise ValidationError(
                f"a trigger kind named {kind.name!r} is registered already ({known!r}); "
                "choose another name"
            )
        _KINDS[kind.name] = kind


def trigger_kind(name: str) -> TriggerKind:
    """The kind registered under ``name`` (the built-in kinds register when the runtime
    package is imported, see ``runtime/__init__.py``)."""
    kind = _KINDS.get(name)
    if kind is None:
        raise ValidationError(
            f"unknown trigger kind {name!r}; known kinds: {', '.join(sorted(_KINDS))} "
            "(register a kind with eventlake.runtime.trigger.register_kind)"
        )
    return kind
