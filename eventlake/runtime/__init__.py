"""The runtime: pollers, the invoker, leases, the scheduler and the worker processes."""

# The built-in trigger kinds (stream, queue, schedule) register themselves on import, before any
# lookup: whoever imports a runtime module imports this package first.
from . import kinds as _kinds  # noqa: F401
