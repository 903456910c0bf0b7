"""Drift statistics against independent computations, and the issue's targets on generated traffic."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from foretell.demo.churn import CHURN_SIGNATURE, generate_customers
from foretell.errors import InvalidThresholds
from foretell.profiles import (
    FeatureDrift,
    ReferenceProfile,
    Thresholds,
    build_profile,
    categorical_drift,
    numeric_drift,
    psi,
)
from foretell.profiles.drift import chi2_quantile, ks_floor, psi_floor
from foretell.profiles.reference import profile_categories, profile_numbers

shares = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=2, max_size=12).filter(lambda s: sum(s) > 0.01)
# Two share lists over the same bins, each with something in it: cutting two `shares` to one length could
# leave one all zeros, and normalising it divided by zero (a warning, so an error here).
any_bins = st.integers(min_value=2, max_value=12).flatmap(
    lambda n: st.tuples(*[st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=n, max_size=n)] * 2)
)
reference_and_counts = any_bins.filter(lambda pair: sum(pair[0]) > 0.01)  # counts may be all zero
two_shares = any_bins.filter(lambda pair: sum(pair[0]) > 0.01 and sum(pair[1]) > 0.01)


def _normalised(values: list[float]) -> np.ndarray:
    array = np.array(values)
    return array / array.sum()


@given(bins=reference_and_counts)
def test_psi_is_never_negative(bins: tuple[list[float], list[float]]) -> None:
    reference, current = bins
    assert psi(_normalised(reference), np.array(current)) >= 0


@given(reference=shares, scale=st.floats(min_value=0.5, max_value=1e6))
def test_psi_is_zero_for_identical_shares(reference: list[float], scale: float) -> None:
    fractions = _normalised(reference)
    assert psi(fractions, fractions * scale) == pytest.approx(0.0, abs=1e-12)


@given(bins=two_shares)
def test_psi_is_symmetric(bins: tuple[list[float], list[float]]) -> None:
    reference, current = bins
    a, b = _normalised(reference), _normalised(current)
    assert psi(a, b) == pytest.approx(psi(b, a), rel=1e-9, abs=1e-12)


def test_psi_by_hand() -> None:
    reference = np.array([0.2, 0.3, 0.5, 0.0])
    counts = np.array([30, 30, 40, 0])
    r = np.maximum(reference, 1e-4)
    c = np.maximum(counts / 100, 1e-4)
    assert psi(reference, counts) == pytest.approx(float(np.sum((c - r) * np.log(c / r))))


def _two_sample_ks(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.sort(a), np.sort(b)
    points = np.concatenate([a, b])
    return float(
        np.max(np.abs(np.searchsorted(a, points, "right") / len(a) - np.searchsorted(b, points, "right") / len(b)))
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shape", ["continuous", "discrete", "skewed"])
def test_psi_and_ks_match_independent_computations(seed: int, shape: str) -> None:
    rng = np.random.default_rng(seed)
    draw = {
        "continuous": lambda n, shift: rng.normal(shift, 1, n),
        "discrete": lambda n, shift: rng.poisson(3 + 3 * shift, n).astype(float),
        "skewed": lambda n, shift: rng.lognormal(shift, 1, n),
    }[shape]
    reference, current = draw(4000, 0.0), draw(3000, 0.3 * (seed % 3))
    current[:100] = np.nan
    profile = profile_numbers(reference)
    drift = numeric_drift("x", profile, current, Thresholds())

    present = current[~np.isnan(current)]
    counts = np.bincount(np.digitize(present, profile.edges), minlength=len(profile.edges) + 1)
    assert drift.psi == pytest.approx(psi(profile.fractions, counts), rel=1e-12)
    assert drift.current == pytest.approx(tuple(counts / counts.sum()))
    assert drift.ks is not None
    assert abs(drift.ks - _two_sample_ks(reference, present)) <= 0.011
    assert drift.missing_rate == 100 / 3000


def test_noise_floors() -> None:
    # Wilson-Hilferty against the tables' 0.999 quantiles: within 1% from 9 degrees of freedom on.
    assert chi2_quantile(9) == pytest.approx(27.877, rel=0.01)
    assert chi2_quantile(49) == pytest.approx(85.351, rel=0.002)
    assert chi2_quantile(2) == pytest.approx(13.816, rel=0.03)
    assert chi2_quantile(9, 1e-5) == pytest.approx(39.341, rel=0.025)
    assert psi_floor(200, 5000, 10) == pytest.approx((1 / 200 + 1 / 5000) * chi2_quantile(9))
    assert ks_floor(1000, 1000) == pytest.approx(1.949 * math.sqrt(2 / 1000), rel=1e-3)


def test_thresholds_from_a_table() -> None:
    assert Thresholds.from_mapping({"psi_warn": 0.1, "psi_alert": 0.25, "min_rows": 50}) == Thresholds(
        psi_warn=0.1, psi_alert=0.25, min_rows=50
    )
    assert Thresholds.from_mapping(Thresholds().to_dict()) == Thresholds()
    with pytest.raises(InvalidThresholds, match=r"unknown threshold keys \['psi_warning'\]"):
        Thresholds.from_mapping({"psi_warning": 0.1})
    with pytest.raises(InvalidThresholds, match=r"'ks_alert' must be a number; got str '0\.2'"):
        Thresholds.from_mapping({"ks_alert": "0.2"})
    with pytest.raises(InvalidThresholds, match=r"'min_rows' must be a whole number; got float 2\.5"):
        Thresholds.from_mapping({"min_rows": 2.5})
    with pytest.raises(InvalidThresholds, match="psi_warn must be >= 0 and <= psi_alert"):
        Thresholds.from_mapping({"psi_warn": 0.3})


# -- the targets, on traffic shaped like the churn demo's (26 numeric + 5 category features) --------


def _churn_profile(rows: int = 20_000) -> ReferenceProfile:
    table = generate_customers(rows, seed=101)
    inputs = {f.name: table.column(f.name) for f in CHURN_SIGNATURE.inputs}
    return build_profile("churn", 1, CHURN_SIGNATURE, inputs, {}, source="sample")


@pytest.fixture(scope="module")
def churn_profile() -> ReferenceProfile:
    return _churn_profile()


def _drift(profile: ReferenceProfile, table: pa.Table) -> dict[str, FeatureDrift]:
    out = {}
    for name, column in profile.inputs.items():
        check = numeric_drift if column.kind == "numeric" else categorical_drift
        out[name] = check(name, column, table.column(name), Thresholds(), family=len(profile.inputs))  # type: ignore[arg-type]
    return out


def test_half_the_traffic_shifted_by_half_a_sd_alerts_and_nothing_else_moves(churn_profile: ReferenceProfile) -> None:
    table = generate_customers(50_000, seed=7)
    spend = table.column("monthly_spend").to_numpy(zero_copy_only=False).copy()
    half = np.arange(len(spend)) % 2 == 0
    spend[half] += 0.5 * np.nanstd(spend)
    drifts = _drift(
        churn_profile, table.set_column(table.schema.get_field_index("monthly_spend"), "monthly_spend", pa.array(spend))
    )
    assert len(drifts) == 31
    assert drifts["monthly_spend"].status == "alert", drifts["monthly_spend"]
    assert drifts["monthly_spend"].psi is not None and drifts["monthly_spend"].psi > 0.05
    others = {name: d.status for name, d in drifts.items() if name != "monthly_spend"}
    assert set(others.values()) == {"ok"}, {n: drifts[n].reasons for n, s in others.items() if s != "ok"}


def test_a_category_never_seen_in_training_is_flagged_by_name() -> None:
    profile = profile_categories(
        np.array(["basic", "standard"] * 500, dtype=object), declared=("basic", "standard", "premium")
    )
    current = np.array(["basic", "standard"] * 450 + ["premium"] * 60 + ["gold"] * 40, dtype=object)
    drift = categorical_drift("plan", profile, current, Thresholds())
    assert drift.status == "alert"
    assert drift.unseen_share == pytest.approx(100 / 1000)
    assert set(drift.unseen_values) == {"premium", "gold"}
    assert any(reason.startswith("unseen share 0.1 > alert 0.05") for reason in drift.reasons)


def test_a_jump_in_missing_values_is_flagged() -> None:
    rng = np.random.default_rng(3)
    profile = profile_numbers(np.where(rng.random(5000) < 0.02, np.nan, rng.normal(size=5000)))
    current = np.where(rng.random(2000) < 0.15, np.nan, rng.normal(size=2000))
    drift = numeric_drift("age", profile, current, Thresholds())
    assert drift.status == "alert"
    assert drift.reasons == (f"missing-rate change {drift.missing_rate - profile.missing_rate:.3g} > alert 0.1",)


@pytest.mark.parametrize("seed", range(40))
def test_small_windows_without_drift_stay_ok(churn_profile: ReferenceProfile, seed: int) -> None:
    rows = 200 + (seed * 37) % 301
    drifts = _drift(churn_profile, generate_customers(rows, seed=1000 + seed))
    flagged = {name: d.reasons for name, d in drifts.items() if d.status != "ok"}
    assert not flagged


def test_fewer_rows_than_min_rows_are_not_judged() -> None:
    profile = profile_numbers(np.random.default_rng(0).normal(size=1000))
    drift = numeric_drift("x", profile, np.full(50, 9.0), Thresholds())
    assert drift.status == "ok"
    assert drift.reasons == ("50 rows, fewer than min_rows 200: not judged",)


def test_conventional_thresholds_are_one_table_away() -> None:
    rng = np.random.default_rng(5)
    profile = profile_numbers(rng.normal(size=20_000))
    current = rng.normal(size=20_000)
    current[::2] += 0.5
    assert numeric_drift("x", profile, current, Thresholds()).status == "alert"
    folklore = Thresholds.from_mapping({"psi_warn": 0.1, "psi_alert": 0.25, "ks_warn": 0.2, "ks_alert": 0.3})
    assert numeric_drift("x", profile, current, folklore).status == "ok"
