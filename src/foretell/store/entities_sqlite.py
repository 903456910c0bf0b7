"""The embedded entity store: one SQLite file (`<FORETELL_HOME>/entities.db`) in WAL mode.

Each load writes fresh physical tables (`ent_N` for features, `int_N` for interactions,
N a number never reused) and switches the entity table's pointer to them in the same
transaction that drops the old ones: a reader sees the old rows or the new, whole. As in
the prediction store, rows are appended to an unindexed table and the key index is built
once, by sorting, at the end; a million 33-column customers load in a few seconds.

A features row is one JSON array, in the table's column order, so an event is one
`json_set` of the columns it names, applied to whatever the row holds at that moment:
two events on one key never undo each other. Interactions are a row per (key, item), so
two new ratings by one user are two different rows.

Lookups on a request's path use a connection their thread keeps (`Database.quick_read`).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from foretell.core.domain import Domain
from foretell.database import Database
from foretell.errors import StoreError
from foretell.store.base import check_key, utc_timestamp
from foretell.store.entities import (
    Entity,
    EntityTable,
    EntityWrite,
    Interactions,
    check_table_name,
    check_write,
    checked_domains,
    domains_from_dict,
    interaction_rows,
    json_arrays,
    key_column_text,
    key_value,
    loaded_table,
    unknown_table,
)

__all__ = ["SCHEMA_VERSION", "SqliteEntityStore"]

SCHEMA_VERSION = 2

_SCHEMA = (
    """CREATE TABLE tables (
        name         TEXT PRIMARY KEY,
        storage      INTEGER NOT NULL,  -- N of ent_N / int_N
        key_column   TEXT NOT NULL,
        key_type     TEXT NOT NULL,
        columns      TEXT NOT NULL,     -- JSON list
        models       TEXT NOT NULL,     -- JSON list
        interactions TEXT,              -- JSON {column, item, value}; NULL for a features table
        rows         INTEGER NOT NULL,
        loaded_at    TEXT NOT NULL,
        domains      TEXT               -- JSON {column: domain}; NULL: none
    )""",
    "CREATE TABLE counter (last INTEGER NOT NULL)",
    "INSERT INTO counter VALUES (0)",
    """CREATE TABLE events (
        event_id   TEXT PRIMARY KEY,
        tab        TEXT NOT NULL,
        key        TEXT NOT NULL,
        applied_at TEXT NOT NULL
    ) WITHOUT ROWID""",
)
_UPGRADES = {2: ("ALTER TABLE tables ADD COLUMN domains TEXT",)}  # 2: domains (issue 20); tables of 1 have none
_CHUNK = 65_536


class SqliteEntityStore:
    """Entity tables in one SQLite file; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = Database(
            self.path, what="entity store", error=StoreError, schema=_SCHEMA, version=SCHEMA_VERSION, upgrades=_UPGRADES
        )
        self._db.create_schema()

    def __repr__(self) -> str:
        return f"SqliteEntityStore({str(self.path)!r})"

    def close(self) -> None:
        """Nothing to release: connections close with their threads."""

    # -- loading -----------------------------------------------------------------------------------

    def load_features(
        self,
        name: str,
        key_column: str,
        rows: pa.Table,
        *,
        models: Iterable[str] = (),
        at: str,
        domains: Mapping[str, Domain] | None = None,
    ) -> EntityTable:
        check_table_name(name)
        stamp = utc_timestamp(at)
        keys = key_column_text(rows, key_column)
        bounded = checked_domains(name, rows, key_column, None, domains)
        texts = json_arrays(rows)
        # Sorted by key, stable, so the last of repeated keys is the last of its run: that one is kept.
        # A file already in key order with no key twice (ids often are) skips copying every row.
        if len(keys) > 1 and not pc.all(pc.less(keys[:-1], keys[1:])).as_py():
            order = pc.sort_indices(pa.table({"k": keys}), sort_keys=[("k", "ascending")])
            keys, texts = keys.take(order), texts.take(order)
            last_of_run = pc.not_equal(keys[:-1], keys[1:])
            kept = pa.chunked_array([*last_of_run.chunks, pa.array([True])])
            keys, texts = keys.filter(kept), texts.filter(kept)
        with self._write() as conn:
            storage = self._allocate(conn)
            # updated_at stays NULL for a row as loaded (read as the table's loaded_at): the same
            # stamp a million times over is a tenth of the bytes a load writes.
            conn.execute(f"CREATE TABLE ent_{storage} (key TEXT NOT NULL, features TEXT NOT NULL, updated_at TEXT)")
            for start in range(0, len(keys), _CHUNK):
                conn.executemany(
                    f"INSERT INTO ent_{storage} (key, features) VALUES (?, ?)",  # noqa: S608 - our integer
                    zip(keys.slice(start, _CHUNK).to_pylist(), texts.slice(start, _CHUNK).to_pylist(), strict=True),
                )
            conn.execute(f"CREATE UNIQUE INDEX ent_{storage}_key ON ent_{storage} (key)")
            table = loaded_table(name, key_column, rows, None, len(keys), models, stamp, bounded)
            self._switch(conn, table, storage)
        return table

    def load_interactions(
        self,
        name: str,
        key_column: str,
        rows: pa.Table,
        interactions: Interactions,
        *,
        models: Iterable[str] = (),
        at: str,
        domains: Mapping[str, Domain] | None = None,
    ) -> EntityTable:
        check_table_name(name)
        stamp = utc_timestamp(at)
        keys, items, values = interaction_rows(rows, key_column, interactions)
        bounded = checked_domains(name, rows, key_column, interactions, domains)
        distinct = sorted(set(keys))
        table = loaded_table(name, key_column, rows, interactions, len(distinct), models, stamp, bounded)
        with self._write() as conn:
            storage = self._allocate(conn)
            conn.execute(f"CREATE TABLE int_{storage} (key TEXT NOT NULL, item TEXT NOT NULL, value REAL NOT NULL)")
            for start in range(0, len(keys), _CHUNK):
                end = start + _CHUNK
                conn.executemany(
                    f"INSERT INTO int_{storage} (key, item, value) VALUES (?, ?, ?)",  # noqa: S608 - our integer
                    zip(keys[start:end], items[start:end], values[start:end], strict=True),
                )
            # A film rated twice keeps its last rating, as a later event would.
            conn.execute(
                f"DELETE FROM int_{storage} WHERE rowid NOT IN "  # noqa: S608 - our integer
                f"(SELECT max(rowid) FROM int_{storage} GROUP BY key, item)"
            )
            conn.execute(f"CREATE UNIQUE INDEX int_{storage}_key ON int_{storage} (key, item)")
            conn.execute(f"CREATE TABLE ent_{storage} (key TEXT NOT NULL, features TEXT NOT NULL, updated_at TEXT)")
            conn.executemany(
                f"INSERT INTO ent_{storage} (key, features, updated_at) VALUES (?, ?, ?)",  # noqa: S608 - our integer
                [(key, orjson.dumps([key_value(key, table.key_type), None]).decode(), stamp) for key in distinct],
            )
            conn.execute(f"CREATE UNIQUE INDEX ent_{storage}_key ON ent_{storage} (key)")
            self._switch(conn, table, storage)
        return table

    def drop(self, name: str) -> None:
        with self._write() as conn:
            storage, _ = self._find(conn, name)
            conn.execute("DELETE FROM tables WHERE name = ?", (name,))
            _drop_storage(conn, storage)

    # -- reading -----------------------------------------------------------------------------------

    def tables(self) -> list[EntityTable]:
        with self._db.read() as conn:
            return [_table_of(row)[1] for row in conn.execute(f"{_TABLES} ORDER BY name")]

    def table(self, name: str) -> EntityTable:
        with self._db.quick_read() as conn:
            return self._find(conn, name)[1]

    def get(self, name: str, key: str) -> Entity | None:
        return self.get_many(name, [check_key(key)]).get(key)

    def get_many(self, name: str, keys: Iterable[str]) -> dict[str, Entity]:
        wanted = list(dict.fromkeys(check_key(key) for key in keys))
        if not wanted:
            return {}
        one = len(wanted) == 1
        where, argument = (
            ("key = ?", wanted[0]) if one else ("key IN (SELECT value FROM json_each(?))", orjson.dumps(wanted))
        )
        with self._db.quick_read() as conn:
            storage, table = self._find(conn, name)
            rows = conn.execute(
                f"SELECT key, features, updated_at FROM ent_{storage} WHERE {where}",  # noqa: S608 - our integer
                (argument,),
            ).fetchall()
            found = {
                key: Entity(
                    name, key, dict(zip(table.columns, orjson.loads(text), strict=True)), updated or table.loaded_at
                )
                for key, text, updated in rows
            }
            if table.interactions is not None:
                column = table.interactions.column
                for entity in found.values():
                    entity.features[column] = {}
                for key, item, value in conn.execute(
                    f"SELECT key, item, value FROM int_{storage} WHERE {where}",  # noqa: S608 - our integer
                    (argument,),
                ):
                    found[key].features[column][item] = value
        return found

    # -- events ------------------------------------------------------------------------------------

    def set_features(
        self, name: str, key: str, values: Mapping[str, Any], *, at: str, event_id: str | None = None
    ) -> bool:
        return self.write_events(name, [EntityWrite(key, values=values, event_id=event_id)], at=at)[0]

    def set_interaction(
        self, name: str, key: str, item: Any, value: float, *, at: str, event_id: str | None = None
    ) -> bool:
        return self.write_events(name, [EntityWrite(key, item=item, value=value, event_id=event_id)], at=at)[0]

    def write_events(self, name: str, writes: Sequence[EntityWrite], *, at: str) -> list[bool]:
        writes = [dataclasses.replace(write, key=check_key(write.key)) for write in writes]
        stamp = utc_timestamp(at)
        if not writes:
            return []
        # One transaction for them all: a read's events cost one write lock and one commit, not one each.
        with self._write(durable=False) as conn:
            storage, table = self._find(conn, name)
            for write in writes:
                check_write(table, write)
            applied: list[bool] = []
            for write in writes:
                first = self._first_time(conn, write.event_id, name, write.key, stamp)
                if first and write.values is None:
                    _set_interaction(conn, storage, table, write, stamp)
                elif first and write.values is not None:
                    _set_features(conn, storage, table, write.key, write.values, stamp)
                applied.append(first)
            return applied

    # -- plumbing ----------------------------------------------------------------------------------

    def _first_time(self, conn: sqlite3.Connection, event_id: str | None, name: str, key: str, stamp: str) -> bool:
        if event_id is None:
            return True
        cursor = conn.execute(
            "INSERT INTO events (event_id, tab, key, applied_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (event_id, name, key, stamp),
        )
        return cursor.rowcount == 1

    def _find(self, conn: sqlite3.Connection, name: str) -> tuple[int, EntityTable]:
        row = conn.execute(f"{_TABLES} WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise unknown_table(name, (n for (n,) in conn.execute("SELECT name FROM tables")))
        return _table_of(row)

    def _allocate(self, conn: sqlite3.Connection) -> int:
        conn.execute("UPDATE counter SET last = last + 1")
        return int(conn.execute("SELECT last FROM counter").fetchone()[0])

    def _switch(self, conn: sqlite3.Connection, table: EntityTable, storage: int) -> None:
        old = conn.execute("SELECT storage FROM tables WHERE name = ?", (table.name,)).fetchone()
        interactions = table.interactions
        conn.execute(
            "INSERT OR REPLACE INTO tables (name, storage, key_column, key_type, columns, models, interactions, rows, "
            "loaded_at, domains) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                table.name,
                storage,
                table.key_column,
                table.key_type,
                orjson.dumps(list(table.columns)).decode(),
                orjson.dumps(list(table.models)).decode(),
                None if interactions is None else orjson.dumps(dataclasses.asdict(interactions)).decode(),
                table.rows,
                table.loaded_at,
                orjson.dumps(table.to_dict()["domains"]).decode() if table.domains else None,
            ),
        )
        if old is not None:
            _drop_storage(conn, int(old[0]))
        # The rows those events changed are gone with the old storage: a redelivered one is new again.
        conn.execute("DELETE FROM events WHERE tab = ?", (table.name,))

    def _write(self, *, durable: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        # An event is not fsynced: losing the last events in a power cut is what a feature
        # store's replication lag looks like anyway, and each event should not wait for the disk.
        if not durable:  # and it is a few rows on a request's path: the thread's kept connection
            return self._db.quick_write("PRAGMA synchronous = NORMAL", "PRAGMA journal_size_limit = 67108864")
        return self._db.write(
            f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}",
            "PRAGMA cache_size = -65536",
            "PRAGMA journal_size_limit = 67108864",
        )


_TABLES = (
    "SELECT storage, name, key_column, key_type, columns, models, interactions, rows, loaded_at, domains FROM tables"
)


def _table_of(row: tuple[Any, ...]) -> tuple[int, EntityTable]:
    storage, name, key_column, key_type, columns, models, interactions, rows, loaded_at, domains = row
    spec = None if interactions is None else Interactions(**orjson.loads(interactions))
    bounded = domains_from_dict(orjson.loads(domains)) if domains else {}
    table = EntityTable(
        name,
        key_column,
        key_type,
        tuple(orjson.loads(columns)),
        tuple(orjson.loads(models)),
        spec,
        rows,
        loaded_at,
        bounded,
    )
    return int(storage), table


def _drop_storage(conn: sqlite3.Connection, storage: int) -> None:
    conn.execute(f"DROP TABLE IF EXISTS ent_{int(storage)}")
    conn.execute(f"DROP TABLE IF EXISTS int_{int(storage)}")


def _set_features(
    conn: sqlite3.Connection, storage: int, table: EntityTable, key: str, values: Mapping[str, Any], stamp: str
) -> None:
    at_column = {column: i for i, column in enumerate(table.columns)}
    paths = [(f"$[{at_column[column]}]", orjson.dumps(value).decode()) for column, value in values.items()]
    setters = ", ".join("?, json(?)" for _ in paths)
    flat = [part for pair in paths for part in pair]
    updated = conn.execute(
        f"UPDATE ent_{storage} SET features = json_set(features, {setters}), updated_at = ? WHERE key = ?",  # noqa: S608
        (*flat, stamp, key),
    )
    if updated.rowcount == 0:  # a key the table has never seen: a new entity
        row: list[Any] = [None] * len(table.columns)
        row[at_column[table.key_column]] = key_value(key, table.key_type)
        for column, value in values.items():
            row[at_column[column]] = value
        conn.execute(
            f"INSERT INTO ent_{storage} (key, features, updated_at) VALUES (?, ?, ?)",  # noqa: S608 - our integer
            (key, orjson.dumps(row).decode(), stamp),
        )


def _set_interaction(
    conn: sqlite3.Connection, storage: int, table: EntityTable, write: EntityWrite, stamp: str
) -> None:
    conn.execute(
        f"INSERT INTO int_{storage} (key, item, value) VALUES (?, ?, ?) "  # noqa: S608 - our integer
        "ON CONFLICT (key, item) DO UPDATE SET value = excluded.value",
        (write.key, str(write.item), float(write.value)),
    )
    conn.execute(
        f"INSERT INTO ent_{storage} (key, features, updated_at) VALUES (?, ?, ?) "  # noqa: S608 - our integer
        "ON CONFLICT (key) DO UPDATE SET updated_at = excluded.updated_at",
        (write.key, orjson.dumps([key_value(write.key, table.key_type), None]).decode(), stamp),
    )
