"""The monitor's HTML page: self-contained, its four plots present, and what headless Chromium makes of it."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from browserkit import rendered, screenshot
from monitorkit import MODEL, Built

from foretell import api
from foretell.monitor import MonitorReport
from foretell.monitor.report import render_monitor_report

FIGURES = ("traffic", "drift", "scores", "calibration")


@pytest.fixture(scope="module")
def report(built: Built) -> MonitorReport:
    return api.monitor(MODEL, since=built.batch_at - timedelta(hours=1), home=built.home, ledger=built.ledger)


def test_the_page_is_self_contained_with_its_four_plots(report: MonitorReport) -> None:
    page = render_monitor_report(report)
    assert page.startswith("<!doctype html>")
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing fetched from elsewhere
    assert "<script" not in page
    for figure in FIGURES:
        assert f'<figure id="{figure}">' in page
    assert page.count("<svg") == len(FIGURES)
    assert 'class="empty"' not in page  # every plot has data: traffic, a profile, labels
    assert page.count('class="series"') >= 4 + 4  # a line per source for traffic, and for calibration
    assert page.count('data-feature="') == len(report.drift.features)
    assert 'data-series="reference"' in page and 'data-series="now"' in page
    assert f'id="status" class="status-{report.verdict.status}"' in page
    # The parity defect (monitorkit's key 500) is listed with its key.
    assert 'id="defects"' in page and "C-00500" in page


def test_words_from_the_ledger_are_escaped(report: MonitorReport) -> None:
    page = render_monitor_report(report)
    assert "row 0: &#x27;f0&#x27;: must be a number" in page  # an error reason, as clients were told it


def test_headless_chromium_renders_the_plots_without_console_errors(report: MonitorReport, tmp_path: Path) -> None:
    path = tmp_path / "monitor.html"
    path.write_text(render_monitor_report(report), encoding="utf-8")
    dom, console = rendered(path, tmp_path)
    assert dom.count("<svg") == len(FIGURES) and "<polyline" in dom and 'class="bar"' in dom
    assert console == []
    png = screenshot(path, tmp_path, "900,2400")
    assert png.startswith(b"\x89PNG") and len(png) > 30_000  # a page with plots, not a blank one
