"""`foretell monitor`: traffic, drift, batch-vs-live agreement and quality of a model, read from the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from foretell import api
from foretell.cli.output import err, out, print_json, write_page

if TYPE_CHECKING:
    from foretell.monitor import MonitorReport

EPILOG = (
    "Examples:\n\n"
    "  foretell monitor churn\n\n"
    "  foretell monitor churn --since 7d --report monitor.html\n\n"
    "  foretell monitor churn --version 3 --since 2026-12-04T00:00Z --until 2026-12-05T00:00Z --json\n\n"
    "  foretell monitor churn --thresholds thresholds.toml   # psi_warn = 0.1, psi_alert = 0.25, ..."
)

_STYLES = {"ok": "green", "warn": "yellow", "alert": "bold red", "unknown": "dim"}


def monitor(
    model: Annotated[str, typer.Argument(help="Model name, as registered (churn).")],
    version: Annotated[
        int | None, typer.Option(min=1, help="The version drift and the verdict are about (default: the busiest).")
    ] = None,
    since: Annotated[
        str, typer.Option(help="From this long ago (90m, 24h, 7d) or this ISO date/time (2026-12-04T10:00Z).")
    ] = "24h",
    until: Annotated[str | None, typer.Option(help="Up to this long ago or ISO date/time (default: now).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole report as one JSON document.")] = False,
    report: Annotated[
        Path | None, typer.Option(help="Also write a self-contained HTML page with plots (readable offline).")
    ] = None,
    thresholds: Annotated[
        Path | None,
        typer.Option(help="TOML file of drift thresholds (psi_warn, psi_alert, ...).", exists=True, dir_okay=False),
    ] = None,
    ledger: Annotated[
        str | None,
        typer.Option(help="The ledger: a folder or fsspec URL (default: FORETELL_LEDGER, else FORETELL_HOME/ledger)."),
    ] = None,
) -> None:
    """What MODEL's recorded traffic says: traffic by source, drift per feature, batch-vs-live agreement, quality."""
    err.print(f"reading the ledger of {model} since {since}", highlight=False, markup=False)
    found = api.monitor(model, version=version, since=since, until=until, thresholds=thresholds, ledger=ledger)
    if report is not None:
        write_page(report, api.monitor_report(found))
    if as_json:
        print_json(found.to_dict())
        return
    _show(found)


def _status(status: str) -> str:
    return f"[{_STYLES.get(status, 'default')}]{escape(status)}[/]"


def _show(r: MonitorReport) -> None:
    version = f" v{r.version}" if r.version is not None else ""
    until = r.until.strftime("%Y-%m-%d %H:%M UTC") if r.until else "now"
    out.print(
        f"[bold]{escape(r.model)}{version}[/] · {r.since:%Y-%m-%d %H:%M UTC} → {until}: {_status(r.verdict.status)}",
        highlight=False,
    )
    for finding in r.verdict.findings:
        out.print(f"  {_status(finding.status)} {escape(finding.sentence)}", highlight=False)
    if r.traffic.rows == 0:
        return
    traffic = Table("source", "rows", "errors", "refused", "p50 ms", "p95 ms", "p99 ms", "max ms", title="traffic")
    for s in r.traffic.sources:
        lat = s.latency_ms
        cells = ("-",) * 4 if lat is None else tuple(f"{v:,.2f}" for v in (lat.p50, lat.p95, lat.p99, lat.max))
        refused = f"{s.refused:,} ({s.refused_rate:.1%})"
        traffic.add_row(escape(s.source), f"{s.rows:,}", f"{s.errors:,} ({s.error_rate:.1%})", refused, *cells)
    out.print(traffic)
    if r.drift.reference is not None and (r.drift.features or r.drift.outputs):
        title = f"drift of v{r.drift.version}"
        drift = Table("feature", "traffic", "status", "PSI", "KS", "missing", "unseen", "why", title=title)
        for f in [*r.drift.features, *r.drift.outputs]:
            drift.add_row(
                escape(f.name),
                f.group or "-",
                _status(f.status),
                "-" if f.psi is None else f"{f.psi:.4f}",
                "-" if f.ks is None else f"{f.ks:.3f}",
                f"{f.missing_rate:.1%}",
                f"{f.unseen_share:.1%}" if f.kind == "categorical" else "-",
                escape("; ".join(f.reasons)),
            )
        out.print(drift)
    a = r.agreement
    if a.pairs:
        agreement = Table("live after batch", "pairs", "keys", "mean |diff|", "p95 |diff|", "max |diff|",
                          title=f"agreement on {a.output}")  # fmt: skip
        for name, d in (("features unchanged", a.unchanged), ("features changed", a.changed)):
            figures = ("-" if v is None else f"{v:.3g}" for v in (d.mean_abs, d.p95_abs, d.max_abs))
            agreement.add_row(name, f"{d.pairs:,}", f"{d.keys:,}", *figures)
        out.print(agreement)
        for defect in a.listed[:10]:
            out.print(
                f"  parity defect: key {escape(defect.key)}: batch {defect.batch_score:.6g} ({escape(defect.job_id)}), "
                f"{escape(defect.source)} {defect.live_score:.6g} at {escape(defect.live_at[:19])}",
                highlight=False,
            )
    _quality(r)


def _quality(r: MonitorReport) -> None:
    q = r.quality
    if q.labels == 0 or q.task.kind == "none":
        return
    if q.task.kind == "recommender":
        table = Table("source", "version", "predictions", "labelled", "hit rate@k", title="quality")
        for c in q.cells:
            rate = "-" if c.hit_rate is None else f"{c.hit_rate:.1%} (k={c.k})"
            table.add_row(escape(c.source), str(c.version), f"{c.count:,}", f"{c.labelled:,}", rate)
    elif q.task.kind == "regression":
        table = Table("source", "version", "predictions", "labelled", "MAE", "RMSE", title="quality")
        for c in q.cells:
            figures = ("-" if v is None else f"{v:.4g}" for v in (c.mae, c.rmse))
            table.add_row(escape(c.source), str(c.version), f"{c.count:,}", f"{c.labelled:,}", *figures)
    else:
        table = Table("source", "version", "predictions", "labelled", "AUC", "log loss", "Brier", "accuracy",
                      title="quality")  # fmt: skip
        for c in q.cells:
            table.add_row(
                escape(c.source), str(c.version), f"{c.count:,}", f"{c.labelled:,}",
                *("-" if v is None else f"{v:.4f}" for v in (c.auc, c.log_loss, c.brier)),
                "-" if c.accuracy is None else f"{c.accuracy:.1%}",
            )  # fmt: skip
    out.print(table)
