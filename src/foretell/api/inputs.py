"""Rows from a file or standard input, as the CLI's `predict` and the verbs that take a data file read them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

InputFormat = Literal["auto", "json", "jsonl", "csv", "parquet"]


def read_input(source: str | Path, fmt: InputFormat = "auto") -> Any:
    """Rows from a Parquet / CSV / JSON / JSON Lines file, or `-` for stdin (see `foretell.formats`).

    Parquet and CSV come back as a pyarrow Table, JSON as a list of dicts: both are model inputs.
    A `.json` file is one document, an object (one row) or a list of objects; `.jsonl` is JSON Lines.
    """
    from foretell import formats

    if str(source) == "-":
        data = sys.stdin.buffer.read()
        return formats.read_rows(data, formats.sniff(data) if fmt == "auto" else fmt, "standard input")
    return formats.read_file(Path(source), None if fmt == "auto" else fmt)
