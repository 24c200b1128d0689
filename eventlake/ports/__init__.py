"""The capability ports: one small typed Protocol per thing a backend can store.

Resources and the runtime are written against these; engines implement the ones they have:

* :class:`~.log.LogStore`     -- stream records (what ``stream_url`` names)
* :class:`~.items.ItemStore`  -- table items and their change records
* :class:`~.queues.QueueStore` -- queue messages
* :class:`~.kv.KvStore`       -- small values: checkpoints, leases, metrics, tokens
* :class:`~.state.StateBackend` -- all four on one transaction (what ``state_url`` names)
* :class:`~.objects.ObjectStore` -- the lake's objects (what ``lake_url`` names)

Each transactional port has two halves: ``XTxn``, the operations a transaction of the store
offers, and ``XStore``/``LogStore``, which runs a function in such a transaction. A state
backend implements every one of them on one transaction object, so a handler's table
writes, queue sends and its checkpoint commit together; an engine that keeps only stream
records (Kafka) implements :class:`~.log.LogStore` alone. See ``docs/how-to/add-a-backend.md``.
"""

from .items import ItemStore, ItemTxn
from .kv import KvStore, KvTxn
from .log import LogRow, LogStore, LogTxn
from .objects import ObjectInfo, ObjectStore, check_key
from .queues import QueueRow, QueueStore, QueueTxn
from .state import RetryTransaction, StateBackend, StateTxn

__all__ = [
    "ItemStore",
    "ItemTxn",
    "KvStore",
    "KvTxn",
    "LogRow",
    "LogStore",
    "LogTxn",
    "ObjectInfo",
    "ObjectStore",
    "QueueRow",
    "QueueStore",
    "QueueTxn",
    "RetryTransaction",
    "StateBackend",
    "StateTxn",
    "check_key",
]
