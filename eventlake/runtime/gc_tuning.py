"""Garbage collection settings for a worker process."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Collect garbage less often in a worker process, and never look again at what exists
    before it starts working. A pipeline allocates tens of containers per record (a
    DynamoDB Streams record is about twenty dicts) and keeps a whole batch alive while it
    builds it; with the default threshold of 700 the collector scans those batches over and
    over. Cycles are still collected, every 50,000 allocations."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
