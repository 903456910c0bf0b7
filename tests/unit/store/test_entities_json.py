"""The column-wise row encoder against the plain one it replaced: a dict of Python values per row, then orjson."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foretell.store import entities_json
from foretell.store.entities_json import json_arrays


def reference(rows: pa.Table) -> list[Any]:
    """Row by row in Python: NaN and infinities are missing (orjson writes them as null)."""
    return [
        [None if isinstance(v, float) and not math.isfinite(v) else v for v in row.values()] for row in rows.to_pylist()
    ]


def decoded(rows: pa.Table) -> list[Any]:
    return [orjson.loads(text) for text in json_arrays(rows).to_pylist()]


def same(found: list[Any], expected: list[Any]) -> None:
    assert found == expected
    # == says 3 == 3.0: the types must match too, or a model trained on floats is given ints.
    assert [[type(v) for v in row] for row in found] == [[type(v) for v in row] for row in expected]


floats = st.floats(allow_nan=True, allow_infinity=True) | st.none()
floats32 = st.floats(width=32, allow_nan=True, allow_infinity=True) | st.none()
ints = st.integers(-(2**63), 2**63 - 1) | st.none()
texts = st.text(max_size=8) | st.none()
categories = st.sampled_from(["basic", 'pre"mium', "back\\slash", "tab\there"]) | st.none()
KINDS = {
    "f64": (floats, pa.float64()),
    "f32": (floats32, pa.float32()),
    "int": (ints, pa.int64()),
    "text": (texts, pa.string()),
    "category": (categories, pa.string()),
    "bool": (st.booleans() | st.none(), pa.bool_()),
}


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=7))
    n = draw(st.integers(1, 12))
    columns = {}
    for at, kind in enumerate(kinds):
        values, arrow_type = KINDS[kind]
        columns[f"c{at}"] = pa.array(draw(st.lists(values, min_size=n, max_size=n)), arrow_type)
    return pa.table(columns)


@settings(max_examples=300, deadline=None)
@given(tables(), st.integers(1, 5))
def test_the_encoder_writes_what_the_plain_one_did(rows: pa.Table, slice_rows: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(entities_json, "SLICE_ROWS", slice_rows)  # several slices, and a partial last one
        found = decoded(rows)
    expected = reference(rows)
    # A float32 comes back as the float64 of its shortest text, which is the same float32.
    for row_found, row_expected in zip(found, expected, strict=True):
        for at, name in enumerate(rows.column_names):
            if rows.schema.field(name).type == pa.float32() and row_expected[at] is not None:
                assert isinstance(row_found[at], float)
                assert np.float32(row_found[at]) == np.float32(row_expected[at])
                row_expected[at] = row_found[at]
    same(found, expected)


def test_floats_stay_floats_ints_stay_ints_and_missing_is_none() -> None:
    rows = pa.table(
        {
            "whole": pa.array([3.0, -0.0, 1e16, None], pa.float64()),
            "count": pa.array([3, None, -1, 2**62], pa.int64()),
            "odd": pa.array([float("nan"), float("inf"), 0.1, 5e-324], pa.float64()),
            "plan": pa.array(["a", None, "a", "a"], pa.string()),
        }
    )
    same(
        decoded(rows),
        [[3.0, 3, None, "a"], [-0.0, None, None, None], [1e16, -1, 0.1, "a"], [None, 2**62, 5e-324, "a"]],
    )


def test_text_is_escaped_whatever_it_holds() -> None:
    values = ['say "hi"', "back\\slash", "line\nbreak", "\x00", "ünïcode ☃", "", None]
    rows = pa.table({"text": pa.array(values * 3), "id": pa.array(range(21))})
    same(decoded(rows), [[v, i] for i, v in enumerate(values * 3)])


def test_no_rows_and_dictionary_columns() -> None:
    assert json_arrays(pa.table({"a": pa.array([], pa.float64())})).to_pylist() == []
    rows = pa.table({"plan": pa.array(["x", "y", "x"]).dictionary_encode(), "v": [1.5, 2.0, 3.25]})
    same(decoded(rows), [["x", 1.5], ["y", 2.0], ["x", 3.25]])
