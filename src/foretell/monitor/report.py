"""`foretell monitor --report monitor.html`: the monitor's report as one self-contained page, readable offline.

No scripts, fonts or images from anywhere else (as `advisor/report.py`): the plots are
inline SVG drawn here from the same `MonitorReport` the terminal and the JSON show.

1. Drift per feature: PSI as bars coloured by status, the warn and alert thresholds as lines.
2. The score's distribution: the reference profile's share per bin beside the window's.
3. Calibration: mean predicted against observed rate per bin, one line per labelled source.
4. Traffic by source over time: rows per hour, one line per source.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from foretell.monitor.verdict import when

if TYPE_CHECKING:
    from foretell.monitor import MonitorReport
    from foretell.profiles.drift import FeatureDrift

__all__ = ["render_monitor_report"]

_W, _PAD = 680, 56
Scale = Callable[[float], float]
_STATUS_COLOURS = {"ok": "#55a868", "warn": "#dd8452", "alert": "#c44e52", "unknown": "#999999"}
_SOURCE_COLOURS = {
    "batch": "#4c72b0", "live": "#dd8452", "precomputed": "#55a868", "live-fallback": "#c44e52",
    "event-refresh": "#8172b3", "shadow": "#937860",
}  # fmt: skip


def _e(value: Any) -> str:
    return html.escape(str(value))


def render_monitor_report(report: MonitorReport) -> str:
    r = report
    until = when(r.until.isoformat()) if r.until else "now"
    version = f" v{r.version}" if r.version is not None else ""
    reasons = "".join(f'<li class="{_e(f.status)}">{_e(f.sentence)}</li>' for f in r.verdict.findings)
    status = _e(r.verdict.status)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>foretell monitor: {_e(r.model)}</title>
<style>
body {{ font-family: sans-serif; max-width: 820px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }}
td, th {{ border: 1px solid #ccc; padding: 3px 7px; text-align: right; font-size: 13px; }}
td:first-child, th:first-child {{ text-align: left; }} figure {{ margin: 1.5em 0; }}
.status-ok {{ color: #2d7a3e; }} .status-warn {{ color: #b35c1e; }} .status-alert {{ color: #b01f24; }}
li.alert {{ color: #b01f24; }} li.warn {{ color: #b35c1e; }}
</style></head><body>
<h1>{_e(r.model)}{_e(version)}: <span id="status" class="status-{status}">{status}</span></h1>
<p>From {_e(when(r.since.isoformat()))} to {_e(until)}; generated {_e(when(r.generated_at.isoformat()))}.</p>
<ul id="verdict">{reasons}</ul>
<h2>Traffic</h2>
{_traffic_table(r)}
<figure id="traffic">{_traffic_plot(r)}<figcaption>Predictions per hour, by source.</figcaption></figure>
<h2>Drift</h2>
{_drift_table(r)}
<figure id="drift">{_drift_plot(r)}<figcaption>PSI per feature against the reference profile; dashed lines:
the warn and alert thresholds.</figcaption></figure>
<figure id="scores">{_score_plot(r)}<figcaption>The score's distribution: the reference profile's share per bin
and the window's.</figcaption></figure>
<h2>Agreement between batch and live</h2>
{_agreement(r)}
<h2>Quality</h2>
{_quality_table(r)}
<figure id="calibration">{_calibration_plot(r)}<figcaption>Calibration of v{_e(r.version)}: observed rate
against mean predicted score per bin; the diagonal is perfect calibration.</figcaption></figure>
</body></html>
"""


# -- tables ------------------------------------------------------------------------------------


def _table(table_id: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><tr>{head}</tr>{body}</table>'


def _num(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _traffic_table(r: MonitorReport) -> str:
    rows = []
    for s in r.traffic.sources:
        lat = s.latency_ms
        rows.append([
            _e(s.source), f"{s.rows:,}", f"{s.errors:,}", f"{s.error_rate:.2%}", f"{s.refused:,}",
            _num(lat.p50 if lat else None, ".2f"), _num(lat.p95 if lat else None, ".2f"),
            _num(lat.p99 if lat else None, ".2f"), _num(lat.max if lat else None, ".2f"),
        ])  # fmt: skip
    table = _table("traffic-table", ["source", "rows", "errors", "error rate", "refused", "p50 ms", "p95 ms", "p99 ms",
                                     "max ms"], rows)  # fmt: skip
    if r.traffic.top_errors:
        errors = _table("errors", ["top error reasons", "count"],
                        [[_e(reason), f"{n:,}"] for reason, n in r.traffic.top_errors])  # fmt: skip
        table += errors
    if r.traffic.top_refused:
        table += _table("refused", ["top reasons requests were refused (the client's to fix)", "count"],
                        [[_e(reason), f"{n:,}"] for reason, n in r.traffic.top_refused])  # fmt: skip
    return table


def _drift_rows(features: Sequence[FeatureDrift]) -> list[list[str]]:
    return [
        [
            _e(f.name), _e(f.group or "-"), f'<span class="status-{_e(f.status)}">{_e(f.status)}</span>',
            _num(f.psi, ".4f"),
            _num(f.ks, ".4f"), f"{f.missing_rate:.2%} ({f.reference_missing_rate:.2%})",
            f"{f.unseen_share:.2%}" if f.kind == "categorical" else "-", _e("; ".join(f.reasons)),
        ]
        for f in features
    ]  # fmt: skip


def _drift_table(r: MonitorReport) -> str:
    d = r.drift
    if d.reference is None:
        return f"<p>No reference profile for version {_e(d.version)}: drift not measured.</p>"
    header = ["feature", "traffic", "status", "PSI", "KS", "missing (reference)", "unseen", "why"]
    return _table("drift-table", header, _drift_rows([*d.features, *d.outputs]))


def _agreement(r: MonitorReport) -> str:
    a = r.agreement
    if a.pairs == 0:
        return "<p>No key was scored by a batch job and then live in this window.</p>"
    rows = [
        ["unchanged features", f"{a.unchanged.pairs:,}", f"{a.unchanged.keys:,}", _num(a.unchanged.mean_abs, ".3g"),
         _num(a.unchanged.p95_abs, ".3g"), _num(a.unchanged.max_abs, ".3g")],
        ["changed features", f"{a.changed.pairs:,}", f"{a.changed.keys:,}", _num(a.changed.mean_abs, ".3g"),
         _num(a.changed.p95_abs, ".3g"), _num(a.changed.max_abs, ".3g")],
        ["inputs not comparable", f"{a.unknown:,}", "", "", "", ""],
    ]  # fmt: skip
    page = _table("agreement-table", ["live after batch", "pairs", "keys", "mean |diff|", "p95 |diff|", "max |diff|"],
                  rows)  # fmt: skip
    if a.listed:
        defects = [
            [_e(d.key), _e(d.job_id), f"{d.batch_score:.6g}", _e(d.source), _e(d.live_at[:19]), f"{d.live_score:.6g}",
             f"{d.difference:+.3g}"]
            for d in a.listed
        ]  # fmt: skip
        page += f"<p><strong>{a.defects:,} parity defects</strong> ({a.defect_keys:,} keys):</p>"
        page += _table("defects", ["key", "batch job", "batch score", "source", "live at", "live score", "diff"],
                       defects)  # fmt: skip
    return page


def _quality_table(r: MonitorReport) -> str:
    q = r.quality
    if q.task.kind == "none":
        return "<p>This model has no score or top-k output to judge.</p>"
    if q.labels == 0:
        return "<p>No labels have joined the window's predictions yet.</p>"
    if q.task.kind == "recommender":
        rows = [[_e(c.source), _e(c.version), f"{c.count:,}", f"{c.labelled:,}", _e(c.k), _num(c.hit_rate, ".2%")]
                for c in q.cells]  # fmt: skip
        return _table("quality-table", ["source", "version", "predictions", "labelled", "k", "hit rate@k"], rows)
    if q.task.kind == "regression":
        rows = [[_e(c.source), _e(c.version), f"{c.count:,}", f"{c.labelled:,}", _num(c.mae, ".4g"),
                 _num(c.rmse, ".4g")] for c in q.cells]  # fmt: skip
        return _table("quality-table", ["source", "version", "predictions", "labelled", "MAE", "RMSE"], rows)
    rows = [
        [_e(c.source), _e(c.version), f"{c.count:,}", f"{c.labelled:,}", _num(c.auc), _num(c.log_loss, ".4f"),
         _num(c.brier, ".4f"), _num(c.accuracy, ".2%")]
        for c in q.cells
    ]  # fmt: skip
    header = ["source", "version", "predictions", "labelled", "AUC", "log loss", "Brier", "accuracy"]
    return _table("quality-table", header, rows)


# -- plots -------------------------------------------------------------------------------------


def _svg(height: int, body: Sequence[str]) -> str:
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" role="img">{"".join(body)}</svg>'


def _empty(message: str) -> str:
    return _svg(60, [f'<text class="empty" x="{_W / 2}" y="34" text-anchor="middle" font-size="13" fill="#666">'
                     f"{_e(message)}</text>"])  # fmt: skip


def _drift_plot(r: MonitorReport) -> str:
    d = r.drift
    measured = [f for f in d.features if f.psi is not None]
    if d.reference is None or not measured:
        return _empty("no drift measured (no reference profile, or too few rows)")
    t = d.thresholds
    top = max([f.psi or 0.0 for f in measured] + [t.psi_alert * 1.2])
    left, right = 170, 90
    span = _W - left - right
    height = 20 * len(measured) + 40
    body = []
    for i, f in enumerate(measured):
        y = 10 + 20 * i
        width = span * (f.psi or 0.0) / top
        colour = _STATUS_COLOURS.get(f.status, "#999")
        body.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end" font-size="11">{_e(f.name)}</text>')
        body.append(f'<rect class="bar" data-feature="{_e(f.name)}" data-status="{_e(f.status)}" x="{left}" y="{y}" '
                    f'width="{width:.1f}" height="15" fill="{colour}"/>')  # fmt: skip
        body.append(f'<text x="{left + width + 4:.1f}" y="{y + 12}" font-size="10">{f.psi:.3f}</text>')
    bottom = 10 + 20 * len(measured)
    for name, value in (("warn", t.psi_warn), ("alert", t.psi_alert)):
        x = left + span * value / top
        body.append(f'<line class="threshold" x1="{x:.1f}" y1="4" x2="{x:.1f}" y2="{bottom}" '
                    f'stroke="{_STATUS_COLOURS[name]}" stroke-dasharray="4,3"/>')  # fmt: skip
        body.append(f'<text x="{x:.1f}" y="{bottom + 14}" font-size="10" text-anchor="middle" '
                    f'fill="{_STATUS_COLOURS[name]}">{name} {value:g}</text>')  # fmt: skip
    return _svg(height + 10, body)


def _score_plot(r: MonitorReport) -> str:
    output = r.quality.task.output or "score"
    found = [f for f in r.drift.outputs if f.name == output and f.bins] or [f for f in r.drift.outputs if f.bins]
    if r.drift.reference is None or not found:
        return _empty("no score distribution to compare (no reference profile)")
    f = found[0]
    height, left, bottom = 300, _PAD, 200
    top = max([*f.reference, *f.current, 1e-9])
    slot = (_W - 2 * left) / max(len(f.bins), 1)
    body = [f'<line x1="{left}" y1="{bottom}" x2="{_W - left}" y2="{bottom}" stroke="#444"/>']
    for i, label in enumerate(f.bins):
        x = left + slot * i
        for j, (series, share, colour) in enumerate(
            (("reference", f.reference[i], "#4c72b0"), ("now", f.current[i], "#dd8452"))
        ):
            h, w = (bottom - 20) * share / top, (slot - 4) / 2
            body.append(f'<rect class="bar" data-series="{series}" x="{x + 2 + j * w:.1f}" y="{bottom - h:.1f}" '
                        f'width="{w:.1f}" height="{h:.1f}" fill="{colour}"/>')  # fmt: skip
        if i % max(len(f.bins) // 12, 1) == 0:  # bins are intervals: slanted, so that neighbours do not overlap
            lx, ly = x + slot / 2, bottom + 10
            body.append(f'<text x="{lx:.1f}" y="{ly}" font-size="9" text-anchor="end" '
                        f'transform="rotate(-30 {lx:.1f} {ly})">{_e(label)}</text>')  # fmt: skip
    body.append('<text x="60" y="14" font-size="12" fill="#4c72b0">reference</text>')
    body.append('<text x="140" y="14" font-size="12" fill="#dd8452">now</text>')
    body.append(f'<text x="{_W / 2}" y="{height - 8}" font-size="12" text-anchor="middle">{_e(f.name)}</text>')
    return _svg(height, body)


def _lines(
    series: dict[str, list[tuple[float, float]]],
    colours: dict[str, str],
    *,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    x_ticks: tuple[str, str],
    labels: tuple[str, str],
    extra: Sequence[Callable[[Scale, Scale], str]] = (),
) -> str:
    """Lines through points on linear axes; each of `extra` draws more on the same scales."""
    height = 300
    (x0, x1), (y0, y1) = x_range, y_range
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def sx(v: float) -> float:
        return _PAD + (v - x0) / (x1 - x0) * (_W - 2 * _PAD)

    def sy(v: float) -> float:
        return height - _PAD - (v - y0) / (y1 - y0) * (height - 2 * _PAD)

    body = [
        f'<line x1="{_PAD}" y1="{height - _PAD}" x2="{_W - _PAD}" y2="{height - _PAD}" stroke="#444"/>',
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{height - _PAD}" stroke="#444"/>',
        f'<text x="{_W / 2}" y="{height - 12}" text-anchor="middle" font-size="12">{_e(labels[0])}</text>',
        f'<text x="14" y="{height / 2}" font-size="12" transform="rotate(-90 14 {height / 2})" '
        f'text-anchor="middle">{_e(labels[1])}</text>',
        f'<text x="{_PAD}" y="{height - _PAD + 16}" font-size="10">{_e(x_ticks[0])}</text>',
        f'<text x="{_W - _PAD}" y="{height - _PAD + 16}" font-size="10" text-anchor="end">{_e(x_ticks[1])}</text>',
        f'<text x="{_PAD - 4}" y="{height - _PAD}" font-size="10" text-anchor="end">{y0:,.3g}</text>',
        f'<text x="{_PAD - 4}" y="{_PAD + 4}" font-size="10" text-anchor="end">{y1:,.3g}</text>',
    ]
    for line in extra:
        body.append(line(sx, sy))
    for i, (name, points) in enumerate(series.items()):
        colour = colours.get(name, "#888")
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        body.append(f'<polyline class="series" data-series="{_e(name)}" points="{path}" fill="none" '
                    f'stroke="{colour}" stroke-width="2"/>')  # fmt: skip
        for x, y in points if len(points) < 2 else ():
            body.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>')
        body.append(f'<text x="{_W - _PAD - 100}" y="{_PAD + 14 * i}" font-size="12" fill="{colour}">'
                    f"{_e(name)}</text>")  # fmt: skip
    return _svg(height, body)


def _traffic_plot(r: MonitorReport) -> str:
    t = r.traffic
    if not t.hours:
        return _empty("no predictions in the window")
    series = {s: [(float(i), float(n)) for i, n in enumerate(counts)] for s, counts in t.by_hour.items()}
    top = max((n for counts in t.by_hour.values() for n in counts), default=1)
    return _lines(
        series,
        _SOURCE_COLOURS,
        x_range=(0.0, float(len(t.hours) - 1)),
        y_range=(0.0, float(top)),
        x_ticks=(when(t.hours[0]), when(t.hours[-1])),
        labels=("hour (UTC)", "predictions per hour"),
    )


def _calibration_plot(r: MonitorReport) -> str:
    q = r.quality
    cells = [c for c in q.cells if c.calibration and c.labelled and (r.version is None or c.version == r.version)]
    if not cells:
        return _empty("no calibration yet (no labelled predictions of a binary classifier)")
    series = {
        c.source: [(b.mean_predicted, b.observed_rate) for b in c.calibration
                   if b.mean_predicted is not None and b.observed_rate is not None]
        for c in cells
    }  # fmt: skip

    def diagonal(sx: Scale, sy: Scale) -> str:
        return (f'<line class="diagonal" x1="{sx(0):.1f}" y1="{sy(0):.1f}" x2="{sx(1):.1f}" y2="{sy(1):.1f}" '
                'stroke="#aaa" stroke-dasharray="4,3"/>')  # fmt: skip

    return _lines(
        series,
        _SOURCE_COLOURS,
        x_range=(0.0, 1.0),
        y_range=(0.0, 1.0),
        x_ticks=("0", "1"),
        labels=("mean predicted score", "observed rate"),
        extra=[diagonal],
    )
