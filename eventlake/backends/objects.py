"""The object-store port (the lake) and its local-folder engine.

Objects are written to a temporary file and renamed into place, so a reader never sees half
an object and a crash leaves either the old object or the new one. S3-compatible stores
register under their own scheme (``s3://``) the same way.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ConfigError, ResourceNotFound, ValidationError
from .registry import open_url


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
    if len(key.encode("utf-8")) > 1024:
        raise ValidationError(f"object key is over 1024 bytes: {key[:60]!r}...")
    parts = key.split("/")
    if key.startswith("/") or any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] in (".", ".."):
        raise ValidationError(f"object key {key!r}: no leading '/', no empty, '.' or '..' path segments")
    if parts[-1] == "" or "\x00" in key:
        raise ValidationError(f"object key {key!r} must not end with '/' or contain NUL")
    return key


class ObjectStore(ABC):
    url: str

    @abstractmethod
    def put(self, key: str, data: bytes) -> ObjectInfo: ...

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None: ...

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    @abstractmethod
    def delete(self, key: str) -> bool: ...

    def local_path(self, key: str) -> str | None:
        """A filesystem path for engines (DuckDB, PyArrow) that read files directly, if any."""
        return None


class FileStore(ObjectStore):
    """A folder on disk: ``file://./lake`` (relative) or ``file:///abs/lake``."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        path = (parsed.netloc + parsed.path) if parsed.netloc else parsed.path
        if not path:
            raise ConfigError(f"lake_url {url!r}: no folder; e.g. file://./lake")
        self.url = url
        self.root = Path(path).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> ObjectInfo:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValidationError(f"object data must be bytes, not {type(data).__name__}")
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        st = path.stat()
        return ObjectInfo(key, st.st_size, hashlib.md5(data).hexdigest(), st.st_mtime)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ResourceNotFound(f"lake object {key!r} does not exist") from None

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        data = path.read_bytes()
        return ObjectInfo(key, len(data), hashlib.md5(data).hexdigest(), path.stat().st_mtime)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Keys in lexicographic order, like S3's ListObjectsV2."""
        base = self.root
        keys: list[str] = []
        for dirpath, _dirs, files in os.walk(base):
            rel = os.path.relpath(dirpath, base)
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                key = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        for key in sorted(keys):
            st = (base / key).stat()
            yield ObjectInfo(key, st.st_size, "", st.st_mtime)

    def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        # Drop folders left empty, so listings and partition discovery stay clean.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
        return True

    def local_path(self, key: str) -> str | None:
        return str(self._path(key))


def open_object_store(url_or_store: str | ObjectStore) -> ObjectStore:
    """The object store ``lake_url`` names (schemes come from :mod:`eventlake.backends.registry`)."""
    if isinstance(url_or_store, ObjectStore):
        return url_or_store
    store: ObjectStore = open_url("objects", url_or_store, setting="lake_url")
    return store
