"""WindowedBins: the last hour's counts, slice by slice, for the server's live drift gauges."""

from __future__ import annotations

import numpy as np
import pytest

from foretell.core import Feature, Output, Signature
from foretell.profiles import Thresholds, WindowedBins, build_profile, numeric_drift
from foretell.profiles.reference import ReferenceProfile

SIGNATURE = Signature(
    (Feature("x"), Feature("plan", "category", categories=("a", "b"))),
    (Output("score", "score"),),
)


def _profile() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    inputs = {"x": rng.normal(size=5000), "plan": rng.choice(np.array(["a", "b"], dtype=object), 5000)}
    return build_profile("m", 1, SIGNATURE, inputs, {"score": rng.random(5000)}, source="sample")


def test_psi_over_the_window_equals_psi_of_its_rows() -> None:
    profile = _profile()
    rng = np.random.default_rng(1)
    bins = WindowedBins(profile, window=3600, step=60)
    batches = [rng.normal(shift, 1, 500) for shift in (0.0, 0.5, 1.0)]
    for minute, values in enumerate(batches):
        bins.add({"x": values, "plan": np.array(["a"] * 500, dtype=object), "unknown": values}, at=1000.0 + 60 * minute)
    expected = numeric_drift("x", profile.inputs["x"], np.concatenate(batches), Thresholds())  # type: ignore[arg-type]
    assert bins.psi("x") == pytest.approx(expected.psi)
    assert bins.rows("x") == 1500
    assert set(bins.psi_by_feature()) == {"x", "plan"}
    assert bins.psi("score") is None  # an output nobody fed yet


def test_slices_leave_the_window_when_it_passes_them() -> None:
    bins = WindowedBins(_profile(), window=600, step=60)
    bins.add({"x": np.full(100, 5.0)}, at=0.0)
    bins.add({"x": np.zeros(100)}, at=300.0)
    assert bins.rows("x") == 200
    assert bins.rows("x", now=601.0) == 100
    bins.add({"x": np.zeros(10)}, at=1000.0)
    assert bins.rows("x") == 10


def test_a_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window and step must be positive"):
        WindowedBins(_profile(), window=0)
