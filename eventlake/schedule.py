"""EventBridge schedule expressions: ``rate(...)``, ``cron(...)`` and ``at(...)``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .errors import ValidationError

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_UNIT = {"minute": 60, "hour": 3600, "day": 86400}
_DOW = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}


@dataclass(frozen=True)
class Schedule:
    expression: str
    kind: str
    every_s: int = 0
    at: datetime | None = None
    cron: str = ""
    anchor: datetime = datetime(1970, 1, 1, tzinfo=UTC)

    def next_after(self, dt: datetime) -> datetime | None:
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        if self.kind == "rate":
            n = int((dt - self.anchor).total_seconds() // self.every_s) + 1
            return self.anchor + timedelta(seconds=n * self.every_s)
        if self.kind == "at":
            assert self.at is not None
            return self.at if self.at > dt else None
        from croniter import croniter

        return croniter(self.cron, dt).get_next(datetime)


def _bad(expr: str, why: str) -> ValidationError:
    return ValidationError(f"Invalid schedule expression {expr!r}: {why}")


def parse_schedule(expr: str) -> Schedule:
    if not isinstance(expr, str):
        raise ValidationError(f"schedule expression must be a string, got {expr!r}")
    e = expr.strip()
    m = _RATE.match(e)
    if m:
        value, unit = int(m.group(1)), m.group(2)
        if value < 1:
            raise _bad(expr, "the rate value must be a positive integer")
        if (value == 1) != (not unit.endswith("s")):
            raise _bad(expr, "use the singular unit for 1 (rate(1 minute)) and the plural otherwise")
        return Schedule(expr, "rate", every_s=value * _UNIT[unit.rstrip("s")])
    m = _AT.match(e)
    if m:
        return Schedule(expr, "at", at=datetime.fromisoformat(m.group(1)).replace(tzinfo=UTC))
    if e.startswith("cron(") and e.endswith(")"):
        fields = e[5:-1].split()
        if len(fields) != 6:
            raise _bad(
                expr,
                f"cron needs 6 fields (minutes hours day-of-month month day-of-week year), got {len(fields)}",
            )
        minute, hour, dom, month, dow, year = fields
        if (dom == "?") == (dow == "?"):
            raise _bad(expr, "use '?' in exactly one of day-of-month and day-of-week")
        if year != "*":
            raise _bad(expr, "only '*' is supported in the year field")

        def dow_num(tok: str) -> str:
            tok = tok.upper()
            for name, n in _DOW.items():
                tok = tok.replace(name, str(n))
            return re.sub(r"\d+", lambda x: str((int(x.group()) - 1) % 7), tok)

        cron = " ".join(
            [minute, hour, "*" if dom == "?" else dom, month, "*" if dow == "?" else dow_num(dow)]
        )
        from croniter import croniter

        if not croniter.is_valid(cron):
            raise _bad(expr, "a field is out of range or malformed")
        return Schedule(expr, "cron", cron=cron)
    raise _bad(expr, "expected rate(N unit), cron(min hour dom month dow year) or at(yyyy-mm-ddThh:mm:ss)")
