"""The HTML report: self-contained, with its three plots; and what headless Chromium makes of it."""

from __future__ import annotations

import re

from browserkit import rendered, screenshot
from test_cost import M

from foretell.advisor import PRESETS, advise
from foretell.advisor.report import render_report


def test_the_report_is_self_contained_with_three_plots_and_the_crossover():
    advice = advise(PRESETS["nightly-churn"].replace(bulk_daily=False), M)
    page = render_report(advice)
    assert page.startswith("<!doctype html>")
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing fetched from elsewhere
    assert "<script" not in page
    for figure in ("cost-vs-requests", "latency", "freshness"):
        assert f'<figure id="{figure}">' in page
    assert page.count('class="series"') >= 4
    assert 'class="crossover"' in page
    assert f"Use {advice.recommendation}" in page


def test_words_from_the_workload_are_escaped():
    advice = advise(PRESETS["fraud-check"].replace(description="<b>x</b> & co"), M)
    page = render_report(advice)
    assert "&lt;b&gt;x&lt;/b&gt; &amp; co" in page and "<b>x</b>" not in page


def test_headless_chromium_renders_the_plots(tmp_path):
    path = tmp_path / "report.html"
    path.write_text(render_report(advise(PRESETS["movie-recs"], M)), encoding="utf-8")
    dom, _ = rendered(path, tmp_path)
    assert dom.count("<svg") == 3 and "<polyline" in dom and "Use hybrid" in dom
    png = screenshot(path, tmp_path, "800,1400")
    assert png.startswith(b"\x89PNG") and len(png) > 20_000  # a page with plots, not a blank one
