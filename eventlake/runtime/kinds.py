"""The built-in trigger kinds: log-backed (streams, table streams, lake object events, lake
delivery), queues, and schedules. Each is registered here as any other kind would be."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from ..errors import ValidationError
from ..resources.queue import Queue
from .mappings import QueueMapping, StreamMapping
from .pairing import pair_stream_store
from .pollers import QueuePoller, StreamPoller
from .scheduler import SchedulePoller, Ticker
from .sources import KinesisSource, ScheduleSource, Source
from .trigger import AnyTrigger, TriggerContext, TriggerSpec, register_kind


@dataclass(frozen=True)
class StreamConfig:
    """A log read through an event source mapping: ``source`` says which log and which event."""

    mapping: StreamMapping
    source: Source


@dataclass(frozen=True)
class QueueConfig:
    mapping: QueueMapping
    queue: Queue


@dataclass(frozen=True)
class ScheduleConfig:
    expression: str
    mapping: StreamMapping


C = TypeVar("C")


def _config(spec_config: object, cls: type[C], kind: str) -> C:
    if not isinstance(spec_config, cls):
        raise ValidationError(f"a {kind} trigger needs a {cls.__name__}, got {spec_config!r}")
    return spec_config


class StreamKind:
    """One poller per shard and per parallelization slot, each under a lease. The stream
    store is paired with the state that holds the checkpoints (see ``pairing.py``)."""

    name = "stream"

    def validate(self, config: object, function: str) -> None:
        _config(config, StreamConfig, self.name).mapping.validate(function)

    def build(self, specs: Sequence[TriggerSpec], ctx: TriggerContext) -> Sequence[AnyTrigger]:
        pollers: list[StreamPoller] = []
        for spec in specs:
            c = _config(spec.config, StreamConfig, self.name)
            pollers.extend(
                StreamPoller(ctx, spec.function, c.mapping, c.source, shard, slot)
                for shard in range(c.source.shards)
                for slot in range(c.mapping.parallelization_factor)
            )
        consumers = [p.name for p in pollers if isinstance(p.src, KinesisSource)]
        if consumers:
            pair_stream_store(ctx.env, consumers)
        return pollers


class QueueKind:
    """Pollers that receive in parallel, as Lambda starts with several for one queue."""

    name = "queue"

    def validate(self, config: object, function: str) -> None:
        _config(config, QueueConfig, self.name).mapping.validate(function)

    def build(self, specs: Sequence[TriggerSpec], ctx: TriggerContext) -> Sequence[AnyTrigger]:
        pollers: list[QueuePoller] = []
        for spec in specs:
            c = _config(spec.config, QueueConfig, self.name)
            pollers.extend(
                QueuePoller(ctx, spec.function, c.mapping, c.queue, i)
                for i in range(min(c.mapping.maximum_concurrency or 2, 16))
            )
        return pollers


class ScheduleKind:
    """A due tick is claimed in ``keep`` and delivered through the function's schedule log."""

    name = "schedule"

    def validate(self, config: object, function: str) -> None:
        _config(config, ScheduleConfig, self.name).mapping.validate(function)

    def build(self, specs: Sequence[TriggerSpec], ctx: TriggerContext) -> Sequence[AnyTrigger]:
        pollers = []
        for spec in specs:
            c = _config(spec.config, ScheduleConfig, self.name)
            fn = spec.function
            src = ScheduleSource(fn.name, c.expression)
            ticker = Ticker(ctx.env, fn.name, c.expression, src.log)
            pollers.append(SchedulePoller(ctx, fn, c.mapping, src, 0, 0, ticker))
        return pollers


register_kind(StreamKind())
register_kind(QueueKind())
register_kind(ScheduleKind())
