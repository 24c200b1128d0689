"""The machine's speed beside every benchmark figure (see scripts/speedcheck.py for why)."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "speedcheck.py")


def speed_check() -> float:
    """Seconds for the speed-check loop, in a fresh interpreter (not this process's warm heap)."""
    out = subprocess.run([sys.executable, SCRIPT], check=True, capture_output=True, text=True)
    return float(out.stdout)


def speed_line(before: float, after: float) -> str:
    return (
        f"machine speed check (scripts/speedcheck.py, lower is faster): {before:.4f} s before, "
        f"{after:.4f} s after"
    )
