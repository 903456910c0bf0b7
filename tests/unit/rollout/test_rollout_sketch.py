"""`Sketch`: quantiles within 1 % of numpy's, and the merge of two sketches is the sketch of both streams."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foretell.rollout import Sketch

QUANTILES = (0.01, 0.1, 0.5, 0.9, 0.99, 1.0)


def sketch_of(values: np.ndarray) -> Sketch:
    sketch = Sketch()
    sketch.add_many(values)
    return sketch


def within_one_percent_of_a_seen_value(sketch: Sketch, values: np.ndarray, q: float) -> None:
    """The sketch's quantile is within 1 % of the value at numpy's rank (method="lower"/"higher" bracket it)."""
    found = sketch.quantile(q)
    assert found is not None
    low, high = np.quantile(values, q, method="lower"), np.quantile(values, q, method="higher")
    assert low * 0.99 - 1e-12 <= found <= high * 1.01 + 1e-12, (q, found, low, high)


@pytest.mark.parametrize("seed", range(3))
def test_quantiles_of_latencies_are_within_one_percent_of_numpy(seed: int) -> None:
    values = np.random.default_rng(seed).lognormal(mean=-6, sigma=1.5, size=50_000)  # seconds, heavy tail
    sketch = sketch_of(values)
    assert sketch.count == values.size
    for q in QUANTILES:
        within_one_percent_of_a_seen_value(sketch, values, q)


def test_one_value_at_a_time_equals_many_at_once() -> None:
    values = np.random.default_rng(4).exponential(size=2000)
    one = Sketch()
    for value in values:
        one.add(float(value))
    assert one.to_dict() == sketch_of(values).to_dict()


def test_zeros_and_nan_count_as_no_difference() -> None:
    sketch = sketch_of(np.array([0.0, 0.0, 0.0, np.nan, 0.5]))
    assert (sketch.count, sketch.zeros) == (5, 4)
    assert sketch.quantile(0.5) == 0.0
    assert sketch.quantile(1.0) == pytest.approx(0.5, rel=0.01)


def test_an_empty_sketch_has_no_quantile() -> None:
    assert Sketch().quantile(0.5) is None
    assert Sketch.from_dict(Sketch().to_dict()).count == 0


def test_the_json_form_round_trips() -> None:
    sketch = sketch_of(np.random.default_rng(5).gamma(2.0, size=1000))
    again = Sketch.from_dict(json.loads(json.dumps(sketch.to_dict())))
    assert again.to_dict() == sketch.to_dict()
    assert again.quantile(0.99) == sketch.quantile(0.99)


positive = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(positive, max_size=300), st.lists(positive, max_size=300))
def test_merge_is_the_sketch_of_the_union(left: list[float], right: list[float]) -> None:
    merged = sketch_of(np.array(left))
    merged.merge(sketch_of(np.array(right)))
    union = sketch_of(np.array(left + right))
    assert merged.to_dict() == union.to_dict()
    for q in QUANTILES:
        assert merged.quantile(q) == union.quantile(q)
    if left or right:
        within_one_percent_of_a_seen_value(merged, np.array(left + right), 0.5)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_infinity=False), max_size=100))
def test_adding_one_at_a_time_or_many_gives_the_same_sketch(values: list[float]) -> None:
    one = Sketch()
    for value in values:
        one.add(value)
    assert one.to_dict() == sketch_of(np.array(values, dtype=np.float64)).to_dict()
