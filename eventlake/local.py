"""What an embedded run leaves on disk, and removing it so that the next run starts empty."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["remove_local_data"]


def _remove_sqlite(url: str) -> None:
    from .backends.sqlite import remove_files

    remove_files(url)


def _remove_folder_url(url: str) -> None:
    parsed = urlparse(url)
    _remove_path((parsed.netloc + parsed.path) if parsed.netloc else parsed.path)


def _remove_path(location: str) -> None:
    path = Path(location)
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


# Only these schemes name files on this machine; every other URL names a server.
_LOCAL: dict[str, Callable[[str], None]] = {
    "sqlite": _remove_sqlite,
    "file": _remove_folder_url,
    "": _remove_path,
}


def remove_local_data(*locations: str) -> list[str]:
    """Delete the files behind ``locations`` (missing ones are fine); return the locations that
    name no files, which are left alone.

    A location is a ``sqlite:///`` URL (the database and its write-ahead log), a ``file://``
    URL (a lake folder) or a path to a file or folder (a DuckDB warehouse). A server's URL
    (``postgresql://...``) is returned untouched: its data may be shared with others, and a
    script that starts afresh must not empty a database by accident.
    """
    kept: list[str] = []
    for location in locations:
        remove = _LOCAL.get(urlparse(location).scheme)
        if remove is None:
            kept.append(location)
        else:
            remove(location)
    return kept
