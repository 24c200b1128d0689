"""Every error eventlake raises derives from :class:`EventlakeError`.

Callers branch on the precise subclasses (``ConditionalCheckFailed``,
``TransactionCanceled``...), so their names follow the AWS exception names a user
already knows. Messages name the object, the bad value and the fix.
"""

from __future__ import annotations

from typing import Any


class EventlakeError(Exception):
    """Root of every eventlake error."""


class ConfigError(EventlakeError):
    """Bad configuration: an unknown option, a bad URL, a missing driver."""


class ValidationError(EventlakeError):
    """A request is malformed: bad name, wrong type, bad expression, over a size limit."""


class ExpressionError(ValidationError):
    """A DynamoDB-style expression could not be parsed or evaluated.

    ``position`` is the 0-based offset of the offending token in ``expression``.
    """

    def __init__(self, message: str, expression: str = "", position: int | None = None) -> None:
        self.expression = expression
        self.position = position
        if position is not None and expression:
            caret = " " * position + "^"
            message = f"{message}\n  {expression}\n  {caret}"
        super().__init__(message)


class SizeLimitExceeded(ValidationError):
    """A record, item or message is larger than the service allows."""


class ResourceNotFound(EventlakeError):
    """A stream, table, queue or object that does not exist."""


class ConditionalCheckFailed(EventlakeError):
    """A conditional put/update/delete found the condition false.

    ``item`` holds the item as it was (like ``ReturnValuesOnConditionCheckFailure=ALL_OLD``).
    """

    def __init__(self, message: str = "The conditional request failed", item: Any = None) -> None:
        super().__init__(message)
        self.item = item


class CancellationReason:
    """Why one action of a cancelled transaction failed (``Code`` is ``None`` when it did not)."""

    __slots__ = ("code", "item", "message")

    def __init__(self, code: str | None, message: str | None = None, item: Any = None) -> None:
        self.code = code
        self.message = message
        self.item = item

    def __repr__(self) -> str:
        return f"CancellationReason(code={self.code!r}, message={self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CancellationReason) and (self.code, self.message) == (
            other.code,
            other.message,
        )


class TransactionCanceled(EventlakeError):
    """A transaction was cancelled; ``reasons`` has one entry per action, in order."""

    def __init__(self, reasons: list[CancellationReason]) -> None:
        codes = ", ".join(r.code or "None" for r in reasons)
        super().__init__(
            f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]"
        )
        self.reasons = reasons


class IdempotentParameterMismatch(EventlakeError):
    """The same client request token was used with a different request."""


class TransactionConflict(EventlakeError):
    """The backend could not serialise a transaction after retries."""


class TransactionAborted(EventlakeError):
    """A statement of the transaction failed and the engine aborted the whole transaction
    (PostgreSQL does), but the transaction function caught the error and returned: nothing
    was committed, and saying so is the only alternative to losing the writes silently."""


class QueueDoesNotExist(ResourceNotFound):
    pass


class ReceiptHandleIsInvalid(EventlakeError):
    pass


class HandlerError(EventlakeError):
    """A function raised, timed out or returned a response that cannot be used."""

    def __init__(self, message: str, error_type: str = "Unhandled") -> None:
        super().__init__(message)
        self.error_type = error_type


class FunctionTimeout(HandlerError):
    def __init__(self, message: str) -> None:
        super().__init__(message, "Sandbox.Timedout")


class TooManyRequests(EventlakeError):
    """A function's reserved concurrency is exhausted (Lambda's throttle)."""


class LeaseLost(EventlakeError):
    """This worker no longer holds the lease it needs; another worker took over."""


class DrainTimeout(EventlakeError):
    """``drain`` ran out of time with work still pending."""


class QueryError(EventlakeError):
    """DuckDB refused or failed a query; the message is DuckDB's, with the query."""


class RecordError(EventlakeError):
    """A record that a delivery cannot write to the lake; ``code`` is Firehose's error code
    (``InvalidJSON``, ``Lambda.FunctionError``...), which the error object in the lake carries."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class MissingDependency(ConfigError):
    """An optional engine driver is not installed; the message says what to pip install.

    Give the ``ImportError`` as ``cause``: a driver that is installed but cannot load (psycopg
    without its binary package or a libpq) fails differently from one that is absent, and the
    user needs to see which of the two happened.
    """

    def __init__(self, what: str, extra: str, cause: ImportError | None = None) -> None:
        why = f" ({cause})" if cause is not None else ""
        super().__init__(
            f"{what} needs an optional dependency that is not installed{why}; "
            f"run: pip install 'eventlake[{extra}]'"
        )
        self.extra = extra
