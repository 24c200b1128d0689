"""Event source mapping settings, validated against Lambda's documented ranges."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ValidationError

if TYPE_CHECKING:
    from ..resources.queue import Queue
    from ..resources.stream import Stream

POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")


@dataclass(frozen=True)
class StreamMapping:
    """Settings of a Kinesis or DynamoDB Streams trigger (Lambda's names, snake_case)."""

    batch_size: int = 100
    batching_window_s: float = 0.0
    starting_position: str = "TRIM_HORIZON"
    starting_timestamp: float | None = None
    max_retry_attempts: int = -1
    max_record_age_s: float = -1
    bisect_on_error: bool = False
    parallelization_factor: int = 1
    report_batch_item_failures: bool = False
    on_failure: Queue | Stream | None = None
    # Internal: the most bytes of record data in one batch (Lambda's 6 MB request less
    # base64's growth); lake delivery raises it to its buffer size.
    max_batch_bytes: int = 6 * 1024 * 1024 * 3 // 4

    def validate(self, fn: str) -> None:
        where = f"function {fn!r}"
        if not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= 10_000:
            raise ValidationError(f"{where}: batch_size must be 1-10000, got {self.batch_size!r}")
        if not 0 <= self.batching_window_s <= 300:
            raise ValidationError(f"{where}: batching_window_s must be 0-300, got {self.batching_window_s!r}")
        pos = str(self.starting_position).upper()
        if pos not in POSITIONS:
            raise ValidationError(
                f"{where}: starting_position must be one of {', '.join(POSITIONS)}, "
                f"got {self.starting_position!r}"
            )
        if pos == "AT_TIMESTAMP" and self.starting_timestamp is None:
            raise ValidationError(f"{where}: AT_TIMESTAMP needs starting_timestamp (epoch seconds)")
        if not isinstance(self.max_retry_attempts, int) or not -1 <= self.max_retry_attempts <= 10_000:
            raise ValidationError(
                f"{where}: max_retry_attempts must be -1 (until the record expires) or 0-10000, "
                f"got {self.max_retry_attempts!r}"
            )
        if not (self.max_record_age_s == -1 or 60 <= self.max_record_age_s <= 604_800):
            raise ValidationError(
                f"{where}: max_record_age_s must be -1 (no limit) or 60-604800, got {self.max_record_age_s!r}"
            )
        if not isinstance(self.parallelization_factor, int) or not 1 <= self.parallelization_factor <= 10:
            raise ValidationError(
                f"{where}: parallelization_factor must be 1-10, got {self.parallelization_factor!r}"
            )
        _check_destination(where, self.on_failure)


@dataclass(frozen=True)
class QueueMapping:
    batch_size: int = 10
    batching_window_s: float = 0.0
    report_batch_item_failures: bool = False
    maximum_concurrency: int | None = None

    def validate(self, fn: str) -> None:
        where = f"function {fn!r}"
        if not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= 10_000:
            raise ValidationError(f"{where}: batch_size must be 1-10000, got {self.batch_size!r}")
        if self.batch_size > 10 and self.batching_window_s < 1:
            raise ValidationError(
                f"{where}: a queue batch_size over 10 needs batching_window_s of at least 1 (as Lambda)"
            )
        if not 0 <= self.batching_window_s <= 300:
            raise ValidationError(f"{where}: batching_window_s must be 0-300")
        if self.maximum_concurrency is not None and not 2 <= self.maximum_concurrency <= 1000:
            raise ValidationError(f"{where}: maximum_concurrency must be 2-1000 or None")


def _check_destination(where: str, dest: object) -> None:
    from ..resources.queue import Queue
    from ..resources.stream import Stream

    if dest is not None and not isinstance(dest, (Queue, Stream)):
        raise ValidationError(f"{where}: on_failure must be a Queue or a Stream, got {dest!r}")
