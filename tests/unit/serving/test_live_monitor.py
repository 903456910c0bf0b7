"""LiveMonitor: drift gauges and score histograms from ledger-shaped tables, as the ledger writer hands them over."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from foretell.adapters.outputs import classifier_outputs
from foretell.core.feature import Feature
from foretell.core.schema import Signature
from foretell.profiles import ReferenceProfile, Thresholds, build_profile, categorical_drift, numeric_drift
from foretell.serving.live_monitor import LiveMonitor

SIGNATURE = Signature(
    (Feature("x"), Feature("y"), Feature("plan", "category", categories=("basic", "pro"))), classifier_outputs([0, 1])
)


def reference(rng: np.random.Generator) -> ReferenceProfile:
    n = 5000
    inputs = {"x": rng.normal(size=n), "y": rng.normal(size=n), "plan": np.where(rng.random(n) < 0.7, "basic", "pro")}
    return build_profile("clf", 1, SIGNATURE, inputs, {"score": rng.random(n)}, source="sample")


def ledger_table(x: np.ndarray, y: np.ndarray, plan: Sequence[str | None], *, version: int = 1) -> pa.Table:
    n = len(x)
    inputs = pa.StructArray.from_arrays([pa.array(x), pa.array(y), pa.array(plan)], names=["x", "y", "plan"])
    score = 1 / (1 + np.exp(-x))
    outputs = pa.StructArray.from_arrays(
        [pa.array(score), pa.array([[1 - s, s] for s in score])], names=["score", "proba"]
    )
    return pa.table(
        {
            "status": ["ok"] * n,
            "source": ["live"] * (n // 2) + ["event-refresh"] * (n - n // 2),
            "version": pa.array([version] * n, pa.int64()),
            "inputs": inputs,
            "outputs": outputs,
        }
    )


def scraped(monitor: LiveMonitor) -> dict[str, list[object]]:
    registry = CollectorRegistry()
    registry.register(monitor)
    families: dict[str, list[object]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        families.setdefault(family.name, []).extend(family.samples)
    return families


def test_drift_gauges_equal_the_drift_of_the_rows_seen() -> None:
    rng = np.random.default_rng(5)
    profile = reference(rng)
    monitor = LiveMonitor(lambda model, version: profile if (model, version) == ("clf", 1) else None)
    x = rng.normal(size=3000) + 1.0  # shifted by one sd
    y = rng.normal(size=3000)
    plan = ["pro" if v < 0.7 else "basic" for v in rng.random(3000)]  # the shares swapped
    for start in range(0, 3000, 1000):  # the writer hands over a chunk at a time
        part = slice(start, start + 1000)
        monitor.observe("clf", ledger_table(x[part], y[part], plan[part]))

    gauges = {s.labels["feature"]: s.value for s in scraped(monitor)["foretell_feature_drift_psi"]}  # type: ignore[attr-defined]
    thresholds = Thresholds()
    assert gauges["x"] == numeric_drift("x", profile.inputs["x"], x, thresholds).psi  # type: ignore[arg-type]
    assert gauges["y"] == numeric_drift("y", profile.inputs["y"], y, thresholds).psi  # type: ignore[arg-type]
    expected_plan = categorical_drift("plan", profile.inputs["plan"], np.array(plan, dtype=object), thresholds).psi  # type: ignore[arg-type]
    assert gauges["plan"] == expected_plan
    assert gauges["x"] > 0.25 and gauges["plan"] > 0.25 and gauges["y"] < 0.02


def test_a_version_without_a_profile_has_no_drift_gauge_but_its_scores_are_counted() -> None:
    rng = np.random.default_rng(6)
    monitor = LiveMonitor(lambda model, version: None)
    x = rng.normal(size=200)
    monitor.observe("clf", ledger_table(x, x, ["basic"] * 200, version=2))
    families = scraped(monitor)
    assert families["foretell_feature_drift_psi"] == []
    buckets = {
        (s.labels["source"], s.labels["le"]): s.value  # type: ignore[attr-defined]
        for s in families["foretell_prediction_score"]
        if s.name.endswith("_bucket")  # type: ignore[attr-defined]
    }
    score = 1 / (1 + np.exp(-x))
    assert buckets[("live", "0.5")] == float((score[:100] <= 0.5).sum())
    assert buckets[("event-refresh", "+Inf")] == 100.0


def test_rows_without_inputs_or_scores_and_failed_rows_are_skipped() -> None:
    monitor = LiveMonitor(lambda model, version: None)
    failed = ledger_table(np.zeros(3), np.zeros(3), ["basic"] * 3).set_column(0, "status", pa.array(["error"] * 3))
    monitor.observe("clf", failed)
    monitor.observe("clf", pa.table({"status": ["ok"], "source": ["live"], "version": [1]}))
    assert scraped(monitor)["foretell_prediction_score"] == []


def test_a_vector_score_is_not_charted_and_its_inputs_still_count() -> None:
    rng = np.random.default_rng(7)
    profile = reference(rng)
    monitor = LiveMonitor(lambda model, version: profile)
    x = rng.normal(size=300)
    table = ledger_table(x, x, ["basic"] * 300)
    vector = pa.StructArray.from_arrays([pa.array([[0.1, 0.9]] * 300)], names=["score"])
    monitor.observe("clf", table.set_column(table.schema.get_field_index("outputs"), "outputs", vector))
    families = scraped(monitor)
    assert families["foretell_prediction_score"] == []  # a score per element has no one score to chart
    assert {s.labels["feature"] for s in families["foretell_feature_drift_psi"]} == {"x", "y", "plan"}  # type: ignore[attr-defined]


def test_a_shadow_rows_inputs_are_not_counted_again_and_its_scores_have_their_own_source() -> None:
    rng = np.random.default_rng(8)
    profile = reference(rng)
    monitor = LiveMonitor(lambda model, version: profile if model == "clf" else None)
    x, y = rng.normal(size=1000), rng.normal(size=1000)
    plan = ["basic" if v < 0.7 else "pro" for v in rng.random(1000)]
    monitor.observe("clf", ledger_table(x, y, plan))
    shifted = ledger_table(x + 3.0, y, plan, version=2)  # a challenger's shadow rows: inputs far from the profile
    monitor.observe("clf", shifted.set_column(1, "source", pa.array(["shadow"] * 1000)))

    families = scraped(monitor)
    gauges = {s.labels["feature"]: s.value for s in families["foretell_feature_drift_psi"]}  # type: ignore[attr-defined]
    assert gauges["x"] == numeric_drift("x", profile.inputs["x"], x, Thresholds()).psi  # type: ignore[arg-type]
    counts = {
        s.labels["source"]: s.value  # type: ignore[attr-defined]
        for s in families["foretell_prediction_score"]
        if s.name.endswith("_count")  # type: ignore[attr-defined]
    }
    assert counts == {"live": 500, "event-refresh": 500, "shadow": 1000}
