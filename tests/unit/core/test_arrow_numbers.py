"""`arrow_numbers`: Arrow number columns as numpy, exactly as pyarrow's own conversion gives them, without pandas."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from foretell.core.coerce import arrow_numbers

NUMBER_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint32(), pa.uint64()]
FLOAT_TYPES = [pa.float16(), pa.float32(), pa.float64()]


@st.composite
def number_columns(draw: st.DrawFn) -> pa.Array:
    """A number column of any width, with or without nulls, often a slice that starts past its buffers' start."""
    kind = draw(st.sampled_from(NUMBER_TYPES + FLOAT_TYPES))
    n = draw(st.integers(0, 40))
    if pa.types.is_floating(kind):
        value: st.SearchStrategy[float | int] = st.floats(width=16 if kind == pa.float16() else 32)
    else:
        bits = kind.bit_width - (1 if pa.types.is_signed_integer(kind) else 0)
        low = -(2**bits) if pa.types.is_signed_integer(kind) else 0
        value = st.integers(low, 2**bits - 1)
    values = np.array(draw(st.lists(value, min_size=n, max_size=n)), dtype=kind.to_pandas_dtype())
    nulls = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    column = pa.array(values, type=kind, mask=nulls if nulls.any() else None)
    start = draw(st.integers(0, n))
    return column.slice(start, draw(st.integers(0, n - start)))


@given(number_columns())
def test_numbers_come_out_as_pyarrow_converts_them(column: pa.Array) -> None:
    want = column.to_numpy(zero_copy_only=False)
    got = arrow_numbers(column)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)  # NaN where the other has NaN


def test_other_types_go_through_pyarrow() -> None:
    decimals = pa.array([1, 2], pa.int32()).cast(pa.decimal128(12, 1))
    for column in (pa.array([True, None, False]), pa.array(["a", None]), decimals):
        got = arrow_numbers(column)
        assert got.tolist() == column.to_numpy(zero_copy_only=False).tolist()


def test_converting_numbers_does_not_import_pandas() -> None:
    """pyarrow's conversion imports pandas, a third of a second, where a batch job scores its first chunk."""
    program = """
import sys
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from foretell.core.coerce import arrow_numbers
values = pa.Array.from_buffers(pa.float32(), 4, [None, pa.py_buffer(np.arange(4, dtype=np.float32))])
pq.write_table(pa.Table.from_arrays([values], ["x"]), sys.argv[1])
column = pq.ParquetFile(sys.argv[1]).read().column("x").chunk(0)  # read_table imports pandas (datasets)
assert arrow_numbers(column).tolist() == [0.0, 1.0, 2.0, 3.0]
print("pandas" in sys.modules)
"""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        ran = subprocess.run(
            [sys.executable, "-c", program, f"{folder}/x.parquet"], capture_output=True, text=True, check=True
        )
    assert ran.stdout.strip() == "False", ran.stderr


def test_looking_up_arrow_categories_does_not_import_pandas() -> None:
    """A Parquet column of category names becomes codes without pandas (pyarrow's `pa.array(list)` imports it)."""
    program = """
import sys
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from foretell.core.feature import Feature
from foretell.core.schema import Output, Signature
signature = Signature(
    (Feature("plan", "category", categories=("basic", "prémium")), Feature("x")), (Output("score", "score"),)
)
text = "prémiumbasicbasic".encode()
offsets = pa.py_buffer(np.array([0, 8, 13, 18], dtype=np.int32))
plans = pa.Array.from_buffers(pa.string(), 3, [None, offsets, pa.py_buffer(text)])
xs = pa.Array.from_buffers(pa.float64(), 3, [None, pa.py_buffer(np.arange(3, dtype=np.float64))])
pq.write_table(pa.Table.from_arrays([plans, xs], ["plan", "x"]), sys.argv[1])
table = pq.ParquetFile(sys.argv[1]).read()
columns = signature.coerce(table)
assert not columns.errors, columns.errors
assert columns.frame["plan"].tolist() == [1.0, 0.0, 0.0], columns.frame["plan"]
print("pandas" in sys.modules)
"""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        ran = subprocess.run(
            [sys.executable, "-c", program, f"{folder}/x.parquet"], capture_output=True, text=True, check=False
        )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "False", ran.stderr
