"""Leases in the state backend: how worker processes share shards without a coordinator.

A lease is a kv row ``{owner, exp}``. It is taken when free or expired, renewed by its owner,
and checked inside the same transaction as every checkpoint write (fencing), so a worker that
lost its lease (paused, partitioned, or presumed dead) can never move a checkpoint.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterable

import orjson

from ..errors import LeaseLost
from ..ports.kv import KvTxn
from ..resources.env import Env

__all__ = ["LeaseLost", "Leases", "new_owner_id"]


def new_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leases:
    NS = "lease"
    WORKERS = "worker"

    def __init__(self, env: Env, owner: str, ttl_s: float) -> None:
        self.env = env
        self.owner = owner
        self.ttl = ttl_s
        self._held: dict[str, float] = {}
        # A lease's term changes whenever this worker takes it from someone else or after
        # giving it up (not when it renews it, nor when it takes back its own expired lease
        # nobody took): whatever it remembered of the shard before may have moved since.
        self._terms: dict[str, int] = {}
        self._next_term = 1
        self._lock = threading.Lock()

    def holds(self, name: str) -> bool:
        with self._lock:
            exp = self._held.get(name)
        return exp is not None and exp > self.env.clock.time()

    def held(self) -> list[str]:
        now = self.env.clock.time()
        with self._lock:
            return [n for n, e in self._held.items() if e > now]

    def term(self, name: str) -> int:
        """Which holding of ``name`` this is (0: never held): state kept about the shard under
        one term must be reloaded under another, since another worker may have moved it on."""
        return self._terms.get(name, 0)

    def try_acquire(self, name: str) -> bool:
        def run(txn: KvTxn) -> tuple[float, bool] | None:
            now = self.env.clock.time()
            exp = now + self.ttl
            doc = orjson.dumps({"owner": self.owner, "exp": exp}).decode()
            raw = txn.kv_get(self.NS, name, lock=True)
            if raw is None:
                # No row to lock yet: insert-if-absent decides between racing workers (an
                # upsert here would let both believe they won).
                return (exp, True) if txn.kv_insert(self.NS, name, doc) else None
            cur = orjson.loads(raw)
            if cur["owner"] != self.owner and cur["exp"] > now:
                return None
            txn.kv_put(self.NS, name, doc)
            return exp, cur["owner"] != self.owner

        got = self.env.state.transaction(run)
        with self._lock:
            if got is None:
                self._held.pop(name, None)
                return False
            exp, taken = got
            self._held[name] = exp
            if taken:
                self._terms[name] = self._next_term
                self._next_term += 1
        return True

    def renew_all(self) -> None:
        for name in self.held():
            self.try_acquire(name)

    def release(self, name: str) -> None:
        def run(txn: KvTxn) -> None:
            raw = txn.kv_get(self.NS, name, lock=True)
            if raw is not None and orjson.loads(raw)["owner"] == self.owner:
                txn.kv_delete(self.NS, name)

        with self._lock:
            self._held.pop(name, None)
        self.env.state.transaction(run)

    def release_all(self) -> None:
        for name in list(self._held):
            self.release(name)

    def check(self, txn: KvTxn, name: str, term: int | None = None) -> None:
        """Inside a transaction: fail unless this worker still holds ``name`` (and, given a
        ``term``, has held it without a break since that term began). The row stays locked
        until the commit, so the term cannot change before it either."""
        raw = txn.kv_get(self.NS, name, lock=True)
        now = self.env.clock.time()
        if raw is None:
            raise LeaseLost(f"lease {name} is not held by {self.owner}")
        cur = orjson.loads(raw)
        if cur["owner"] != self.owner or cur["exp"] <= now:
            with self._lock:
                self._held.pop(name, None)
            raise LeaseLost(f"lease {name} is held by {cur['owner']}, not {self.owner}")
        if term is not None and self._terms.get(name, 0) != term:
            raise LeaseLost(f"lease {name} was lost and taken again by {self.owner} since term {term}")

    # -- workers, for fair shares
    def heartbeat(self) -> None:
        exp = self.env.clock.time() + self.ttl
        self.env.state.transaction(lambda t: t.kv_put(self.WORKERS, self.owner, orjson.dumps(exp).decode()))

    def live_workers(self) -> int:
        now = self.env.clock.time()
        rows = self.env.state.transaction(lambda t: t.kv_list(self.WORKERS), readonly=True)
        return max(1, sum(1 for _, v in rows if orjson.loads(v) > now))

    def leave(self) -> None:
        self.release_all()
        self.env.state.transaction(lambda t: t.kv_delete(self.WORKERS, self.owner))

    def balance(self, wanted: Iterable[str]) -> None:
        """Take free leases up to a fair share and give back any beyond it."""
        wanted = sorted(wanted)
        if not wanted:
            return
        self.heartbeat()
        workers = self.live_workers()
        share = -(-len(wanted) // workers)
        self.renew_all()
        mine = [n for n in wanted if self.holds(n)]
        for name in mine[share:]:
            self.release(name)
        have = min(len(mine), share)
        # Start at an offset of our own so that workers do not all race for the same names.
        start = hash(self.owner) % len(wanted)
        for name in wanted[start:] + wanted[:start]:
            if have >= share:
                break
            if not self.holds(name) and self.try_acquire(name):
                have += 1
