"""The runtime: pollers, the invoker, leases, the scheduler and the worker processes."""
