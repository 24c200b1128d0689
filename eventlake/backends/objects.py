"""Object-store engines (the lake): a local folder (``file://``) and ``memory://``.

The port they implement, and its contract, is :mod:`eventlake.ports.objects`. A folder writes
each object to a temporary file and renames it into place, so a reader never sees half an
object and a crash leaves either the old object or the new one.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ConfigError, ResourceNotFound, ValidationError
from ..ports.objects import ObjectInfo, ObjectStore, check_key
from .registry import open_url

__all__ = ["FileStore", "MemoryStore", "ObjectInfo", "ObjectStore", "check_key", "open_object_store"]

_TMP = ".tmp-"  # in-flight writes in a folder store; never listed, so not a key's last segment
_NAME_MAX = 255  # bytes in one file or folder name on the filesystems eventlake runs on


class FileStore:
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
        segments = key.split("/")
        long = next((p for p in segments if len(p.encode("utf-8")) > _NAME_MAX), None)
        if long is not None:
            raise ValidationError(
                f"object key {key!r}: a folder lake cannot hold a path segment over {_NAME_MAX} bytes "
                f"({long[:40]!r}...); use shorter partition values or file names"
            )
        if segments[-1].startswith(_TMP):
            raise ValidationError(f"object key {key!r}: names starting {_TMP!r} are a folder lake's own")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise self._shadowed(key) from None
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException as e:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            if isinstance(e, OSError) and e.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                raise self._shadowed(key) from None
            raise
        st = path.stat()
        return ObjectInfo(key, st.st_size, hashlib.md5(data).hexdigest(), st.st_mtime)

    def _existing(self, key: str) -> Path | None:
        """The path of a key that may exist; None for one no folder can hold (a segment over
        the filesystem's name limit), which therefore does not exist."""
        path = self._path(key)
        if any(len(p.encode("utf-8")) > _NAME_MAX for p in key.split("/")):
            return None
        return path

    def get(self, key: str) -> bytes:
        path = self._existing(key)
        try:
            if path is not None:
                return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            pass
        raise ResourceNotFound(f"lake object {key!r} does not exist")

    def head(self, key: str) -> ObjectInfo | None:
        path = self._existing(key)
        if path is None or not path.is_file():
            return None
        data = path.read_bytes()
        return ObjectInfo(key, len(data), hashlib.md5(data).hexdigest(), path.stat().st_mtime)

    @staticmethod
    def _shadowed(key: str) -> ValidationError:
        return ValidationError(
            f"object key {key!r}: a folder lake cannot hold an object and a folder of one name "
            "(as S3 can hold 'a' and 'a/b'); choose keys where no key is a folder of another"
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Keys in lexicographic order, like S3's ListObjectsV2. Only the folder the prefix
        names is walked; a prefix whose folder part no key can have lists nothing."""
        base = self.root
        folder = prefix.rpartition("/")[0]
        start = base
        if folder:
            if any(p in ("", ".", "..") or "\x00" in p for p in folder.split("/")):
                return
            start = base / folder
            if not start.is_dir():
                return
        keys: list[str] = []
        for dirpath, _dirs, files in os.walk(start):
            rel = os.path.relpath(dirpath, base)
            for name in files:
                if name.startswith(_TMP):
                    continue
                key = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        for key in sorted(keys):
            st = (base / key).stat()
            yield ObjectInfo(key, st.st_size, "", st.st_mtime)

    def delete(self, key: str) -> bool:
        path = self._existing(key)
        if path is None:
            return False
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
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

    def local_root(self) -> str | None:
        return str(self.root)

    def local_path(self, key: str) -> str | None:
        return str(self._path(key))


class _Bucket:
    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, ObjectInfo]] = {}
        self.lock = threading.Lock()


_NAMED: dict[str, _Bucket] = {}
_NAMED_LOCK = threading.Lock()


class MemoryStore:
    """Objects in this process, for tests and examples: no files. ``memory://`` is a new store
    of its own; ``memory://name`` is one store shared by every App of the process naming it,
    as two Apps on one folder share it."""

    def __init__(self, url: str = "memory://") -> None:
        parsed = urlparse(url)
        if parsed.scheme != "memory" or parsed.query or parsed.params or parsed.fragment:
            raise ConfigError(f"lake_url {url!r}: use memory:// or memory://name")
        name = (parsed.netloc + parsed.path).strip("/")
        self.url = url
        if name:
            with _NAMED_LOCK:
                self._bucket = _NAMED.setdefault(name, _Bucket())
        else:
            self._bucket = _Bucket()

    def put(self, key: str, data: bytes) -> ObjectInfo:
        check_key(key)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValidationError(f"object data must be bytes, not {type(data).__name__}")
        body = bytes(data)
        info = ObjectInfo(key, len(body), hashlib.md5(body).hexdigest(), time.time())
        with self._bucket.lock:
            self._bucket.objects[key] = (body, info)
        return info

    def get(self, key: str) -> bytes:
        check_key(key)
        with self._bucket.lock:
            entry = self._bucket.objects.get(key)
        if entry is None:
            raise ResourceNotFound(f"lake object {key!r} does not exist")
        return entry[0]

    def head(self, key: str) -> ObjectInfo | None:
        check_key(key)
        with self._bucket.lock:
            entry = self._bucket.objects.get(key)
        return None if entry is None else entry[1]

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Keys in ascending order, like S3's ListObjectsV2; a snapshot taken when called."""
        with self._bucket.lock:
            infos = [info for key, (_, info) in self._bucket.objects.items() if key.startswith(prefix)]
        infos.sort(key=lambda i: i.key)
        return iter(infos)

    def delete(self, key: str) -> bool:
        check_key(key)
        with self._bucket.lock:
            return self._bucket.objects.pop(key, None) is not None

    def local_root(self) -> str | None:
        return None


def open_object_store(url_or_store: str | ObjectStore) -> ObjectStore:
    """The object store ``lake_url`` names (schemes come from :mod:`eventlake.backends.registry`)."""
    if not isinstance(url_or_store, str):
        return url_or_store
    store: ObjectStore = open_url("objects", url_or_store, setting="lake_url")
    return store
