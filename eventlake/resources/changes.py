"""The change record: what a table write leaves in the table's change log, and how the
table-stream trigger reads it back. One JSON document per write::

    {"e": "INSERT" | "MODIFY" | "REMOVE", "k": KEYS, "n": NEW_IMAGE, "o": OLD_IMAGE, "s": SIZE}

Keys and images are DynamoDB JSON; ``n`` and ``o`` are there when the stream's view type
asks for them, ``s`` is the record's size as DynamoDB Streams counts it. The images are the
items' stored bytes spliced in, so a write never serialises its item a second time: the
writers build records from the pieces below with byte formatting, without a call per piece
on the commonest write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ..expressions import load_avs

NEW = b',"n":'  # followed by the new image's stored bytes
OLD = b',"o":'  # followed by the old image's stored bytes
#: The commonest record, an INSERT into a table keyed by one string attribute:
#: ``INSERT % (insert_prefix(pk_name), key value JSON, new image bytes, size)``.
INSERT = b'%b%b},"n":%b,"s":%d}'


def head(event: bytes, keys: bytes) -> bytes:
    """The start of a record: its event name and its keys (DynamoDB JSON bytes)."""
    return b'{"e":"' + event + b'","k":' + keys


def finish(start: bytes, size: int) -> bytes:
    """A record from :func:`head` (and :data:`NEW`/:data:`OLD` images after it) with its size."""
    return b'%b,"s":%d}' % (start, size)


def insert_prefix(pk_name: str) -> bytes:
    """What every INSERT record of a table keyed by ``pk_name`` alone starts with, up to the
    key's value (worked out once per table, for :data:`INSERT`)."""
    return head(b"INSERT", b"{" + orjson.dumps(pk_name) + b":")


#: A record as a dict with ``e``, ``k``, ``s`` and, as stored, ``n`` and ``o`` (the stored
#: DynamoDB JSON reader itself: a table stream decodes every record, so no wrapper).
decode: Callable[[bytes], Any] = load_avs
