"""`foretell batch ...`: score whole files, resume killed jobs, list job history."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from foretell import api
from foretell.cli.output import PredictorOption, err, out, print_json

if TYPE_CHECKING:
    from rich.progress import Progress

app = typer.Typer(
    help="Batch prediction: score whole files into published, exactly-once outputs.", no_args_is_help=True
)

RUN_EPILOG = (
    "Examples:\n\n"
    "  foretell batch run churn@production --input customers.parquet --output scores/\n\n"
    "  foretell batch run churn@production --input 'data/*.csv' --output scores.parquet --single-file "
    "--id-column customer_id --passthrough region\n\n"
    "  foretell batch run churn@production --input customers.parquet --output scores/ --to-store\n\n"
    "  foretell batch run churn@production --input customers.parquet --output scores/ --resume\n\n"
    "  foretell batch run churn@production --input customers.parquet --output scores/ --no-ledger\n\n"
    "  foretell batch run churn@production --input customers.parquet --output compared/ --compare 4 "
    "--guard max_score_diff_p99=0.05 --guard max_label_flip_rate=0.02\n\n"
    "  foretell batch run churn/4 --input customers.parquet --output staged/ --to-store --stage\n\n"
    "  foretell batch run churn@production --input s3://bucket/customers/ --output /shared/scores/ "
    "--engine ray --ray-address auto"
)


@app.command("run", epilog=RUN_EPILOG)
def run(
    model_uri: Annotated[str, typer.Argument(help="Model URI; the version is pinned when the job starts.")],
    input: Annotated[str, typer.Option("--input", "-i", help="File, folder, glob or fsspec URL.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder (or file with --single-file).")],
    id_column: Annotated[
        str | None, typer.Option(help="Column carried into the output (default: first non-feature column).")
    ] = None,
    passthrough: Annotated[
        list[str] | None, typer.Option(help="Input column to copy to the output (repeatable).")
    ] = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows per chunk (one part file each).")] = 65_536,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Workers: processes or threads here, actors on Ray (default: one per core)."),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="Input format: parquet, csv, json (one document) or jsonl (default: from the suffix)."
        ),
    ] = None,
    output_format: Annotated[str, typer.Option(help="parquet, csv or jsonl.")] = "parquet",
    single_file: Annotated[bool, typer.Option(help="Write one file instead of a folder of parts.")] = False,
    to_store: Annotated[
        bool, typer.Option(help="Also publish each id's prediction to the online store as one new generation.")
    ] = False,
    max_reject_ratio: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fail, publishing nothing, above this share of bad rows.")
    ] = 0.01,
    resume: Annotated[bool, typer.Option(help="Finish the unfinished job found in --output.")] = False,
    predictor: PredictorOption = "auto",
    engine: Annotated[
        str, typer.Option(help="local (this machine's cores) or ray (Ray Data on a Ray cluster).")
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="The Ray cluster for --engine ray (host:6379, ray://host:10001 or auto); default: start one here."
        ),
    ] = None,
    ledger: Annotated[
        str | None,
        typer.Option(
            "--ledger", help="Index the output in this ledger (default: FORETELL_LEDGER, else FORETELL_HOME/ledger)."
        ),
    ] = None,
    no_ledger: Annotated[bool, typer.Option("--no-ledger", help="Do not index the output in the ledger.")] = False,
    compare: Annotated[
        str | None,
        typer.Option(
            "--compare",
            help="A challenger that scores every chunk too: a version of the same model (4), name/N, name@alias "
            "or a models:/ URI. Its outputs go beside the model's as challenger_<output>, with score_diff and "
            "label_flipped, and _compare.json says how far apart they are.",
        ),
    ] = None,
    guard: Annotated[
        list[str] | None,
        typer.Option(
            "--guard",
            help="With --compare: a guard its verdict is judged by, NAME=VALUE (repeatable; max_error_rate, "
            "max_p99_ratio, max_score_diff_p99, max_label_flip_rate, min_requests).",
        ),
    ] = None,
    stage: Annotated[
        bool,
        typer.Option(
            "--stage",
            help="With --to-store: write the generation under MODEL/VERSION, where a rollout's challenger arm "
            "reads it, leaving the model's own predictions alone.",
        ),
    ] = False,
    tracing: Annotated[
        bool,
        typer.Option(
            "--tracing",
            help="OpenTelemetry spans for the job and each chunk, exported as OTEL_* says (docs/tracing.md).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job summary as JSON.")] = False,
) -> None:
    """Score every row of an input file set with a registered model (and, with --compare, a challenger)."""
    if fmt not in (None, "parquet", "csv", "json", "jsonl"):
        raise typer.BadParameter(
            f"unknown input format {fmt!r}; use parquet, csv, json or jsonl", param_hint="--format"
        )
    if output_format not in ("parquet", "csv", "jsonl"):
        raise typer.BadParameter(
            f"unknown output format {output_format!r}; use parquet, csv or jsonl", param_hint="--output-format"
        )
    if engine not in ("local", "ray"):
        raise typer.BadParameter("--engine is local or ray")
    if ray_address and engine != "ray":
        raise typer.BadParameter("--ray-address goes with --engine ray")
    if ledger and no_ledger:
        raise typer.BadParameter("--ledger and --no-ledger contradict each other; give one")
    with _progress() as progress:
        result = api.run_batch(
            model_uri,
            input,
            output,
            progress=progress,
            id_column=id_column,
            passthrough=passthrough or (),
            chunk_rows=chunk_rows,
            workers=workers,
            input_format=fmt,
            output_format=output_format,
            single_file=single_file,
            to_store=to_store,
            max_reject_ratio=max_reject_ratio,
            resume=resume,
            predictor=predictor,
            engine=engine,
            ray_address=ray_address,
            ledger=False if no_ledger else ledger,
            compare=compare,
            tracing=tracing,
            guards=guard or (),
            stage=stage,
        )
    _summary(result.to_dict(), as_json)


@app.command("resume", epilog="Example: foretell batch resume job-20261129-020000-1a2b3c")
def resume(
    job_id: Annotated[str, typer.Argument(help="Job id, as `foretell batch list` shows it.")],
    ray_address: Annotated[
        str | None, typer.Option(help="A job on Ray: resume on this cluster instead of the one it started on.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job summary as JSON.")] = False,
) -> None:
    """Finish a killed or interrupted job: committed parts are kept, the rest are scored, then it publishes."""
    with _progress() as progress:
        result = api.resume_batch(job_id, progress=progress, ray_address=ray_address)
    _summary(result.to_dict(), as_json)


@app.command("list", epilog="Example: foretell batch list --json")
def list_(
    limit: Annotated[int, typer.Option(min=1, help="How many jobs, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Recent batch jobs with their status and counts."""
    jobs = api.batch_jobs(limit=limit)
    if as_json:
        print_json(jobs)
        return
    table = Table(title="batch jobs")
    for name in ("job", "status", "model", "rows", "rejected", "seconds", "started"):
        table.add_column(name, no_wrap=True)
    table.add_column("output", overflow="fold")
    for job in jobs:
        table.add_row(
            job["id"],
            job["status"],
            f"{job['model_uri']} (v{job['model_version']})",
            f"{job['rows']:,}",
            f"{job['rejected']:,}",
            f"{job['seconds']:.1f}" if job["seconds"] is not None else "-",
            job["started_at"][:19],
            escape(job["output"]),
        )
    out.print(table)


@app.command("show", epilog="Example: foretell batch show job-20261129-020000-1a2b3c --json")
def show(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One job: model version, input, output, options, counts, timings, and why it failed if it did."""
    job = api.batch_job(job_id)
    if as_json:
        print_json(job)
        return
    for key, value in job.items():
        out.print(f"  {key:<14} {value}", highlight=False, markup=False)


def _summary(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(result)
        return
    out.print(
        f"{result['job_id']} {result['status']}: {result['rows']:,} rows read, {result['scored']:,} scored, "
        f"{result['rejected']:,} rejected in {result['seconds']:.1f} s ({result['rows_per_second']:,.0f} rows/s) "
        f"with {result['model_uri']} ({result.get('predictor', 'original')} predictor"
        f"{', on ray' if result.get('engine') == 'ray' else ''}) → {result['output']}",
        highlight=False,
        markup=False,
    )
    if result.get("compare"):
        _compare_summary(result["compare"])
    if result.get("store") and "/" in result["store"]:
        out.print(
            f"staged in the store as {result['store']}: a rollout's challenger arm serves it to its share of keys; "
            f"{result['store'].split('/')[0]}'s own predictions are unchanged",
            highlight=False,
            markup=False,
        )


def _compare_summary(compared: dict[str, Any]) -> None:
    summary, verdict = compared["summary"], compared["verdict"]
    diff = summary["score_diff"]
    flips = summary["label_flip_rate"]
    table = Table(title=f"{compared['challenger']['uri']} against {compared['champion']['uri']}", show_header=True)
    for name in ("arm", "rows", "errors", "p50 ms/chunk", "p99 ms/chunk"):
        table.add_column(name, justify="right" if name != "arm" else "left")
    for arm in ("champion", "challenger"):
        figures = summary[arm]
        table.add_row(
            arm,
            f"{figures['requests']:,}",
            f"{figures['errors']:,}",
            _ms(figures["p50_ms"]),
            _ms(figures["p99_ms"]),
        )
    out.print(table)
    out.print(
        f"compared {summary['compared']:,} rows: score diff p50 {_num(diff['p50'])}, p90 {_num(diff['p90'])}, "
        f"p99 {_num(diff['p99'])}; label flips {'-' if flips is None else f'{flips:.2%}'}",
        highlight=False,
        markup=False,
    )
    status = "[green]passed[/green]" if verdict["passed"] else "[yellow]not passed[/yellow]"
    out.print(f"verdict: {status}: {escape('; '.join(verdict['reasons']))} → {escape(compared['path'])}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


class _progress:  # noqa: N801 - a context manager, named like one
    """A rich bar (rows, rows/s, ETA) on a terminal; a log line every few seconds elsewhere."""

    def __enter__(self) -> Any:
        if sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

            self._bar: Progress | None = Progress(
                TextColumn("scoring"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.completed:,.0f} rows · {task.fields[rate]} rows/s"),
                TimeRemainingColumn(),
                console=err,
            )
            self._bar.start()
            self._task = self._bar.add_task("scoring", total=None, rate="-")
        else:
            self._bar = None
        self._start = time.monotonic()
        self._last_log = self._start
        return self.update

    def update(self, rows: int, total: int | None) -> None:
        now = time.monotonic()
        rate = rows / (now - self._start) if now > self._start else 0.0
        if self._bar is not None:
            self._bar.update(self._task, completed=rows, total=total, rate=f"{rate:,.0f}")
        elif now - self._last_log >= 5:
            self._last_log = now
            of = f" of {total:,}" if total else ""
            err.print(f"scored {rows:,}{of} rows ({rate:,.0f} rows/s)", highlight=False)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
