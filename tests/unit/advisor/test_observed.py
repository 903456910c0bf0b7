"""The workload measured from the ledger, against counts computed independently from `foretell ledger export`.

Two recorded days of a hybrid set-up (nightly jobs, lookups, fallbacks, events, live
requests, a few errors), written as real ledger files; every figure `observe` reports is
computed again with pandas from the exported Parquet file.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from recorded import DAY0, Recording, Row, seconds
from test_cost import M

from foretell import api
from foretell.advisor.current import LedgerAdvice
from foretell.advisor.observed import ObservedTraffic, observe, workload_from_ledger
from foretell.errors import InvalidInput
from foretell.ledger.batch_index import batch_jobs
from foretell.ledger.query import LedgerReader

REQUESTS = ("live", "precomputed", "live-fallback")
SINCE, UNTIL = DAY0, DAY0 + timedelta(days=2)


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    rec = Recording(tmp_path_factory.mktemp("two-days"))
    rng = np.random.default_rng(17)
    population = [f"C-{i:05d}" for i in range(800)]
    rec.job("night-1", seconds(0, 2 * 3600), population)
    rec.job("night-2", seconds(1, 2 * 3600 + 17), population[:750])
    rows: list[Row] = []
    for day in (0, 1):
        # Lookups from 08:00 to 20:00, keys skewed (some asked often), bursts of a few in one second.
        at = np.sort(rng.uniform(8 * 3600, 20 * 3600, 1_500))
        at[100:110] = at[100]  # a burst: ten lookups in one second
        keys = rng.zipf(1.3, at.size) % len(population)
        for second, k in zip(at, keys, strict=True):
            source = "live-fallback" if rng.random() < 0.07 else "precomputed"
            rows.append(Row(seconds(day, float(second)), source, population[k], float(rng.gamma(2.0, 1.0))))
        for second in rng.uniform(9 * 3600, 18 * 3600, 40):  # events: each rescored and written back
            rows.append(Row(seconds(day, float(second)), "event-refresh", population[int(rng.integers(0, 60))]))
        for i, second in enumerate(rng.uniform(0, 86_400, 120)):  # infer, some without a key, some failing
            key = None if i % 3 == 0 else population[int(rng.integers(0, 800))]
            status = "error" if i % 25 == 0 else "ok"
            rows.append(Row(seconds(day, float(second)), "live", key, float(rng.gamma(3.0, 2.0)), status))
    rec.segment(rows)
    return rec


def _observed(rec: Recording, **kwargs: Any) -> ObservedTraffic:
    reader = LedgerReader(rec.ledger)
    with reader.session(rec.model, since=SINCE, until=UNTIL) as session:
        return observe(
            session, rec.model, since=SINCE, until=UNTIL, jobs=batch_jobs(reader.location, rec.model), **kwargs
        )


@pytest.fixture(scope="module")
def exported(two_days: Recording) -> pd.DataFrame:
    path = two_days.root / "export.parquet"
    api.ledger_export(two_days.model, path, since=SINCE, until=UNTIL, ledger=two_days.ledger)
    return pd.read_parquet(path)


def test_every_figure_matches_an_independent_count_on_the_export(two_days: Recording, exported: pd.DataFrame) -> None:
    t = _observed(two_days)
    df = exported
    start = max(pd.Timestamp(SINCE), df["predicted_at"].min())
    days = (pd.Timestamp(UNTIL) - start).total_seconds() / 86_400
    asked = df[df["source"].isin(REQUESTS)].copy()

    assert t.days == pytest.approx(days)
    assert t.rows == len(df)
    assert t.rows_by_source == df["source"].value_counts().sort_index().to_dict()
    assert t.errors == int((df["status"] == "error").sum())
    assert t.requests == len(asked)
    assert t.requests_per_day == pytest.approx(len(asked) / days)
    assert t.peak_second == asked["predicted_at"].dt.floor("s").value_counts().max() == 10
    assert t.peak_minute == asked["predicted_at"].dt.floor("min").value_counts().max()

    keyed = asked[asked["key"].notna()].sort_values("predicted_at")
    keyed["day"] = ((keyed["predicted_at"] - start).dt.total_seconds() // 86_400).astype(int)
    assert t.distinct_keys == keyed["key"].nunique()
    assert t.active_per_day == pytest.approx(len(keyed[["day", "key"]].drop_duplicates()) / max(days, 1.0))
    assert t.repeat_share == pytest.approx(keyed.duplicated(["day", "key"]).sum() / len(keyed))
    assert t.keyless_requests == int(asked["key"].isna().sum())

    assert t.population == 750 and "night-2" in t.population_from  # the latest job's rows
    assert t.events == int((df["source"] == "event-refresh").sum())
    lookups = df[df["source"].isin(("precomputed", "live-fallback"))]
    assert t.fallback_share == pytest.approx((lookups["source"] == "live-fallback").mean())
    assert t.current == "hybrid"
    assert [j["job_id"] for j in t.jobs] == ["night-1", "night-2"]

    for source, group in df[(df["status"] == "ok") & (df["source"] != "batch")].groupby("source"):
        seen = t.latency_ms[str(source)]
        assert seen["count"] == len(group)
        assert seen["p50"] == pytest.approx(group["latency_ms"].quantile(0.5))
        assert seen["p99"] == pytest.approx(group["latency_ms"].quantile(0.99))
        assert seen["max"] == pytest.approx(group["latency_ms"].max())


def test_staleness_is_the_age_of_the_stored_answer_from_its_job_or_the_key_s_last_write_back(
    two_days: Recording, exported: pd.DataFrame
) -> None:
    t = _observed(two_days)
    df = exported.sort_values("predicted_at")
    jobs = pd.DataFrame({"job_at": pd.to_datetime(df[df["source"] == "batch"]["predicted_at"].unique(), utc=True)})
    ok = df[df["status"] == "ok"]
    looked = ok[ok["source"] == "precomputed"][["predicted_at", "key"]]
    written = ok[ok["source"].isin(("live-fallback", "event-refresh"))][["predicted_at", "key"]]
    written = written.rename(columns={"predicted_at": "written_at"})
    aged = pd.merge_asof(looked, jobs.sort_values("job_at"), left_on="predicted_at", right_on="job_at")
    aged = pd.merge_asof(aged, written.sort_values("written_at"), left_on="predicted_at", right_on="written_at",
                         by="key")  # fmt: skip
    made = aged[["job_at", "written_at"]].max(axis=1)
    age = (aged["predicted_at"] - made).dt.total_seconds()
    assert t.staleness_s["count"] == len(looked) and t.staleness_s["unknown"] == 0
    assert t.staleness_s["p50"] == pytest.approx(age.quantile(0.5))
    assert t.staleness_s["p95"] == pytest.approx(age.quantile(0.95))
    assert t.staleness_s["max"] == pytest.approx(age.max())
    assert (aged["written_at"] > aged["job_at"]).any()  # some answers were written back after the night's job


def test_the_workload_says_where_each_figure_came_from(two_days: Recording) -> None:
    observed = workload_from_ledger(_observed(two_days))
    w = observed.workload
    assert w.population == 750 and w.requests_per_day == pytest.approx(observed.traffic.requests_per_day)
    assert w.fallback_share == pytest.approx(observed.traffic.fallback_share)
    assert observed.provenance["requests_per_day"].startswith(
        f"measured from {observed.traffic.rows:,} ledger rows over 2.00 days: {observed.traffic.requests:,} requests"
    )
    assert observed.provenance["p99_ms"].startswith("default: 200 ms")
    assert observed.provenance["freshness_s"].startswith("default: one day")
    assert "part of the hybrid set-up" in observed.provenance["bulk_daily"] and not w.bulk_daily

    tuned = workload_from_ledger(
        observed.traffic, {"p99_ms": 50, "population": 2_000, "freshness": "1h"}, config_max_age_s=7_200
    )
    assert tuned.workload.p99_ms == 50 and tuned.workload.population == 2_000
    assert tuned.workload.freshness_s == 3_600 and tuned.workload.fallback_share is None  # not this freshness's share
    assert tuned.overridden == ["population"]
    assert tuned.provenance["population"] == "option (overrides the measured figure)"
    from_config = workload_from_ledger(observed.traffic, config_max_age_s=7_200)
    assert from_config.workload.freshness_s == 7_200
    assert from_config.provenance["freshness_s"] == "inferred: the serve config's max_age for the model"


def test_a_window_with_no_rows_of_the_model_is_a_clear_error(two_days: Recording) -> None:
    reader = LedgerReader(two_days.ledger)
    later = UNTIL + timedelta(days=30)
    with (
        reader.session("churn", since=later, until=later + timedelta(days=1)) as session,
        pytest.raises(InvalidInput, match="the ledger has no predictions of model 'churn' between 2027-01-02"),
    ):
        observe(session, "churn", since=later, until=later + timedelta(days=1), jobs=[])


# -- recorded traffic whose best way is known ------------------------------------------------------


def _advice(rec: Recording, since: datetime = SINCE, until: datetime = UNTIL) -> LedgerAdvice:
    return api.advise_from_ledger(rec.model, since=since, until=until, ledger=rec.ledger, measurements=M)


def test_every_key_looked_up_many_times_a_day_with_rare_events_is_hybrid(tmp_path: Path) -> None:
    rec = Recording(tmp_path)
    population = [f"C-{i}" for i in range(2_000)]
    rec.job("night", seconds(0, 3_600), population)
    rng = np.random.default_rng(3)
    rows = [Row(seconds(0, 7_200 + i * 1.5), "live", population[i % 2_000]) for i in range(40_000)]
    rows += [Row(seconds(0, float(s)), "event-refresh", population[int(rng.integers(0, 2_000))])
             for s in rng.uniform(7_200, 80_000, 20)]  # fmt: skip
    rec.segment(rows)
    advice = _advice(rec, until=SINCE + timedelta(days=1))
    assert advice.current == "real-time"
    assert advice.advice.recommendation == "hybrid", advice.advice.reasons
    assert advice.observed.traffic.repeat_share == pytest.approx(1 - 2_000 / 40_000)
    assert advice.comparison()["saving_core_hours_per_day"] > 0


def test_very_few_keys_of_a_large_population_with_events_all_the_time_is_real_time(tmp_path: Path) -> None:
    rec = Recording(tmp_path)
    rec.job("night", seconds(0, 3_600), [f"C-{i}" for i in range(1_000_000)])
    few = [f"C-{i}" for i in range(0, 1_000_000, 10_000)]
    rows = [Row(seconds(0, 7_200 + i * 60.0), "precomputed", few[i % len(few)]) for i in range(1_000)]
    rows += [Row(seconds(0, 7_230 + i * 5.0), "event-refresh", few[i % len(few)]) for i in range(12_000)]
    rec.segment(rows)
    advice = _advice(rec, until=SINCE + timedelta(days=1))
    assert advice.current == "hybrid"
    assert advice.observed.workload.population == 1_000_000
    assert advice.advice.recommendation == "real-time", advice.advice.reasons
    lines = " ".join(advice.comparison_lines())
    assert "The current set-up, hybrid, costs" in lines and "for real-time: the change saves" in lines


def test_a_daily_batch_and_no_online_traffic_is_batch(tmp_path: Path) -> None:
    rec = Recording(tmp_path)
    for day in range(3):
        rec.job(f"night-{day}", seconds(day, 7_200), [f"C-{i}" for i in range(5_000)])
    advice = _advice(rec, until=SINCE + timedelta(days=3))
    assert advice.current == "batch" and advice.advice.recommendation == "batch"
    w = advice.observed.workload
    assert w.bulk_daily and w.requests_per_day == 0 and w.population == 5_000
    assert advice.observed.provenance["bulk_daily"].startswith("inferred: a daily batch job")
