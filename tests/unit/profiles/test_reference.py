"""Reference profiles: what they keep of a column, and that they survive JSON unchanged."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from foretell.core import Feature, Output, Signature
from foretell.profiles import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    Thresholds,
    build_profile,
    numeric_drift,
)
from foretell.profiles.reference import TOP_VALUES, profile_categories, profile_numbers

SIGNATURE = Signature(
    inputs=(
        Feature("tenure", allow_missing=True),
        Feature("plan", "category", allow_missing=True, categories=("basic", "plus", "pro")),
        Feature("city", "string"),
        Feature("embedding", shape=(3,)),
    ),
    outputs=(Output("score", "score"), Output("label", "label", dtype="int64")),
)


def _profile(n: int = 1000, seed: int = 0) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    tenure = rng.normal(10, 2, n)
    tenure[:50] = np.nan
    inputs = {
        "tenure": tenure,
        "plan": np.where(np.arange(n) % 10 == 0, np.nan, rng.choice(2, n).astype(float)),  # codes; "pro" never
        "city": rng.choice([f"city{i}" for i in range(80)], n).astype(object),
        "embedding": rng.random((n, 3)),
    }
    outputs = {"score": rng.random(n), "label": rng.integers(0, 2, n)}
    return build_profile("churn", 3, SIGNATURE, inputs, outputs, source="sample")


def test_numeric_profile_keeps_percentiles_bins_and_missing_rate() -> None:
    profile = _profile()
    tenure = profile.inputs["tenure"]
    assert isinstance(tenure, NumericProfile)
    assert tenure.count == 1000
    assert tenure.missing_rate == 0.05
    assert len(tenure.quantiles) == 101
    assert tenure.quantiles[0] == tenure.min and tenure.quantiles[100] == tenure.max
    assert len(tenure.fractions) == len(tenure.edges) + 1 == 10
    assert math.isclose(sum(tenure.fractions), 1.0)
    assert all(math.isclose(f, 0.1, abs_tol=0.002) for f in tenure.fractions)


def test_a_discrete_feature_keeps_its_own_values_as_cut_points() -> None:
    flags = np.r_[np.zeros(700), np.ones(300)]
    profile = profile_numbers(flags)
    assert set(profile.quantiles) == {0.0, 1.0}
    assert profile.edges == (0.0, 1.0)
    assert profile.fractions == (0.0, 0.7, 0.3)


def test_a_count_is_binned_by_its_values_so_a_jump_to_a_rare_value_shows() -> None:
    calls = np.random.default_rng(3).poisson(0.5, 20_000).astype(float)  # mostly 0 and 1, rarely 4 or more
    profile = profile_numbers(calls)
    common = sorted(set(profile.quantiles[1:100]))
    assert profile.edges == tuple(common) and len(common) < 8  # one bin per common value, not deciles
    assert math.isclose(profile.fractions[-1], float((calls >= common[-1]).mean()))
    jumped = calls.copy()
    jumped[:2000] += 4  # a tenth of the customers call four times more
    assert numeric_drift("calls", profile, jumped, Thresholds()).status == "alert"
    assert numeric_drift("calls", profile, calls[::-1].copy(), Thresholds()).status == "ok"


def test_categories_by_code_are_named_and_every_declared_one_is_listed() -> None:
    plan = _profile().inputs["plan"]
    assert isinstance(plan, CategoricalProfile)
    assert plan.missing_rate == 0.1
    assert set(plan.frequencies) == {"basic", "plus", "pro"}
    assert plan.frequencies["pro"] == 0.0
    assert math.isclose(sum(plan.frequencies.values()), 1.0)
    assert not plan.open


def test_free_text_keeps_its_top_values_and_pools_the_rest() -> None:
    city = _profile().inputs["city"]
    assert isinstance(city, CategoricalProfile)
    assert len(city.frequencies) == TOP_VALUES
    assert city.open and 0 < city.other < 1
    assert math.isclose(sum(city.frequencies.values()) + city.other, 1.0)


def test_vectors_and_outputs_are_profiled_flattened_by_kind() -> None:
    profile = _profile()
    assert profile.inputs["embedding"].count == 3000
    assert isinstance(profile.outputs["score"], NumericProfile)
    label = profile.outputs["label"]
    assert isinstance(label, CategoricalProfile) and set(label.frequencies) == {"0", "1"}
    items = profile_categories(pa.array([[3, 5], [5, 7], None]))
    assert items.count == 4 and items.frequencies["5"] == 0.5


def test_rows_source_and_version_are_recorded() -> None:
    profile = _profile(n=400)
    assert (profile.model, profile.version, profile.rows, profile.source) == ("churn", 3, 400, "sample")
    assert profile.created_at.endswith("+00:00")


def test_a_column_with_no_values_has_a_profile_that_survives_json() -> None:
    empty = profile_numbers(np.full(10, np.nan))
    assert empty.missing_rate == 1.0 and empty.quantiles == ()
    again = NumericProfile.from_dict(json.loads(json.dumps(empty.to_dict())))
    assert again.to_dict() == empty.to_dict()


def test_infinite_scores_fall_in_the_end_bins_and_the_profile_survives_json() -> None:
    scores = np.concatenate([np.linspace(0.0, 1.0, 90), np.full(8, -np.inf), np.full(2, np.inf)])
    profile = profile_numbers(scores)  # a recommender gives the films a user has seen -inf
    assert (profile.min, profile.max, profile.missing_rate) == (0.0, 1.0, 0.0)
    assert profile.fractions[0] >= 0.08 and profile.fractions[-1] >= 0.02 and math.isclose(sum(profile.fractions), 1)
    text = json.dumps(profile.to_dict(), allow_nan=False)
    assert NumericProfile.from_dict(json.loads(text)) == profile
    assert profile_numbers(np.array([np.inf, -np.inf, np.nan])).quantiles == ()


finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    numbers=st.lists(st.one_of(finite, st.sampled_from([math.nan, math.inf, -math.inf])), min_size=1, max_size=300),
    words=st.lists(st.one_of(st.sampled_from(["a", "b", "c", "d"]), st.none(), st.text(max_size=3)), max_size=200),
)
def test_to_dict_from_dict_round_trip(numbers: list[float], words: list[str | None]) -> None:
    signature = Signature((Feature("x", allow_missing=True),), (Output("score", "score"),))
    profile = build_profile(
        "m", 1, signature, {"x": np.array(numbers)}, {"score": np.array(numbers)}, source="validation"
    )
    words_profile = profile_categories(np.array(words, dtype=object))
    for before in (profile, ReferenceProfile(**{**profile.__dict__, "inputs": {"w": words_profile}})):
        text = json.dumps(before.to_dict(), allow_nan=False)
        after = ReferenceProfile.from_dict(json.loads(text))
        assert after.to_dict() == before.to_dict()
        if not math.isnan(profile.inputs["x"].mean):  # type: ignore[union-attr]
            assert after == before
