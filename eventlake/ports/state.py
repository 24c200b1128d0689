"""The state backend: every port on one transaction.

A handler's table writes, a stream checkpoint, a queue delete and a lease check commit
together because they are operations of one transaction object; that is what makes
exactly-once effects possible whatever engine carries the stream. Backends store opaque
bytes and strings; the semantics are written once above the ports.

``transaction(fn)`` runs ``fn(txn)`` atomically and may call it again when the engine reports
a conflict, so ``fn`` must not have side effects outside the transaction other than ones it
is safe to repeat. A call made while a transaction of the same backend is active in the
current context joins it (this is how a handler's writes join its checkpoint).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, Protocol, TypeVar

from .items import ItemTxn
from .kv import KvTxn
from .log import LogTxn
from .queues import QueueTxn

T = TypeVar("T")


class RetryTransaction(BaseException):  # a signal, like GeneratorExit
    """Raised inside a transaction function when a row it read as missing was created by a
    concurrent writer meanwhile (engines with concurrent writers lock nothing on a missing
    row): the backend runs the whole function again, as after a serialisation failure.

    A ``BaseException``, like ``KeyboardInterrupt``: a handler's ``except Exception`` must not
    swallow it, or the transaction would commit without the write it was retried for."""


class StateTxn(ItemTxn, LogTxn, QueueTxn, KvTxn, Protocol):
    """One transaction of a state backend: items, log, queues and kv together."""


class StateBackend(ABC):
    """A transactional store of items, logs, queues and kv (see the module docstring).

    It is a :class:`~.log.LogStore`, :class:`~.items.ItemStore`,
    :class:`~.queues.QueueStore` and :class:`~.kv.KvStore` at once (checked by mypy in
    ``backends/base.py``); subclass it to inherit the defaults below."""

    url: str
    replayable: ClassVar[bool] = True
    #: Whether several processes can share the store (``--workers N``, the supervisor).
    shared_between_processes: ClassVar[bool] = True

    @abstractmethod
    def transaction(self, fn: Callable[[StateTxn], T], *, readonly: bool = False) -> T: ...

    @abstractmethod
    def close(self) -> None: ...

    def reset_after_fork(self) -> None:  # noqa: B027 - an optional hook
        """Drop connections inherited from a parent process (they must not be shared)."""

    def in_transaction(self) -> bool:
        return self.current() is not None

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised inside a transaction function, means "run it again" (a
        serialisation failure, a deadlock, a lost insert race): an atomic handler's writes
        raise these through the handler, and they must reach the transaction unwrapped."""
        return isinstance(exc, RetryTransaction)

    def aborted(self) -> bool:
        """Whether the transaction the calling context is inside can no longer commit: the
        engine aborted it at a failed statement whose error someone caught (PostgreSQL does
        this; SQLite undoes only the statement)."""
        return False

    def current(self) -> StateTxn | None:
        """The transaction of this backend that the calling context is inside, if any: a
        write there joins it directly (the same as ``transaction(fn)`` would)."""
        return None
