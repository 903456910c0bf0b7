"""The `foretell` command. Commands call `foretell.api` only; this package owns exit codes and output."""

from foretell.cli.app import app, main

__all__ = ["app", "main"]
