"""How the CLI speaks: rich on a terminal, plain lines elsewhere, JSON when asked."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape

#: Results go to stdout, so they can be piped; messages and errors go to stderr.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


#: `--predictor`, as `predict` and `batch run` take it (`serve` takes it through its config merge).
PredictorOption = Annotated[
    str,
    typer.Option(help="auto (compiled when it passed its parity proof), original (the framework's own) or compiled."),
]


def print_json(data: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    sys.stdout.flush()


def write_page(path: Path, text: str, what: str = "report") -> None:
    """Write a file the user asked for (`--report`, `--write-config`) and say where it went, on stderr."""
    path.write_text(text, encoding="utf-8")
    err.print(f"{what}: {path}", highlight=False, markup=False)


def fail(message: str) -> None:
    # Escaped: a message is text, and "pip install 'foretell[ray]'" must not lose "[ray]" as markup.
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
