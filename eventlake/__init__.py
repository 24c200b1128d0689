"""eventlake: event-driven data pipelines with AWS serverless semantics, embedded or at scale."""

from .app import App
from .errors import (
    ConditionalCheckFailed,
    EventlakeError,
    TransactionCanceled,
    ValidationError,
)
from .resources.env import ManualClock

__all__ = [
    "App",
    "ConditionalCheckFailed",
    "EventlakeError",
    "ManualClock",
    "TransactionCanceled",
    "ValidationError",
]
__version__ = "0.1.0"
