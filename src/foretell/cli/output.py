"""How the CLI speaks: rich on a terminal, plain lines elsewhere, JSON when asked."""

from __future__ import annotations

import sys
from typing import Any

import orjson
from rich.console import Console

#: Results go to stdout, so they can be piped; messages and errors go to stderr.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    sys.stdout.flush()


def fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
