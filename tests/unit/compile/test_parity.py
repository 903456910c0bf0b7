"""The parity proof's comparison: within tolerance passes, anything else fails and says where."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from foretell.compile.parity import compare_predictions
from foretell.core import Predictions
from foretell.core.schema import Output

OUTPUTS = (
    Output("score", "score"),
    Output("label", "label", "int64"),
    Output("proba", "proba", shape=(2,), classes=(0, 1)),
)


def predictions(score: np.ndarray, label: np.ndarray | None = None) -> Predictions:
    label = (score > 0.5).astype(np.int64) if label is None else label
    proba = np.column_stack([1 - score, score])
    return Predictions({"score": score, "label": label, "proba": proba}, OUTPUTS, len(score))


def test_identical_predictions_pass_with_zero_differences() -> None:
    score = np.linspace(0.01, 0.99, 50)
    report = compare_predictions(predictions(score), predictions(score.copy()), tolerance=0.0)
    assert report.passed
    assert report.max_abs_diff == {"score": 0.0, "proba": 0.0}
    assert report.mismatched_rows == {"score": 0, "label": 0, "proba": 0}


def test_a_difference_beyond_tolerance_fails_naming_the_output_and_rows() -> None:
    score = np.linspace(0.01, 0.49, 50)
    nudged = score.copy()
    nudged[[3, 7]] += 1e-4
    report = compare_predictions(predictions(score), predictions(nudged), tolerance=1e-6)
    assert not report.passed
    assert report.mismatched_rows["score"] == 2
    assert any(f.startswith("score: max abs diff 0.0001 > tolerance 1e-06 (2 of 50 rows)") for f in report.failures)
    assert report.to_dict()["passed"] is False


def test_labels_must_be_identical_whatever_the_tolerance() -> None:
    score = np.full(10, 0.2)
    labels = np.zeros(10, dtype=np.int64)
    other = labels.copy()
    other[4] = 1
    report = compare_predictions(predictions(score, labels), predictions(score, other), tolerance=1.0)
    assert report.failures == ("label: 1 of 10 rows differ (must be identical)",)


def test_nan_must_meet_nan() -> None:
    score = np.array([0.1, np.nan, 0.3])
    report = compare_predictions(predictions(score), predictions(np.array([0.1, 0.2, 0.3])), tolerance=1.0)
    assert not report.passed
    assert "rows are NaN in one predictor only" in report.failures[0]
    assert compare_predictions(predictions(score), predictions(score.copy()), tolerance=0.0).passed


def test_a_different_number_of_rows_fails() -> None:
    report = compare_predictions(predictions(np.zeros(3)), predictions(np.zeros(2)), tolerance=1.0)
    assert report.failures == ("3 rows in the original, 2 compiled",)


@pytest.mark.parametrize("tolerance", [-1e-9, float("nan"), float("inf")])
def test_a_tolerance_must_be_a_finite_non_negative_number(tolerance: float) -> None:
    with pytest.raises(ValueError, match="tolerance must be a finite number"):
        compare_predictions(predictions(np.zeros(1)), predictions(np.zeros(1)), tolerance)


@given(
    st.lists(st.floats(0.0, 0.45), min_size=1, max_size=40),
    st.floats(0.0, 1e-3),
    st.floats(1e-9, 1e-3),
)
def test_a_perturbation_passes_exactly_when_it_is_within_tolerance(
    scores: list[float], shift: float, tolerance: float
) -> None:
    before, after = predictions(np.asarray(scores)), predictions(np.asarray(scores) + shift)
    report = compare_predictions(before, after, tolerance)
    # proba holds 1 - score too, whose rounding can move the difference by an ulp either way
    worst = {
        name: float(np.max(np.abs(np.asarray(after.column(name), dtype=float) - before.column(name))))
        for name in ("score", "proba")
    }
    assert report.passed == (max(worst.values()) <= tolerance)
    assert report.max_abs_diff == worst
