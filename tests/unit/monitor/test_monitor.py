"""`run_monitor` whole, through `foretell.api.monitor`: the version, the sections together, the verdict, the errors."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from monitorkit import DEFECT, MODEL, Built, customer

from foretell import api
from foretell.errors import InvalidInput, InvalidThresholds, ModelNotFound


def test_the_report_names_the_busiest_version_and_holds_every_section(built: Built) -> None:
    report = api.monitor(MODEL, since=built.batch_at - timedelta(hours=1), home=built.home, ledger=built.ledger)
    assert report.version == 1 and report.until is None
    assert report.drift.reference is not None and report.drift.version == 1
    assert [f.name for f in report.drift.features] == ["f0", "f1", "f2"]
    assert report.quality.task.kind == "binary" and report.quality.labels > 0
    assert report.agreement.defects == 1
    assert set(report.seconds) == {"traffic", "drift", "agreement", "quality"}
    shown = orjson.loads(orjson.dumps(report.to_dict()))
    assert set(shown) >= {"model", "version", "since", "until", "generated_at", "verdict", "traffic", "drift",
                          "agreement", "quality"}  # fmt: skip
    assert shown["agreement"]["defects"][0]["key"] == customer(DEFECT)


def test_the_verdict_says_what_is_wrong_since_when_and_where(built: Built) -> None:
    report = api.monitor(MODEL, since=built.batch_at - timedelta(hours=1), home=built.home, ledger=built.ledger)
    assert report.verdict.status == "alert"
    by_area = {f.area: f for f in report.verdict.findings if f.status != "ok"}
    parity = by_area["agreement"]
    assert parity.status == "alert" and customer(DEFECT) in parity.sentence and "since 20" in parity.sentence
    errors = by_area["traffic"]  # 30 failures among the live source's rows; the 10 refused are not failures
    assert errors.status == "alert" and "of live predictions failed (30 of" in errors.sentence
    assert "deadline passed" in errors.sentence and "must be a number" not in errors.sentence
    assert report.verdict.findings[0].status == "alert"  # worst first
    assert any(f.area == "quality" and "AUC" in f.sentence for f in report.verdict.findings)


def test_a_window_without_traffic_says_so(built: Built) -> None:
    before = built.batch_at - timedelta(days=3)
    report = api.monitor(MODEL, since=before, until=before + timedelta(hours=1), home=built.home, ledger=built.ledger)
    assert report.traffic.rows == 0 and report.version == 1  # the newest registered version
    assert report.verdict.status == "warn" and "No predictions of churn" in report.verdict.reasons[0]


def test_wrong_names_and_times_are_refused_in_one_line(built: Built) -> None:
    with pytest.raises(ModelNotFound, match="no model named 'chrun'"):
        api.monitor("chrun", home=built.home, ledger=built.ledger)
    with pytest.raises(ModelNotFound, match="churn has no version 7"):
        api.monitor(MODEL, version=7, since="30d", home=built.home, ledger=built.ledger)
    with pytest.raises(InvalidInput, match="since is a duration back from now"):
        api.monitor(MODEL, since="yesterday", home=built.home, ledger=built.ledger)
    with pytest.raises(InvalidInput, match="is before since"):
        api.monitor(MODEL, since="2026-12-05", until="2026-12-04", home=built.home, ledger=built.ledger)


def test_thresholds_come_from_a_toml_file_and_unknown_keys_are_refused(built: Built, tmp_path) -> None:
    good = tmp_path / "thresholds.toml"
    good.write_text("[thresholds]\npsi_warn = 0.1\npsi_alert = 0.25\n")
    assert api.monitor_thresholds(good).psi_alert == 0.25
    flat = tmp_path / "flat.toml"
    flat.write_text("psi_warn = 0.03\n")
    assert api.monitor_thresholds(flat).psi_warn == 0.03
    bad = tmp_path / "bad.toml"
    bad.write_text("psi_wran = 0.1\n")
    with pytest.raises(InvalidThresholds, match="psi_wran"):
        api.monitor_thresholds(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("psi_warn = \n")
    with pytest.raises(InvalidThresholds, match="not valid TOML"):
        api.monitor_thresholds(broken)
