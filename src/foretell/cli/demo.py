"""`foretell demo ...`: generate the demo data and models."""

from __future__ import annotations

from typing import Annotated

import typer

from foretell import api
from foretell.cli.output import err, out, print_json

app = typer.Typer(help="The demo: an online store's churn model and a movie recommender.", no_args_is_help=True)


@app.command(
    "init",
    epilog="Example: foretell demo init --customers 100000",
)
def init(
    customers: Annotated[int, typer.Option(min=1_000, help="Customers in the churn table.")] = 20_000,
    users: Annotated[int, typer.Option(min=100, help="Users in the ratings set.")] = 5_000,
    movies: Annotated[int, typer.Option(min=100, help="Movies in the catalogue.")] = 1_500,
    seed: Annotated[int, typer.Option(help="Seed for every random draw: same seed, same data and models.")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Generate demo data (fixed seeds), train both demo models, register them as @production."""
    with err.status("generating data and training the demo models..."):
        summary = api.demo_init(customers=customers, users=users, movies=movies, seed=seed)
    if as_json:
        print_json(summary.to_dict())
        return
    for line in summary.describe():
        out.print(line, highlight=False, markup=False)
