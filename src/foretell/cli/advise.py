"""`foretell advise`: batch, real-time or hybrid, measured on the user's own model."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from foretell import api
from foretell.advisor import PRESETS
from foretell.cli.output import err, out, print_json, write_page
from foretell.errors import InvalidInput

if TYPE_CHECKING:
    from rich.progress import Progress

    from foretell.advisor import Advice

EPILOG = (
    "Examples:\n\n"
    "  foretell advise churn@production --preset nightly-churn\n\n"
    "  foretell advise movies@production --preset movie-recs --quick --json\n\n"
    "  foretell advise churn@production --population 2000000 --requests-per-day 50000 --peak-rps 20 "
    "--p99-ms 100 --freshness 1h\n\n"
    "  foretell advise churn@production --workload workload.toml --sample customers.parquet --report advice.html\n\n"
    "  foretell advise churn@production --from-ledger --since 7d --write-config serve.toml\n\n"
    "  foretell advise churn@production --from-ledger --config serve.toml --p99-ms 50 --json"
)


def advise(
    uri: Annotated[str, typer.Argument(help="The model to measure, e.g. churn@production.")],
    preset: Annotated[str | None, typer.Option(help=f"Start from a scenario: {', '.join(PRESETS)}.")] = None,
    workload: Annotated[
        Path | None, typer.Option(help="TOML file describing the workload.", exists=True, dir_okay=False)
    ] = None,
    population: Annotated[int | None, typer.Option(help="Entities that could be scored.")] = None,
    active_per_day: Annotated[int | None, typer.Option(help="Entities asked about on a day.")] = None,
    requests_per_day: Annotated[float | None, typer.Option(help="Online requests a day (0: offline use only).")] = None,
    peak_rps: Annotated[float | None, typer.Option(help="Online requests in the busiest second.")] = None,
    p99_ms: Annotated[float | None, typer.Option(help="Latency objective for an online answer (p99, ms).")] = None,
    freshness: Annotated[str | None, typer.Option(help="How old an answer may be: 5s, 15m, 1h, 1d.")] = None,
    events_per_entity_per_day: Annotated[
        float | None, typer.Option(help="How often something changes an entity's answer.")
    ] = None,
    bulk_daily: Annotated[
        bool | None, typer.Option("--bulk-daily/--no-bulk-daily", help="Every entity needs a score each day anyway.")
    ] = None,
    precomputable: Annotated[
        bool | None,
        typer.Option("--precomputable/--not-precomputable", help="Whether inputs exist before the request does."),
    ] = None,
    sample: Annotated[
        Path | None, typer.Option(help="Parquet/CSV of real input rows (default: rows made from the signature).")
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Measure for about ten seconds instead of about a minute.")
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="Also write a self-contained HTML page with plots (readable offline).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the advice as JSON.")] = False,
    from_ledger: Annotated[
        bool,
        typer.Option(
            "--from-ledger", help="Measure the workload from the prediction ledger; options override its figures."
        ),
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="With --from-ledger: from this long ago (24h, 7d; default 7d) or ISO time.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="With --from-ledger: up to this long ago or ISO time.")] = None,
    ledger: Annotated[
        str | None,
        typer.Option(help="With --from-ledger: the ledger folder or URL (default FORETELL_LEDGER, else home)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="With --from-ledger: the serve config in use; its max_age is the freshness need."),
    ] = None,
    write_config: Annotated[
        Path | None,
        typer.Option(help="With --from-ledger: write the recommended knobs as a serve config (and the schedule)."),
    ] = None,
    day_length: Annotated[
        str | None,
        typer.Option(help="With --from-ledger: this much ledger time is a day (a compressed recording's replay)."),
    ] = None,
) -> None:
    """Measure MODEL on this machine and say whether batch, real-time or hybrid fits a workload, and why."""
    settings = {
        "preset": preset,
        "population": population,
        "active_per_day": active_per_day,
        "requests_per_day": requests_per_day,
        "peak_rps": peak_rps,
        "p99_ms": p99_ms,
        "freshness": freshness,
        "events_per_entity_per_day": events_per_entity_per_day,
        "bulk_daily": bulk_daily,
        "precomputable": precomputable,
    }
    ledger_only = {
        "--since": since,
        "--until": until,
        "--ledger": ledger,
        "--config": config,
        "--write-config": write_config,
        "--day-length": day_length,
    }
    if not from_ledger:
        given = [flag for flag, value in ledger_only.items() if value is not None]
        if given:
            raise InvalidInput(f"{', '.join(given)} read(s) the ledger: add --from-ledger")
    else:
        _from_ledger(uri, settings, workload, since, until, ledger, config, write_config, day_length,
                     quick=quick, sample=sample, report=report, as_json=as_json)  # fmt: skip
        return
    chosen = api.advise_workload(settings, file=workload)
    err.print(
        f"measuring {uri} on this machine: about {api.advise_seconds(quick=quick):.0f} s "
        "(a batch job, a server, the store; nothing in FORETELL_HOME changes)",
        highlight=False,
        markup=False,
    )
    with _Steps() as step:
        advice = api.advise(uri, chosen, quick=quick, sample=sample, progress=step)
    if report is not None:
        write_page(report, api.advice_report(advice))
    if as_json:
        print_json(advice.to_dict())
        return
    _show(advice)


def _from_ledger(
    uri: str,
    settings: dict[str, Any],
    workload: Path | None,
    since: str | None,
    until: str | None,
    ledger: str | None,
    config: Path | None,
    write_config: Path | None,
    day_length: str | None,
    *,
    quick: bool,
    sample: Path | None,
    report: Path | None,
    as_json: bool,
) -> None:
    err.print(
        f"reading {uri}'s traffic from the ledger, then measuring it on this machine: about "
        f"{api.advise_seconds(quick=quick):.0f} s (nothing in FORETELL_HOME changes)",
        highlight=False,
        markup=False,
    )
    with _Steps() as step:
        advice = api.advise_from_ledger(
            uri,
            since=since,
            until=until,
            ledger=ledger,
            day_length=day_length,
            settings=settings,
            file=workload,
            config=config,
            quick=quick,
            sample=sample,
            progress=step,
        )
    if write_config is not None:
        write_page(write_config, api.advice_config(advice, uri), "serve config")
    if report is not None:
        write_page(report, api.ledger_advice_report(advice))
    if as_json:
        print_json(advice.to_dict())
        return
    measured = Table("measured from the ledger", "value", "from")
    for name, value, how in advice.measured_rows():
        measured.add_row(escape(name), escape(value), escape(how))
    out.print(measured)
    _show(advice.advice)
    for line in advice.comparison_lines():
        out.print(f"  • {line}", highlight=False, markup=False)


class _Steps:
    """A rich bar on a terminal; a line per step elsewhere."""

    def __enter__(self) -> Any:
        self._started = time.monotonic()
        self._bar: Progress | None = None
        if sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), console=err, transient=True)
            self._bar.start()
            self._task = self._bar.add_task("measuring", total=1.0)
        return self.update

    def update(self, step: str, done: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, description=escape(step))
        else:
            err.print(f"[{time.monotonic() - self._started:5.1f} s] {step}", highlight=False, markup=False)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _show(advice: Advice) -> None:
    w, m = advice.workload, advice.measurements
    out.print(f"[bold]{escape(w.name)}[/]: {escape(w.description or 'custom workload')}", highlight=False)
    measured = Table("measured on this machine", "value", title=None)
    measured.add_row("batch", f"{m.batch_rows_per_s:,.0f} rows/s per core ({m.cores} cores)")
    measured.add_row("one request alone", f"p50 {m.single_p50_ms:.2f} ms, p99 {m.single_p99_ms:.2f} ms")
    measured.add_row("server, 64 clients", f"{m.live_rps:,.0f} req/s, p99 {m.live_p99_ms:.1f} ms")
    measured.add_row(
        "lookups by key",
        f"p99 {m.lookup_p99_ms:.2f} ms alone; {m.lookup_rps:,.0f} req/s, p99 {m.lookup_loaded_p99_ms:.1f} ms at 64",
    )
    measured.add_row(
        "store bulk write", f"{m.store_write_rows_per_s:,.0f} rows/s, {m.prediction_bytes:.0f} B/prediction"
    )
    out.print(measured)
    table = Table("way", "fits", "core-h/day", "peak cores", "p99 ms", "freshness", "store", "wasted")
    for name, cost in advice.modes.items():
        mark = "[bold green]✔ recommended[/]" if name == advice.recommendation else ("yes" if cost.feasible else "no")
        table.add_row(
            name,
            mark,
            f"{cost.core_hours_per_day:,.3f}",
            f"{cost.peak_cores:,.2f}",
            "-" if cost.p99_ms is None else f"{cost.p99_ms:,.1f}",
            _age(cost.freshness_s),
            _bytes(cost.store_bytes),
            f"{cost.wasted_fraction:.0%}",
        )
    out.print(table)
    out.print(f"[bold]Use {advice.recommendation}.[/]", highlight=False)
    for reason in advice.reasons:
        out.print(f"  • {reason}", highlight=False, markup=False)
    for name, cost in advice.modes.items():
        if not cost.feasible and cost.why_not:
            out.print(f"  • not {name}: {cost.why_not}", highlight=False, markup=False)
    requests, population = advice.crossover["requests_per_day"], advice.crossover["population"]
    if requests is not None:
        out.print(
            f"  • crossover: for this population, real-time costs less below {requests:,.0f} requests a day and "
            "hybrid above (without a daily bulk need)",
            highlight=False,
        )
    if population is not None:
        out.print(
            f"  • crossover: for this traffic, hybrid costs less below {population:,.0f} entities and real-time above",
            highlight=False,
        )


def _age(seconds: float) -> str:
    if seconds <= 0:
        return "live"
    for unit, size in (("d", 86_400.0), ("h", 3_600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:,.0f} s"


def _bytes(size: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size:,.0f} B" if size else "-"
