"""Item encoders compiled per shape: the put path's answer to the interpreter's cost per step.

A put turns a caller's item into its normalised form, its DynamoDB JSON and its size
(:func:`eventlake.expressions.values.prepare_item`). The items of a table mostly share one
shape - the same attribute names, in the same order, holding values of the same types - and
the general walk spends most of its time finding out again, value by value, what the last
item already said: looping, dispatching on type, measuring attribute names. For a shape seen
a few times this module writes straight-line Python for it (once, with ``exec``) that does
only what differs from item to item.

The generated code checks every type and key it assumes and returns ``None`` at the first
difference; the caller then takes the general walk, which remains the reference and the one
that reports errors. Attribute names enter the code only through ``repr``, as literals.
Written by hand because no library encodes DynamoDB JSON (boto3's serializer is a plain walk).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

Encoder = Callable[[dict[str, Any]], "tuple[dict[str, Any], dict[str, Any], int] | None"]

SIGHTINGS = 3  # a shape is compiled when seen this often: one-off shapes never pay for it
MAX_SHAPES = 512
MAX_DEPTH = 32  # as values.MAX_DEPTH: nesting of lists and maps
MAX_VALUES = 256  # values per shape: beyond that the source is large and the gain small
_INT_LIMIT = 10**38

# attribute names (a tuple, in order) -> the compiled encoder; and sightings of the others
compiled: dict[tuple[Any, ...], Encoder] = {}
_sightings: dict[tuple[Any, ...], int] = {}


class _Unsupported(Exception):
    """A value the compiled code does not handle (a list, a float, bytes, a set...)."""


def seen(keys: tuple[Any, ...], item: dict[str, Any]) -> None:
    """Count a sighting of a shape whose item the general walk accepted; compile it when it
    recurs. ``item`` is the model for the types the code will expect. A shape that cannot be
    compiled is counted on past the threshold and never tried again."""
    n = _sightings.get(keys, 0) + 1
    if len(_sightings) >= MAX_SHAPES:
        _sightings.clear()
    _sightings[keys] = n
    if n != SIGHTINGS or keys in compiled:
        return
    try:
        encoder = compile_encoder(item)
    except Exception:  # _Unsupported, or a compiler limit: the general walk stays
        return
    if len(compiled) >= MAX_SHAPES:
        compiled.clear()
    compiled[keys] = encoder


def compile_encoder(item: dict[str, Any]) -> Encoder:
    """Python source for items shaped like ``item``, compiled to a function."""
    gen = _Generator()
    avs = gen.visit_map("item", item, 1, ())
    lines = ["def encode(item):", "    try:"]
    lines += [f"        {line}" for line in gen.lines]
    if gen.strings:
        lines.append(f"        s = {' + '.join(gen.strings)}")
        lines.append("        n = len(s) if s.isascii() else len(s.encode('utf-8'))")
    else:
        lines.append("        n = 0")
    lines.append("    except UnicodeEncodeError:")
    lines.append("        return None")
    size = " + ".join([str(gen.const_size), "n", *gen.size_terms])
    lines.append(f"    avs = {avs}")
    lines += [f"    {line}" for line in gen.normalised()]
    lines.append(f"    return out, avs, {size}")
    source = "\n".join(lines)
    scope: dict[str, Any] = {"Decimal": Decimal, "LIMIT": _INT_LIMIT}
    exec(compile(source, f"<eventlake item encoder {tuple(item)!r:.60}>", "exec"), scope)
    encode: Encoder = scope["encode"]
    encode.source = source  # type: ignore[attr-defined]  # for the curious and the tests
    return encode


class _Generator:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.strings: list[str] = []  # variables holding string values, measured together
        self.size_terms: list[str] = []
        self.const_size = 0
        self.changes: list[tuple[tuple[str, ...], str]] = []  # (path, new value expression)
        self._names = itertools.count()

    def var(self) -> str:
        n = next(self._names)
        if n >= MAX_VALUES:
            raise _Unsupported
        return f"v{n}"

    def visit_map(self, var: str, model: dict[Any, Any], depth: int, path: tuple[str, ...]) -> str:
        entries = []
        for k, x in model.items():
            if type(k) is not str:
                raise _Unsupported
            self.const_size += len(k.encode("utf-8"))
            v = self.var()
            self.lines.append(f"{v} = {var}[{k!r}]")
            entries.append(f"{k!r}: {self.visit_value(v, x, depth, (*path, k))}")
        return "{" + ", ".join(entries) + "}"

    def visit_value(self, v: str, x: Any, depth: int, path: tuple[str, ...]) -> str:
        t = type(x)
        add = self.lines.append
        if t is str:
            add(f"if type({v}) is not str: return None")
            self.strings.append(v)
            return f"{{'S': {v}}}"
        if t is Decimal:
            text = f"{v}t"
            add(f"if type({v}) is not Decimal: return None")
            add(f"{text} = str({v})")
            # As values._fast_map: plain notation of at most 38 characters needs no checks.
            add(f"if len({text}) > 38 or 'E' in {text} or not {text}[-1].isdigit(): return None")
            add(f"if '.' in {text}:")
            add(f"    {text} = {text}.rstrip('0').rstrip('.')")
            add(f"    if {text} == '-0': {text} = '0'")
            add(f"elif not {v}: {text} = '0'")
            self.size_terms.append(f"((len({text}.replace('.', '').strip('0-')) or 1) + 1) // 2 + 1")
            return f"{{'N': {text}}}"
        if t is int:
            text = f"{v}t"
            add(f"if type({v}) is not int or not -LIMIT < {v} < LIMIT: return None")
            add(f"{text} = str({v})")
            self.size_terms.append(f"((len({text}.strip('0-')) or 1) + 1) // 2 + 1")
            self.changes.append((path, f"Decimal({v})"))
            return f"{{'N': {text}}}"
        if t is bool:
            add(f"if type({v}) is not bool: return None")
            self.const_size += 1
            return f"{{'BOOL': {v}}}"
        if x is None:
            add(f"if {v} is not None: return None")
            self.const_size += 1
            return "{'NULL': True}"
        if t is dict and depth < MAX_DEPTH:
            add(f"if type({v}) is not dict or tuple({v}) != {tuple(x)!r}: return None")
            self.const_size += 3 + len(x)  # a map: 3 bytes plus 1 per element
            return f"{{'M': {self.visit_map(v, x, depth + 1, path)}}}"
        raise _Unsupported

    def normalised(self) -> list[str]:
        """Lines that set ``out``: the item itself, or copies along the paths that change."""
        if not self.changes:
            return ["out = item"]
        lines = ["out = dict(item)"]
        copied: dict[tuple[str, ...], str] = {(): "out"}
        for path, expr in self.changes:
            for i in range(1, len(path)):
                prefix = path[:i]
                if prefix not in copied:
                    name = f"c{len(copied)}"
                    parent = copied[prefix[:-1]]
                    lines.append(f"{name} = {parent}[{prefix[-1]!r}] = dict({parent}[{prefix[-1]!r}])")
                    copied[prefix] = name
            lines.append(f"{copied[path[:-1]]}[{path[-1]!r}] = {expr}")
        return lines
