"""The embedded prediction store: one SQLite file in WAL mode, one table per generation.

A table per generation, because of what bulk writes cost. Rows are appended in
arrival order to a table with no index, so writing a million rows costs little more
than encoding them; the key index is built once, by sorting, when the generation is
published. (Inserting shuffled keys into one keyed table rewrote most of its b-tree
on every commit, slower the larger the table: docs/hybrid.md, "Backends".)
Dropping an old generation is one DROP TABLE. A key written twice into one
generation (a resumed chunk) is stored twice; reads take the later row.

Publishing is one `BEGIN IMMEDIATE` transaction that builds the index and moves the
model's `published` pointer. A read resolves the pointer and fetches rows inside one
read transaction: WAL hands it a snapshot, so it never waits for a writer and never
sees half a publish. The old generation is dropped afterwards, in a transaction of its
own; a reader whose snapshot predates the switch keeps its pages until it ends.

Writes open their own short-lived connection, as the registry does; reads use one the
calling thread keeps (reopened after a `fork`), so a store object is safe to share between
threads and across `fork`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from foretell.database import Database
from foretell.errors import StoreError
from foretell.store.base import (
    BatchRow,
    EncodedRows,
    StoredPrediction,
    StoredRow,
    check_begun,
    check_generation,
    check_key,
    check_keys,
    check_model,
    check_rows,
    check_version,
    cleanup_failed,
    empty_generation,
    encode_prediction,
    format_utc,
    not_open,
    published_generation,
    resolve,
    utc_now,
    utc_timestamp,
)

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE models (
        id              INTEGER PRIMARY KEY,
        name            TEXT NOT NULL UNIQUE,
        last_generation INTEGER NOT NULL DEFAULT 0,  -- never decreases: numbers are not reused
        published       INTEGER                      -- the pointer readers follow; NULL before the first publish
    )""",
    """CREATE TABLE generations (
        model_id     INTEGER NOT NULL REFERENCES models (id),
        generation   INTEGER NOT NULL,
        state        TEXT NOT NULL CHECK (state IN ('open', 'published')),
        created_at   TEXT NOT NULL,
        earliest     TEXT,     -- earliest computed_at written: the snapshot's start
        rows         INTEGER,  -- distinct keys, counted at publish
        published_at TEXT,
        PRIMARY KEY (model_id, generation)
    )""",
    """CREATE TABLE live (
        model_id      INTEGER NOT NULL REFERENCES models (id),
        key           TEXT NOT NULL,
        prediction    BLOB NOT NULL,
        model_version INTEGER NOT NULL,
        computed_at   TEXT NOT NULL,
        PRIMARY KEY (model_id, key)
    ) WITHOUT ROWID""",
)

_POINTER = (
    "SELECT m.id, m.published, g.earliest, g.rows, g.published_at FROM models AS m "
    "LEFT JOIN generations AS g ON g.model_id = m.id AND g.generation = m.published WHERE m.name = ?"
)


def _table(model_id: int, generation: int) -> str:
    """A generation's table name, made only of numbers this store allocated: safe to put in SQL."""
    return f"gen_{int(model_id)}_{int(generation)}"


class SqliteStore:
    """Predictions by model and key in one SQLite file (by default `<FORETELL_HOME>/store.db`)."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.path = Path(path)
        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise StoreError(f"cannot keep the prediction store in {self.path.parent}: it is a file, not a folder")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._db = Database(
            self.path, what="prediction store", error=StoreError, schema=_SCHEMA, version=SCHEMA_VERSION
        )
        self._db.create_schema()

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    def close(self) -> None:
        """Nothing to release: every call closes its own connection."""

    # -- batch generations ---------------------------------------------------------------

    def begin_generation(self, model: str) -> int:
        check_model(model)
        with self._write() as conn:
            conn.execute("INSERT INTO models (name) VALUES (?) ON CONFLICT (name) DO NOTHING", (model,))
            conn.execute("UPDATE models SET last_generation = last_generation + 1 WHERE name = ?", (model,))
            model_id, generation = conn.execute(
                "SELECT id, last_generation FROM models WHERE name = ?", (model,)
            ).fetchone()
            conn.execute(
                "INSERT INTO generations (model_id, generation, state, created_at) VALUES (?, ?, 'open', ?)",
                (model_id, generation, self._now()),
            )
            conn.execute(
                f"CREATE TABLE {_table(model_id, generation)} (key TEXT NOT NULL, prediction BLOB NOT NULL, "
                "model_version INTEGER NOT NULL, computed_at TEXT NOT NULL)"
            )
            return int(generation)

    def write_batch(self, model: str, generation: int, rows: Iterable[BatchRow]) -> int:
        check_model(model)
        check_rows(rows)
        # Encoded as SQLite consumes them, so a million rows never exist as a million tuples at
        # once; the write lock is held meanwhile, so callers pass rows that are ready (a list).
        encoded = EncodedRows(rows)
        with self._write() as conn:
            model_id = self._open_generation(conn, model, generation)
            conn.executemany(
                f"INSERT INTO {_table(model_id, generation)} (key, prediction, model_version, computed_at) "  # noqa: S608 - table name from our integers
                "VALUES (?, ?, ?, ?)",
                encoded,
            )
            if encoded.earliest is not None:
                conn.execute(
                    "UPDATE generations SET earliest = min(coalesce(earliest, :e), :e) "
                    "WHERE model_id = :m AND generation = :g",
                    {"e": encoded.earliest, "m": model_id, "g": generation},
                )
        return encoded.count

    def publish(self, model: str, generation: int) -> None:
        check_model(model)
        with self._write() as conn:
            model_id = self._open_generation(conn, model, generation)
            table = _table(model_id, generation)
            if conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is None:  # noqa: S608 - our integers
                raise empty_generation(model, generation)
            conn.execute(f"CREATE INDEX IF NOT EXISTS {table}_key ON {table} (key)")
            rows = conn.execute(f"SELECT COUNT(DISTINCT key) FROM {table}").fetchone()[0]  # noqa: S608 - our integers
            conn.execute("UPDATE models SET published = ? WHERE id = ?", (generation, model_id))
            conn.execute(
                "UPDATE generations SET state = 'published', rows = ?, published_at = ? "
                "WHERE model_id = ? AND generation = ?",
                (rows, self._now(), model_id, generation),
            )
            # Older generations, published or still open, are superseded from this commit on;
            # their tables go in the clean-up below.
            conn.execute("DELETE FROM generations WHERE model_id = ? AND generation < ?", (model_id, generation))
        try:
            self._collect(model_id, generation)
        except StoreError as exc:
            raise cleanup_failed(model, generation, exc) from exc

    def abandon(self, model: str, generation: int) -> None:
        """Drop an unpublished generation; one already gone (abandoned or superseded) is left alone."""
        check_model(model)
        with self._write() as conn:
            model_id, state, _ = self._generation(conn, model, generation)
            if state == "published":
                raise published_generation(model, generation)
            if state is None:
                return
            conn.execute("DELETE FROM generations WHERE model_id = ? AND generation = ?", (model_id, generation))
            conn.execute(f"DROP TABLE IF EXISTS {_table(model_id, generation)}")

    # -- live predictions ----------------------------------------------------------------

    def put_live(
        self, model: str, key: str, prediction: Mapping[str, Any], model_version: int, computed_at: str
    ) -> None:
        self.put_live_many(model, [(key, prediction, model_version, computed_at)])

    def put_live_many(self, model: str, rows: Iterable[BatchRow]) -> None:
        check_model(model)
        encoded = [_live_row(*row) for row in rows]
        if not encoded:
            return
        # Not fsynced: a live entry lost in a power cut is only a cache miss, and a write-back
        # on every request should not wait for the disk.
        with self._write(durable=False) as conn:
            conn.execute("INSERT INTO models (name) VALUES (?) ON CONFLICT (name) DO NOTHING", (model,))
            (model_id,) = conn.execute("SELECT id FROM models WHERE name = ?", (model,)).fetchone()
            # Write-backs can land out of order; an older one never replaces a newer one.
            conn.executemany(
                "INSERT INTO live (model_id, key, prediction, model_version, computed_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (model_id, key) DO UPDATE SET prediction = excluded.prediction, "
                "model_version = excluded.model_version, computed_at = excluded.computed_at "
                "WHERE excluded.computed_at >= live.computed_at",
                [(model_id, *row) for row in encoded],
            )

    # -- reading -------------------------------------------------------------------------

    def get(self, model: str, key: str) -> StoredPrediction | None:
        return self.get_many(model, [check_key(key)]).get(key)

    def get_many(self, model: str, keys: Iterable[str]) -> dict[str, StoredPrediction]:
        check_model(model)
        wanted = check_keys(keys)
        if not wanted:
            return {}
        packed = orjson.dumps(wanted)  # one parameter, however many keys: SQLite caps parameters per statement
        with self._read() as conn:
            pointer = conn.execute(_POINTER, (model,)).fetchone()
            if pointer is None:
                return {}
            model_id, generation, earliest = pointer[0], pointer[1], pointer[2]
            batch: list[StoredRow] = []
            if generation is not None:
                batch = conn.execute(
                    f"SELECT key, prediction, model_version, computed_at FROM {_table(model_id, generation)} "  # noqa: S608 - our integers
                    "WHERE key IN (SELECT value FROM json_each(?)) ORDER BY rowid",
                    (packed,),
                ).fetchall()
            # Filtered here as well as in `resolve`, so that stale live rows are not even read.
            live = conn.execute(
                "SELECT key, prediction, model_version, computed_at FROM live "
                "WHERE model_id = ? AND key IN (SELECT value FROM json_each(?)) AND computed_at >= ?",
                (model_id, packed, earliest or ""),
            ).fetchall()
        return resolve(model, wanted, batch, live, generation, earliest or "")

    def current_generation(self, model: str) -> int | None:
        check_model(model)
        with self._read() as conn:
            row = conn.execute("SELECT published FROM models WHERE name = ?", (model,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def stats(self, model: str) -> dict[str, Any]:
        check_model(model)
        with self._read() as conn:
            pointer = conn.execute(_POINTER, (model,)).fetchone()
            if pointer is None:
                return {
                    "model": model,
                    "generation": None,
                    "published_at": None,
                    "rows": 0,
                    "live_rows": 0,
                    "open_generations": [],
                }
            model_id, generation, earliest, rows, published_at = pointer
            live_rows = conn.execute(
                "SELECT COUNT(*) FROM live WHERE model_id = ? AND computed_at >= ?", (model_id, earliest or "")
            ).fetchone()[0]
            open_generations = [
                g
                for (g,) in conn.execute(
                    "SELECT generation FROM generations WHERE model_id = ? AND state = 'open' ORDER BY generation",
                    (model_id,),
                )
            ]
        return {
            "model": model,
            "generation": generation,
            "published_at": published_at,
            "rows": rows or 0,
            "live_rows": live_rows,
            "open_generations": open_generations,
        }

    # -- plumbing ------------------------------------------------------------------------

    def _open_generation(self, conn: sqlite3.Connection, model: str, generation: int) -> int:
        """The model's id, once `generation` is known to be open for writing or publishing."""
        model_id, state, published = self._generation(conn, model, generation)
        if state != "open":
            raise not_open(model, generation, state, published)
        return model_id

    def _generation(self, conn: sqlite3.Connection, model: str, generation: int) -> tuple[int, str | None, int | None]:
        """(model id, state or None once deleted, published generation) of a generation that was begun."""
        check_generation(generation)
        found = conn.execute(
            "SELECT m.id, m.last_generation, m.published, g.state FROM models AS m LEFT JOIN generations AS g "
            "ON g.model_id = m.id AND g.generation = ? WHERE m.name = ?",
            (generation, model),
        ).fetchone()
        check_begun(model, generation, 0 if found is None else found[1], str(self.path))
        return int(found[0]), found[3], found[2]

    def _collect(self, model_id: int, published: int) -> None:
        """Drop the generations older than `published` and the live entries its snapshot supersedes.

        Found through the schema rather than the `generations` table, so tables left behind
        by a publish that died before this step are dropped too.
        """
        with self._write() as conn:
            names = [
                name
                for (name,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB ?", (f"gen_{model_id}_*",)
                )
            ]
            for name in names:
                if int(name.rsplit("_", 1)[1]) < published:
                    conn.execute(f"DROP TABLE {name}")
            (earliest,) = conn.execute(
                "SELECT earliest FROM generations WHERE model_id = ? AND generation = ?", (model_id, published)
            ).fetchone() or (None,)
            if earliest is not None:
                conn.execute("DELETE FROM live WHERE model_id = ? AND computed_at < ?", (model_id, earliest))

    def _now(self) -> str:
        return format_utc(self._clock())

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        """One snapshot for the pointer and the rows it points at (a seam the tests use to interleave).

        On a connection the calling thread keeps: lookups are on a request's path, and opening a
        connection costs far more than the read.
        """
        return self._db.quick_read()

    def _write(self, *, durable: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        if not durable:  # a write-back on a request's path: a few rows, on the thread's kept connection
            return self._db.quick_write("PRAGMA synchronous = NORMAL", "PRAGMA journal_size_limit = 67108864")
        # A big generation's index is sorted in memory rather than in temp files; and the
        # WAL, which a bulk write grows large, is cut back after checkpoints (docs/hybrid.md,
        # "Backends").
        return self._db.write(
            f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}",
            "PRAGMA cache_size = -65536",
            "PRAGMA journal_size_limit = 67108864",
        )


def _live_row(key: str, prediction: Mapping[str, Any], model_version: int, computed_at: str) -> tuple[Any, ...]:
    key = check_key(key)
    return key, encode_prediction(key, prediction), check_version(key, model_version), utc_timestamp(computed_at)
