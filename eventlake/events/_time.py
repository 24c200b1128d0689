from __future__ import annotations

import time


def iso_ms(ts: float) -> str:
    """``2024-01-01T00:00:00.123Z``, the timestamp format of S3, EventBridge and Lambda records."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def iso_s(ts: float) -> str:
    """``2024-01-01T00:00:00Z``: EventBridge's ``time`` field has no fractional seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
