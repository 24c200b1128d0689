"""The EventBridge "Scheduled Event" document a scheduled rule sends to its target."""

from __future__ import annotations

from typing import Any

from ._time import iso_s
from .arns import DEFAULT_ACCOUNT, DEFAULT_REGION, rule_arn


def scheduled_event(
    *, rule_name: str, ts: float, event_id: str, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": iso_s(ts),
        "region": region,
        "resources": [rule_arn(rule_name, region=region, account=account)],
        "detail": {},
    }
