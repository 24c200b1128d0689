"""Running an app: the names the App, the reference apps and tools import to run one.

The work is split by job: ``worker`` (the runtime of one worker: drain, run, lag),
``trigger`` (the protocol it drives triggers through) and ``kinds`` (the built-in kinds),
``processes`` (supervised worker processes), ``gate``, ``pairing``, ``publication`` (metrics
rows) and ``gc_tuning``.
"""

from __future__ import annotations

from ..errors import DrainTimeout
from .processes import Supervisor, run_workers
from .worker import DrainReport, Runtime

__all__ = ["DrainReport", "DrainTimeout", "Runtime", "Supervisor", "run_workers"]
