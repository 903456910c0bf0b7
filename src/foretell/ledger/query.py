"""Reading the ledger: a key's history, an export joined with labels, and what the ledger holds.

Every query is DuckDB over the Parquet files themselves: the visible segments of the
model's date partitions (`segments.visible`: a compacted file hides the segments it
covers), unified by name (`union_by_name`: segments of one model may differ in their
`inputs`/`outputs` fields), and the parts of every indexed batch job, presented in the
same row shape (`source: batch`, the job id as `prediction_id`, the id column as `key`).
Nothing is copied or cached: a segment published a moment ago is in the next query.

Labels join point in time (`export`): a label by `prediction_id` joins exactly that
prediction (`row` 0 unless given); a label by `key` joins, for each source, the latest
ok prediction for that key made at or before the label's `observed_at` (an ASOF join), so
a label never joins a prediction made after the outcome was known. When several labels
reach one prediction, the one loaded last wins.
"""

# ruff: noqa: S608 - the SQL is built here, and every value spliced into it is quoted (`quoted`, `ident`) or an int

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
import orjson

from foretell.errors import InvalidInput, StoreError
from foretell.ledger.batch_index import batch_jobs
from foretell.ledger.record import SOURCES
from foretell.ledger.segments import LedgerLocation
from foretell.ledger.session import LedgerSession, batch_inputs_sql, labels_sql
from foretell.ledger.sql import (
    NEWEST_FIRST,
    ROW_COLUMNS,
    SHAPE,
    conditions,
    empty_export,
    file_list,
    first_line,
    from_micros,
    holding,
    ident,
    joined,
    key_condition,
    quoted,
    utc,
)

if TYPE_CHECKING:  # pyarrow only for an export: `foretell ledger show` starts without it
    pass

__all__ = ["ROW_COLUMNS", "ExportCounts", "LedgerReader", "LedgerSession"]

LABEL_COLUMNS = ("label", "label_value", "label_observed_at", "label_id")

_T = TypeVar("_T")
_ATTEMPTS = 3


@dataclass(frozen=True)
class ExportCounts:
    rows: int
    labelled: int
    output: str

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "labelled": self.labelled, "output": self.output}


class LedgerReader:
    """Queries over one ledger (a local folder or an fsspec URL); each call opens its own DuckDB connection."""

    def __init__(self, location: LedgerLocation | str | Path) -> None:
        self.location = location if isinstance(location, LedgerLocation) else LedgerLocation(location)

    # -- connection and paths ---------------------------------------------------------------------

    def _connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")  # DuckDB's own bar on stderr, over a long export
        if not self.location.local:
            con.register_filesystem(self.location.filesystem)
        return con

    def url_of(self, path: str) -> str:
        """A path of the ledger's as DuckDB opens it (a local path, or a URL of the ledger's filesystem)."""
        return self._url(path)

    def _url(self, path: str) -> str:
        """A path as DuckDB opens it: local as is, else with the registered filesystem's protocol."""
        if self.location.local:
            return path
        protocol = self.location.filesystem.protocol
        protocol = protocol[0] if isinstance(protocol, tuple | list) else protocol
        return f"{protocol}://{path.lstrip('/') if protocol != 'memory' else path}"

    def _segment_files(self, model: str, since: datetime | None, until: datetime | None) -> list[str]:
        """The visible segments of the date partitions that can hold rows between `since` and `until`."""
        dates = self.location.dates(model)
        first = since.astimezone(UTC).date().isoformat() if since else None
        last = until.astimezone(UTC).date().isoformat() if until else None
        chosen = [d for d in dates if (first is None or d >= first) and (last is None or d <= last)]
        return [self._url(f) for f in self.location.segment_files(model, chosen)]

    def _label_files(self, model: str) -> list[str]:
        folder = self.location.join("labels", f"model={model}")
        names = self.location.listdir(folder)
        return [self._url(f"{folder}/{n}") for n in names if n.startswith("labels-") and n.endswith(".parquet")]

    # -- the union of segments and batch jobs -----------------------------------------------------

    def _predictions(
        self,
        con: duckdb.DuckDBPyConnection,
        model: str,
        *,
        key: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        source: str | None = None,
        version: int | None = None,
        newest: int | None = None,
    ) -> str | None:
        """SQL for every matching prediction of `model` in the ledger's row shape; None when there is none.

        With `newest`, only the segments that hold one of the `newest` latest matching rows
        are read whole (a superset of what the caller's ORDER BY ... LIMIT `newest` keeps).
        """
        if source is not None and source not in SOURCES:
            raise InvalidInput(f"source must be one of {', '.join(SOURCES)}; got {source!r}")
        since, until = utc(since), utc(until)
        branches = []
        if source != "batch":
            files = self._segment_files(model, since, until)
            where = conditions(key=key, since=since, until=until, source=source, version=version)
            if (key is not None or newest is not None) and len(files) > _NARROW_FROM:
                files = holding(con, files, where, None if key is not None else newest)
            if files:
                branches.append(f"SELECT * FROM read_parquet({file_list(files)}, union_by_name = true){where}")
        if source in (None, "batch"):
            for job in self._jobs_in_window(model, since, until, version):
                branch = self._batch_branch(con, job, key=key)
                if branch is not None:
                    branches.append(branch)
        if not branches:
            return None
        branches.append(SHAPE)  # every column present, even when no file has one (no inputs recorded anywhere)
        return "\nUNION ALL BY NAME\n".join(f"({b})" for b in branches)

    def _batch_branch(self, con: duckdb.DuckDBPyConnection, job: dict[str, Any], *, key: str | None) -> str | None:
        """One indexed job's rows as ledger rows, or None when none can match (its output gone, no such key)."""
        # A batch output's own paths (local, or URLs DuckDB reads); an output deleted since is not in the ledger.
        parts = [str(p) for p in job["parts"] if "://" in str(p) or Path(p).exists()]
        if not parts:
            return None
        id_column = ident(str(job["id_column"]))
        where = ""
        if key is not None:
            condition = key_condition(con, parts[0], str(job["id_column"]), key)
            if condition is None:
                return None
            where = f" WHERE {condition}"
        outputs = [str(name) for name in job["outputs"]]
        packed = ", ".join(f"{ident(n)} := {ident(n)}" for n in outputs) if outputs else ""
        return (
            f"SELECT {quoted(str(job['job_id']))} AS prediction_id, NULL::INTEGER AS {ident('row')}, "
            f"predicted_at, {quoted(str(job['model']))} AS model, model_version AS version, "
            f"{quoted(str(job['sha256']))} AS sha256, {quoted(str(job['predictor']))} AS predictor, "
            "'batch' AS source, 'batch' AS transport, 'batch' AS endpoint, "
            f"CAST({id_column} AS VARCHAR) AS {ident('key')}, NULL::VARCHAR AS request_id, "
            "NULL::DOUBLE AS latency_ms, NULL::INTEGER AS batch_size, 'ok' AS status, NULL::VARCHAR AS error, "
            f"NULL AS inputs, {'struct_pack(' + packed + ')' if packed else 'NULL'} AS outputs "
            f"FROM read_parquet({file_list(parts)}){where}"
        )

    def _jobs_in_window(
        self, model: str, since: datetime | None, until: datetime | None, version: int | None
    ) -> list[dict[str, Any]]:
        """The indexed batch jobs of `model` that ran between `since` and `until` (with `version`)."""
        chosen = []
        for job in batch_jobs(self.location, model):
            predicted_at = datetime.fromisoformat(str(job["predicted_at"]))
            predicted_at = predicted_at if predicted_at.tzinfo else predicted_at.replace(tzinfo=UTC)
            if (since and predicted_at < since) or (until and predicted_at > until):
                continue
            if version is None or int(job["version"]) == version:
                chosen.append(job)
        return chosen

    # -- queries ----------------------------------------------------------------------------------

    def session(
        self,
        model: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        version: int | None = None,
    ) -> LedgerSession:
        """`model`'s window of the ledger as DuckDB views (`predictions`, `labelled`, `labels`, `batch_inputs`).

        See `foretell.ledger.session`; use it as a context manager (`with reader.session(...) as s`).
        """
        since, until = utc(since), utc(until)

        def views() -> dict[str, str]:
            con = self._connect()
            try:
                union = self._predictions(con, model, since=since, until=until, version=version) or SHAPE
            finally:
                con.close()
            labels = self._label_files(model)
            jobs = self._jobs_in_window(model, since, until, version)
            session_jobs[:] = jobs
            return {
                "predictions": union,
                "labels": labels_sql(labels),
                "labelled": joined(union, labels, ordered=False),
                "batch_inputs": batch_inputs_sql(jobs),
            }

        session_jobs: list[dict[str, Any]] = []
        opened = LedgerSession(self._connect, views)
        opened.jobs = session_jobs
        return opened

    def _listed_again(self, query: Callable[[], _T]) -> _T:
        """`query()`, run again (listing the files again) when a file it listed was gone when DuckDB opened it.

        Writers delete files while readers read: a compaction removes the segments its
        compacted file now holds, retention the oldest ones. Listed again, the folder shows
        the compacted file instead (or nothing, for rows past retention).
        """
        for attempt in range(_ATTEMPTS):
            try:
                return query()
            except duckdb.IOException as exc:
                if attempt == _ATTEMPTS - 1:
                    raise StoreError(f"cannot read the ledger at {self.location.url}: {first_line(exc)}") from exc
            except duckdb.Error as exc:  # a file that is not Parquet, or not the ledger's
                raise StoreError(f"cannot read the ledger at {self.location.url}: {first_line(exc)}") from exc
        raise AssertionError("unreachable")

    def history(
        self,
        model: str,
        *,
        key: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        source: str | None = None,
        version: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """`model`'s predictions (of `key`, between `since` and `until`, ...), newest first, as plain dicts."""
        if limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        return self._listed_again(
            lambda: self._history(model, key=key, since=since, until=until, source=source, version=version, limit=limit)
        )

    def _history(
        self,
        model: str,
        *,
        key: str | None,
        since: datetime | None,
        until: datetime | None,
        source: str | None,
        version: int | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        con = self._connect()
        try:
            union = self._predictions(
                con, model, key=key, since=since, until=until, source=source, version=version, newest=limit
            )
            if union is None:
                return []
            columns = ", ".join(ident(c) for c in ROW_COLUMNS if c not in ("predicted_at", "inputs", "outputs"))
            sql = (
                f"SELECT {columns}, epoch_us(predicted_at) AS micros, to_json(inputs) AS inputs_json, "
                f"to_json(outputs) AS outputs_json FROM ({union}) ORDER BY {NEWEST_FIRST} LIMIT {int(limit)}"
            )
            cursor = con.execute(sql)
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        finally:
            con.close()
        return [_history_row(dict(zip(names, row, strict=True))) for row in rows]

    def export(
        self,
        model: str,
        *,
        output: Path,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> ExportCounts:
        """Every prediction of `model` (segments and batch jobs) with its label, as one Parquet file at `output`.

        The file is written beside `output` under a temporary name and renamed into place,
        so a reader never sees half an export.
        """
        return self._listed_again(lambda: self._export(model, Path(output), since, until))

    def _export(self, model: str, output: Path, since: datetime | None, until: datetime | None) -> ExportCounts:
        import pyarrow.parquet as pq  # here, not above: `foretell ledger show` starts without pyarrow

        output = output.absolute()
        output.parent.mkdir(parents=True, exist_ok=True)
        temp = output.with_name(f".tmp-{os.getpid()}-{output.name}")
        con = self._connect()
        try:
            union = self._predictions(con, model, since=since, until=until)
            if union is None:
                pq.write_table(empty_export(), temp)
            else:
                sql = joined(union, self._label_files(model))
                con.execute(f"COPY ({sql}) TO {quoted(str(temp))} (FORMAT parquet, COMPRESSION zstd)")
            temp.replace(output)
        finally:
            con.close()
            temp.unlink(missing_ok=True)
        import pyarrow.parquet as pq

        meta = pq.read_table(output, columns=["label_id"])
        return ExportCounts(meta.num_rows, meta.num_rows - meta.column(0).null_count, str(output))

    def stats(self) -> dict[str, Any]:
        """Per model: rows by source, segment files and bytes, oldest and newest, labels; and the writers' totals."""
        return self._listed_again(self._stats)

    def _stats(self) -> dict[str, Any]:
        models = {}
        con = self._connect()
        try:
            for model in self.location.models():
                models[model] = self._model_stats(con, model)
        finally:
            con.close()
        return {"location": self.location.url, "models": models, "writers": self._writer_totals()}

    def _model_stats(self, con: duckdb.DuckDBPyConnection, model: str) -> dict[str, Any]:
        files = self.location.segment_files(model)
        rows: dict[str, int] = {}
        moments: list[datetime] = []
        errors = refused = 0
        if files:
            cursor = con.execute(
                "SELECT source, count(*), count(*) FILTER (WHERE status = 'error'), "
                "epoch_us(min(predicted_at)), epoch_us(max(predicted_at)), count(*) FILTER (WHERE status = 'refused') "
                f"FROM read_parquet({file_list([self._url(f) for f in files])}, union_by_name = true) GROUP BY source"
            )
            for source, count, failed, oldest, newest, turned_away in cursor.fetchall():
                rows[str(source)] = int(count)
                errors += int(failed)
                refused += int(turned_away)
                moments += [from_micros(oldest), from_micros(newest)]
        jobs = batch_jobs(self.location, model)
        if jobs:
            rows["batch"] = rows.get("batch", 0) + sum(int(j["rows"]) for j in jobs)
            moments += [datetime.fromisoformat(str(j["predicted_at"])) for j in jobs]
        label_files = self._label_files(model)
        labels = 0
        if label_files:
            labels = int(con.execute(f"SELECT count(*) FROM read_parquet({file_list(label_files)})").fetchall()[0][0])
        return {
            "rows": sum(rows.values()),
            "rows_by_source": dict(sorted(rows.items())),
            "errors": errors,
            "refused": refused,
            "segment_files": len(files),
            "segment_bytes": sum(self.location.size(f) for f in files),
            "batch_jobs": len(jobs),
            "oldest": min(moments).isoformat() if moments else None,
            "newest": max(moments).isoformat() if moments else None,
            "labels": labels,
            "label_files": len(label_files),
        }

    def _writer_totals(self) -> dict[str, Any]:
        """Sums of every writer's `_stats/<writer>.json`: records, drops and retention, ended processes included."""
        fields = ("records", "dropped", "retention_deleted_segments", "retention_deleted_bytes")
        totals = dict.fromkeys(("writers", *fields), 0)
        folder = self.location.join("_stats")
        for name in self.location.listdir(folder):
            if not name.endswith(".json"):
                continue
            data = self.location.read_bytes(f"{folder}/{name}")
            try:
                counts = orjson.loads(data) if data is not None else None
            except orjson.JSONDecodeError:
                continue
            if not isinstance(counts, dict):
                continue
            totals["writers"] += 1
            for field in fields:
                value = counts.get(field)
                if isinstance(value, int) and not isinstance(value, bool):
                    totals[field] += value
        return totals


#: Above this many segments, a query by key first finds the few files holding the key, reading only
#: the plain columns every segment shares (no schema unification), then reads just those whole.
_NARROW_FROM = 8


def _history_row(row: dict[str, Any]) -> dict[str, Any]:
    micros = row.pop("micros")
    inputs = row.pop("inputs_json")
    outputs = row.pop("outputs_json")
    shaped: dict[str, Any] = {}
    for name in ROW_COLUMNS:
        if name == "predicted_at":
            shaped[name] = from_micros(micros).isoformat() if micros is not None else None
        elif name == "inputs":
            shaped[name] = orjson.loads(inputs) if inputs is not None else None
        elif name == "outputs":
            shaped[name] = orjson.loads(outputs) if outputs is not None else None
        else:
            shaped[name] = row.get(name)
    return shaped
