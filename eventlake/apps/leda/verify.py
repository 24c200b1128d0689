"""Scoring as the workshop does: every non-count key within 1e-5, else the round scores 0."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from rich.table import Table as RichTable

from .generator import COUNT_KEY

TOLERANCE = Decimal("0.00001")


@dataclass
class Score:
    score: int
    rows: list[tuple[str, Decimal, Decimal, Decimal]]  # key, expected, actual, difference
    expected_count: int
    actual_count: int

    @property
    def ok(self) -> bool:
        return self.score == 100

    def table(self) -> RichTable:
        t = RichTable(title=f"score {self.score}", show_lines=False)
        for col in ("key", "expected", "actual", "difference"):
            t.add_column(col, justify="right" if col != "key" else "left")
        for key, exp, act, diff in self.rows:
            style = "bold red" if abs(diff) > TOLERANCE else None
            t.add_row(key, f"{exp:,.2f}", f"{act:,.2f}", f"{diff:+,.2f}", style=style)
        style = "bold red" if self.expected_count != self.actual_count else None
        t.add_row(
            COUNT_KEY,
            str(self.expected_count),
            str(self.actual_count),
            f"{self.actual_count - self.expected_count:+d}",
            style=style,
        )
        return t


def score_round(expected: dict[str, Decimal], actual: dict[str, Decimal], expected_count: int) -> Score:
    keys = sorted((set(expected) | set(actual)) - {COUNT_KEY})
    rows = []
    ok = True
    for k in keys:
        e = expected.get(k, Decimal(0))
        a = actual.get(k, Decimal(0))
        d = a - e
        rows.append((k, e, a, d))
        if abs(d) > TOLERANCE:
            ok = False
    return Score(100 if ok else 0, rows, expected_count, int(actual.get(COUNT_KEY, 0)))
