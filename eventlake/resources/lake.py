"""The lake: objects in a folder or an object store, with S3-style object events.

Every put and delete appends an event to the internal log ``lake:events`` in the state
backend; ``on_object`` triggers read that log with the same machinery as stream triggers
(retries, then a dead-letter destination), so object triggers survive restarts.
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Iterator
from typing import Any

from ..ports.objects import ObjectInfo, ObjectStore, check_key
from .env import Env
from .stream import to_bytes

EVENTS_LOG = "lake:events"


class Lake:
    def __init__(self, env: Env, store: ObjectStore, bucket: str = "lake") -> None:
        self.env = env
        self.store = store
        self.bucket = bucket

    def put(self, key: str, data: Any) -> ObjectInfo:
        check_key(key)
        info = self.store.put(key, to_bytes(data))
        self._event("ObjectCreated:Put", info.key, info.size, info.etag)
        return info

    def get(self, key: str) -> bytes:
        return self.store.get(key)

    def head(self, key: str) -> ObjectInfo | None:
        return self.store.head(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.store.list(prefix)

    def keys(self, prefix: str = "") -> builtins.list[str]:
        return [o.key for o in self.store.list(prefix)]

    def delete(self, key: str) -> bool:
        removed = self.store.delete(key)
        if removed:
            self._event("ObjectRemoved:Delete", key, 0, "")
        return removed

    def local_path(self, key: str) -> str | None:
        """The file holding the object, for readers of files (PyArrow); None if the store has none."""
        root = self.store.local_root()
        return None if root is None else os.path.join(root, check_key(key))

    def _event(self, name: str, key: str, size: int, etag: str) -> None:
        doc = json.dumps({"event": name, "key": key, "size": size, "etag": etag}).encode()
        ts = self.env.clock.time()
        self.env.state.transaction(lambda t: t.log_append(EVENTS_LOG, 0, [(key, doc, ts)]))
        self.env.signals.notify(EVENTS_LOG)
