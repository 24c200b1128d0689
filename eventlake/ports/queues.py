"""The queue port: message rows with visibility times, scanned in send order.

Visibility timeouts, receive counts, redrive, FIFO groups and deduplication are written
once above this port (``resources/queue.py``); a store keeps rows and answers scans.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class QueueRow:
    id: str
    seq: int
    body: bytes
    attrs: str | None
    sent: float
    visible: float
    receives: int
    first_receive: float | None
    receipt: str | None
    grp: str | None
    dedup: str | None


class QueueTxn(Protocol):
    """What a transaction of a queue store offers."""

    def q_insert(self, queue: str, rows: Iterable[QueueRow]) -> None: ...

    def q_scan_visible(
        self, queue: str, now: float, after_seq: int, limit: int, *, lock: bool = True
    ) -> list[QueueRow]:
        """Messages visible at ``now`` with ``seq`` above ``after_seq``, in ``seq`` order;
        ``lock`` skips and locks rows other consumers hold (engines with concurrent writers)."""
        ...

    def q_inflight_groups(self, queue: str, now: float) -> set[str]:
        """FIFO groups with a message received and not yet visible again."""
        ...

    def q_get(self, queue: str, msg_id: str, *, lock: bool = False) -> QueueRow | None: ...

    def q_update(
        self,
        queue: str,
        msg_id: str,
        *,
        visible: float,
        receives: int,
        first_receive: float | None,
        receipt: str | None,
    ) -> None: ...

    def q_delete(self, queue: str, msg_ids: Sequence[str]) -> int: ...

    def q_purge(self, queue: str) -> int: ...

    def q_stats(self, queue: str, now: float) -> tuple[int, int, int]:
        """``(visible, in_flight, delayed)`` message counts."""
        ...

    def q_next_visible(self, queue: str) -> float | None:
        """The earliest visibility time of any message, to know how long to wait."""
        ...

    def counter_next(self, name: str, n: int = 1) -> int:
        """Reserve ``n`` consecutive integers of the counter ``name``; return the first
        (messages' send order)."""
        ...

    def lock(self, name: str) -> None:
        """Serialise with every other transaction that locks ``name`` until commit (FIFO
        group selection); engines whose write transactions exclude each other do nothing."""
        ...


class QueueStore(Protocol):
    url: str

    def transaction(self, fn: Callable[[QueueTxn], T], *, readonly: bool = False) -> T: ...
