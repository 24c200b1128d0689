"""The capability ports: one small typed Protocol per thing a backend can store.

* :class:`~.objects.ObjectStore` -- the lake's objects (what ``lake_url`` names)
"""

from .objects import ObjectInfo, ObjectStore, check_key

__all__ = ["ObjectInfo", "ObjectStore", "check_key"]
