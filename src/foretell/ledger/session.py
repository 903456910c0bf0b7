"""One model's ledger over a time window, as DuckDB views that monitoring and the advisor query with SQL.

`LedgerReader.session` opens one: a DuckDB connection with four temporary views.

- `predictions`: every prediction in the window, segments and indexed batch jobs alike, in
  the ledger's row shape (`ROW_COLUMNS`);
- `labelled`: the same rows with their labels' columns, joined point in time as
  `foretell ledger export` joins them;
- `labels`: the label rows as loaded;
- `batch_inputs`: the input rows of the window's batch jobs, read from the jobs' own input
  files (the ledger does not copy them), with `job_id`, `version`, `predicted_at` and the
  id column as `key`, then every other column of the file under its own name. A job whose
  input file is gone or was rewritten since (size or modification time changed) has none:
  its rows would not be the ones it scored.

Views keep the file lists of the moment they were made. A writer may compact or retire a
listed segment in between; a query that then finds a file gone lists the files again and
runs once more (as `LedgerReader`'s own queries do).
"""

# ruff: noqa: S608 - the SQL is built from quoted values (`quoted`, `ident`) and ints

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from foretell.errors import StoreError
from foretell.ledger.sql import file_list, first_line, ident, instant, quoted

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["LedgerSession", "batch_inputs_sql", "input_record", "labels_sql"]

log = logging.getLogger("foretell.ledger")

_ATTEMPTS = 3

#: What `labels` holds when no label was ever loaded for the model.
_NO_LABELS = (
    'SELECT NULL::VARCHAR AS label_id, NULL::VARCHAR AS "key", NULL::VARCHAR AS prediction_id, '
    'NULL::INTEGER AS "row", NULL::VARCHAR AS label, NULL::DOUBLE AS label_value, '
    "NULL::TIMESTAMPTZ AS observed_at, NULL::TIMESTAMPTZ AS loaded_at WHERE false"
)
#: What `batch_inputs` holds when no job of the window has its input file still in place.
_NO_BATCH_INPUTS = (
    "SELECT NULL::VARCHAR AS job_id, NULL::BIGINT AS version, NULL::TIMESTAMPTZ AS predicted_at, "
    'NULL::VARCHAR AS "key" WHERE false'
)
#: DuckDB's reader for each input format a batch job's rows can be read back from.
_READERS = {
    "parquet": "read_parquet({files}, union_by_name = true)",
    "csv": "read_csv({files}, union_by_name = true)",
    "jsonl": "read_json({files}, format = 'newline_delimited', union_by_name = true)",
}


class LedgerSession:
    """Views over one model's window of the ledger (module docstring); use as a context manager."""

    def __init__(self, connect: Callable[[], duckdb.DuckDBPyConnection], views: Callable[[], Mapping[str, str]]):
        self._connect = connect
        self._views = views
        self.con = self._open()
        self.jobs: list[dict[str, Any]] = []

    def _open(self) -> duckdb.DuckDBPyConnection:
        con = self._connect()
        try:
            for name, sql in self._views().items():
                con.execute(f"CREATE OR REPLACE TEMP VIEW {ident(name)} AS {sql}")
        except duckdb.Error as exc:
            con.close()
            raise StoreError(f"cannot read the ledger: {first_line(exc)}") from exc
        return con

    def arrow(self, sql: str) -> pa.Table:
        """The rows of `sql` (over the views) as an Arrow table."""
        return self._run(lambda con: con.sql(sql).to_arrow_table())

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of `sql` (over the views) as tuples."""
        found: list[tuple[Any, ...]] = self._run(lambda con: con.execute(sql).fetchall())
        return found

    def _run(self, query: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        for attempt in range(_ATTEMPTS):
            try:
                return query(self.con)
            except duckdb.IOException as exc:  # a listed file was compacted or retired since: list again
                if attempt == _ATTEMPTS - 1:
                    raise StoreError(f"cannot read the ledger: {first_line(exc)}") from exc
                self.con.close()
                self.con = self._open()
            except duckdb.Error as exc:
                raise StoreError(f"cannot read the ledger: {first_line(exc)}") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> LedgerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def input_record(files: Sequence[str], fmt: str) -> dict[str, Any] | None:
    """A batch job's input as its index keeps it: local files, their format, and their size and mtime now.

    None for what cannot be read back reliably (files behind a URL, a single JSON document).
    """
    if fmt not in _READERS or any("://" in f for f in files):
        return None
    paths = [str(Path(f).absolute()) for f in files]
    stats = [Path(p).stat() for p in paths]
    return {"paths": paths, "format": fmt, "fingerprints": [[s.st_size, s.st_mtime_ns] for s in stats]}


def batch_inputs_sql(jobs: Sequence[Mapping[str, Any]]) -> str:
    """The `batch_inputs` view: each job's input rows, where its input is still what it scored."""
    branches = []
    for job in jobs:
        files = _unchanged_input(job)
        if files is None:
            continue
        reader = _READERS[str(job["input"]["format"])].format(files=file_list(files))
        id_column = ident(str(job["id_column"]))
        moment = datetime.fromisoformat(str(job["predicted_at"]))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        branches.append(
            f"SELECT {quoted(str(job['job_id']))} AS job_id, {int(job['version'])}::BIGINT AS version, "
            f'{instant(moment)} AS predicted_at, CAST({id_column} AS VARCHAR) AS "key", '
            f"* EXCLUDE ({id_column}) FROM {reader}"
        )
    if not branches:
        return _NO_BATCH_INPUTS
    return "\nUNION ALL BY NAME\n".join(f"({b})" for b in branches)


def labels_sql(label_files: Sequence[str]) -> str:
    if not label_files:
        return _NO_LABELS
    return f"SELECT * FROM read_parquet({file_list(label_files)}, union_by_name = true)"


def _unchanged_input(job: Mapping[str, Any]) -> list[str] | None:
    described = job.get("input")
    if not isinstance(described, Mapping) or described.get("format") not in _READERS:
        return None  # indexed before inputs were recorded, or a format not read back
    paths = [str(p) for p in described.get("paths", [])]
    fingerprints = described.get("fingerprints", [])
    if not paths or len(paths) != len(fingerprints):
        return None
    for path, (size, mtime_ns) in zip(paths, fingerprints, strict=True):
        try:
            stat = Path(path).stat()
        except OSError:
            log.debug("batch job %s: its input %s is gone; its inputs are not in the ledger", job.get("job_id"), path)
            return None
        if (stat.st_size, stat.st_mtime_ns) != (size, mtime_ns):
            log.debug("batch job %s: its input %s changed since it ran", job.get("job_id"), path)
            return None
    return paths
