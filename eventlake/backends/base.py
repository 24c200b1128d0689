"""The port types backends implement, gathered for engine modules (they live in
:mod:`eventlake.ports`, where resources and the runtime import them from)."""

from __future__ import annotations

from ..ports.items import ItemStore
from ..ports.kv import KvStore
from ..ports.log import LogRow, LogStore
from ..ports.queues import QueueRow, QueueStore
from ..ports.state import RetryTransaction, StateBackend, StateTxn

Txn = StateTxn  # the transaction of a state backend: every port's operations


def _conforms(b: StateBackend) -> tuple[LogStore, ItemStore, QueueStore, KvStore]:
    """Never called: mypy checks here that a state backend is every port at once."""
    return b, b, b, b


__all__ = ["LogRow", "QueueRow", "RetryTransaction", "StateBackend", "StateTxn", "Txn"]
