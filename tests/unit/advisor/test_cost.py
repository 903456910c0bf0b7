"""The advisor's cost model on fixed measurements: no timing, only arithmetic and the rules of thumb."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foretell.advisor import PRESETS, Measurements, Workload, advise, live_cost_per_request, workload_from
from foretell.advisor.cost import crossover, hybrid_cost, real_time_cost
from foretell.errors import InvalidInput

# Roughly the demo churn model on this machine (docs/benchmarks.md).
M = Measurements(
    batch_rows_per_s=20_000,
    single_p50_ms=3.0,
    single_p99_ms=4.0,
    live_rps=5_800,
    live_p99_ms=18.0,
    lookup_rps=6_500,
    lookup_p99_ms=1.5,
    lookup_loaded_p99_ms=11.0,
    store_write_rows_per_s=300_000,
    prediction_bytes=90,
    cores=2,
)
ONLINE = Workload(
    population=1_000_000, active_per_day=20_000, requests_per_day=30_000, peak_rps=5, p99_ms=200, freshness_s=86_400
)


@pytest.mark.parametrize(
    ("preset", "expected"), [("nightly-churn", "hybrid"), ("movie-recs", "hybrid"), ("fraud-check", "real-time")]
)
def test_each_preset_gets_its_expected_recommendation_with_reasons(preset, expected):
    advice = advise(PRESETS[preset], M)
    assert advice.recommendation == expected
    assert advice.reasons and all(isinstance(r, str) and r for r in advice.reasons)


def test_no_online_requests_means_batch():
    offline = ONLINE.replace(requests_per_day=0, peak_rps=0, active_per_day=0)
    advice = advise(offline, M)
    assert advice.recommendation == "batch"
    assert advice.modes["batch"].feasible and not advice.modes["real-time"].feasible
    assert advice.modes["batch"].core_hours_per_day == pytest.approx(1_000_000 / 20_000 / 3600)


def test_a_freshness_need_shorter_than_a_run_rules_batch_out():
    offline = ONLINE.replace(requests_per_day=0, peak_rps=0, active_per_day=0, freshness_s=20)
    batch = advise(offline, M).modes["batch"]
    assert not batch.feasible
    assert "one run takes 25 s on 2 cores, longer than the 20 s freshness allows" in (batch.why_not or "")
    hourly = advise(offline.replace(freshness_s=3_600), M).modes["batch"]
    assert hourly.feasible and hourly.freshness_s <= 3_600
    assert hourly.core_hours_per_day == pytest.approx(86_400 / (3_600 - 25) * 50 / 3_600)


def test_a_latency_objective_below_one_call_rules_real_time_out():
    advice = advise(ONLINE.replace(p99_ms=2.0), M)
    assert not advice.modes["real-time"].feasible
    assert "over the 2 ms objective" in (advice.modes["real-time"].why_not or "")


def test_the_cost_of_a_live_request_falls_with_traffic_down_to_the_saturated_throughput():
    costs = [live_cost_per_request(M, rate) for rate in (0, 1, 10, 100, 1_000, 100_000)]
    assert costs == sorted(costs, reverse=True)
    assert costs[0] == pytest.approx(0.003)
    assert costs[-1] == pytest.approx(1 / 5_800)


def test_crossovers_move_the_right_way():
    base = crossover(ONLINE, M)
    bigger = crossover(ONLINE.replace(population=4_000_000, active_per_day=20_000), M)
    assert base["requests_per_day"] is not None and bigger["requests_per_day"] is not None
    # A larger population makes the nightly job dearer: real-time stays cheaper up to more requests.
    assert bigger["requests_per_day"] > base["requests_per_day"]
    busier = crossover(ONLINE.replace(requests_per_day=3_000_000, peak_rps=100), M)
    # More traffic makes a store worth it for a larger population.
    assert busier["population"] is not None and base["population"] is not None
    assert busier["population"] > base["population"]
    stricter = crossover(ONLINE.replace(freshness_s=3_600), M)
    # A stricter freshness need sends more requests live, so hybrid pays off only at higher traffic (or never).
    assert stricter["requests_per_day"] is None or stricter["requests_per_day"] > base["requests_per_day"]


def test_on_either_side_of_the_crossover_the_cheaper_way_changes():
    requests = crossover(ONLINE, M)["requests_per_day"]
    assert requests is not None
    below, above = ONLINE.replace(requests_per_day=requests * 0.5), ONLINE.replace(requests_per_day=requests * 2)
    assert real_time_cost(below, M).core_hours_per_day < hybrid_cost(below, M).core_hours_per_day
    assert real_time_cost(above, M).core_hours_per_day > hybrid_cost(above, M).core_hours_per_day
    assert advise(below, M).recommendation == "real-time"
    assert advise(above, M).recommendation == "hybrid"


def test_advice_is_json_with_every_mode_and_field():
    document = orjson.loads(orjson.dumps(advise(PRESETS["movie-recs"], M).to_dict()))
    assert set(document) == {"workload", "measurements", "modes", "recommendation", "reasons", "crossover"}
    assert set(document["modes"]) == {"batch", "real-time", "hybrid"}
    for cost in document["modes"].values():
        assert set(cost) == {
            "mode", "feasible", "why_not", "core_hours_per_day", "peak_cores", "p99_ms", "freshness_s",
            "store_bytes", "wasted_fraction",
        }  # fmt: skip
    assert set(document["crossover"]) == {"requests_per_day", "population"}


def test_workloads_from_settings_and_presets_are_checked():
    assert workload_from({"preset": "nightly-churn", "requests_per_day": 5}).requests_per_day == 5
    assert workload_from({"preset": "movie-recs", "freshness": "1h"}).freshness_s == 3_600
    with pytest.raises(InvalidInput, match="no preset 'nope'"):
        workload_from({"preset": "nope"})
    with pytest.raises(InvalidInput, match="unknown workload setting"):
        workload_from({"preset": "movie-recs", "populaton": 3})
    with pytest.raises(InvalidInput, match="needs population"):
        workload_from({"requests_per_day": 3})
    with pytest.raises(InvalidInput, match="active_per_day must be between 0 and population"):
        ONLINE.replace(active_per_day=2_000_000)


@settings(max_examples=200, deadline=None)
@given(
    population=st.integers(0, 10**8),
    requests=st.floats(0, 1e9, allow_nan=False),
    freshness=st.floats(0, 7 * 86_400, allow_nan=False),
    events=st.floats(0, 10, allow_nan=False),
    bulk=st.booleans(),
    precomputable=st.booleans(),
)
def test_any_workload_gets_one_recommendation_and_sane_figures(
    population, requests, freshness, events, bulk, precomputable
):
    workload = Workload(
        population=population,
        active_per_day=population // 3,
        requests_per_day=requests,
        peak_rps=max(requests / 20_000, 1e-3) if requests else 0.0,
        p99_ms=100,
        freshness_s=freshness,
        events_per_entity_per_day=events,
        bulk_daily=bulk,
        precomputable=precomputable,
    )
    advice = advise(workload, M)
    assert advice.recommendation in ("batch", "real-time", "hybrid")
    for cost in advice.modes.values():
        assert cost.core_hours_per_day >= 0 and cost.peak_cores >= 0 and 0 <= cost.wasted_fraction <= 1
        assert cost.feasible == (cost.why_not is None)


def test_no_crossover_is_claimed_where_only_one_way_fits():
    assert crossover(PRESETS["fraud-check"], M) == {"requests_per_day": None, "population": None}
    offline = ONLINE.replace(requests_per_day=0, peak_rps=0, active_per_day=0)
    assert crossover(offline, M) == {"requests_per_day": None, "population": None}
