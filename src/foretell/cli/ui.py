"""`foretell ui`: the dashboard on a home where no server runs."""

from __future__ import annotations

from typing import Annotated

import typer

from foretell import api
from foretell.cli.output import err

EPILOG = (
    "Examples:\n\n"
    "  foretell ui                       # http://127.0.0.1:8050/ui/\n\n"
    "  foretell ui --port 9000 --host 0.0.0.0\n\n"
    "A running `foretell serve` has the same pages at its own /ui/, with the Live page's figures."
)


def ui(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8050,
    ledger: Annotated[
        str | None, typer.Option(help="The ledger to read (default: FORETELL_LEDGER, else FORETELL_HOME/ledger).")
    ] = None,
) -> None:
    """The dashboard: models, jobs, store, rollouts and monitoring of FORETELL_HOME (Live needs `foretell serve`)."""
    err.print(f"dashboard on http://{host}:{port}/ui/ (Ctrl-C to stop)", highlight=False, markup=False)
    api.dashboard(host=host, port=port, ledger=ledger)
