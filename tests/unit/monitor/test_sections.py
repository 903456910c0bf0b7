"""Each section over a ledger with known truth (monitorkit.py), checked against the exported, joined ledger.

The export (`foretell ledger export`) is read with pandas and the figures computed again with
numpy and scikit-learn: the monitor's DuckDB aggregations must give the same numbers.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from monitorkit import CHANGED, DEFECT, DEFECT_SHIFT, MODEL, UNCHANGED, Built, customer
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from foretell.ledger.query import LedgerReader
from foretell.monitor.agreement import agreement_section
from foretell.monitor.quality import Task, quality_section
from foretell.monitor.traffic import traffic_section


def exported(built: Built) -> pd.DataFrame:
    table = pq.read_table(built.export)
    frame = table.drop_columns(["inputs", "outputs"]).to_pandas()
    frame["score"] = table.column("outputs").combine_chunks().field("score").to_numpy(zero_copy_only=False)
    return frame


def session(built: Built):
    return LedgerReader(built.ledger).session(MODEL, since=built.batch_at - timedelta(hours=1))


def test_traffic_counts_by_source_and_hour_and_latency_percentiles(built: Built) -> None:
    frame = exported(built)
    with session(built) as s:
        traffic = traffic_section(s)
    assert traffic.rows == len(frame)
    assert {t.source: t.rows for t in traffic.sources} == frame.groupby("source").size().to_dict()
    assert [t.source for t in traffic.sources] == ["batch", "live", "precomputed", "event-refresh"]
    hours = frame["predicted_at"].dt.floor("h")
    expected = frame.assign(hour=hours).groupby(["hour", "source"]).size().reset_index(name="n")
    assert len(traffic.hours) == hours.nunique()
    for hour, source, n in expected.itertuples(index=False):
        assert traffic.by_hour[source][traffic.hours.index(hour.isoformat())] == n
    assert sum(sum(v) for v in traffic.by_hour.values()) == len(frame)
    for t in traffic.sources:
        latency = frame.loc[frame["source"] == t.source, "latency_ms"].dropna().to_numpy()
        if t.source == "batch":
            assert t.latency_ms is None and latency.size == 0
            continue
        assert t.latency_ms is not None
        p50, p95, p99 = np.percentile(latency, [50, 95, 99])
        assert (t.latency_ms.p50, t.latency_ms.p95, t.latency_ms.p99) == pytest.approx((p50, p95, p99), abs=1e-9)
        assert t.latency_ms.max == latency.max()
    live = traffic.source("live")
    assert live is not None and (live.errors, live.refused) == (30, 10)
    assert live.error_rate == pytest.approx(30 / (frame["source"] == "live").sum())
    assert live.refused_rate == pytest.approx(10 / (frame["source"] == "live").sum())
    assert traffic.top_errors == (("deadline passed before the model ran", 30),)
    assert traffic.top_refused == (("row 0: 'f0': must be a number", 10),)
    assert live.first_error_at is not None
    assert traffic.keys == frame["key"].nunique()
    assert traffic.versions == {1: int(frame["version"].notna().sum())}


def test_agreement_unchanged_keys_agree_changed_ones_are_apart_and_the_wrong_score_is_a_defect(built: Built) -> None:
    with session(built) as s:
        agreement = agreement_section(s, "score")
    assert agreement.compared_features == ("f0", "f1", "f2")
    assert agreement.pairs == len(UNCHANGED) + len(CHANGED) + 1  # unkeyed infer calls and lookups are not pairs
    assert (agreement.unchanged.pairs, agreement.unchanged.keys) == (len(UNCHANGED) + 1, len(UNCHANGED) + 1)
    assert agreement.unknown == 0
    # Every key whose features did not change shows zero difference, but the one made wrong on purpose.
    assert agreement.defects == 1 and agreement.defect_keys == 1
    [defect] = agreement.listed
    assert defect.key == customer(DEFECT) and defect.job_id == built.job_id and defect.source == "live"
    assert abs(defect.difference) == pytest.approx(DEFECT_SHIFT, abs=1e-12)
    assert agreement.unchanged.max_abs == pytest.approx(DEFECT_SHIFT, abs=1e-12)

    frame = exported(built)
    batch = frame[frame["source"] == "batch"].set_index("key")["score"]
    changed = frame[frame["source"] == "event-refresh"]
    differences = changed["score"].to_numpy() - batch.loc[changed["key"]].to_numpy()
    assert agreement.changed.pairs == len(CHANGED) == agreement.changed.keys
    assert agreement.changed.mean_abs == pytest.approx(np.mean(np.abs(differences)), abs=1e-12)
    assert agreement.changed.p95_abs == pytest.approx(np.percentile(np.abs(differences), 95), abs=1e-12)
    assert agreement.changed.max_abs == pytest.approx(np.max(np.abs(differences)), abs=1e-12)
    assert np.all(np.abs(differences) > 0)


def test_agreement_without_the_batch_job_s_input_counts_pairs_as_unknown(built: Built, tmp_path) -> None:
    moved = tmp_path / "customers.parquet"
    built.customers.rename(moved)
    try:
        with session(built) as s:
            agreement = agreement_section(s, "score")
    finally:
        moved.rename(built.customers)
    assert agreement.unknown == agreement.pairs == len(UNCHANGED) + len(CHANGED) + 1
    assert agreement.defects == 0 and agreement.unchanged.pairs == 0


def test_quality_per_version_and_source_equals_scikit_learn_on_the_export(built: Built) -> None:
    frame = exported(built)
    task = Task("binary", "score", positive=1, threshold=0.5)
    with session(built) as s:
        quality = quality_section(s, task)
    ok = frame[frame["status"] == "ok"]
    assert {(c.version, c.source): c.count for c in quality.cells} == ok.groupby(["version", "source"]).size().to_dict()
    labelled = ok[ok["label_id"].notna()]
    assert quality.labels == len(labelled)
    for cell in quality.cells:
        rows = labelled[(labelled["source"] == cell.source) & (labelled["version"] == cell.version)]
        assert cell.labelled == len(rows), cell.source
        if rows.empty:
            assert cell.auc is None and cell.log_loss is None
            continue
        y = rows["label_value"].to_numpy() == 1.0
        p = rows["score"].to_numpy()
        assert cell.positives == int(y.sum())
        assert cell.auc == pytest.approx(roc_auc_score(y, p), abs=1e-9)
        assert cell.log_loss == pytest.approx(log_loss(y, p, labels=[False, True]), abs=1e-9)
        assert cell.brier == pytest.approx(brier_score_loss(y, p), abs=1e-12)
        assert cell.accuracy == pytest.approx(np.mean((p > 0.5) == y), abs=1e-12)
        assert sum(b.count for b in cell.calibration) == len(rows)
    by_source = {c.source: c for c in quality.cells}
    assert by_source["batch"].labelled == 1000 + 400  # every even customer, and the odd live ones below 800
    assert by_source["live"].labelled > 0 and by_source["event-refresh"].labelled == len(CHANGED)
