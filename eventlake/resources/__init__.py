"""Streams, tables, queues, the lake, delivery and SQL: the semantics, written once above the
backends."""
