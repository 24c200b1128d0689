"""The leda pipeline on eventlake, in three modes.

* ``lab1`` — the workshop's naive code: plain puts in state, no token in reduce. Under
  failures it double counts, and stale versions overwrite newer ones.
* ``lab2`` — the workshop's fix: conditional put ``attribute_not_exists(id) OR Version < :v``
  in state, and ``ClientRequestToken = md5(batch)`` on the reduce transaction.
* ``atomic`` — eventlake's own: state and reduce commit their effects together with their
  checkpoints (``atomic=True``); the version condition stays (stale data is a data rule).

Failure injection reads its rates from ParameterTable, as the workshop does: state fails
mid-batch (after some writes), map after its write, reduce after its transaction.

A record the state function cannot read (not base64, not JSON, a field missing or of the
wrong type) would fail its batch on every retry and hold its shard forever - the workshop's
Lambda, retrying without end, does exactly that. Here it goes to **RejectedRecords** (keyed by
the record's event id, so a retried batch rejects it once) with the reason, and the batch
goes on. The map function does the same for a StateTable image it cannot count.

The functions are the workshop's, with one liberty: records are parsed with orjson instead
of ``json``, because parsing a trade is a large share of the state function's own work.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import random
import time
from binascii import a2b_base64
from collections import defaultdict
from decimal import Decimal
from typing import Any

from orjson import JSONDecodeError, loads

from eventlake import App, ConditionalCheckFailed, ValidationError

from .generator import COUNT_KEY

MODES = ("lab1", "lab2", "atomic")
REJECTS = "RejectedRecords"
_LEVELS = ("RiskType", "TradeDesk", "Region")
DEFAULT_FAILURES = {"state": 0.05, "map": 0.10, "reduce": 0.10}


class InjectedFailure(Exception):
    """A failure injected on purpose, as the workshop's ParameterTable asks."""


def build_app(
    mode: str = "lab2",
    *,
    state_url: str | None = None,
    lake_url: str | None = None,
    shards: int = 4,
    map_window_s: float = 3.0,
    stale_after_s: float = 60.0,
    seed: int | None = None,
    **settings: Any,
) -> App:
    if mode not in MODES:
        raise ValidationError(f"leda mode must be one of {', '.join(MODES)}, got {mode!r}")
    app = App("leda", state_url=state_url, lake_url=lake_url, **settings)
    incoming = app.stream("IncomingDataStream", shards=shards)
    state = app.table("StateTable", key="id", stream="new_and_old_images")
    reduce_table = app.table("ReduceTable", key="MessageId", stream="new_image")
    aggregate = app.table("AggregateTable", key="Identifier")
    params = app.table("ParameterTable", key="parameter")
    rejects = app.table(REJECTS, key="id")
    rng = random.Random(seed)
    atomic = mode == "atomic"

    def rate(name: str) -> float:
        item = params.get({"parameter": f"{name}_failure_rate"})
        return float(item["value"]) if item else 0.0

    @app.on_stream(incoming, batch_size=100, max_retry_attempts=-1, atomic=atomic, name="state")
    def state_fn(event: dict[str, Any], context: Any) -> None:
        records = event["Records"]
        fail_at = rng.randrange(len(records)) if rng.random() < rate("state") else -1
        now = time.time()
        for i, r in enumerate(records):
            if i == fail_at:
                raise InjectedFailure(f"state failed after {i} of {len(records)} writes")
            try:
                trade = loads(a2b_base64(r["kinesis"]["data"]))
                if now - trade["Timestamp"] > stale_after_s:
                    continue
                h = trade["Hierarchy"]
                if (
                    type(h) is not dict
                    or type(h.get("RiskType")) is not str
                    or type(h.get("TradeDesk")) is not str
                    or type(h.get("Region")) is not str
                ):
                    raise ValueError(f"Hierarchy must hold {', '.join(_LEVELS)} as strings")
                version = trade["Version"]
                if type(version) is not int:
                    raise ValueError(f"Version must be an integer, got {version!r:.40}")
                item = {
                    "id": trade["TradeID"],
                    "Value": Decimal(str(trade["Value"])),
                    "Version": version,
                    "Timestamp": Decimal(str(trade["Timestamp"])),
                    "Hierarchy": h,
                }
            except (ValueError, KeyError, TypeError, ArithmeticError) as e:
                _reject(rejects, r, e)
                continue
            try:
                if mode == "lab1":
                    state.put(item)
                else:
                    state.put(
                        item,
                        condition="attribute_not_exists(id) OR Version < :v",
                        values={":v": version},
                    )
            except ConditionalCheckFailed:
                pass  # a duplicate or a stale version: nothing to do
            except ValidationError as e:  # a value the table refuses (an empty id, NaN)
                _reject(rejects, r, e)

    @app.on_table_stream(
        state, batch_size=10_000, batching_window_s=map_window_s, max_retry_attempts=-1, name="map"
    )
    def map_fn(event: dict[str, Any], context: Any) -> None:
        deltas: dict[str, Decimal] = defaultdict(Decimal)
        count = 0
        for r in event["Records"]:
            ddb = r["dynamodb"]
            name = r["eventName"]
            # An image without a leaf and a value (an item written to StateTable by hand) is
            # never counted: its new side is rejected with the reason, and as an old side it
            # is not subtracted, since it was never added.
            # (A missing image is not tolerated: the stream must carry new and old images.)
            if name != "REMOVE":
                new = ddb["NewImage"]
                try:
                    leaf, value = _leaf(new), Decimal(new["Value"]["N"])
                except (KeyError, TypeError, ArithmeticError) as e:
                    _reject_change(rejects, r, e)
                else:
                    deltas[leaf] += value
                    count += 1
            if name != "INSERT":
                old = ddb["OldImage"]
                try:
                    leaf, value = _leaf(old), Decimal(old["Value"]["N"])
                except (KeyError, TypeError, ArithmeticError):
                    pass
                else:
                    deltas[leaf] -= value
        message = json.dumps({"deltas": {k: str(v) for k, v in deltas.items()}, COUNT_KEY: count})
        batch_id = _batch_hash(hashlib.sha256(), event["Records"])
        try:
            reduce_table.put(
                {"MessageId": batch_id, "Message": message}, condition="attribute_not_exists(MessageId)"
            )
        except ConditionalCheckFailed:
            pass  # this batch was already written by an earlier attempt
        if rng.random() < rate("map"):
            raise InjectedFailure("map failed after its write")

    @app.on_table_stream(
        reduce_table,
        batch_size=1000,
        max_retry_attempts=-1,
        reserved_concurrency=1,
        atomic=atomic,
        name="reduce",
    )
    def reduce_fn(event: dict[str, Any], context: Any) -> None:
        totals: dict[str, Decimal] = defaultdict(Decimal)
        count = 0
        for r in event["Records"]:
            if r["eventName"] != "INSERT":
                continue
            msg = json.loads(r["dynamodb"]["NewImage"]["Message"]["S"])
            for leaf, v in msg["deltas"].items():
                parts = leaf.split(":")
                for i in range(1, 4):
                    totals[":".join(parts[:i])] += Decimal(v)
            count += msg[COUNT_KEY]
        if not totals and not count:
            return
        actions = [
            aggregate.tx_update({"Identifier": k}, "ADD #v :d", names={"#v": "Value"}, values={":d": v})
            for k, v in sorted(totals.items())
        ]
        actions.append(
            aggregate.tx_update(
                {"Identifier": COUNT_KEY}, "ADD #v :d", names={"#v": "Value"}, values={":d": count}
            )
        )
        token = None
        if mode == "lab2":
            token = _batch_hash(hashlib.md5(), event["Records"])
        app.transact(actions, token=token)
        if rng.random() < rate("reduce"):
            raise InjectedFailure("reduce failed after its transaction committed")

    return app


def _reject(rejects: Any, record: dict[str, Any], error: Exception) -> None:
    """Keep a record the state function cannot read, with the reason, instead of failing its
    batch forever (binascii.Error and orjson's errors are ValueErrors; a put's ValidationError
    names the attribute)."""
    k = record["kinesis"]
    rejects.put(
        {
            "id": record["eventID"],
            "SequenceNumber": k["sequenceNumber"],
            "PartitionKey": k["partitionKey"],
            "Data": k["data"],  # base64, as it came: the record may not even be text
            "Reason": _reason(error)[:1000],
        }
    )


def _reason(error: Exception) -> str:
    if isinstance(error, JSONDecodeError):
        return f"data is not JSON: {error}"
    if isinstance(error, binascii.Error):
        return f"data is not base64: {error}"
    if isinstance(error, KeyError):
        return f"field {error} missing"
    if isinstance(error, ValueError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _reject_change(rejects: Any, record: dict[str, Any], error: Exception) -> None:
    """Keep a StateTable change whose new image map cannot count (no Hierarchy, no numeric
    Value), with the reason; keyed by the change's event id, so a retried batch keeps it once."""
    ddb = record["dynamodb"]
    rejects.put(
        {
            "id": record["eventID"],
            "SequenceNumber": ddb["SequenceNumber"],
            "Keys": json.dumps(ddb.get("Keys")),
            "Data": json.dumps(ddb.get("NewImage"))[:10_000],
            "Reason": f"map: StateTable image cannot be counted: {_reason(error)}"[:1000],
        }
    )


def rejected(app: App) -> list[dict[str, Any]]:
    """The records the state function could not read, with the reasons."""
    return list(app.table(REJECTS, key="id").items())


def _batch_hash(h: Any, records: list[dict[str, Any]]) -> str:
    """A hash of the batch (the workshop hashes the whole event): the records' event ids and
    sequence numbers identify them, and a retried batch has the same ones. Hashing the ids
    instead of the JSON of 10,000 records cost a tenth of map's time."""
    h.update("".join([r["eventID"] + r["dynamodb"]["SequenceNumber"] for r in records]).encode())
    return str(h.hexdigest())


def _leaf(image: dict[str, Any]) -> str:
    h = image["Hierarchy"]["M"]
    return f"{h['RiskType']['S']}:{h['TradeDesk']['S']}:{h['Region']['S']}"


def set_failures(app: App, rates: dict[str, float] | None) -> None:
    """Write the failure rates into ParameterTable (all zero when ``rates`` is None)."""
    params = app.table("ParameterTable", key="parameter")
    for name in ("state", "map", "reduce"):
        value = (rates or {}).get(name, 0.0)
        if not 0 <= value <= 1:
            raise ValidationError(f"failure rate for {name} must be 0-1, got {value}")
        params.put({"parameter": f"{name}_failure_rate", "value": Decimal(str(value))})


def aggregates(app: App) -> dict[str, Decimal]:
    return {i["Identifier"]: i["Value"] for i in app.table("AggregateTable", key="Identifier").items()}
