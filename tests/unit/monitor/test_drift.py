"""The monitor's drift section over a real ledger: live segments, a real batch job's input file, by hour."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ledger.ledgerkit import prediction, publish_segment  # tests/unit/ledger, a namespace package

from foretell.batch import run
from foretell.core import Feature, Output, Signature
from foretell.ledger.query import LedgerReader
from foretell.ledger.segments import LedgerLocation
from foretell.monitor.drift import drift_section
from foretell.profiles import ReferenceProfile, Thresholds, build_profile, numeric_drift, psi

TIERS = Signature((Feature("a"), Feature("tier", "category", categories=("basic", "pro"))), (Output("score", "score"),))
REFERENCE_ROWS = 4000


def _reference(version: int = 1) -> ReferenceProfile:
    rng = np.random.default_rng(0)
    a = rng.normal(10, 2, REFERENCE_ROWS)
    tier = rng.choice(np.array(["basic", "pro"], dtype=object), REFERENCE_ROWS, p=[0.7, 0.3])
    score = np.where(tier == "pro", a * 10, a)
    return build_profile("tiers", version, TIERS, {"a": a, "tier": tier}, {"score": score}, source="sample")


@dataclass
class Window:
    folder: Path
    batch_a: np.ndarray
    live_a: np.ndarray
    batch_tier: list[str]
    live_tier: list[str]


@pytest.fixture
def ledger(models_home: Path, tmp_path: Path) -> Window:
    """A batch job over 3000 unshifted rows, then live traffic: hour 1 as the reference, hours 2-3 shifted by 1 sd."""
    rng = np.random.default_rng(1)
    path = tmp_path / "customers.parquet"
    batch_a = rng.normal(10, 2, 3000)
    batch_tier = rng.choice(["basic", "pro"], 3000, p=[0.7, 0.3]).tolist()
    pq.write_table(pa.table({"id": [f"C-{i}" for i in range(3000)], "a": batch_a, "tier": batch_tier}), path)
    folder = tmp_path / "ledger"
    run("tiers/1", path, tmp_path / "scores", home=models_home, workers=1, ledger=folder)
    location = LedgerLocation(folder)
    live_a, live_tier, rows = [], [], []
    for hour, shift in ((1, 0.0), (2, 2.0), (3, 2.0)):
        a = rng.normal(10 + shift, 2, 600)
        tier = rng.choice(["basic", "pro", "gold"], 600, p=[0.65, 0.3, 0.05]).tolist()
        for i in range(600):
            when = f"2099-01-01T{hour:02d}:{i % 60:02d}"
            rows.append(
                prediction(
                    f"p{hour}-{i}", when, key=f"K{i}", model="tiers", source="live" if i % 3 else "live-fallback",
                    inputs={"a": float(a[i]), "tier": tier[i]}, outputs={"score": float(a[i])},
                )
            )  # fmt: skip
        live_a.append(a)
        live_tier += tier
    rows.append(prediction("p-other", "2099-01-01T01:30", model="tiers", version=2, inputs={"a": 1e6, "tier": "pro"}))
    rows.append(prediction("p-stored", "2099-01-01T01:30", model="tiers", source="precomputed", inputs={"a": 1e6}))
    publish_segment(location, rows)
    return Window(folder, batch_a, np.concatenate(live_a), batch_tier, live_tier)


def independent_psi(profile: ReferenceProfile, values: np.ndarray) -> float:
    """The share of each reference bin by numpy's digitize, and PSI's formula by hand."""
    counts = np.bincount(np.digitize(values, profile.inputs["a"].edges), minlength=10)  # type: ignore[union-attr]
    reference = np.maximum(profile.inputs["a"].fractions, 1e-4)  # type: ignore[union-attr]
    shares = np.maximum(counts / counts.sum(), 1e-4)
    return float(np.sum((shares - reference) * np.log(shares / reference)))


def test_batch_and_online_traffic_are_judged_each_on_their_own(ledger: Window) -> None:
    profile = _reference()
    with LedgerReader(ledger.folder).session("tiers") as session:
        section = drift_section(session, profile, Thresholds(), version=1)
    assert section.rows == 3000 + 1800  # version 2 and the precomputed lookup left out
    batch, online = section.by_group["batch"], section.by_group["online"]
    assert [d.rows for d in batch] == [3000, 3000, 3000] and [d.rows for d in online] == [1800, 1800, 1800]
    assert batch[0].psi == pytest.approx(independent_psi(profile, ledger.batch_a))
    assert online[0].psi == pytest.approx(independent_psi(profile, ledger.live_a))
    # Two groups of three columns share one false-alarm chance.
    expected = numeric_drift("a", profile.inputs["a"], ledger.live_a, Thresholds(), family=6)  # type: ignore[arg-type]
    assert replace(online[0], since=None, group=None) == expected
    a, tier = section.features
    assert a == online[0] and a.group == "online" and a.status == "alert" and a.since == "2099-01-01T02:00:00+00:00"
    assert batch[0].status == "ok"  # a million unshifted batch rows would have hidden the online shift
    assert tier.group == "online" and tier.status != "ok" and tier.unseen_values == ("gold",)
    assert tier.unseen_share == pytest.approx(ledger.live_tier.count("gold") / len(ledger.live_tier))
    assert tier.since == "2099-01-01T01:00:00+00:00"  # "gold" came with the first live hour
    assert batch[1].unseen_values == ()
    assert set(section.to_dict()["by_group"]) == {"batch", "online"}


def test_outputs_are_judged_from_every_scored_row(ledger: Window) -> None:
    with LedgerReader(ledger.folder).session("tiers") as session:
        section = drift_section(session, _reference(), Thresholds(), version=1)
        scores = np.array([s for (s,) in session.rows(
            "SELECT outputs.score FROM predictions WHERE version = 1 AND source IN ('batch', 'live', 'live-fallback') "
            "ORDER BY predicted_at"
        )])  # fmt: skip
    assert len(scores) == 3000 + 1800
    profile = _reference().outputs["score"]
    for group, part in (("batch", scores[:3000]), ("online", scores[3000:])):  # the batch job ran first
        score = section.by_group[group][-1]
        assert score.name == "score" and score.rows == len(part)
        counts = np.bincount(np.digitize(part, profile.edges), minlength=len(profile.fractions))  # type: ignore[union-attr]
        assert score.psi == pytest.approx(psi(profile.fractions, counts))  # type: ignore[union-attr]
    [chosen] = section.outputs
    assert chosen in (section.by_group["batch"][-1], section.by_group["online"][-1])


def test_a_window_like_the_reference_is_ok(ledger: Window) -> None:
    from datetime import UTC, datetime

    until = datetime(2099, 1, 1, 2, tzinfo=UTC)  # the batch job and the first, unshifted, live hour
    with LedgerReader(ledger.folder).session("tiers", until=until) as session:
        section = drift_section(session, _reference(), Thresholds(), version=1)
    a, tier = section.features
    assert a.status == "ok", a.reasons
    assert tier.unseen_values == ("gold",)  # live traffic brought it in its first hour
    assert section.to_dict()["features"][0]["name"] == "a"


def test_without_a_profile_nothing_is_judged(ledger: Window) -> None:
    with LedgerReader(ledger.folder).session("tiers") as session:
        section = drift_section(session, None, Thresholds(), version=1)
    assert section.reference is None and section.status == "unknown" and section.features == ()


def test_an_empty_window_has_no_rows_and_raises_nothing(tmp_path: Path) -> None:
    with LedgerReader(tmp_path / "nothing").session("tiers") as session:
        section = drift_section(session, _reference(), Thresholds(), version=None)
    assert section.rows == 0 and section.status == "ok"
    assert [f.rows for f in section.features] == [0, 0]


def test_churn_traffic_with_one_feature_shifted_in_half_the_rows_alerts_on_it_alone(tmp_path: Path) -> None:
    """The issue's target through the whole path: 31 features recorded by live traffic, read back from the ledger."""
    from foretell.demo.churn import CHURN_SIGNATURE, generate_customers

    names = CHURN_SIGNATURE.input_names
    reference = generate_customers(20_000, seed=101)
    profile = build_profile("churn", 1, CHURN_SIGNATURE, {n: reference.column(n) for n in names}, {}, source="sample")
    traffic = generate_customers(30_000, seed=5)
    spend = traffic.column("monthly_spend").to_numpy(zero_copy_only=False).copy()
    spend[::2] += 0.5 * np.nanstd(spend)
    traffic = traffic.set_column(traffic.schema.get_field_index("monthly_spend"), "monthly_spend", pa.array(spend))
    location = LedgerLocation(tmp_path / "ledger")
    rows = traffic.select(names).to_pylist()
    for hour in range(3):  # three segments, an hour apart
        chunk = rows[hour * 10_000 : (hour + 1) * 10_000]
        publish_segment(
            location,
            [prediction(f"p{hour}-{i}", f"2099-01-01T{hour:02d}:{i % 60:02d}", inputs=r) for i, r in enumerate(chunk)],
            seq=hour + 1,
        )
    with LedgerReader(location).session("churn") as session:
        section = drift_section(session, profile, Thresholds(), version=1)
    statuses = {d.name: d.status for d in section.features}
    assert section.rows == 30_000 and len(statuses) == 31
    assert statuses.pop("monthly_spend") == "alert"
    assert set(statuses.values()) == {"ok"}, {d.name: d.reasons for d in section.features if d.status != "ok"}
    [spend_drift] = [d for d in section.features if d.name == "monthly_spend"]
    assert spend_drift.since == "2099-01-01T00:00:00+00:00"
