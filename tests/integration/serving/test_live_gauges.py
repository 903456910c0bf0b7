"""The server's live gauges (score histograms, drift, labels joined) on a real server, checked against its ledger."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from servekit import FEATURES, rows, server
from test_ledger_server import NOW, infer_body, ledger_home, ledger_rows, stamp

from foretell.profiles import Thresholds, numeric_drift
from foretell.registry.profiles import ProfileStore

__all__ = ["ledger_home"]  # the fixture, shared with the ledger's server tests


def scrape(client: httpx.Client) -> dict[str, list[Any]]:
    families: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        families.setdefault(family.name, []).extend(family.samples)
    return families


def score_buckets(families: dict[str, list[Any]], source: str) -> dict[str, float]:
    return {
        s.labels["le"]: s.value
        for s in families.get("foretell_prediction_score", [])
        if s.name.endswith("_bucket") and s.labels["model"] == "clf" and s.labels["source"] == source
    }


def wait_for(check: Any, seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_score_histograms_per_source_match_the_ledger(ledger_home: Path) -> None:
    with (
        server(ledger_home, "clf@production", "--config", str(ledger_home / "serve.toml")) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        for n in (1, 3, 7):
            assert client.post("/v2/models/clf/infer", json=infer_body(n)).status_code == 200
        for key in ("T-1", "T-2", "T-60", "T-61"):  # 50 and up are not in the store: scored live
            assert client.get(f"/v1/models/clf/predictions/{key}").status_code == 200
        assert client.post("/v2/models/clf/infer", json={"inputs": []}).status_code == 400  # no score to count

        expected_total = {"live": 11, "precomputed": 2, "live-fallback": 2}
        families = wait_for(
            lambda: (
                f
                if all(score_buckets(f := scrape(client), s).get("+Inf") == n for s, n in expected_total.items())
                else None
            )
        )
        assert families is not None, "the histograms did not reach every answered prediction"
    rows = [r for r in ledger_rows(ledger_home) if r["status"] == "ok"]
    for source, total in expected_total.items():
        scores = np.array([r["outputs"]["score"] for r in rows if r["source"] == source])
        assert len(scores) == total
        buckets = score_buckets(families, source)
        for le, count in buckets.items():
            edge = float(le)
            assert count == int((scores <= edge).sum()), (source, le)  # an independent count from the ledger
        sums = [s.value for s in families["foretell_prediction_score"] if s.name.endswith("_sum")]
        assert any(abs(v - scores.sum()) < 1e-9 for v in sums)
        assert list(buckets)[:3] == ["0.05", "0.1", "0.15"]  # a classifier's score: buckets of 0.05 up to 1


def test_labels_received_and_joined_are_counted_off_the_request_path(ledger_home: Path) -> None:
    with (
        server(ledger_home, "clf@production", "--config", str(ledger_home / "serve.toml")) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        answer = client.post("/v2/models/clf/infer", json=infer_body(1)).json()
        assert client.get("/v1/models/clf/predictions/T-3").status_code == 200
        time.sleep(0.6)  # the predictions reach the ledger (flush_seconds 0.2)
        later = stamp(NOW + timedelta(hours=1))
        labels = [
            {"prediction_id": answer["parameters"]["prediction_id"], "label": 1},
            {"key": "T-3", "label": 0, "observed_at": later},
            {"key": "nobody-asked", "label": 1, "observed_at": later},  # no prediction to join
        ]
        started = time.perf_counter()
        assert client.post("/v1/labels", json={"model": "clf", "labels": labels}).status_code == 200
        assert time.perf_counter() - started < 2.0  # the join is counted later, not while the client waits

        def counted() -> tuple[float, float] | None:
            families = scrape(client)
            got = {
                s.name: s.value
                for name in ("foretell_labels_received", "foretell_labels_joined")
                for s in families.get(name, [])
                if s.labels.get("model") == "clf" and s.name.endswith("_total")
            }
            if "foretell_labels_joined_total" not in got:
                return None
            return got["foretell_labels_received_total"], got["foretell_labels_joined_total"]

        assert wait_for(counted) == (3.0, 2.0)


def test_drift_gauges_follow_the_served_version_s_reference_profile(ledger_home: Path) -> None:
    profile = ProfileStore(ledger_home).load("clf", 1)
    assert profile is not None  # stored when the model was registered
    with (
        server(ledger_home, "clf@production", "--config", str(ledger_home / "serve.toml")) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        for _ in range(3):
            assert client.post("/v2/models/clf/infer", json=infer_body(40)).status_code == 200

        def gauges() -> dict[str, float] | None:
            found = {s.labels["feature"]: s.value for s in scrape(client).get("foretell_feature_drift_psi", [])}
            return found if set(found) == set(FEATURES) else None

        assert wait_for(lambda: (g := gauges()) is not None and g, seconds=15)
        found = gauges()
    assert found is not None
    sent = np.vstack([rows(40, seed=9)] * 3)  # what infer_body sends, three times
    for i, feature in enumerate(FEATURES):
        expected = numeric_drift(feature, profile.inputs[feature], sent[:, i], Thresholds()).psi  # type: ignore[arg-type]
        assert found[feature] == pytest.approx(expected, abs=1e-12)
