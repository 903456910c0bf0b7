"""Entity rows as JSON arrays, encoded column by column: no Python object per value.

Both entity stores keep a features row as the JSON array of its values in the table's column
order (SQLite's `json_set` and the Redis store's event script edit that text in place). A load
of a million 33-column customers is 33 million values, so encoding them one Python object at
a time (a dict per row, then orjson) was most of the load's time. Here:

- a run of adjacent float columns (the bulk of a feature table) becomes one 2-D NumPy block
  that orjson writes in one call, `[[row 0],[row 1],…]`; the rows are cut out of that text
  by offsets NumPy finds, into an Arrow string array, without a Python object per row;
- every other column becomes text in Arrow compute (integers and booleans cast, strings
  quoted and escaped), and the parts of a row are joined element-wise, in Arrow too;
- rows go in slices of `SLICE_ROWS`, so the buffers stay in the CPU's cache and the
  allocator reuses them rather than asking the kernel for fresh pages (slow on this kind
  of virtual machine).

What a reader gets back is what the file held: a float stays a float (orjson writes 3.0 as
`3.0`, never `3`), in its shortest exact form; an integer stays an integer; NaN, infinities
and nulls are JSON null (missing).
"""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["SLICE_ROWS", "json_arrays"]

SLICE_ROWS = 65_536
"""Rows encoded at a time: a few MB of text per slice."""

_BLOCK_TYPES = (pa.float64(), pa.float32())
"""Float types orjson writes from NumPy; float16 (rare) goes the generic way."""

_OPEN = ord("[")
_CONTROL, _ESCAPED = "[\\x00-\\x1f]", '[\\x00-\\x1f"\\\\]'


def json_arrays(rows: pa.Table) -> pa.ChunkedArray:
    """Each row as the JSON array of its values, in column order, as UTF-8 text (`[1,"a",2.5,null]`)."""
    slices = [_encoded(rows.slice(start, SLICE_ROWS)) for start in range(0, rows.num_rows, SLICE_ROWS)]
    return pa.chunked_array(slices, pa.string())


def _encoded(rows: pa.Table) -> pa.Array:
    parts: list[pa.Array] = []
    run: list[pa.ChunkedArray] = []  # adjacent float columns of one type, written together
    for column in rows.columns:
        if run and column.type != run[0].type:
            parts.append(_float_block(run))
            run = []
        if column.type in _BLOCK_TYPES:
            run.append(column)
        else:
            parts.append(_column_text(column))
    if run:
        parts.append(_float_block(run))
    if not parts:  # a table without columns: every row is []
        return pa.array(["[]"] * rows.num_rows, pa.string())
    joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, ",")
    return pc.binary_join_element_wise("[", joined, "]", "")


def _float_block(columns: list[pa.ChunkedArray]) -> pa.Array:
    """The text of adjacent float columns, per row: `1.5,null,3.0` (no brackets)."""
    rows = len(columns[0])
    block = np.empty((rows, len(columns)), dtype=columns[0].type.to_pandas_dtype())
    for at, column in enumerate(columns):
        block[:, at] = column.to_numpy()  # a null is NaN here, which orjson writes as null
    text = orjson.dumps(block, option=orjson.OPT_SERIALIZE_NUMPY)  # [[r0],[r1],…]; floats never hold "["
    opens = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == _OPEN)[1:]  # each row's own "["
    # Row i runs from after its "[" to after the next row's "[", so it ends in "],[": three
    # bytes to cut. The last row ends in "]]", so one more byte makes it end the same way.
    offsets = np.append(opens + 1, len(text) + 1).astype(np.int32 if len(text) < 2**31 - 1 else np.int64)
    kind = pa.string() if offsets.dtype == np.int32 else pa.large_string()
    framed = pa.Array.from_buffers(kind, rows, [None, pa.py_buffer(offsets), pa.py_buffer(text + b"[")])
    return pc.cast(pc.utf8_slice_codeunits(framed, 0, -3), pa.string())


def _column_text(column: pa.ChunkedArray) -> pa.Array:
    """One column's values as JSON text, in Arrow; null for a missing value."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        text = pc.cast(column, pa.string())
    elif pa.types.is_floating(kind):  # float16, or a dictionary of floats
        text = pc.cast(column, pa.string())
        # Arrow writes 3.0 as "3": JSON would read that back as an integer, so floats keep a ".0".
        text = pc.if_else(pc.match_substring_regex(text, "[.eEn]"), text, pc.binary_join_element_wise(text, ".0", ""))
        text = pc.if_else(pc.is_finite(column), text, "null")
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = _string_text(column)
    else:  # dates, times, text with control characters, nested values: rare, so one by one
        text = pa.array([orjson.dumps(v).decode() for v in column.to_pylist()], pa.string())
    filled = pc.fill_null(pc.cast(text, pa.string()), "null")
    return filled.combine_chunks() if isinstance(filled, pa.ChunkedArray) else filled


def _string_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Strings as JSON strings: a category's few distinct values by orjson, then picked per row."""
    coded = pc.dictionary_encode(column).combine_chunks()
    distinct = coded.dictionary
    if len(distinct) <= len(column) // 4:  # a category (plan, region): each distinct value once
        quoted = pa.array([orjson.dumps(v).decode() for v in distinct.to_pylist()], pa.string())
        return pa.chunked_array([quoted.take(coded.indices)])
    if not pc.any(pc.match_substring_regex(column, _ESCAPED)).as_py():  # ids and names: just quotes
        return pc.binary_join_element_wise('"', column, '"', "")
    if not pc.any(pc.match_substring_regex(column, _CONTROL)).as_py():
        escaped = pc.replace_substring(pc.replace_substring(column, "\\", "\\\\"), '"', '\\"')
        return pc.binary_join_element_wise('"', escaped, '"', "")
    return pa.chunked_array([pa.array([orjson.dumps(v).decode() for v in column.to_pylist()], pa.string())])
