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

# ruff: noqa: S608 - the SQL is built here, and every value spliced into it is quoted (`_text`, `_ident`) or an int

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
import orjson

from foretell.errors import InvalidInput, StoreError
from foretell.ledger.batch_index import batch_jobs
from foretell.ledger.record import SEGMENT_COLUMNS, SOURCES
from foretell.ledger.segments import LedgerLocation

if TYPE_CHECKING:  # pyarrow only for an export: `foretell ledger show` starts without it
    import pyarrow as pa

__all__ = ["ExportCounts", "LedgerReader"]

#: Columns of a ledger row as queries return them (segments' own, then the two structs).
ROW_COLUMNS = (*SEGMENT_COLUMNS, "inputs", "outputs")
LABEL_COLUMNS = ("label", "label_value", "label_observed_at", "label_id")

_T = TypeVar("_T")
_ATTEMPTS = 3

#: No rows, every column: unioned by name with the files, it gives a query every column of ROW_COLUMNS.
_SHAPE = (
    'SELECT NULL::VARCHAR AS prediction_id, NULL::INTEGER AS "row", NULL::TIMESTAMPTZ AS predicted_at, '
    "NULL::VARCHAR AS model, NULL::BIGINT AS version, NULL::VARCHAR AS sha256, NULL::VARCHAR AS predictor, "
    'NULL::VARCHAR AS source, NULL::VARCHAR AS transport, NULL::VARCHAR AS endpoint, NULL::VARCHAR AS "key", '
    "NULL::VARCHAR AS request_id, NULL::DOUBLE AS latency_ms, NULL::INTEGER AS batch_size, NULL::VARCHAR AS status, "
    "NULL::VARCHAR AS error, NULL AS inputs, NULL AS outputs WHERE false"
)


@dataclass(frozen=True)
class ExportCounts:
    rows: int
    labelled: int
    output: str

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "labelled": self.labelled, "output": self.output}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _files(paths: Sequence[str]) -> str:
    return "[" + ", ".join(_text(p) for p in paths) + "]"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(moment: datetime | None) -> datetime | None:
    """An aware UTC datetime; one without a zone is taken as UTC, as the ledger's times are."""
    if moment is None:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _instant(moment: datetime) -> str:
    """A timestamp literal from microseconds (no `AT TIME ZONE`: `at` is a reserved word in DuckDB 2)."""
    return f"make_timestamptz({(moment - _EPOCH) // timedelta(microseconds=1)})"


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
        since, until = _utc(since), _utc(until)
        branches = []
        if source != "batch":
            files = self._segment_files(model, since, until)
            where = _conditions(key=key, since=since, until=until, source=source, version=version)
            if (key is not None or newest is not None) and len(files) > _NARROW_FROM:
                files = _holding(con, files, where, None if key is not None else newest)
            if files:
                branches.append(f"SELECT * FROM read_parquet({_files(files)}, union_by_name = true){where}")
        if source in (None, "batch"):
            for job in batch_jobs(self.location, model):
                branch = self._batch_branch(con, job, key=key, since=since, until=until, version=version)
                if branch is not None:
                    branches.append(branch)
        if not branches:
            return None
        branches.append(_SHAPE)  # every column present, even when no file has one (no inputs recorded anywhere)
        return "\nUNION ALL BY NAME\n".join(f"({b})" for b in branches)

    def _batch_branch(
        self,
        con: duckdb.DuckDBPyConnection,
        job: dict[str, Any],
        *,
        key: str | None,
        since: datetime | None,
        until: datetime | None,
        version: int | None,
    ) -> str | None:
        """One indexed job's rows as ledger rows, or None when the filters rule the whole job out."""
        predicted_at = datetime.fromisoformat(str(job["predicted_at"]))
        if predicted_at.tzinfo is None:
            predicted_at = predicted_at.replace(tzinfo=UTC)
        if (since and predicted_at < since) or (until and predicted_at > until):
            return None
        if version is not None and int(job["version"]) != version:
            return None
        # A batch output's own paths (local, or URLs DuckDB reads); an output deleted since is not in the ledger.
        parts = [str(p) for p in job["parts"] if "://" in str(p) or Path(p).exists()]
        if not parts:
            return None
        id_column = _ident(str(job["id_column"]))
        where = ""
        if key is not None:
            condition = _key_condition(con, parts[0], str(job["id_column"]), key)
            if condition is None:
                return None
            where = f" WHERE {condition}"
        outputs = [str(name) for name in job["outputs"]]
        packed = ", ".join(f"{_ident(n)} := {_ident(n)}" for n in outputs) if outputs else ""
        return (
            f"SELECT {_text(str(job['job_id']))} AS prediction_id, NULL::INTEGER AS {_ident('row')}, "
            f"predicted_at, {_text(str(job['model']))} AS model, model_version AS version, "
            f"{_text(str(job['sha256']))} AS sha256, {_text(str(job['predictor']))} AS predictor, "
            "'batch' AS source, 'batch' AS transport, 'batch' AS endpoint, "
            f"CAST({id_column} AS VARCHAR) AS {_ident('key')}, NULL::VARCHAR AS request_id, "
            "NULL::DOUBLE AS latency_ms, NULL::INTEGER AS batch_size, 'ok' AS status, NULL::VARCHAR AS error, "
            f"NULL AS inputs, {'struct_pack(' + packed + ')' if packed else 'NULL'} AS outputs "
            f"FROM read_parquet({_files(parts)}){where}"
        )

    # -- queries ----------------------------------------------------------------------------------

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
                    raise StoreError(f"cannot read the ledger at {self.location.url}: {_first_line(exc)}") from exc
            except duckdb.Error as exc:  # a file that is not Parquet, or not the ledger's
                raise StoreError(f"cannot read the ledger at {self.location.url}: {_first_line(exc)}") from exc
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
            columns = ", ".join(_ident(c) for c in ROW_COLUMNS if c not in ("predicted_at", "inputs", "outputs"))
            sql = (
                f"SELECT {columns}, epoch_us(predicted_at) AS micros, to_json(inputs) AS inputs_json, "
                f"to_json(outputs) AS outputs_json FROM ({union}) ORDER BY {_NEWEST_FIRST} LIMIT {int(limit)}"
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
                pq.write_table(_empty_export(), temp)
            else:
                sql = _joined(union, self._label_files(model))
                con.execute(f"COPY ({sql}) TO {_text(str(temp))} (FORMAT parquet, COMPRESSION zstd)")
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
        errors = 0
        if files:
            cursor = con.execute(
                "SELECT source, count(*), count(*) FILTER (WHERE status = 'error'), "
                "epoch_us(min(predicted_at)), epoch_us(max(predicted_at)) "
                f"FROM read_parquet({_files([self._url(f) for f in files])}, union_by_name = true) GROUP BY source"
            )
            for source, count, failed, oldest, newest in cursor.fetchall():
                rows[str(source)] = int(count)
                errors += int(failed)
                moments += [_from_micros(oldest), _from_micros(newest)]
        jobs = batch_jobs(self.location, model)
        if jobs:
            rows["batch"] = rows.get("batch", 0) + sum(int(j["rows"]) for j in jobs)
            moments += [datetime.fromisoformat(str(j["predicted_at"])) for j in jobs]
        label_files = self._label_files(model)
        labels = 0
        if label_files:
            labels = int(con.execute(f"SELECT count(*) FROM read_parquet({_files(label_files)})").fetchall()[0][0])
        return {
            "rows": sum(rows.values()),
            "rows_by_source": dict(sorted(rows.items())),
            "errors": errors,
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


#: The order `history` returns rows in (and its narrowing ranks them by): newest first, ties in a fixed order.
_NEWEST_FIRST = 'predicted_at DESC, prediction_id DESC, "row" NULLS LAST, "key"'


def _holding(con: duckdb.DuckDBPyConnection, files: Sequence[str], where: str, newest: int | None) -> list[str]:
    """The files with a row matching `where` (or one of the `newest` latest); all of them if the scan cannot say.

    Reads plain columns only: unifying every segment's schema by name (for the structs)
    costs as much as the scan itself, and the key or the time needs none of it.
    """
    source = f"read_parquet({_files(files)}, filename = true){where}"
    if newest is not None:
        source = f"(SELECT filename FROM {source} ORDER BY {_NEWEST_FIRST} LIMIT {int(newest)})"
    try:
        found = con.execute(f"SELECT DISTINCT filename FROM {source}")
        return sorted(str(name) for (name,) in found.fetchall())
    except duckdb.Error:  # segments whose plain columns disagree in type (another foretell's): read them all
        return list(files)


#: DuckDB's names for the integer types a Parquet id column can have.
_INTEGER_TYPES = frozenset(
    ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT")
)


def _key_condition(con: duckdb.DuckDBPyConnection, part: str, id_column: str, key: str) -> str | None:
    """`id = key` typed as the id column is, so DuckDB can skip row groups by their statistics.

    The type is read from the part's footer (DESCRIBE reads no rows); None when no row of an
    integer id column can hold `key`. A part DuckDB cannot describe is compared as text.
    """
    try:
        described = con.execute(f"DESCRIBE SELECT {_ident(id_column)} FROM read_parquet({_text(part)})").fetchall()
        kind = str(described[0][1])
    except duckdb.Error:
        return f"CAST({_ident(id_column)} AS VARCHAR) = {_text(key)}"
    if kind in _INTEGER_TYPES:
        try:
            return f"{_ident(id_column)} = {int(key)}" if str(int(key)) == key else None
        except ValueError:
            return None  # a key that is not a number is in no integer id column
    if kind == "VARCHAR":
        return f"{_ident(id_column)} = {_text(key)}"
    return f"CAST({_ident(id_column)} AS VARCHAR) = {_text(key)}"


def _conditions(
    *,
    key: str | None,
    since: datetime | None,
    until: datetime | None,
    source: str | None,
    version: int | None,
) -> str:
    parts = []
    if key is not None:
        parts.append(f"{_ident('key')} = {_text(key)}")
    if since is not None:
        parts.append(f"predicted_at >= {_instant(since)}")
    if until is not None:
        parts.append(f"predicted_at <= {_instant(until)}")
    if source is not None:
        parts.append(f"source = {_text(source)}")
    if version is not None:
        parts.append(f"version = {int(version)}")
    return (" WHERE " + " AND ".join(parts)) if parts else ""


def _joined(union: str, label_files: Sequence[str]) -> str:
    """The predictions with their labels' columns, by the point-in-time rule (module docstring)."""
    row = _ident("row")
    key = _ident("key")
    rid = f"prediction_id || ':' || coalesce(CAST({row} AS VARCHAR), 'k' || coalesce({key}, ''))"
    columns = ", ".join(f"p.{_ident(c)}" for c in ROW_COLUMNS)
    if not label_files:
        return (
            f"SELECT {columns}, NULL::VARCHAR AS label, NULL::DOUBLE AS label_value, "
            "NULL::TIMESTAMPTZ AS label_observed_at, NULL::VARCHAR AS label_id "
            f"FROM ({union}) p ORDER BY p.predicted_at, p.prediction_id, p.{row} NULLS LAST, p.{key}"
        )
    return f"""
WITH preds AS (SELECT *, {rid} AS _rid FROM ({union})),
labels AS (SELECT * FROM read_parquet({_files(label_files)}, union_by_name = true)),
ok AS (SELECT _rid, {key}, source, predicted_at FROM preds WHERE status = 'ok' AND {key} IS NOT NULL),
keyed AS (
    SELECT l.*, s.source AS _source
    FROM labels l CROSS JOIN (SELECT DISTINCT source FROM ok) s
    WHERE l.prediction_id IS NULL AND l.{key} IS NOT NULL
),
by_key AS (
    SELECT k.label_id, k.label, k.label_value, k.observed_at, k.loaded_at, o._rid
    FROM keyed k ASOF JOIN ok o ON k.{key} = o.{key} AND k._source = o.source AND k.observed_at >= o.predicted_at
),
by_id AS (
    SELECT l.label_id, l.label, l.label_value, l.observed_at, l.loaded_at, p._rid
    FROM labels l JOIN preds p ON l.prediction_id = p.prediction_id AND coalesce(l.{row}, 0) = p.{row}
),
chosen AS (
    SELECT * FROM (SELECT * FROM by_key UNION ALL SELECT * FROM by_id)
    QUALIFY row_number() OVER (PARTITION BY _rid ORDER BY loaded_at DESC, label_id DESC) = 1
)
SELECT {columns}, c.label, c.label_value, c.observed_at AS label_observed_at, c.label_id
FROM preds p LEFT JOIN chosen c ON p._rid = c._rid
ORDER BY p.predicted_at, p.prediction_id, p.{row} NULLS LAST, p.{key}
"""


def _empty_export() -> pa.Table:
    import pyarrow as pa

    from foretell.ledger.record import SEGMENT_COLUMNS

    fields = [pa.field(name, pa.string()) for name in SEGMENT_COLUMNS]
    types = {"row": pa.int32(), "predicted_at": pa.timestamp("us", tz="UTC"), "version": pa.int64()}
    types |= {"latency_ms": pa.float64(), "batch_size": pa.int32()}
    fields = [pa.field(f.name, types.get(f.name, f.type)) for f in fields]
    fields += [pa.field("inputs", pa.null()), pa.field("outputs", pa.null())]
    fields += [
        pa.field("label", pa.string()),
        pa.field("label_value", pa.float64()),
        pa.field("label_observed_at", pa.timestamp("us", tz="UTC")),
        pa.field("label_id", pa.string()),
    ]
    return pa.schema(fields).empty_table()


def _first_line(error: Exception) -> str:
    """DuckDB's message without the SQL it quotes (which holds every file's path)."""
    return str(error).strip().splitlines()[0]


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(micros))


def _history_row(row: dict[str, Any]) -> dict[str, Any]:
    micros = row.pop("micros")
    inputs = row.pop("inputs_json")
    outputs = row.pop("outputs_json")
    shaped: dict[str, Any] = {}
    for name in ROW_COLUMNS:
        if name == "predicted_at":
            shaped[name] = _from_micros(micros).isoformat() if micros is not None else None
        elif name == "inputs":
            shaped[name] = orjson.loads(inputs) if inputs is not None else None
        elif name == "outputs":
            shaped[name] = orjson.loads(outputs) if outputs is not None else None
        else:
            shaped[name] = row.get(name)
    return shaped
