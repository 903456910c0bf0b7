"""The verdict's words: which features drifted and since when, what was not measured, in plain sentences."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from monitorkit import MODEL, Built

from foretell import api
from foretell.monitor import run_monitor
from foretell.profiles.drift import Thresholds


def test_a_drifted_feature_is_named_with_the_hour_it_began_and_the_others_are_not(drifted: Built) -> None:
    report = api.monitor(MODEL, since=drifted.batch_at - timedelta(hours=1), home=drifted.home, ledger=drifted.ledger)
    by_name = {f.name: f for f in report.drift.features}
    assert by_name["f1"].status == "alert" and by_name["f0"].status != "alert" and by_name["f2"].status == "ok"
    alerts = [f.sentence for f in report.verdict.findings if f.area == "drift" and f.status == "alert"]
    [sentence] = [s for s in alerts if "features" in s]  # the outputs that moved with f1 have sentences of their own
    began = (drifted.live_start + timedelta(hours=3)).strftime("%Y-%m-%d %H:%M UTC")
    opening = f"1 of 3 features has drifted past the alert threshold since {began}: f1 (online traffic: PSI "
    assert sentence.startswith(opening)
    assert "f0" not in sentence and "f2" not in sentence
    assert "> alert 0.05" in sentence  # the figure and the threshold it passed


def test_without_a_reference_profile_drift_is_said_to_be_unmeasured(built: Built, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(built.home, home, ignore=shutil.ignore_patterns("ledger"))
    shutil.rmtree(home / "profiles")
    report = run_monitor(built.ledger, home, MODEL, version=None, since=built.batch_at - timedelta(hours=1),
                         until=None, thresholds=Thresholds())  # fmt: skip
    assert report.drift.reference is None
    [sentence] = [f.sentence for f in report.verdict.findings if f.area == "drift"]
    assert sentence.startswith("No reference profile is stored for version 1, so drift was not measured")


def test_before_labels_arrive_quality_is_said_to_be_unmeasured(built: Built, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    shutil.copytree(built.ledger, ledger, ignore=shutil.ignore_patterns("labels"))
    report = api.monitor(MODEL, since=built.batch_at - timedelta(hours=1), home=built.home, ledger=ledger)
    assert report.quality.labels == 0 and all(c.auc is None for c in report.quality.cells)
    [sentence] = [f.sentence for f in report.verdict.findings if f.area == "quality"]
    assert sentence == "No labels have joined the window's predictions yet: quality not measured."
