"""Any column a profile or a drift check is given, as the one form its statistics read.

Columns come from many places: coerced frames (numpy, category codes as floats), model
outputs (numpy, maybe 2-D or lists), the ledger (Arrow, categories by name, lists for
vectors). Numbers become one flat float64 array with NaN for missing; categories become
one Arrow string array with nulls for missing. Vectors and lists are flattened: a
profile of a vector feature (or of a top-k output) describes all of its elements pooled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Floats", "as_categories", "as_floats", "codes_to_names"]

Floats = npt.NDArray[np.float64]


def as_floats(values: Any) -> Floats:
    """`values` as one flat float64 array, NaN where a value is missing (vectors and lists flattened)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return np.asarray(values, dtype=np.float64).reshape(-1)
    array = _arrow(values)
    while pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(array.type):
        array = pc.list_flatten(array)
    if pa.types.is_null(array.type):
        return np.full(len(array), np.nan)
    if pa.types.is_boolean(array.type):
        array = pc.cast(array, pa.int8())
    floats = pc.cast(array, pa.float64())
    return np.asarray(floats.to_numpy(zero_copy_only=False), dtype=np.float64)


def as_categories(values: Any) -> pa.Array:
    """`values` as one Arrow string array, null where a value is missing (lists flattened)."""
    array = _arrow(values)
    while pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(array.type):
        array = pc.list_flatten(array)
    if pa.types.is_dictionary(array.type):
        array = pc.cast(array, array.type.value_type)
    if pa.types.is_floating(array.type):
        # NaN is how numpy spells a missing number; a whole float (a class 1.0) is named as an integer.
        array = pc.if_else(pc.is_nan(array), pa.scalar(None, array.type), array)
        whole = pc.all(pc.equal(pc.floor(array), array)).as_py()
        if whole is not False:
            array = pc.cast(array, pa.int64())
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = pc.cast(array, pa.string())
    return array


def codes_to_names(codes: Any, categories: Sequence[str]) -> pa.Array:
    """A category feature's float codes (as coercion makes them) as its category names, null where missing."""
    floats = as_floats(codes)
    valid = ~np.isnan(floats)
    index = np.where(valid, floats, 0).astype(np.int64)
    known = valid & (index >= 0) & (index < len(categories))
    names = pa.array(list(categories), pa.string()).take(pa.array(np.where(known, index, 0)))
    return pc.if_else(pa.array(known), names, pa.scalar(None, pa.string()))


def _arrow(values: Any) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    if isinstance(values, np.ndarray) and values.ndim > 1:
        values = values.reshape(-1) if values.dtype.kind != "O" else np.concatenate(list(values))
    if isinstance(values, np.ndarray) and values.dtype.kind in "US":
        values = values.astype(object)
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Mixed Python values (strings and numbers in one object column): name each one.
        return pa.array([None if _missing(v) else str(v) for v in values], pa.string())


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)
