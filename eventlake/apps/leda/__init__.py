"""leda: the exactly-once aggregation lab (AWS DynamoDB Labs, event-driven architecture).

stream IncomingDataStream → state (upsert into StateTable) → StateTable stream → map (deltas
per RiskType:TradeDesk:Region, one message per batch into ReduceTable) → ReduceTable stream →
reduce (one transaction of ADD updates into AggregateTable, rolled up the hierarchy).
"""

from .app import MODES, build_app
from .generator import Generator
from .runner import LedaRun, RoundResult
from .verify import Score, score_round

__all__ = ["MODES", "Generator", "LedaRun", "RoundResult", "Score", "build_app", "score_round"]
