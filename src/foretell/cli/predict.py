"""`foretell predict`: rows in, predictions out, for quick checks from a shell."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from foretell import api
from foretell.cli.output import PredictorOption, err, out, print_json

if TYPE_CHECKING:
    from foretell.core.coerce import ExtraPolicy

EPILOG = (
    "Examples:\n\n"
    "  foretell predict churn@production --input customers.parquet --id-column customer_id --extra ignore\n\n"
    "  echo '{\"user_id\": 17}' | foretell predict movies@production --input - --json"
)

#: Exit code when some rows were refused: their predictions are still printed.
EXIT_ROWS_REJECTED = 3


def predict(
    uri: Annotated[str, typer.Argument(help="Model URI: churn@production, models:/churn/2, ...")],
    input: Annotated[str, typer.Option("--input", "-i", help="JSON, JSON Lines, CSV or Parquet file; - for stdin.")],
    fmt: Annotated[str, typer.Option("--format", help="auto (from the suffix), json, jsonl, csv or parquet.")] = "auto",
    id_column: Annotated[
        str | None, typer.Option(help="Input column to carry into the output (dropped from the features).")
    ] = None,
    extra: Annotated[str | None, typer.Option(help="Unknown input columns: reject (default) or ignore.")] = None,
    k: Annotated[int | None, typer.Option(min=1, help="Items per row, for top-k models.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows to show in the table (not with --json).")] = 20,
    predictor: PredictorOption = "auto",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list of rows; refused rows go to stderr as JSON lines.")
    ] = False,
) -> None:
    """Predict rows from a file with a registered model. Refused rows are listed with their reasons."""
    if fmt not in ("auto", "json", "jsonl", "csv", "parquet"):
        raise typer.BadParameter(f"unknown format {fmt!r}; use json, jsonl, csv or parquet", param_hint="--format")
    if extra not in (None, "reject", "ignore"):
        raise typer.BadParameter("use reject or ignore", param_hint="--extra")
    from foretell.core.model import check_predictor_choice

    model = api.load(uri, predictor=check_predictor_choice(predictor))
    rows = api.read_input(input, fmt)  # type: ignore[arg-type]
    ids, rows = _split_ids(rows, id_column)
    policy: ExtraPolicy | None = extra  # type: ignore[assignment]
    columns = model.coerce(rows, extra=policy)
    predictions = model.predict_columns(columns, k=k)
    id_key = id_column or "row"
    records = [
        {id_key: ids[position] if ids is not None else position, **record}
        for position, record in zip(columns.rows.tolist(), predictions.to_records(), strict=True)
    ]
    if as_json:
        print_json(records)
    else:
        _table(model.info.uri, records, limit)
    for error in columns.errors:
        if as_json:  # one JSON object per refused row on stderr, so a script can read both streams
            reason = {
                **error.to_dict(),
                id_key: ids[error.row] if ids is not None and error.row is not None else error.row,
            }
            err.file.write(orjson.dumps(reason).decode() + "\n")
        else:
            err.print(f"[yellow]refused[/] {escape(error.describe())}", highlight=False)
    if columns.errors:
        raise typer.Exit(EXIT_ROWS_REJECTED)


def _split_ids(rows: Any, id_column: str | None) -> tuple[list[Any] | None, Any]:
    if id_column is None:
        return None, rows
    if isinstance(rows, list):
        missing = [i for i, r in enumerate(rows) if id_column not in r]
        if missing:
            raise typer.BadParameter(f"rows {missing[:5]} have no {id_column!r}", param_hint="--id-column")
        ids = [r[id_column] for r in rows]
        return ids, [{k: v for k, v in r.items() if k != id_column} for r in rows]
    if id_column not in rows.schema.names:
        raise typer.BadParameter(f"the input has no column {id_column!r}", param_hint="--id-column")
    return rows.column(id_column).to_pylist(), rows.drop_columns([id_column])


def _table(uri: str, records: list[dict[str, Any]], limit: int) -> None:
    if not records:
        out.print("no valid rows to predict")
        return
    names = list(records[0])
    table = Table(
        *names, title=f"{uri}: {len(records)} predictions" + (f" (first {limit})" if len(records) > limit else "")
    )
    for record in records[:limit]:
        table.add_row(*(escape(_cell(record[n])) for n in names))
    out.print(table)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list):
        shown = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in value[:10]]
        return "[" + ", ".join(shown) + (", …" if len(value) > 10 else "") + "]"
    return str(value)
