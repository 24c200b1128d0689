"""EventBridge schedule expressions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from eventlake import ValidationError
from eventlake.schedule import parse_schedule


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("rate(1 minute)", at(2024, 1, 1, 0, 0, 30), at(2024, 1, 1, 0, 1)),
        ("rate(5 minutes)", at(2024, 1, 1, 0, 5), at(2024, 1, 1, 0, 10)),
        ("rate(2 hours)", at(2024, 1, 1, 1, 0), at(2024, 1, 1, 2, 0)),
        ("rate(1 day)", at(2024, 1, 1, 12), at(2024, 1, 2)),
        ("cron(0 10 * * ? *)", at(2024, 1, 1, 10, 0), at(2024, 1, 2, 10, 0)),
        ("cron(15 12 * * ? *)", at(2024, 1, 1), at(2024, 1, 1, 12, 15)),
        ("cron(0 18 ? * MON-FRI *)", at(2024, 1, 5, 19), at(2024, 1, 8, 18)),  # Fri evening → Mon
        ("cron(0 8 1 * ? *)", at(2024, 1, 1, 9), at(2024, 2, 1, 8)),
        ("cron(0/15 * * * ? *)", at(2024, 1, 1, 0, 16), at(2024, 1, 1, 0, 30)),
        ("cron(0 9 ? * 2 *)", at(2024, 1, 1, 9), at(2024, 1, 8, 9)),  # 2 = Monday in AWS
        ("at(2030-06-01T12:00:00)", at(2024, 1, 1), at(2030, 6, 1, 12)),
    ],
)
def test_next_fire(expr: str, after: datetime, expected: datetime) -> None:
    assert parse_schedule(expr).next_after(after) == expected


def test_one_time_schedule_fires_once() -> None:
    s = parse_schedule("at(2030-06-01T12:00:00)")
    assert s.next_after(at(2030, 6, 1, 12)) is None


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("rate(1 minutes)", "singular"),
        ("rate(5 minute)", "plural"),
        ("rate(0 minutes)", "positive"),
        ("cron(0 12 * * * *)", "'?'"),
        ("cron(0 12 * *)", "6 fields"),
        ("cron(99 12 * * ? *)", "out of range"),
        ("every 5 minutes", "expected rate"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expr: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_schedule(expr)
