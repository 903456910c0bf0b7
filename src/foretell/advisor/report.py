"""`foretell advise --report report.html`: one self-contained page, readable offline.

No scripts, fonts or images from anywhere else: the plots are inline SVG drawn here from the
cost model, so the page shows the same figures as the terminal and the JSON.

1. Cost per day against daily requests, for each way, with the crossover marked.
2. Latency as measured: p50 and p99 of one request alone, of 64 clients, and of lookups.
3. Cost per day against the freshness need, for the ways that precompute.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from foretell.advisor.cost import Advice, ModeCost, batch_cost, hybrid_cost, real_time_cost

if TYPE_CHECKING:
    from foretell.advisor.current import LedgerAdvice

__all__ = ["render_report"]

_COLOURS = {"batch": "#4c72b0", "real-time": "#dd8452", "hybrid": "#55a868"}
_W, _H, _PAD = 640, 320, 56


def render_report(advice: Advice, *, ledger: LedgerAdvice | None = None) -> str:
    """The page; with `ledger`, also what the ledger measured and what the current set-up costs against it."""
    w = advice.workload
    rows = "".join(_row(name, cost, name == advice.recommendation) for name, cost in advice.modes.items())
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in advice.reasons)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>foretell advise: {html.escape(w.name)}</title>
<style>
body {{ font-family: sans-serif; max-width: 760px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }} figure {{ margin: 1.5em 0; }}
</style></head><body>
<h1>Use {html.escape(advice.recommendation)}</h1>
<p>{html.escape(w.description or w.name)}</p>
<ul id="reasons">{reasons}</ul>
{_ledger_section(ledger) if ledger is not None else ""}
<table id="modes"><tr><th>way</th><th>fits</th><th>core-h/day</th><th>peak cores</th><th>p99 ms</th>
<th>freshness s</th><th>store MB</th><th>wasted</th><th>why not</th></tr>{rows}</table>
<figure id="cost-vs-requests">{_cost_vs_requests(advice)}<figcaption>Cost per day against online requests a day
(log scales); the dashed line is the crossover.</figcaption></figure>
<figure id="latency">{_latency(advice)}<figcaption>Latency as measured on this machine (ms).</figcaption></figure>
<figure id="freshness">{_cost_vs_freshness(advice)}<figcaption>Cost per day against how old an answer may
be.</figcaption></figure>
</body></html>
"""


def _ledger_section(ledger: LedgerAdvice) -> str:
    cells = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(value)}</td><td>{html.escape(how)}</td></tr>"
        for name, value, how in ledger.measured_rows()
    )
    lines = "".join(f"<li>{html.escape(line)}</li>" for line in ledger.comparison_lines())
    return (
        '<h2>Measured from the ledger</h2><table id="ledger"><tr><th>figure</th><th>value</th><th>from</th></tr>'
        f'{cells}</table><h2>The current set-up</h2><ul id="current">{lines}</ul>'
    )


def _row(name: str, cost: ModeCost, recommended: bool) -> str:
    fits = "recommended" if recommended else ("yes" if cost.feasible else "no")
    p99 = "-" if cost.p99_ms is None else f"{cost.p99_ms:,.1f}"
    cells = [
        html.escape(name), fits, f"{cost.core_hours_per_day:,.3f}", f"{cost.peak_cores:,.2f}", p99,
        f"{cost.freshness_s:,.0f}", f"{cost.store_bytes / 1e6:,.1f}", f"{cost.wasted_fraction:.0%}",
        html.escape(cost.why_not or ""),
    ]  # fmt: skip
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _cost_vs_requests(advice: Advice) -> str:
    w, m = advice.workload, advice.measurements
    xs = [10.0 ** (e / 4) for e in range(41)]  # 1 to 10^10 requests a day
    series = {}
    for name, price in (("real-time", real_time_cost), ("hybrid", hybrid_cost)):
        points = []
        for r in xs:
            load = w.replace(requests_per_day=r, peak_rps=max(r / 20_000, 1e-3))
            points.append((r, price(load, m).core_hours_per_day))
        series[name] = points
    if w.precomputable:
        series["batch"] = [(r, batch_cost(w, m).core_hours_per_day) for r in xs]
    marks = [advice.crossover["requests_per_day"]] if advice.crossover.get("requests_per_day") else []
    return _plot(series, "requests a day", "core-hours a day", marks, log_x=True, log_y=True)


def _cost_vs_freshness(advice: Advice) -> str:
    w, m = advice.workload, advice.measurements
    xs = [60.0 * 2 ** (e / 2) for e in range(22)]  # a minute to about a day
    series = {
        "hybrid": [(f, hybrid_cost(w.replace(freshness_s=f), m).core_hours_per_day) for f in xs],
        "real-time": [(f, real_time_cost(w.replace(freshness_s=f), m).core_hours_per_day) for f in xs],
    }
    return _plot(series, "freshness need (s)", "core-hours a day", [], log_x=True, log_y=True)


def _latency(advice: Advice) -> str:
    m = advice.measurements
    bars = [
        ("one request, p50", m.single_p50_ms),
        ("one request, p99", m.single_p99_ms),
        ("64 clients, p99", m.live_p99_ms),
        ("lookup alone, p99", m.lookup_p99_ms),
        ("64 lookups, p99", m.lookup_loaded_p99_ms),
    ]
    top = max(v for _, v in bars) or 1.0
    height = 28 * len(bars) + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" role="img">']
    for i, (label, value) in enumerate(bars):
        y = 10 + 28 * i
        width = (_W - 260) * value / top
        parts.append(f'<text x="150" y="{y + 15}" text-anchor="end" font-size="12">{html.escape(label)}</text>')
        parts.append(f'<rect class="bar" x="160" y="{y}" width="{width:.1f}" height="20" fill="#4c72b0"/>')
        parts.append(f'<text x="{165 + width:.1f}" y="{y + 15}" font-size="12">{value:,.2f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _plot(
    series: dict[str, list[tuple[float, float]]],
    x_label: str,
    y_label: str,
    marks: Sequence[float | None],
    *,
    log_x: bool,
    log_y: bool,
) -> str:
    points = [p for values in series.values() for p in values if p[1] > 0 and math.isfinite(p[1])]
    fx = (lambda v: math.log10(max(v, 1e-12))) if log_x else (lambda v: v)
    fy = (lambda v: math.log10(max(v, 1e-12))) if log_y else (lambda v: v)
    xs, ys = [fx(x) for x, _ in points], [fy(y) for _, y in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def sx(v: float) -> float:
        return _PAD + (fx(v) - x0) / (x1 - x0) * (_W - 2 * _PAD)

    def sy(v: float) -> float:
        return _H - _PAD + (fy(max(v, 1e-12)) - y0) / (y1 - y0) * -(_H - 2 * _PAD)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" role="img">',
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#444"/>',
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#444"/>',
        f'<text x="{_W / 2}" y="{_H - 12}" text-anchor="middle" font-size="12">{html.escape(x_label)}</text>',
        f'<text x="14" y="{_H / 2}" font-size="12" transform="rotate(-90 14 {_H / 2})" text-anchor="middle">'
        f"{html.escape(y_label)}</text>",
        f'<text x="{_PAD}" y="{_H - _PAD + 16}" font-size="10">{_tick(x0, log_x)}</text>',
        f'<text x="{_W - _PAD}" y="{_H - _PAD + 16}" font-size="10" text-anchor="end">{_tick(x1, log_x)}</text>',
        f'<text x="{_PAD - 4}" y="{_H - _PAD}" font-size="10" text-anchor="end">{_tick(y0, log_y)}</text>',
        f'<text x="{_PAD - 4}" y="{_PAD + 4}" font-size="10" text-anchor="end">{_tick(y1, log_y)}</text>',
    ]
    for i, (name, values) in enumerate(series.items()):
        kept = [(x, y) for x, y in values if y > 0 and math.isfinite(y)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in kept)
        colour = _COLOURS.get(name, "#888")
        parts.append(f'<polyline class="series" data-mode="{html.escape(name)}" points="{path}" fill="none" '
                     f'stroke="{colour}" stroke-width="2"/>')  # fmt: skip
        parts.append(f'<text x="{_W - _PAD - 90}" y="{_PAD + 14 * i}" font-size="12" fill="{colour}">'
                     f"{html.escape(name)}</text>")  # fmt: skip
    for mark in marks:
        if mark is not None and mark > 0:
            x = sx(mark)
            parts.append(f'<line class="crossover" x1="{x:.1f}" y1="{_PAD}" x2="{x:.1f}" y2="{_H - _PAD}" '
                         f'stroke="#c44" stroke-dasharray="5,4"/>')  # fmt: skip
            parts.append(f'<text x="{x + 4:.1f}" y="{_PAD + 10}" font-size="11" fill="#c44">{mark:,.0f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _tick(value: float, log: bool) -> str:
    shown = 10**value if log else value
    return f"{shown:,.3g}"
