"""The root command, global options, and the one place user errors become exit codes."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

# Every command's module is imported (typer needs each signature for `foretell --help`), so they import
# at module level only typer, rich and the light `foretell.api`: models, numpy, Arrow and the compilers
# are imported inside the commands that use them (tests/integration/test_cli_imports.py checks it).
from foretell.cli import (
    advise,
    batch,
    demo,
    entities,
    events,
    keys,
    ledger,
    models,
    monitor,
    predict,
    rollout,
    schedule,
    serve,
    ui,
)
from foretell.cli.output import fail, out
from foretell.errors import ForetellError

#: Exit codes: 0 done; 1 a user error foretell explains (bad input, unknown model, ...);
#: 2 a usage error (unknown option, missing argument), as click reports it.
EXIT_USER_ERROR = 1

app = typer.Typer(
    name="foretell",
    help=(
        "One registered model, served three ways: batch, real-time, hybrid.\n\n"
        "Example: foretell demo init && foretell predict churn@production --input customers.json"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(models.app, name="models")
app.add_typer(demo.app, name="demo")
app.add_typer(batch.app, name="batch")
app.add_typer(entities.app, name="entities")
app.add_typer(events.app, name="events")
app.add_typer(keys.app, name="keys")
app.add_typer(ledger.app, name="ledger")
app.add_typer(ledger.labels_app, name="labels", no_args_is_help=True)
app.command(name="serve", epilog=serve.EPILOG)(serve.serve)
app.command(name="predict", epilog=predict.EPILOG)(predict.predict)
app.command(name="advise", epilog=advise.EPILOG)(advise.advise)
app.command(name="monitor", epilog=monitor.EPILOG)(monitor.monitor)
app.add_typer(rollout.app, name="rollout")
app.add_typer(schedule.app, name="schedule")
app.command(name="scheduler", epilog=schedule.SCHEDULER_EPILOG)(schedule.scheduler)
app.command(name="ui", epilog=ui.EPILOG)(ui.ui)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version as package_version

        out.print(f"foretell {package_version('foretell')}", highlight=False)
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
) -> None:
    """foretell: batch prediction, real-time serving and hybrid lookups from one registered model."""
    _state["debug"] = debug


def main() -> None:
    try:
        app()
    except ForetellError as exc:
        if _state["debug"] or "--debug" in sys.argv:
            raise
        fail(str(exc))
        sys.exit(EXIT_USER_ERROR)
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        if _state["debug"] or "--debug" in sys.argv:
            raise
        fail(f"{exc.strerror}: {exc.filename}")
        sys.exit(EXIT_USER_ERROR)
