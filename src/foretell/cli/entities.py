"""`foretell entities ...`: the entity tables live predictions read (hybrid serving)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from foretell import api
from foretell.cli.output import err, out, print_json
from foretell.errors import InvalidInput

app = typer.Typer(help="Entity tables: the features a live prediction for one key needs.", no_args_is_help=True)


@app.command(
    "load",
    epilog=(
        "Examples:\n\n"
        "  foretell entities load customers customers.parquet --key customer_id --model churn\n\n"
        "  foretell entities load users ratings.parquet --key user_id --model movies "
        "--interactions ratings --item movie_id --value rating --domain rating=1:5\n\n"
        "  foretell entities load customers customers.parquet --key customer_id --domain support_calls_30d=0:"
    ),
)
def load(
    name: Annotated[str, typer.Argument(help="Entity table name, e.g. customers.")],
    source: Annotated[Path, typer.Argument(help="Parquet, CSV or JSON rows.", exists=True, dir_okay=False)],
    key: Annotated[str, typer.Option(help="The id column (entity key).")],
    model: Annotated[
        list[str] | None, typer.Option("--model", help="A model whose live predictions read this table (repeatable).")
    ] = None,
    interactions: Annotated[
        str | None, typer.Option(help="Keep ITEM → VALUE rows per key as this map column (e.g. ratings).")
    ] = None,
    item: Annotated[str | None, typer.Option(help="With --interactions: the item column (e.g. movie_id).")] = None,
    value: Annotated[str | None, typer.Option(help="With --interactions: the value column (e.g. rating).")] = None,
    domain: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=MIN:MAX (either side may be empty) or NAME=a,b,c: the values a column (or the interactions' "
            "value column) may hold; the file and every event are checked (repeatable)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table's description as JSON.")] = False,
) -> None:
    """Load (or replace, atomically) an entity table from a file."""
    spec = None
    if interactions or item or value:
        if not (interactions and item and value):
            raise InvalidInput("--interactions, --item and --value go together (e.g. ratings, movie_id, rating)")
        spec = (interactions, item, value)
    started = time.perf_counter()
    domains = api.domain_options(domain or ())
    table = api.load_entities(name, source, key=key, models=model or (), interactions=spec, domains=domains)
    if as_json:
        print_json(table.to_dict())
        return
    seconds = time.perf_counter() - started
    err.print(
        f"loaded {table.rows:,} keys into entity table {table.name!r} in {seconds:.1f} s", highlight=False, markup=False
    )


@app.command("list", epilog="Example:\n\n  foretell entities list --json")
def list_tables(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The entity tables, their keys, columns and the models they feed."""
    tables = api.entity_tables()
    if as_json:
        print_json([t.to_dict() for t in tables])
        return
    view = Table("table", "key", "keys", "kind", "models", "loaded at")
    for t in tables:
        kind = "features" if t.interactions is None else f"interactions ({t.interactions.column})"
        view.add_row(
            escape(t.name), escape(t.key_column), f"{t.rows:,}", escape(kind), ", ".join(t.models) or "-", t.loaded_at
        )
    out.print(view)


@app.command(
    "get", epilog="Examples:\n\n  foretell entities get customers C-0000042\n\n  foretell entities get users 7 --json"
)
def get(
    name: Annotated[str, typer.Argument(help="Entity table name.")],
    key: Annotated[str, typer.Argument(help="The entity's key.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One entity's features now."""
    entity = api.get_entity(name, key)
    if as_json:
        print_json(
            {"table": entity.table, "key": entity.key, "features": entity.features, "updated_at": entity.updated_at}
        )
        return
    updated = f"  (updated {entity.updated_at})" if entity.updated_at else ""
    out.print(f"[bold]{escape(entity.table)} {escape(entity.key)}[/]{escape(updated)}", highlight=False)
    view = Table("feature", "value")
    for feature, value in entity.features.items():
        view.add_row(escape(feature), _value(value))
    out.print(view)


_SHOWN_ITEMS = 10  # an interactions map can hold thousands of items; a person reads the first few


def _value(value: Any) -> str:
    if value is None:
        return "[dim]missing[/]"
    if isinstance(value, dict):
        items = ", ".join(f"{item} → {v}" for item, v in list(value.items())[:_SHOWN_ITEMS])
        more = f" (and {len(value) - _SHOWN_ITEMS} more)" if len(value) > _SHOWN_ITEMS else ""
        return escape(f"{len(value)} items: {items}{more}")
    return escape(str(value))
