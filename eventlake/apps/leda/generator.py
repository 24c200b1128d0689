"""The trade generator, as the workshop describes it, and the expected totals.

A round is ``batches`` × ``per_batch`` records (250 × 40 in the workshop). In hard mode each
batch has ``per_batch - 5`` unique records plus 5 exact duplicates of records of the same
batch, and 3 % of the records modify a trade of an earlier round with a newer version or an
older (stale) one, which must be ignored. Modifications only touch trades of earlier rounds,
at most once per trade per round: a round is verified when it has been processed, so every
effect is then deterministic (which stale or newer record wins does not depend on shard
timing), and the number of state changes is known exactly (``effects``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from hashlib import sha256

from orjson import dumps

RISK_TYPES = ("PV", "Delta")
REGIONS = ("EMEA", "APAC", "AMER")
DESKS = ("FXSpot", "FXOptions")
COUNT_KEY = "message_count"
# RFC 4122 version 4: the version nibble 4, the variant bits 10
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET = (4 << 76) | (0x8000 << 48)


@dataclass
class Trade:
    trade_id: str
    version: int
    value: Decimal
    risk: str
    desk: str
    region: str

    def leaf(self) -> str:
        return f"{self.risk}:{self.desk}:{self.region}"


@dataclass
class Generator:
    seed: int = 1
    hard: bool = False
    batches: int = 250
    per_batch: int = 40
    modify_rate: float = 0.03
    duplicates: int = 5
    state: dict[str, Trade] = field(default_factory=dict)
    effects: int = 0  # state changes the pipeline must make (message_count must equal it)
    rounds: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _uuid(self) -> str:
        # uuid.UUID(int=bits, version=4), spelt out: the same string, a third of the time
        # (the generator shares the machine with the pipeline it measures).
        n = (self.rng.getrandbits(128) & _UUID_CLEAR) | _UUID_SET
        h = f"{n:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _value(self) -> Decimal:
        return Decimal(self.rng.randrange(0, 10_000_001)) / 100

    def _record(self, t: Trade, ts: float) -> dict[str, object]:
        return {
            "TradeID": t.trade_id,
            "Value": float(t.value),
            "Version": t.version,
            "Timestamp": ts,
            "Hierarchy": {"RiskType": t.risk, "Region": t.region, "TradeDesk": t.desk},
        }

    def round(self) -> Iterator[list[dict[str, object]]]:
        """Yield the batches of one round: lists of ``{"data": json_bytes, "partition_key": ...}``."""
        previous = list(self.state)  # trades of earlier rounds only
        touched: set[str] = set()
        self.rounds += 1
        for _ in range(self.batches):
            ts = time.time()
            unique = self.per_batch - (self.duplicates if self.hard else 0)
            texts: list[bytes] = []
            for _ in range(unique):
                if self.hard and previous and self.rng.random() < self.modify_rate:
                    tid = self.rng.choice(previous)
                    if tid not in touched:
                        touched.add(tid)
                        texts.append(self._modify(tid, ts))
                        continue
                t = Trade(
                    self._uuid(),
                    1,
                    self._value(),
                    self.rng.choice(RISK_TYPES),
                    self.rng.choice(DESKS),
                    self.rng.choice(REGIONS),
                )
                self.state[t.trade_id] = t
                self.effects += 1
                texts.append(dumps(self._record(t, ts)))
            if self.hard:
                texts += [self.rng.choice(texts) for _ in range(self.duplicates)]
                self.rng.shuffle(texts)
            yield [{"data": x, "partition_key": sha256(x).hexdigest()} for x in texts]

    def _modify(self, tid: str, ts: float) -> bytes:
        cur = self.state[tid]
        if self.rng.random() < 0.5:
            # Newer version: a new value, and sometimes a new place in the hierarchy.
            new = Trade(tid, cur.version + 1, self._value(), cur.risk, cur.desk, cur.region)
            if self.rng.random() < 0.3:
                new.region = self.rng.choice(REGIONS)
                new.desk = self.rng.choice(DESKS)
            self.state[tid] = new
            self.effects += 1
            return dumps(self._record(new, ts))
        stale = Trade(tid, cur.version - 1, self._value(), cur.risk, cur.desk, self.rng.choice(REGIONS))
        return dumps(self._record(stale, ts))

    def expected(self) -> dict[str, Decimal]:
        """Totals of the final state (latest version per trade), rolled up the hierarchy."""
        out: dict[str, Decimal] = {}
        for t in self.state.values():
            parts = t.leaf().split(":")
            for i in range(1, 4):
                key = ":".join(parts[:i])
                out[key] = out.get(key, Decimal(0)) + t.value
        return out

    def records_per_round(self) -> int:
        return self.batches * self.per_batch
