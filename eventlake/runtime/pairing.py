"""Pairing a state backend's stream checkpoints with the stream store they were taken on."""

from __future__ import annotations

from ..errors import ConfigError
from ..ports.kv import KvTxn
from ..resources.env import Env


def pair_stream_store(env: Env, consumers: list[str]) -> None:
    """Refuse to consume streams from another store than the one the checkpoints came from.

    A stream consumer's checkpoint (in the state) is a sequence number of the stream store's
    records. Pointed at a different store - ``stream_url`` added, removed or changed, or its
    file replaced - it would silently skip that store's first records, or wait for numbers it
    never reaches. Each store gets an id when first used and the state keeps the id of the
    store its consumers read; a mismatch is refused while any of ``consumers`` (poller names)
    holds a checkpoint, and re-paired when none does (there is nothing to lose). Apps that
    only use tables and queues never pair: a stream store cannot affect them."""

    sid = env.stream_store.transaction(lambda t: t.log_store_id())

    def pair(t: KvTxn) -> tuple[str, list[str]] | None:
        if t.kv_insert("meta", "stream-store", sid):
            return None
        paired = t.kv_get("meta", "stream-store")
        if paired == sid:
            return None
        held = [c for c in consumers if t.kv_get("ckpt", c) is not None]
        if not held:
            t.kv_put("meta", "stream-store", sid)
            return None
        return str(paired), held

    mismatch = env.state.transaction(pair)
    if mismatch is not None:
        paired, held = mismatch
        where = env.settings.stream_url or "the state backend itself (stream_url unset)"
        raise ConfigError(
            f"stream checkpoints in this app's state ({', '.join(held[:3])}"
            f"{', ...' if len(held) > 3 else ''}) were taken on another stream store than "
            f"{where} (store {paired}; this one is {sid}): the consumers would skip records or "
            "wait for ones that never come. Point stream_url back at that store, or start "
            "these consumers afresh on a new state backend"
        )
