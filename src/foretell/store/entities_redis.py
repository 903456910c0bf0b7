"""The entity store on a Redis server, for entity tables that many serving hosts read and events update.

Key layout, every key of entity table NAME under `PREFIX:entities:{NAME}:` (the braces, part of
the key, make a table's keys one hash slot, so each script below touches a single slot); N is a
storage, the number of one load:

    next           INCR counter: the latest storage begun; kept by `drop`, so numbers are never reused
    table          hash, the pointer readers follow: `storage` (N), `kind` (features | interactions),
                   `description` (the EntityTable as JSON); absent when there is no such table
    storages       set of the storages being written or in use
    retired        set of the storages replaced or dropped whose keys are still being deleted
    rows:N         features: hash key → the row, a JSON array in the table's column order (SQLite's bytes)
    keys:N         interactions: set of the keys
    items:N:KEY    interactions: hash item → value (the float's shortest text), one hash per key
    updated:N      hash key → updated_at, for the keys events changed (the others date from the load)
    events         hash event_id → when it was applied, for the events since the table was loaded

and `PREFIX:entity-tables`, the set of the table names, for `tables()` (a slot of its own, so
only plain commands touch it, never a script).

A load writes a new storage (HSETs of a few thousand rows, pipelined), then one script switches
the pointer, forgets the table's event ids and retires the older storages; their keys are then
deleted a few thousand at a time (UNLINK, which frees big hashes on a background thread). Reads
are one Lua script that resolves the pointer and reads the rows of the storage it names: a
reader that read the pointer, then the rows, in two round trips could hold the pointer of a
storage that a reload deleted in between, and see no rows at all. A script runs alone on the
server, so a read sees the pointer and the rows of one moment: the old table or the new.

Two loads of one table at once: the later begun wins. A load still writing when a later one
switches finds its storage retired, and fails with a `StoreError` rather than replace newer rows.

An event is one script too: it checks that the pointer still names the storage the caller
described (a reload in between makes it retry), records the event id (HSETNX: one seen before
changes nothing) and applies the change, all at once; `write_events` sends a read's events as one
MULTI/EXEC of those scripts (one round trip, every one run against one storage). A features event
replaces the text of the columns it names inside the row's JSON array and copies the other
columns' text as it is. Not Lua's `cjson`: decoding and encoding the row again would turn 3.0
into 3 (an int for a model that was trained on floats) and keep 14 significant digits of every
other value.

A features load frames its HSETs in Arrow (`redis_connection.hset_commands`): the rows' JSON
(`entities_json`), their keys and the protocol's length prefixes are joined column-wise into
one buffer, sent on one pooled connection in windows of `PIPELINE_BYTES` with the replies read
after each; redis-py would encode each of the two million arguments in Python. Connections,
hiredis and how scripts are called (EVALSHA, reloaded on NOSCRIPT): `store/redis.py`.

Needs Redis 5 or later (UNLINK, scripts whose writes replicate as effects), as the prediction store does.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from foretell.core.domain import Domain
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
from foretell.store.entities_json import SLICE_ROWS
from foretell.store.entities_redis_scripts import (
    BEGIN,
    DROP,
    READ,
    SET_FEATURES,
    SET_INTERACTION,
    SWEEP,
    SWITCH,
)
from foretell.store.redis_connection import RedisConnection, hset_commands

if TYPE_CHECKING:
    import redis

__all__ = ["RedisEntityStore"]

HSET_ROWS = 2_000
"""Rows (features) or interactions per HSET of a load: few enough that the server answers others in between."""

PIPELINE_ARGS = 200_000
"""Arguments sent before waiting for the replies: some 30 MB of customer rows, so a load's buffers stay small."""

PIPELINE_BYTES = 32 * 2**20
"""Bytes of a features load sent before waiting for the replies, as `PIPELINE_ARGS`."""

SWEEP_KEYS = 2_000
"""Keys deleted by one clean-up script: a few milliseconds of the server's time each."""


class RedisEntityStore:
    """Entity tables on a Redis server: `RedisEntityStore("redis://host:6379/0")`; safe to share between threads."""

    def __init__(self, url: str, *, prefix: str = "foretell") -> None:
        self.url = url
        self.prefix = prefix
        connection = self._connection = RedisConnection(url, "entity store")
        self._where, self._talking = connection.where, connection.talking
        self._client: redis.Redis = connection.client
        register = self._client.register_script
        self._begin, self._switch, self._drop = register(BEGIN), register(SWITCH), register(DROP)
        self._sweep, self._read = register(SWEEP), register(READ)
        self._set_features, self._set_interaction = register(SET_FEATURES), register(SET_INTERACTION)
        connection.ping()

    def __repr__(self) -> str:
        return f"RedisEntityStore({self._where!r}, prefix={self.prefix!r})"

    def close(self) -> None:
        self._client.close()

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
        base, stamp = self._base(check_table_name(name)), utc_timestamp(at)
        keys = key_column_text(rows, key_column)  # refuses a missing key before anything is written
        bounded = checked_domains(name, rows, key_column, None, domains)
        storage = self._begin_storage(base)
        target = f"{base}rows:{storage}"

        def commands() -> Iterator[list[pa.Buffer | bytes]]:
            # A slice at a time, lazily: the server stores one while the next is encoded.
            for start in range(0, rows.num_rows, SLICE_ROWS):
                part = rows.slice(start, SLICE_ROWS)
                yield from hset_commands(target, keys.slice(start, SLICE_ROWS), json_arrays(part), HSET_ROWS)

        with self._talking():
            # In file order: of a key given twice, the later HSET (the last row) stays.
            self._send_packed(commands())
            count = int(self._client.hlen(target))
        return self._publish(base, storage, loaded_table(name, key_column, rows, None, count, models, stamp, bounded))

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
        base, stamp = self._base(check_table_name(name)), utc_timestamp(at)
        keys, items, values = interaction_rows(rows, key_column, interactions)
        bounded = checked_domains(name, rows, key_column, interactions, domains)
        maps: dict[str, list[str]] = {}
        for key, item, value in zip(keys, items, values, strict=True):
            # Fields repeat in file order: HSET keeps the last value of a film rated twice.
            maps.setdefault(key, []).extend((item, repr(value)))
        storage = self._begin_storage(base)
        distinct = list(maps)
        with self._talking():
            self._send(("HSET", f"{base}items:{storage}:{key}", *pairs) for key, pairs in maps.items())
            target = f"{base}keys:{storage}"
            self._send(("SADD", target, *distinct[i : i + HSET_ROWS]) for i in range(0, len(distinct), HSET_ROWS))
        return self._publish(
            base, storage, loaded_table(name, key_column, rows, interactions, len(distinct), models, stamp, bounded)
        )

    def drop(self, name: str) -> None:
        base = self._base(name)
        with self._talking():
            if not self._drop(keys=[f"{base}table"], args=[base]):
                raise unknown_table(name, self._names())
            # A load that switched after the drop is listed again: it is there.
            self._client.srem(self._names_key, name)
            if self._client.exists(f"{base}table"):
                self._client.sadd(self._names_key, name)
            self._clean(base)

    # -- reading -----------------------------------------------------------------------------------

    def tables(self) -> list[EntityTable]:
        with self._talking():
            names = sorted(_text(name) for name in self._client.smembers(self._names_key))
            with self._client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hget(f"{self._base(name)}table", "description")
                described = pipe.execute()
        # A name whose table is gone is one a drop is still taking out of the set.
        return [_described(text) for text in described if text is not None]

    def table(self, name: str) -> EntityTable:
        return self._find(name)[1]

    def get(self, name: str, key: str) -> Entity | None:
        key = check_key(key)
        return self.get_many(name, [key]).get(key)

    def get_many(self, name: str, keys: Iterable[str]) -> dict[str, Entity]:
        base, wanted = self._base(name), list(dict.fromkeys(check_key(key) for key in keys))
        if not wanted:
            return {}
        with self._talking():
            reply = self._read(keys=[f"{base}table"], args=[base, *wanted])
        if reply is None:
            raise unknown_table(name, self._names())
        description, rows, updated = reply
        return dict(_entities(_described(description), wanted, rows, updated))

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
        stamp, base = utc_timestamp(at), self._base(name)
        if not writes:
            return []
        while True:
            storage, table = self._find(name)
            for write in writes:
                check_write(table, write)
            # One MULTI/EXEC of the event scripts: one round trip, and no reload can switch the
            # table between two of them, so either every one ran or every one answered "moved".
            with self._talking(), self._client.pipeline(transaction=True) as pipe:
                for write in writes:
                    event = _event_args(base, storage, write.key, stamp, write.event_id)
                    if write.values is None:
                        args = [*event, str(write.item), repr(float(write.value))]
                        self._set_interaction(keys=[f"{base}table"], args=args, client=pipe)
                    else:
                        args = [*event, *_features_args(table, write.key, write.values)]
                        self._set_features(keys=[f"{base}table"], args=args, client=pipe)
                done = pipe.execute()
            if b"moved" not in done:  # moved: reloaded since `_find`, so check the events against the new table
                return [reply == b"ok" for reply in done]

    # -- plumbing ----------------------------------------------------------------------------------

    @property
    def _names_key(self) -> str:
        return f"{self.prefix}:entity-tables"

    def _base(self, name: str) -> str:
        return f"{self.prefix}:entities:{{{name}}}:"

    def _names(self) -> list[str]:
        return [table.name for table in self.tables()]

    def _find(self, name: str) -> tuple[str, EntityTable]:
        with self._talking():
            storage, description = self._client.hmget(f"{self._base(name)}table", ["storage", "description"])
        if storage is None or description is None:
            raise unknown_table(name, self._names())
        return _text(storage), _described(description)

    def _begin_storage(self, base: str) -> int:
        with self._talking():
            return int(self._begin(args=[base]))

    def _send(self, commands: Iterable[tuple[Any, ...]]) -> None:
        """Pipelines of commands, waiting for the replies every `PIPELINE_ARGS` arguments."""
        with self._client.pipeline(transaction=False) as pipe:
            pending = 0
            for command in commands:
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]  # redis-py leaves Pipeline untyped
                pending += len(command)
                if pending >= PIPELINE_ARGS:
                    pipe.execute()
                    pending = 0
            pipe.execute()

    def _send_packed(self, commands: Iterator[list[pa.Buffer | bytes]]) -> None:
        """Commands framed in Arrow (`hset_commands`), replies read every `PIPELINE_BYTES`."""
        self._connection.send_packed(commands, PIPELINE_BYTES)

    def _publish(self, base: str, storage: int, table: EntityTable) -> EntityTable:
        kind = "features" if table.interactions is None else "interactions"
        description = orjson.dumps(table.to_dict())
        with self._talking():
            now = self._switch(keys=[f"{base}table"], args=[base, storage, kind, description])
            if now == b"ok":
                self._client.sadd(self._names_key, table.name)
            self._clean(base)
        if now != b"ok":
            raise StoreError(
                f"entity table {table.name!r} was loaded again, by a load begun after this one (load {storage}), "
                "while this one was writing; the later load stands and this one was not applied"
            )
        return table

    def _clean(self, base: str) -> None:
        while self._sweep(args=[base, SWEEP_KEYS]):
            pass


@functools.lru_cache(maxsize=256)
def _described(description: bytes) -> EntityTable:
    """The table a description names; cached, since every read returns the same few descriptions."""
    found = orjson.loads(description)
    spec = found["interactions"]
    return EntityTable(
        found["name"],
        found["key_column"],
        found["key_type"],
        tuple(found["columns"]),
        tuple(found["models"]),
        None if spec is None else Interactions(**spec),
        found["rows"],
        found["loaded_at"],
        domains_from_dict(found.get("domains")),  # descriptions written before domains have none
    )


def _entities(
    table: EntityTable, keys: list[str], rows: list[Any], updated: list[bytes | None]
) -> Iterator[tuple[str, Entity]]:
    spec = table.interactions
    for key, row, stamp in zip(keys, rows, updated, strict=True):
        if row is None:
            continue
        if spec is None:
            features = dict(zip(table.columns, orjson.loads(row), strict=True))
        else:
            items = {row[i].decode(): float(row[i + 1]) for i in range(0, len(row), 2)}
            features = {table.key_column: key_value(key, table.key_type), spec.column: items}
        yield key, Entity(table.name, key, features, table.loaded_at if stamp is None else stamp.decode())


def _features_args(table: EntityTable, key: str, values: Mapping[str, Any]) -> list[Any]:
    """`SET_FEATURES`'s arguments after the event's: the whole row for a new key, then position, text pairs."""
    texts = {table.columns.index(column): orjson.dumps(value).decode() for column, value in values.items()}
    row = ["null"] * len(table.columns)
    row[table.columns.index(table.key_column)] = orjson.dumps(key_value(key, table.key_type)).decode()
    for position, text in texts.items():
        row[position] = text
    return [f"[{','.join(row)}]", *(part for position, text in texts.items() for part in (position + 1, text))]


def _event_args(base: str, storage: str, key: str, stamp: str, event_id: str | None) -> list[str]:
    return [base, storage, key, stamp, "0" if event_id is None else "1", event_id or ""]


def _text(value: bytes | str) -> str:
    """A reply as text (the client is told to leave replies as bytes, its typing cannot know it)."""
    return value.decode() if isinstance(value, bytes) else value
