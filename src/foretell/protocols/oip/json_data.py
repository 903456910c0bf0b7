"""JSON tensor data → numpy: the values checked against the datatype and the shape, one tensor at a time.

JSON has no NaN or infinity: requests may send `null` in FP16/FP32/FP64 data to mean a
missing value (NaN); no other datatype accepts `null`. The sets of value types below are
shared with `bulk_inputs`, which checks many tensors at once against the same rules.
"""

from __future__ import annotations

import math
from itertools import chain
from typing import Any

import numpy as np

from foretell.errors import ProtocolError
from foretell.protocols.oip.tensors import DATATYPES, _kind, _short

_INTEGERS = frozenset({"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"})

_TEXT = frozenset({str})
_LISTS = frozenset({list})
_DICTS = frozenset({dict})
_FIXED_WIDTH = DATATYPES.keys() - {"BYTES", "BOOL"}
_BOOLS = frozenset({bool})
_INTS = frozenset({int})
_NUMBERS: frozenset[type] = frozenset({float, int, type(None)})
_FLOAT_LIMITS = {"FP16": float(np.finfo(np.float16).max), "FP32": float(np.finfo(np.float32).max)}


def _json_values(name: str, datatype: str, shape: tuple[int, ...], data: Any) -> np.ndarray:
    if not isinstance(data, list):
        raise ProtocolError(f"input {name!r}: 'data' must be a JSON array, got {_kind(data)}")
    leaves = _flatten(name, data, shape)
    expected = math.prod(shape)
    if len(leaves) != expected:
        raise ProtocolError(f"input {name!r}: shape {list(shape)} needs {expected} values, got {len(leaves)}")
    kinds = set(map(type, leaves))  # one pass over the values: a served row's check stays cheap
    if list in kinds:
        raise ProtocolError(f"input {name!r}: nested 'data' does not match shape {list(shape)}")
    dtype = DATATYPES[datatype]
    if datatype == "BYTES":
        _only(name, datatype, leaves, kinds, _TEXT, "strings")
        array = np.empty(len(leaves), dtype=object)
        try:
            array[:] = [s.encode() for s in leaves]
        except UnicodeEncodeError:
            raise ProtocolError(f"input {name!r}: BYTES data holds a string that is not valid Unicode") from None
        return array
    if datatype == "BOOL":
        _only(name, datatype, leaves, kinds, _BOOLS, "true or false")
        return np.array(leaves, dtype=dtype)
    if datatype in _INTEGERS:
        _only(name, datatype, leaves, kinds, _INTS, "whole numbers")
        try:
            return np.array(leaves, dtype=dtype)
        except OverflowError:
            info = np.iinfo(dtype)
            bad = next((v for v in leaves if not info.min <= v <= info.max), None)
            raise ProtocolError(
                f"input {name!r}: {datatype} values must be in {info.min}..{info.max}, got {_short(bad)}"
            ) from None
    # Floats: ints are fine, null is a missing value (NaN), nothing else.
    _only(name, datatype, leaves, kinds, _NUMBERS, "numbers (or null for missing)")
    try:
        wide = np.array(leaves, dtype=np.float64)
    except OverflowError:
        raise ProtocolError(f"input {name!r}: a number is too large for {datatype}") from None
    if datatype == "FP64":
        return wide
    # JSON holds no infinity, so any value past the narrow type's largest is an overflow; checked
    # up front, because np.errstate around the cast costs more than the whole decode of one row.
    if (np.abs(wide) > _FLOAT_LIMITS[datatype]).any():
        raise ProtocolError(f"input {name!r}: a number is too large for {datatype}")
    return wide.astype(dtype)


def _flatten(name: str, data: list[Any], shape: tuple[int, ...]) -> list[Any]:
    """Flat data as is; nested data must nest exactly like `shape`, level by level."""
    if not data or type(data[0]) is not list:
        return data
    items: list[Any] = [data]
    for depth, dim in enumerate(shape):
        if not all(type(item) is list and len(item) == dim for item in items):
            raise ProtocolError(
                f"input {name!r}: nested 'data' does not match shape {list(shape)}: "
                f"expected lists of {dim} values at depth {depth}"
            )
        items = list(chain.from_iterable(items))
    return items


def _only(name: str, datatype: str, leaves: list[Any], kinds: set[type], allowed: frozenset[type], words: str) -> None:
    if kinds <= allowed:
        return
    index = next(i for i, v in enumerate(leaves) if type(v) not in allowed)
    value = leaves[index]
    raise ProtocolError(
        f"input {name!r}: {datatype} data must be {words}; got {_kind(value)} {_short(value)} at position {index}"
    )


def _all_sizes(shape: list[Any] | tuple[Any, ...]) -> bool:
    # A plain loop, not all() over a generator: about twice as fast for the usual one or two dims.
    for dim in shape:  # noqa: SIM110
        if type(dim) is not int or dim < 0:
            return False
    return True
