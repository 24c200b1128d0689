"""The object-store port: what the lake needs of a store (S3's object model, cut down).

The contract every store keeps, checked by ``tests/backends/test_object_stores.py`` on each of them:

* **Keys** are what :func:`check_key` accepts: non-empty UTF-8 text of at most 1,024 bytes, no
  NUL, segments split on ``/`` that are neither empty, ``.`` nor ``..``, no leading or trailing
  ``/``. A store may refuse more (a folder cannot hold a segment over 255 bytes), always with a
  :class:`~eventlake.errors.ValidationError` and without writing anything.
* **put** replaces the whole object at once: a reader sees the old object or the new one,
  never a part. It returns the new object's size and ETag (the MD5 of its bytes, in hex).
* **get** of a missing key raises :class:`~eventlake.errors.ResourceNotFound`; **head** returns
  ``None``; **delete** returns whether there was an object.
* **list** yields the objects whose key starts with ``prefix`` (a plain string prefix, not a
  folder) in ascending key order, as ListObjectsV2 does. Its ``etag`` may be ``""`` where the
  store cannot give it without reading the object.
* **local_root** tells the SQL engine how DuckDB reads the objects: a local folder holding each
  object at its key, or ``None``; then the engine copies the objects a query may read into a
  private folder first (fine for ``memory://``; a remote store should name a folder or URL
  prefix that DuckDB reads directly).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from ..errors import ValidationError

MAX_KEY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    modified: float


def check_key(key: str) -> str:
    """S3 allows almost any key; a folder does not, so refuse what would escape or collide."""
    if not isinstance(key, str) or not key:
        raise ValidationError(f"object key must be a non-empty string, got {key!r}")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValidationError(f"object key {key!r} is not valid UTF-8 text (a lone surrogate)") from None
    if size > MAX_KEY_BYTES:
        raise ValidationError(f"object key is over {MAX_KEY_BYTES} bytes: {key[:60]!r}...")
    parts = key.split("/")
    if key.startswith("/") or any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] in (".", ".."):
        raise ValidationError(f"object key {key!r}: no leading '/', no empty, '.' or '..' path segments")
    if parts[-1] == "" or "\x00" in key:
        raise ValidationError(f"object key {key!r} must not end with '/' or contain NUL")
    return key


class ObjectStore(Protocol):
    """An object store; see the module docstring for the contract."""

    url: str

    def put(self, key: str, data: bytes) -> ObjectInfo: ...

    def get(self, key: str) -> bytes: ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def delete(self, key: str) -> bool: ...

    def local_root(self) -> str | None:
        """A local folder that holds each object as the file at its key, for engines that read
        files themselves (DuckDB, PyArrow); ``None`` when there is none."""
        ...
