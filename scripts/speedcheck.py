"""Time a short loop of the kind eventlake runs (dicts, strings, calls); print seconds.

Two users, one loop: ``scripts/bootstrap`` runs it under every candidate interpreter and keeps
the fastest (builds differ far more than versions), and the benchmarks print it before and
after their runs, because a shared virtual machine's speed drifts (this loop has read from
0.014 s to 0.047 s on the same development machine on one day) and a figure without the
machine's speed beside it cannot be compared with another. Standard library only: it must run
on any candidate interpreter, before eventlake's dependencies exist.
"""

import sys
import time


def work() -> dict:
    # Unchanged since the first figures quoted in docs/benchmarks.md: keep it so.
    out = {}
    for i in range(60000):
        d = {"k": str(i), "n": i % 7}
        out[d["k"][-2:]] = d
    return out


def seconds() -> float:
    """Two passes after a warm-up pass, as the figures in docs/benchmarks.md were taken."""
    work()
    t = time.perf_counter()
    work()
    work()
    return time.perf_counter() - t


if __name__ == "__main__":
    if sys.version_info < (3, 11):
        raise SystemExit(1)
    import ensurepip  # noqa: F401  (a venv needs both)
    import venv  # noqa: F401

    print(f"{seconds():.4f}")
