"""`make run`'s day, small: the demo models, a nightly batch, a day of traffic through a real server, labels, monitor.

What the demo promises: the one feature that drifts (support calls of one region's customers)
is flagged, every other feature is ok, customers whose features did not change since the
batch get the batch's exact score live, and quality is measured per source once labels arrive.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from serving.servekit import server  # tests/integration/serving, a namespace package

from foretell import demo
from foretell.demo.traffic import DRIFT_FEATURE, DayPlan, day_labels, simulate_day
from foretell.registry import SqliteRegistry


def foretell(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FORETELL_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "foretell", *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    home = tmp_path_factory.mktemp("demo-day")
    folder = home / "demo"
    demo.init(SqliteRegistry(home), folder, seed=7, customers=4_000, users=300, movies=200)
    customers = folder / "customers.parquet"
    foretell(home, "entities", "load", "customers", str(customers), "--key", "customer_id", "--model", "churn")
    foretell(
        home, "batch", "run", "churn@production", "--input", str(customers), "--output", str(folder / "nightly"),
        "--id-column", "customer_id", "--to-store",
    )  # fmt: skip
    table = pq.read_table(customers)
    features = list(SqliteRegistry(home).get("churn@production").signature.input_names)
    plan = DayPlan(lookups=400, fresh_lookups=150, infers=200, events=150, concurrency=8)
    with server(home, "churn@production") as url:
        traffic = simulate_day(url, table, features, plan)
    assert set(traffic.statuses) == {200} and sum(traffic.sent.values()) == 900
    pq.write_table(day_labels(table, fraction=0.5), folder / "outcomes.parquet")
    foretell(
        home, "labels", "load", "churn", str(folder / "outcomes.parquet"), "--key", "customer_id", "--label", "churned"
    )
    report = json.loads(foretell(home, "monitor", "churn", "--since", "2h", "--json").stdout)
    advice = json.loads(
        foretell(home, "advise", "churn@production", "--from-ledger", *traffic.window(), "--quick", "--json").stdout
    )
    return home, {**report, "advice": advice}


def test_the_drifted_feature_is_flagged_and_no_other(day: tuple[Path, dict[str, object]]) -> None:
    _, report = day
    drift = report["drift"]
    assert isinstance(drift, dict)
    flagged = {f["name"]: f for f in drift["features"] if f["status"] != "ok"}
    assert list(flagged) == [DRIFT_FEATURE] and flagged[DRIFT_FEATURE]["status"] == "alert"
    assert flagged[DRIFT_FEATURE]["group"] == "online"  # the nightly batch read the file as it was
    assert len(drift["features"]) == 31


def test_unchanged_customers_get_the_batch_s_exact_score_live(day: tuple[Path, dict[str, object]]) -> None:
    _, report = day
    agreement = report["agreement"]
    assert isinstance(agreement, dict)
    text = json.dumps(agreement)
    assert agreement["unchanged"]["pairs"] > 100 and agreement["unchanged"]["max_abs"] == 0.0, text
    assert agreement["parity_defects"] == 0 and agreement["defects"] == [], text
    assert agreement["changed"]["pairs"] > 0, text


def test_quality_is_measured_per_source_once_labels_arrive(day: tuple[Path, dict[str, object]]) -> None:
    _, report = day
    quality = report["quality"]
    assert isinstance(quality, dict)
    by_source = {cell["source"]: cell for cell in quality["cells"]}
    assert {"batch", "live", "precomputed", "live-fallback", "event-refresh"} <= set(by_source)
    assert by_source["batch"]["labelled"] >= 1_500 and 0.7 < by_source["batch"]["auc"] < 1.0


def test_advise_reads_the_day_from_the_ledger(day: tuple[Path, dict[str, object]]) -> None:
    _, report = day
    advice = report["advice"]
    assert isinstance(advice, dict)
    text = json.dumps(advice)[:2000]
    assert advice["recommendation"] in ("batch", "real-time", "hybrid"), text
    assert advice["workload"]["population"] == 4_000, text  # the nightly job's rows
