"""Prediction columns as Arrow arrays over their own memory."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["arrow_array"]

#: numpy dtypes whose arrays Arrow can take over as they are (one value per row, fixed width).
_ARROW_TYPES = {
    np.dtype(np.float64): pa.float64(),
    np.dtype(np.float32): pa.float32(),
    np.dtype(np.int64): pa.int64(),
    np.dtype(np.int32): pa.int32(),
}


def arrow_array(values: np.ndarray, kind: pa.DataType | None = None) -> pa.Array:
    """A prediction column as Arrow over the same memory; a 2-D one as fixed-size lists, one per row.

    The same arrays `Predictions.to_arrow` makes, without `pa.array`, which imports pandas on
    its first call (a third of a second of every job, under the import lock); other dtypes
    (strings, booleans) still go through it.
    """
    if values.ndim == 2:
        return pa.FixedSizeListArray.from_arrays(arrow_array(np.ascontiguousarray(values).reshape(-1)), values.shape[1])
    kind = kind or _ARROW_TYPES.get(values.dtype)
    if kind is None or values.ndim != 1:
        return pa.array(values)
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])
