"""Every input file format foretell reads, with one meaning per suffix.

`foretell predict`, batch jobs, registration samples and MLflow's CSV bodies all read rows
through here, so a suffix means the same everywhere:

| suffix               | format    | what the file holds                                      |
|----------------------|-----------|----------------------------------------------------------|
| `.parquet`, `.pq`    | `parquet` | a Parquet file                                           |
| `.csv`               | `csv`     | CSV with a header row                                    |
| `.json`              | `json`    | one JSON document: an object (one row) or a list of them |
| `.jsonl`, `.ndjson`  | `jsonl`   | JSON Lines: one object per line                          |

A `.json` file that turns out to hold JSON Lines is refused with the fix (rename it, or say
`--format jsonl`) rather than read one way by one command and another way by the next.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import orjson
import pyarrow as pa

from foretell.errors import InvalidInput

__all__ = [
    "FORMATS",
    "SUFFIXES",
    "InputFormat",
    "check_format",
    "csv_column_types",
    "format_of",
    "json_document_rows",
    "json_lines_rows",
    "read_csv",
    "read_file",
    "read_rows",
    "rows_table",
    "sniff",
]

InputFormat = Literal["parquet", "csv", "json", "jsonl"]
FORMATS: tuple[InputFormat, ...] = ("parquet", "csv", "json", "jsonl")
SUFFIXES: Mapping[str, InputFormat] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}

_CSV_THREADS_FROM = 1 << 20  # Arrow's thread pool only pays off on inputs of a megabyte or more

# CSV cells are text: typed by a model's features, "007" stays a string where the model wants one.
_CSV_TYPES = {
    "float64": pa.float64(),
    "float32": pa.float64(),
    "int64": pa.int64(),
    "int32": pa.int64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "category": pa.string(),
}


def csv_column_types(dtypes: Mapping[str, str]) -> dict[str, pa.DataType]:
    """The Arrow type to read each named column as, from feature dtypes (name → `float64`, `string`...)."""
    return {name: _CSV_TYPES[dtype] for name, dtype in dtypes.items() if dtype in _CSV_TYPES}


def check_format(fmt: str) -> InputFormat:
    for known in FORMATS:
        if fmt == known:
            return known
    raise InvalidInput(f"unknown input format {fmt!r}; use {', '.join(FORMATS)}")


def format_of(path: str | Path) -> InputFormat:
    """The format a file's suffix names, or a refusal that says how to name it."""
    suffix = Path(str(path)).suffix.lower()
    found = SUFFIXES.get(suffix)
    if found is None:
        known = ", ".join(SUFFIXES)
        raise InvalidInput(
            f"cannot tell the format of {Path(str(path)).name} from its suffix ({known}); pass --format "
            f"({', '.join(FORMATS)})"
        )
    return found


def sniff(data: bytes) -> InputFormat:
    """For input without a name (standard input): JSON when it parses as one document, else JSON Lines or CSV."""
    text = data.lstrip()
    if not text.startswith((b"[", b"{")):
        return "csv"
    try:
        _json(data)
    except ValueError:
        return "jsonl" if text.startswith(b"{") else "json"
    return "json"


def read_rows(data: bytes, fmt: InputFormat, where: str) -> pa.Table | list[dict[str, Any]]:
    """A whole input's rows: a pyarrow Table (Parquet, CSV) or a list of row objects (JSON, JSON Lines)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            table: pa.Table = pq.read_table(pa.py_buffer(data))
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(f"{where} is not a readable Parquet file: {exc}") from exc
        return table
    if fmt == "csv":
        return read_csv(data, where)
    if fmt == "jsonl":
        return json_lines_rows(data, where)
    return json_document_rows(data, where)


def read_file(path: Path, fmt: InputFormat | None = None) -> pa.Table | list[dict[str, Any]]:
    """One whole file's rows (`fmt` from the suffix unless given); a folder or a missing file is refused."""
    if path.is_dir():
        raise InvalidInput(f"input {str(path)!r} is a folder; give one file (folders of parts are for batch jobs)")
    if not path.is_file():
        raise InvalidInput(f"input file {str(path)!r} does not exist")
    fmt = fmt or format_of(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            table: pa.Table = pq.read_table(path)  # from the file itself: memory-mapped, not copied in
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(f"{path.name} is not a readable Parquet file: {exc}") from exc
        return table
    return read_rows(path.read_bytes(), fmt, path.name)


def read_csv(data: bytes, where: str, column_types: Mapping[str, pa.DataType] | None = None) -> pa.Table:
    """CSV with a header row; `column_types` fixes the type of the columns it names (the others are inferred)."""
    import pyarrow.csv as pa_csv

    try:
        return pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(use_threads=len(data) >= _CSV_THREADS_FROM),
            convert_options=pa_csv.ConvertOptions(column_types=dict(column_types or {})),
        )
    except (pa.ArrowException, ValueError) as exc:
        raise InvalidInput(f"{where} is not valid CSV: {exc}") from exc


def json_document_rows(data: bytes, where: str) -> list[dict[str, Any]]:
    """One JSON document: an object (one row) or a list of objects."""
    try:
        parsed = _json(data)
    except ValueError as exc:
        if _looks_like_json_lines(data):
            raise InvalidInput(
                f"{where} holds JSON Lines (one object per line), not one JSON document: name it .jsonl, "
                "or pass --format jsonl"
            ) from None
        raise InvalidInput(f"{where} is not valid JSON: {exc}") from None
    rows = parsed if isinstance(parsed, list) else [parsed]
    return _objects(rows, where)


def json_lines_rows(data: bytes, where: str) -> list[dict[str, Any]]:
    """JSON Lines: one object per line; blank lines are skipped."""
    rows = []
    for number, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(_json(line))
            except ValueError as exc:
                raise InvalidInput(f"{where} line {number} is not valid JSON: {exc}") from None
    return _objects(rows, where)


def rows_table(rows: list[dict[str, Any]], where: str) -> pa.Table:
    """Row objects as a table (for readers that stream tables); a column whose values disagree is refused."""
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidInput(f"{where}: the rows do not make one table: {exc}") from exc


def _json(data: bytes) -> Any:
    """orjson's reading, and the standard library's when orjson refuses: pandas writes missing values
    as bare NaN, which orjson does not read and which foretell reads as a missing value (as ever)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # its JSONDecodeError (and UnicodeDecodeError) are ValueErrors too


def _objects(rows: list[Any], where: str) -> list[dict[str, Any]]:
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InvalidInput(f"{where}: row {i} is {type(row).__name__}, expected a JSON object of features")
    return rows


def _looks_like_json_lines(data: bytes) -> bool:
    lines = [line for line in data.splitlines() if line.strip()]
    if len(lines) < 2:
        return False
    try:
        return all(isinstance(_json(line), dict) for line in lines[:2])
    except ValueError:
        return False
