"""In-process wake-up signals: a write wakes the pollers of that resource, and only those."""

from __future__ import annotations

import threading

from eventlake.resources.env import Signals


def _waiter(signals: Signals, names: list[str]) -> tuple[threading.Thread, threading.Event]:
    done = threading.Event()
    seen = signals.version(names)

    def run() -> None:
        signals.wait(names, seen, 30)
        done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, done


def test_a_notify_wakes_only_the_waiters_of_that_name() -> None:
    signals = Signals()
    ta, woke_a = _waiter(signals, ["table:a"])
    tb, woke_b = _waiter(signals, ["table:b", "queue:c"])
    signals.notify("table:a")
    assert woke_a.wait(5)
    assert not woke_b.wait(0.2)  # not woken by another resource's write
    signals.notify("queue:c")
    assert woke_b.wait(5)
    ta.join(5)
    tb.join(5)


def test_a_notify_before_the_wait_is_not_missed() -> None:
    signals = Signals()
    seen = signals.version(["x"])
    signals.notify("x")  # between reading the version and waiting
    done = threading.Event()
    threading.Thread(target=lambda: (signals.wait(["x"], seen, 30), done.set()), daemon=True).start()
    assert done.wait(5)
