"""`foretell keys ...`: API keys with scopes and rate limits for the servers on this FORETELL_HOME."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from foretell import api
from foretell.cli.output import err, out, print_json

app = typer.Typer(help="API keys: who may call the server, for what, how often.", no_args_is_help=True)


@app.command(
    "create",
    epilog=(
        "Examples:\n\n"
        "  foretell keys create scorer --scope predict\n\n"
        "  foretell keys create ingest --scope events --rate 500\n\n"
        "  foretell keys create ops --scope admin --json\n\n"
        "  curl -H 'Authorization: Bearer ftk_...' localhost:8000/v2/models/churn/infer -d @request.json"
    ),
)
def create(
    name: Annotated[str, typer.Argument(help="A name for the key, e.g. the client that holds it.")],
    scope: Annotated[
        list[str],
        typer.Option(
            help="predict (infer, lookups, metadata), events (events, labels) or admin (everything) (repeatable)."
        ),
    ],
    rate: Annotated[float | None, typer.Option(min=0.001, help="Most requests a second (default: no limit).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the key and its token as JSON.")] = False,
) -> None:
    """Make a key; its token is printed once (only a digest of it is kept)."""
    key, token = api.create_key(name, scope, rate=rate)
    if as_json:
        print_json({**key, "token": token})
        return
    out.print(token, highlight=False, markup=False, soft_wrap=True)
    err.print(
        f"key {name!r} ({', '.join(key['scopes'])}"
        f"{'' if rate is None else f', {rate:g} requests/s'}): shown once, keep it; clients send it as "
        "'Authorization: Bearer TOKEN' or 'X-API-Key: TOKEN'. Servers started from now on require a key.",
        highlight=False,
        markup=False,
    )


@app.command("list", epilog="Examples:\n\n  foretell keys list\n\n  foretell keys list --revoked --json")
def list_(
    revoked: Annotated[bool, typer.Option("--revoked", help="Show revoked keys too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The keys (never their tokens): name, id, scopes, rate limit, when made and revoked."""
    keys = api.list_keys(revoked=revoked)
    if as_json:
        print_json(keys)
        return
    if not keys:
        err.print("no keys: servers on this home are open (foretell keys create NAME --scope predict)")
        return
    table = Table("name", "id", "scopes", "rate/s", "created", "revoked")
    for key in keys:
        rate = "-" if key["rate"] is None else f"{key['rate']:g}"
        table.add_row(
            key["name"], key["id"], ", ".join(key["scopes"]), rate, key["created_at"], key["revoked_at"] or ""
        )
    out.print(table)


@app.command("revoke", epilog="Examples:\n\n  foretell keys revoke scorer")
def revoke(
    name: Annotated[str, typer.Argument(help="The live key to revoke.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the revoked key as JSON.")] = False,
) -> None:
    """Revoke a key: running servers refuse it within a second."""
    key = api.revoke_key(name)
    if as_json:
        print_json(key)
        return
    out.print(f"revoked {name!r} ({key['id']}) at {key['revoked_at']}", highlight=False, markup=False)
