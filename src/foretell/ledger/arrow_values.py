"""One model input or output column (as numpy holds it in a frame or predictions) → one Arrow array.

Category codes become their names with one `take`, NaN becomes null with one mask, a
vector per row becomes a list: what a reader expects to see, as the client sent it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from foretell.core.feature import Feature

__all__ = ["input_array", "mixed_array", "output_array"]


def input_array(feature: Feature, column: np.ndarray) -> pa.Array:
    if feature.dtype == "category":
        codes = np.asarray(column, dtype=np.float64)
        missing = np.isnan(codes)
        indices = pa.array(np.where(missing, 0, codes).astype(np.int32), mask=missing if missing.any() else None)
        return pa.array(feature.categories or (), type=pa.string()).take(indices)
    if feature.shape:
        flat = np.ascontiguousarray(column, dtype=np.float64).reshape(-1)
        width = int(np.prod(feature.shape))
        offsets = pa.array(np.arange(0, len(flat) + 1, width, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, pa.array(flat))
    if feature.dtype == "string":
        return pa.array(column, type=pa.string())
    if column.dtype.kind == "f":
        values = np.ascontiguousarray(column, dtype=np.float64)
        missing = np.isnan(values)
        return pa.array(values, mask=missing if missing.any() else None)
    if feature.dtype == "bool":
        return pa.array(np.asarray(column, dtype=bool))
    return pa.array(np.asarray(column, dtype=np.int64))


def output_array(column: np.ndarray) -> pa.Array:
    if column.ndim > 1:
        width = int(np.prod(column.shape[1:]))
        flat = np.ascontiguousarray(column).reshape(-1)
        offsets = pa.array(np.arange(0, len(flat) + 1, width, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, _flat_array(flat))
    return _flat_array(column)


def _flat_array(values: np.ndarray) -> pa.Array:
    if values.dtype.kind == "O":
        return pa.array(values.tolist())
    if values.dtype.kind == "U":
        return pa.array(values.tolist(), type=pa.string())
    return pa.array(np.ascontiguousarray(values))


def mixed_array(values: list[Any]) -> pa.Array:
    """One stored output's values; as JSON text when pyarrow finds no one type for them."""
    try:
        return pa.array(values)
    except (pa.ArrowException, TypeError, ValueError):
        return pa.array(
            [None if v is None else orjson.dumps(v, default=str).decode() for v in values], type=pa.string()
        )
