"""Values that cross the sandbox's boundary as plain data, never as objects.

What a judged test computes inside the sandbox comes back to the caller as JSON: ``None``, booleans, ints,
floats, strings, bytes and lists, tuples, sets and dicts of them, each tagged so that a tuple stays a tuple.
The caller rebuilds genuine built-in values from it, so nothing the program defines (an ``__eq__`` that says
yes to everything, a ``bool`` that lies) ever reaches a comparison made in the caller.

The encoder (:data:`ENCODER_SOURCE`) runs inside the sandbox, where the program can change it: that is harmless,
because all it can produce is data, and the decoder here checks every byte of it.
"""

from __future__ import annotations

import json
import math
import reprlib
from typing import Any

__all__ = ["ENCODER_SOURCE", "MAX_DEPTH", "NotPlainData", "decode", "loads", "show"]

MAX_DEPTH = 64
"""How deeply values may nest (on both sides: the decoder is recursive)."""

ENCODER_SOURCE = f"""
def _tl_plain(value, depth=0):
    if depth > {MAX_DEPTH}:
        raise ValueError("nested more than {MAX_DEPTH} deep")
    kind = type(value)
    if value is None or kind is bool or kind is str or kind is int:
        return value
    if kind is float:
        return value if value - value == 0 else {{"float": repr(value)}}
    if kind is list:
        return [_tl_plain(item, depth + 1) for item in value]
    if kind is tuple or kind is set or kind is frozenset:
        return {{kind.__name__: [_tl_plain(item, depth + 1) for item in value]}}
    if kind is dict:
        return {{"dict": [[_tl_plain(k, depth + 1), _tl_plain(v, depth + 1)] for k, v in value.items()]}}
    if kind is bytes:
        return {{"bytes": value.hex()}}
    raise TypeError(f"a {{kind.__name__}}, which is not plain data (None, bool, int, float, str, bytes, "
                    "or a list, tuple, set or dict of them)")
"""
"""Defines ``_tl_plain(value)`` in the sandbox: the tagged JSON form of a plain value, or ``TypeError``."""


class NotPlainData(ValueError):
    """What came back is not the tagged JSON form of a plain value."""


_SEQUENCES = {"tuple": tuple, "set": set, "frozenset": frozenset}
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def loads(text: str) -> Any:
    """``json.loads`` that turns every failure (nesting too deep for the parser included) into
    :class:`NotPlainData`."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError, MemoryError) as exc:
        raise NotPlainData(f"not valid JSON ({type(exc).__name__})") from None


def decode(data: Any, depth: int = 0) -> Any:
    """The built-in value that tagged JSON ``data`` stands for.

    Raises:
        NotPlainData: anything else (an unknown tag, an unhashable set member, nesting past :data:`MAX_DEPTH`).
    """
    if depth > MAX_DEPTH:
        raise NotPlainData(f"nested more than {MAX_DEPTH} deep")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        return [decode(item, depth + 1) for item in data]
    if type(data) is not dict or len(data) != 1:
        raise NotPlainData(f"unexpected {type(data).__name__}")
    ((tag, inner),) = data.items()
    try:
        if tag in _SEQUENCES and type(inner) is list:
            return _SEQUENCES[tag](decode(item, depth + 1) for item in inner)
        if tag == "dict" and type(inner) is list:
            pairs = [_pair(item, depth + 1) for item in inner]
            return dict(pairs)
        if tag == "bytes" and type(inner) is str:
            return bytes.fromhex(inner)
        if tag == "float" and inner in _NON_FINITE:
            return _NON_FINITE[inner]
    except TypeError as exc:  # an unhashable set member or key
        raise NotPlainData(str(exc)) from None
    except ValueError as exc:
        raise NotPlainData(f"bad {tag}: {exc}") from None
    raise NotPlainData(f"unknown tag {str(tag)[:40]!r}")


def _pair(item: Any, depth: int) -> tuple[Any, Any]:
    if type(item) is not list or len(item) != 2:
        raise NotPlainData("a dict entry is not a [key, value] pair")
    return decode(item[0], depth), decode(item[1], depth)


_SHOW = reprlib.Repr()
_SHOW.maxstring, _SHOW.maxother, _SHOW.maxlong = 120, 120, 60
_SHOW.maxlist = _SHOW.maxtuple = _SHOW.maxset = _SHOW.maxfrozenset = _SHOW.maxdict = 12


def show(value: Any) -> str:
    """A short ``repr`` of a decoded value (long strings and containers cut), for feedback."""
    return _SHOW.repr(value)
