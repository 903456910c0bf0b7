"""Rows for the parity proof: valid by construction, and full of the values that break compiled trees."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foretell.compile.validation_sample import MIN_ROWS, matrix_reason, validation_matrix
from foretell.core import Feature, Frame, Output, Signature

OUT = (Output("score", "score"),)


def signature(*features: Feature) -> Signature:
    return Signature(features, OUT)


MIXED = signature(
    Feature("spend", "float64", allow_missing=True),
    Feature("age", "float64"),
    Feature("orders", "int64"),
    Feature("autopay", "bool"),
    Feature("plan", "category", allow_missing=True, categories=("basic", "plus", "pro")),
    Feature("ratio", "float32"),
)


def test_rows_and_width_and_determinism() -> None:
    rows = validation_matrix(MIXED, rows=MIN_ROWS)
    assert rows.shape == (MIN_ROWS, 6)
    assert np.array_equal(rows, validation_matrix(MIXED, rows=MIN_ROWS), equal_nan=True)
    assert not np.array_equal(rows, validation_matrix(MIXED, rows=MIN_ROWS, seed=1), equal_nan=True)


def test_missing_values_only_where_the_signature_allows_them() -> None:
    rows = validation_matrix(MIXED, rows=MIN_ROWS)
    missing = np.isnan(rows).any(axis=0)
    assert missing.tolist() == [f.allow_missing for f in MIXED.inputs]
    assert np.isfinite(rows[:, ~missing]).all()


def test_values_fit_each_dtype() -> None:
    rows = validation_matrix(MIXED, rows=MIN_ROWS)
    orders, autopay, plan, ratio = rows[:, 2], rows[:, 3], rows[:, 4], rows[:, 5]
    assert np.array_equal(orders, np.round(orders))
    assert set(np.unique(autopay)) == {0.0, 1.0}
    assert set(np.unique(plan[~np.isnan(plan)])) == {0.0, 1.0, 2.0}
    assert np.array_equal(ratio, ratio.astype(np.float32).astype(np.float64))


def test_edges_appear_exactly_and_a_hair_either_side() -> None:
    thresholds = [0.5, 23.5, 1e6]
    rows = validation_matrix(MIXED, rows=MIN_ROWS, edges={"age": thresholds})
    age = rows[:, 1]
    for t in thresholds:
        assert (age == t).sum() > 100
        assert (age == np.nextafter(t, -np.inf)).sum() > 100
        assert (age == np.nextafter(t, np.inf)).sum() > 100
    assert age.min() < 0.5 and age.max() > 1e6  # beyond the outermost edges too


def test_observed_rows_come_first_and_bound_the_generated_ones() -> None:
    sig = signature(Feature("a", "float64"), Feature("b", "float64"))
    observed = np.column_stack([np.linspace(100, 200, 50), np.linspace(-5, 5, 50)])
    rows = validation_matrix(sig, rows=MIN_ROWS, observed=observed)
    assert np.array_equal(rows[:50], observed)
    generated = rows[50:, 0]
    inside = (generated >= 90) & (generated <= 210)  # the observed range, padded by a tenth
    assert inside.mean() > 0.5
    assert {90.0, 210.0, 0.0} <= set(generated.tolist())  # its padded ends, and zero among the extremes


def test_a_quarter_is_always_generated() -> None:
    sig = signature(Feature("a", "float64"))
    observed = np.arange(40_000, dtype=np.float64).reshape(-1, 1)
    rows = validation_matrix(sig, rows=MIN_ROWS * 2, observed=observed)
    assert len(rows) == MIN_ROWS * 2
    assert np.array_equal(rows[:15_000, 0], observed[:15_000, 0])


def test_generated_rows_pass_the_signature_s_own_checks() -> None:
    """Through the row path, where a missing category is None, not a NaN code."""
    rows = validation_matrix(MIXED, rows=MIN_ROWS)
    names = MIXED.input_names
    plan_codes = ("basic", "plus", "pro")
    records = []
    for row in rows[:2_000].tolist():
        record = dict(zip(names, row, strict=True))
        record["orders"] = int(record["orders"])
        record["autopay"] = bool(record["autopay"])
        record["plan"] = None if np.isnan(record["plan"]) else plan_codes[int(record["plan"])]
        records.append(record)
    columns = MIXED.coerce(records)
    assert columns.errors == []
    assert isinstance(columns.frame, Frame)


@pytest.mark.parametrize(
    ("feature", "reason"),
    [
        (Feature("v", "float64", shape=(3,)), "is a vector"),
        (Feature("name", "string"), "is a string"),
    ],
)
def test_inputs_that_do_not_fit_one_matrix_are_named(feature: Feature, reason: str) -> None:
    sig = signature(Feature("a", "float64"), feature)
    assert reason in str(matrix_reason(sig))
    with pytest.raises(ValueError, match=reason):
        validation_matrix(sig)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=0, max_size=5),
    st.integers(3, 400),
    st.booleans(),
)
def test_any_edges_give_the_rows_asked_for(edges: list[float], rows: int, allow_missing: bool) -> None:
    sig = signature(Feature("x", "float64", allow_missing=allow_missing), Feature("y", "int32"))
    matrix = validation_matrix(sig, rows=rows, edges={"x": edges, "y": edges})
    assert matrix.shape == (rows, 2)
    assert np.isnan(matrix[:, 0]).any() == allow_missing
    y = matrix[:, 1]
    assert np.isfinite(y).all() and (np.abs(y) <= 2**31).all()


def test_recorded_ranges_widen_the_generated_values_like_observed_rows() -> None:
    sig = signature(Feature("spend", "float64"), Feature("age", "float64"))
    # The range of "age" is unusable on purpose: a NaN and a string where two floats belong.
    rows = validation_matrix(sig, rows=MIN_ROWS, ranges={"spend": [1_000.0, 50_000.0], "age": [float("nan"), "x"]})  # type: ignore[list-item]
    spend = rows[:, 0]
    assert ((spend >= 1_000) & (spend <= 50_000)).mean() > 0.3  # most uniform draws fall in the real range
    assert spend.max() > 50_000  # padded beyond it, a tenth of the width
    assert np.isfinite(rows[:, 1]).all()  # an unusable range is ignored, not an error
