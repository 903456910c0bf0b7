"""The SQL the ledger's queries are built from: quoting, the row shape, filters, and the labels' join.

Every value spliced into SQL here is quoted (`quoted`, `ident`) or an int, so the
statements can be built as text (DuckDB takes file lists only as literals).
"""

# ruff: noqa: S608 - the SQL is built here, and every value spliced into it is quoted (`quoted`, `ident`) or an int

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import duckdb

from foretell.ledger.record import SEGMENT_COLUMNS

if TYPE_CHECKING:
    import pyarrow as pa

#: Columns of a ledger row as queries return them (segments' own, then the two structs).
ROW_COLUMNS = (*SEGMENT_COLUMNS, "inputs", "outputs")


#: No rows, every column: unioned by name with the files, it gives a query every column of ROW_COLUMNS.
SHAPE = (
    'SELECT NULL::VARCHAR AS prediction_id, NULL::INTEGER AS "row", NULL::TIMESTAMPTZ AS predicted_at, '
    "NULL::VARCHAR AS model, NULL::BIGINT AS version, NULL::VARCHAR AS sha256, NULL::VARCHAR AS predictor, "
    'NULL::VARCHAR AS source, NULL::VARCHAR AS transport, NULL::VARCHAR AS endpoint, NULL::VARCHAR AS "key", '
    "NULL::VARCHAR AS request_id, NULL::DOUBLE AS latency_ms, NULL::INTEGER AS batch_size, NULL::VARCHAR AS status, "
    "NULL::VARCHAR AS error, NULL AS inputs, NULL AS outputs WHERE false"
)


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def file_list(paths: Sequence[str]) -> str:
    return "[" + ", ".join(quoted(p) for p in paths) + "]"


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc(moment: datetime | None) -> datetime | None:
    """An aware UTC datetime; one without a zone is taken as UTC, as the ledger's times are."""
    if moment is None:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def instant(moment: datetime) -> str:
    """A timestamp literal from microseconds (no `AT TIME ZONE`: `at` is a reserved word in DuckDB 2)."""
    return f"make_timestamptz({(moment - EPOCH) // timedelta(microseconds=1)})"


#: The order `history` returns rows in (and its narrowing ranks them by): newest first, ties in a fixed order.
NEWEST_FIRST = 'predicted_at DESC, prediction_id DESC, "row" NULLS LAST, "key"'


def holding(con: duckdb.DuckDBPyConnection, files: Sequence[str], where: str, newest: int | None) -> list[str]:
    """The files with a row matching `where` (or one of the `newest` latest); all of them if the scan cannot say.

    Reads plain columns only: unifying every segment's schema by name (for the structs)
    costs as much as the scan itself, and the key or the time needs none of it.
    """
    source = f"read_parquet({file_list(files)}, filename = true){where}"
    if newest is not None:
        source = f"(SELECT filename FROM {source} ORDER BY {NEWEST_FIRST} LIMIT {int(newest)})"
    try:
        found = con.execute(f"SELECT DISTINCT filename FROM {source}")
        return sorted(str(name) for (name,) in found.fetchall())
    except duckdb.Error:  # segments whose plain columns disagree in type (another foretell's): read them all
        return list(files)


#: DuckDB's names for the integer types a Parquet id column can have.
INTEGER_TYPES = frozenset(
    ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT")
)


def key_condition(con: duckdb.DuckDBPyConnection, part: str, id_column: str, key: str) -> str | None:
    """`id = key` typed as the id column is, so DuckDB can skip row groups by their statistics.

    The type is read from the part's footer (DESCRIBE reads no rows); None when no row of an
    integer id column can hold `key`. A part DuckDB cannot describe is compared as text.
    """
    try:
        described = con.execute(f"DESCRIBE SELECT {ident(id_column)} FROM read_parquet({quoted(part)})").fetchall()
        kind = str(described[0][1])
    except duckdb.Error:
        return f"CAST({ident(id_column)} AS VARCHAR) = {quoted(key)}"
    if kind in INTEGER_TYPES:
        try:
            return f"{ident(id_column)} = {int(key)}" if str(int(key)) == key else None
        except ValueError:
            return None  # a key that is not a number is in no integer id column
    if kind == "VARCHAR":
        return f"{ident(id_column)} = {quoted(key)}"
    return f"CAST({ident(id_column)} AS VARCHAR) = {quoted(key)}"


def conditions(
    *,
    key: str | None,
    since: datetime | None,
    until: datetime | None,
    source: str | None,
    version: int | None,
) -> str:
    parts = []
    if key is not None:
        parts.append(f"{ident('key')} = {quoted(key)}")
    if since is not None:
        parts.append(f"predicted_at >= {instant(since)}")
    if until is not None:
        parts.append(f"predicted_at <= {instant(until)}")
    if source is not None:
        parts.append(f"source = {quoted(source)}")
    if version is not None:
        parts.append(f"version = {int(version)}")
    return (" WHERE " + " AND ".join(parts)) if parts else ""


def joined(union: str, label_files: Sequence[str], *, ordered: bool = True) -> str:
    """The predictions with their labels' columns, by the point-in-time rule (`foretell.ledger.query`'s docstring).

    `ordered` sorts them by time as an export is; a session's view skips the sort nobody needs there.
    """
    order = (
        f"ORDER BY p.predicted_at, p.prediction_id, p.{ident('row')} NULLS LAST, p.{ident('key')}" if ordered else ""
    )
    row = ident("row")
    key = ident("key")
    rid = f"prediction_id || ':' || coalesce(CAST({row} AS VARCHAR), 'k' || coalesce({key}, ''))"
    columns = ", ".join(f"p.{ident(c)}" for c in ROW_COLUMNS)
    if not label_files:
        return (
            f"SELECT {columns}, NULL::VARCHAR AS label, NULL::DOUBLE AS label_value, "
            "NULL::TIMESTAMPTZ AS label_observed_at, NULL::VARCHAR AS label_id "
            f"FROM ({union}) p {order}"
        )
    return f"""
WITH preds AS (SELECT *, {rid} AS _rid FROM ({union})),
labels AS (SELECT * FROM read_parquet({file_list(label_files)}, union_by_name = true)),
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
{order}
"""


def empty_export() -> pa.Table:
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


def first_line(error: Exception) -> str:
    """DuckDB's message without the SQL it quotes (which holds every file's path)."""
    return str(error).strip().splitlines()[0]


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(micros))
