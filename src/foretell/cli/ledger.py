"""`foretell ledger ...` and `foretell labels ...`: what was predicted, by which way and version, and what came true."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from foretell import api
from foretell.cli.output import err, out, print_json

app = typer.Typer(
    help="The prediction ledger: every prediction recorded once (batch, live, lookups, events), with labels.",
    no_args_is_help=True,
)
labels_app = typer.Typer(help="Labels: outcomes that arrive after the predictions, joined point in time.")

LedgerOption = Annotated[
    str | None,
    typer.Option(
        "--ledger", help="The ledger: a folder or fsspec URL (default: FORETELL_LEDGER, else FORETELL_HOME/ledger)."
    ),
]
SinceOption = Annotated[
    str | None, typer.Option(help="From this long ago (90m, 24h, 7d) or this ISO date/time (2026-12-04T10:00Z).")
]

_SHOWN_OUTPUTS = 4  # a top-k output can hold dozens of values; the table shows the first few


@app.command(
    "show",
    epilog=(
        "Examples:\n\n"
        "  foretell ledger show churn --key C-0000042\n\n"
        "  foretell ledger show churn --since 24h --source live --limit 20\n\n"
        "  foretell ledger show churn --key C-0000042 --version 3 --json"
    ),
)
def show(
    model: Annotated[str, typer.Argument(help="Model name, as registered (churn).")],
    key: Annotated[str | None, typer.Option(help="Only this entity's predictions (a customer id).")] = None,
    since: SinceOption = None,
    until: Annotated[str | None, typer.Option(help="Up to this long ago, or this ISO date/time.")] = None,
    source: Annotated[
        str | None,
        typer.Option(help="Only this source: live, precomputed, live-fallback, event-refresh, batch or shadow."),
    ] = None,
    version: Annotated[int | None, typer.Option(min=1, help="Only this model version.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many predictions, newest first.")] = 50,
    ledger: LedgerOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """A model's recorded predictions, newest first: when, which way (source), which version, what it said."""
    rows = api.ledger_history(
        model, key=key, since=since, until=until, source=source, version=version, limit=limit, ledger=ledger
    )
    if as_json:
        print_json({"model": model, "key": key, "count": len(rows), "predictions": rows})
        return
    if not rows:
        err.print(f"no predictions of {model!r} in the ledger match", highlight=False, markup=False)
        return
    table = Table(title=f"{model}{f' · {key}' if key else ''}")
    # With --key every row has that key (it is in the title): its column would only take the outputs' room.
    names = ("time (UTC)", "source", "version", *(() if key else ("key",)), "outputs", "status", "latency")
    for name in names:
        wraps = name in ("outputs", "status")
        table.add_column(name, no_wrap=not wraps, overflow="fold", min_width={"outputs": 24, "status": 6}.get(name))
    for row in rows:
        status = "ok" if row["status"] == "ok" else f"[red]error[/]: {escape(str(row['error'] or ''))}"
        latency = f"{row['latency_ms']:.2f} ms" if row["latency_ms"] is not None else "-"
        cells = [
            escape(row["predicted_at"][:23].replace("T", " ")),
            escape(row["source"] or "-"),
            f"v{row['version']}" if row["version"] is not None else "-",
            *(() if key else (escape(row["key"] or "-"),)),
            escape(_outputs(row["outputs"])),
            status,
            latency,
        ]
        table.add_row(*cells)
    out.print(table)


def _outputs(outputs: dict[str, Any] | None) -> str:
    if not outputs:
        return "-"
    shown = []
    for name, value in outputs.items():
        if isinstance(value, float):
            text = f"{value:.4g}"
        elif isinstance(value, list):
            head = ", ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in value[:_SHOWN_OUTPUTS])
            text = f"[{head}{', …' if len(value) > _SHOWN_OUTPUTS else ''}]"
        else:
            text = str(value)
        shown.append(f"{name}={text}")
    return " ".join(shown)


@app.command(
    "export",
    epilog=(
        "Examples:\n\n"
        "  foretell ledger export churn --since 7d --output churn-week.parquet\n\n"
        "  foretell ledger export churn --since 2026-12-01 --until 2026-12-04 --output dec.parquet --json"
    ),
)
def export(
    model: Annotated[str, typer.Argument(help="Model name.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The Parquet file to write (replaced whole).")],
    since: SinceOption = None,
    until: Annotated[str | None, typer.Option(help="Up to this long ago, or this ISO date/time.")] = None,
    ledger: LedgerOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Every prediction of a model (batch and live) with its label joined point in time, as one Parquet file."""
    counts = api.ledger_export(model, output, since=since, until=until, ledger=ledger)
    if as_json:
        print_json(counts)
        return
    out.print(
        f"exported {counts['rows']:,} predictions of {model} ({counts['labelled']:,} labelled) → {counts['output']}",
        highlight=False,
        markup=False,
    )


@app.command("stats", epilog="Examples:\n\n  foretell ledger stats\n\n  foretell ledger stats --json")
def stats(
    ledger: LedgerOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What the ledger holds per model (rows by source, files, bytes, labels) and what its writers dropped."""
    found = api.ledger_stats(ledger=ledger)
    if as_json:
        print_json(found)
        return
    table = Table(title=f"ledger {escape(found['location'])}")
    for name in ("model", "rows", "by source", "errors", "refused", "segments", "bytes", "oldest", "newest", "labels"):
        table.add_column(name, no_wrap=name != "by source")
    for model, each in found["models"].items():
        table.add_row(
            escape(model),
            f"{each['rows']:,}",
            escape(", ".join(f"{s} {n:,}" for s, n in each["rows_by_source"].items()) or "-"),
            f"{each['errors']:,}",
            f"{each['refused']:,}",
            f"{each['segment_files']:,}",
            f"{each['segment_bytes']:,}",
            (each["oldest"] or "-")[:19],
            (each["newest"] or "-")[:19],
            f"{each['labels']:,}",
        )
    out.print(table)
    writers = found["writers"]
    out.print(
        f"{writers['writers']} writer(s): {writers['records']:,} records written, {writers['dropped']:,} dropped "
        f"(queue full), {writers['retention_deleted_segments']:,} segments "
        f"({writers['retention_deleted_bytes']:,} bytes) deleted by retention",
        highlight=False,
        markup=False,
    )


@labels_app.command(
    "load",
    epilog=(
        "Examples:\n\n"
        "  foretell labels load churn outcomes.parquet --key customer_id --label churned --at churned_at\n\n"
        "  foretell labels load churn outcomes.csv --key customer_id --label churned --json"
    ),
)
def load(
    model: Annotated[str, typer.Argument(help="Model name the outcomes are about.")],
    source: Annotated[Path, typer.Argument(help="Parquet, CSV, JSON or JSON Lines rows.", exists=True, dir_okay=False)],
    key: Annotated[str, typer.Option(help="The column of entity keys (as predictions were keyed).")],
    label: Annotated[str, typer.Option(help="The column of outcomes (a number, true/false or text).")],
    at: Annotated[
        str | None,
        typer.Option("--at", help="The column of when each outcome was known (ISO text or a timestamp); default: now."),
    ] = None,
    ledger: LedgerOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Load outcomes from a file; rows that fail a check go to a rejects file with their reasons."""
    loaded = api.load_labels(model, source, key=key, label=label, at=at, ledger=ledger)
    if as_json:
        print_json(loaded.to_dict())
        return
    out.print(f"loaded {loaded.accepted:,} labels for {model}", highlight=False, markup=False)
    if loaded.rejected:
        err.print(
            f"{loaded.rejected:,} rows rejected, with their reasons, in {loaded.rejects_path}",
            highlight=False,
            markup=False,
        )
