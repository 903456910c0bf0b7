"""The rules one value must meet to enter a feature's column.

A value is never guessed: `"3.5"` is not a number, `True` is not 1.0, a missing key is
not NaN. When a value breaks a rule, `Refused` carries the rule in words a person can act
on; the caller adds the row and the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from foretell.core.feature import Feature
from foretell.core.frame import Array

MISSING: Any = object()
"""Stands for a key absent from a row, which is not the same as a value of None."""

INT_TYPES = frozenset({int, np.int64, np.int32, np.int16, np.int8, np.uint64, np.uint32, np.uint16, np.uint8})
FLOAT_TYPES = frozenset({float, np.float64, np.float32, np.float16})
NUMBER_TYPES = INT_TYPES | FLOAT_TYPES
BOOL_TYPES = frozenset({bool, np.bool_})
INT_BOUNDS = {"int64": (-(2**63), 2**63 - 1), "int32": (-(2**31), 2**31 - 1)}


# Not part of foretell.errors, on purpose: `Refused` is a control-flow signal between
# `convert_scalar` and its callers in `core` (columns, coerce), which catch it at once and
# turn it into a `RowError` that names the row and the field. It never leaves `core`, so
# nobody outside has a reason to catch it; what users see is `InvalidInput`.
class Refused(Exception):
    """One value broke its feature's rule; `reason` says which rule."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if type(value) in FLOAT_TYPES:
        return bool(value != value)
    return type(value).__name__ in ("NAType", "NaTType")


def convert_scalar(feature: Feature, codes: Mapping[str, int], value: Any) -> Any:
    """One value → what the feature's column holds, or `Refused` saying what was expected."""
    if value is MISSING:
        raise Refused("missing: the model needs this feature")
    dtype = feature.dtype
    if is_missing(value):
        if not feature.allow_missing:
            raise Refused(f"expected a {dtype} value, not a missing one (this feature does not accept missing values)")
        return None if dtype == "string" else math.nan
    if feature.shape:
        return convert_vector(feature, value)
    kind = type(value)
    if dtype in ("float64", "float32"):
        if kind in NUMBER_TYPES:
            try:
                number = float(value)
            except OverflowError:  # an int too large for any float
                number = math.inf
            if math.isfinite(number):
                return number
            raise Refused(f"expected a finite number ({dtype})")
        raise Refused(f"expected a number ({dtype})")
    if dtype in ("int64", "int32"):
        low, high = INT_BOUNDS[dtype]
        if kind in INT_TYPES and low <= int(value) <= high:
            return int(value)
        if kind in FLOAT_TYPES and math.isfinite(value) and float(value).is_integer() and low <= value <= high:
            return int(value)
        raise Refused(f"expected a whole number that fits {dtype}")
    if dtype == "bool":
        if kind in BOOL_TYPES:
            return bool(value)
        raise Refused("expected true or false (bool)")
    if dtype == "string":
        if isinstance(value, str):
            return value
        raise Refused("expected a string")
    # category
    if isinstance(value, str):
        code = codes.get(value)
        if code is not None:
            return float(code)
    elif kind in NUMBER_TYPES and 0 <= value < len(codes) and float(value).is_integer():
        return float(value)
    raise Refused(f"expected one of {categories_text(feature)} (or an integer code 0..{len(codes) - 1})")


def categories_text(feature: Feature) -> str:
    cats = list(feature.categories or ())
    shown = ", ".join(repr(c) for c in cats[:8])
    return shown + (f", ... ({len(cats)} in all)" if len(cats) > 8 else "")


def convert_vector(feature: Feature, value: Any) -> Array:
    if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__len__"):
        raise Refused(f"expected a list of numbers of shape {list(feature.shape)}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise Refused(f"expected a list of numbers of shape {list(feature.shape)}") from None
    if array.shape != feature.shape:
        raise Refused(f"expected a list of numbers of shape {list(feature.shape)}, not {list(array.shape)}")
    bad = ~np.isfinite(array)
    if bad.any() and not (feature.allow_missing and not np.isinf(array).any()):
        raise Refused(f"expected finite numbers of shape {list(feature.shape)}")
    return array
