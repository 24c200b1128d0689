"""What every resource is handed by the App: backends, settings, a clock and wake-up signals.

Passing this in (instead of resources reaching for globals) keeps resources testable with a
manual clock and lets several Apps live in one process.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ConfigError, ValidationError

if TYPE_CHECKING:
    from ..config import Settings
    from ..ports.log import LogStore
    from ..ports.objects import ObjectStore
    from ..ports.state import StateBackend


class Clock:
    """Wall-clock time. Tests substitute :class:`ManualClock`."""

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock(Clock):
    """A clock that only moves when told to (``advance``), for schedules and expiry tests."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.advance(max(seconds, 0.0))


class Signals:
    """In-process wake-ups, so a poller in the same process reacts to a put in microseconds.

    A waiter registers for the names it cares about and only a write to one of them wakes it:
    with one shared condition every table write woke every poller of the process, and a busy
    pipeline spent more time in wake-ups than in work. Other processes are not woken; they
    poll at ``poll_interval_s``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, int] = {}
        self._waiters: dict[str, set[threading.Event]] = {}

    def notify(self, name: str) -> None:
        with self._lock:
            self._versions[name] = self._versions.get(name, 0) + 1
            waiters = self._waiters.get(name)
            if waiters:
                for event in waiters:
                    if not event.is_set():  # a busy writer notifies thousands of times a second
                        event.set()

    def version(self, names: Iterable[str]) -> tuple[int, ...]:
        with self._lock:
            return tuple(self._versions.get(n, 0) for n in names)

    def wait(self, names: Iterable[str], seen: tuple[int, ...], timeout: float) -> None:
        """Return when one of ``names`` changed since ``seen`` was read, or after ``timeout``."""
        names = tuple(names)
        event = threading.Event()
        with self._lock:
            if tuple(self._versions.get(n, 0) for n in names) != seen:
                return
            for n in names:
                self._waiters.setdefault(n, set()).add(event)
        try:
            event.wait(timeout)
        finally:
            with self._lock:
                for n in names:
                    self._waiters[n].discard(event)


@dataclass
class Env:
    app_name: str
    state: StateBackend
    settings: Settings
    lake: ObjectStore | None = None
    clock: Clock = field(default_factory=Clock)
    signals: Signals = field(default_factory=Signals)
    streams: LogStore | None = None  # where stream records live; None: in ``state``

    @property
    def stream_store(self) -> LogStore:
        return self.streams if self.streams is not None else self.state

    def check_shared(self, what: str) -> None:
        """Refuse ``what`` (several processes) when a store lives in one process's memory."""
        for setting, store in (("state_url", self.state), ("stream_url", self.streams)):
            if store is not None and not store.shared_between_processes:
                raise ConfigError(
                    f"{what}: {setting} {store.url!r} keeps its data in this process, and other "
                    "processes cannot see it; run one worker, or use sqlite:///... or "
                    "postgresql://... for several"
                )


_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def check_name(kind: str, name: str, *, pattern: re.Pattern[str] = _NAME, hint: str = "") -> str:
    if not isinstance(name, str) or not pattern.match(name):
        raise ValidationError(
            f"invalid {kind} name {name!r}: use 1-128 characters from A-Z a-z 0-9 _ . -"
            + (f" ({hint})" if hint else "")
        )
    return name
