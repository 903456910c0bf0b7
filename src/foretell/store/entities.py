"""Entity tables: what a live prediction for a key needs to know about that entity.

A batch job scores a population from files; a live prediction for one key needs that
key's features from somewhere that answers in microseconds and that events can change.
An *entity table* is that place: rows keyed by an id column, loaded from a Parquet/CSV
file, updated one key at a time.

Two kinds, because two kinds of state feed models:

- **Features** (`load_features`): one row per key, a value per column (a customer's
  tenure, plan, support calls). A `features` event sets some columns of one key.
- **Interactions** (`load_interactions`): many rows per key, each an item and a value (a
  user's rating of a film). They are kept as one map per key, `item → value`, under one
  column name (`ratings`), which is what a model reads. An interaction event sets one
  item of one key's map; two events for the same key, even at the same moment, are both
  kept, because each writes its own item.

Each table names the models whose live predictions read it, so the server knows which
predictions an event makes stale. Events may carry an `event_id`: one seen before
changes nothing (at-least-once delivery becomes exactly-once effect).

Keys are strings, as in the prediction store; a row keeps its key column's own typed
value (the integer 17, not "17") among its features, which is what a model is given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from foretell.core.domain import Domain
from foretell.errors import InvalidInput, NotFound
from foretell.store.entities_json import json_arrays
from foretell.store.entity_domains import check_rows, check_value, domains_from_dict, table_domains

__all__ = [
    "Entity",
    "EntityStore",
    "EntityTable",
    "EntityWrite",
    "Interactions",
    "check_table_name",
    "check_write",
    "checked_domains",
    "domains_from_dict",
    "interaction_rows",
    "json_arrays",
    "key_column_text",
    "key_value",
    "loaded_table",
    "plain_value",
    "unknown_table",
]


@dataclass(frozen=True, slots=True)
class Interactions:
    """How an interactions table is read: `item` and `value` columns, kept per key as the map `column`."""

    column: str
    item: str
    value: str


@dataclass(frozen=True, slots=True)
class EntityTable:
    """One entity table's description."""

    name: str
    key_column: str
    key_type: str
    """"int" when the key column holds whole numbers (a model is given 17, not "17"), else "str"."""
    columns: tuple[str, ...]
    """Every feature a row holds, in the file's order (for interactions: the key and the map)."""
    models: tuple[str, ...]
    """Models whose live predictions read this table."""
    interactions: Interactions | None
    rows: int
    loaded_at: str
    domains: Mapping[str, Domain] = field(default_factory=dict)
    """Domains of feature columns, or of an interactions table's value column (`rating` → 1:5)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key_column": self.key_column,
            "key_type": self.key_type,
            "columns": list(self.columns),
            "models": list(self.models),
            "interactions": None
            if self.interactions is None
            else {"column": self.interactions.column, "item": self.interactions.item, "value": self.interactions.value},
            "rows": self.rows,
            "loaded_at": self.loaded_at,
            "domains": {column: domain.to_dict() for column, domain in self.domains.items()},
        }


@dataclass(frozen=True, slots=True)
class Entity:
    """One key's features now. For an interactions table, `features[column]` is the map item → value."""

    table: str
    key: str
    features: dict[str, Any] = field(default_factory=dict)
    updated_at: str | None = None


@dataclass(frozen=True, slots=True)
class EntityWrite:
    """One event's change to one key: `values` (some feature columns) or `item` and `value` (one interaction)."""

    key: str
    values: Mapping[str, Any] | None = None
    item: Any = None
    value: float = 0.0
    event_id: str | None = None


class EntityStore(Protocol):
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
        """Replace table `name` with one row per key of `rows` (a key given twice keeps the last row).

        `domains` bound some columns' values; a row outside them refuses the load (`loaded_table`).
        """
        ...

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
        """Replace table `name` with each key's map of `interactions.item` → `interactions.value`.

        `domains` may bound the value column (`{"rating": Domain(1, 5)}`).
        """
        ...

    def tables(self) -> list[EntityTable]: ...

    def table(self, name: str) -> EntityTable:
        """The table's description; `NotFound` naming the tables there are."""
        ...

    def get(self, name: str, key: str) -> Entity | None: ...

    def get_many(self, name: str, keys: Iterable[str]) -> dict[str, Entity]: ...

    def set_features(
        self, name: str, key: str, values: Mapping[str, Any], *, at: str, event_id: str | None = None
    ) -> bool:
        """Set some feature columns of one key (creating the row); False if `event_id` was applied before."""
        ...

    def set_interaction(
        self, name: str, key: str, item: Any, value: float, *, at: str, event_id: str | None = None
    ) -> bool:
        """Set one item of one key's interaction map; False if `event_id` was applied before."""
        ...

    def write_events(self, name: str, writes: Sequence[EntityWrite], *, at: str) -> list[bool]:
        """Apply `writes` in order in one write; for each, False if its `event_id` was applied before.

        Every write is checked first, as `set_features` or `set_interaction` would check it (the
        same messages): one the table cannot take refuses them all, before any is applied. Then
        SQLite applies them in one transaction (all or none); Redis in one MULTI/EXEC, which no
        other client's command interleaves but which Redis does not roll back, so a failure
        there may leave the first ones applied: callers that retry (the stream consumer does,
        until acknowledged) rely on each write's `event_id` to apply it once.
        """
        ...

    def drop(self, name: str) -> None: ...

    def close(self) -> None: ...


# -- shared by the backends: checks and encodings, so every backend stores the same bytes -------------


def check_table_name(name: object) -> str:
    if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
        raise InvalidInput(f"an entity table name is letters, digits, '-' and '_', got {name!r}")
    return name


def check_write(table: EntityTable, write: EntityWrite) -> None:
    """Refuse a write `table` cannot take, with the words every backend uses."""
    if write.values is None:
        if table.interactions is None:
            raise InvalidInput(f"entity table {table.name!r} holds features, not interactions; send a features event")
        key_value(write.key, table.key_type)  # refuses "x" as a key of a table of whole numbers
        check_value(table.domains, table.interactions.value, write.value, table.name)
        return
    if table.interactions is not None:
        raise InvalidInput(f"entity table {table.name!r} holds interactions; send an interaction event")
    if unknown := sorted(set(write.values) - set(table.columns)):
        raise InvalidInput(
            f"entity table {table.name!r} has no column(s) {unknown}; its columns are {list(table.columns)}"
        )
    if table.key_column in write.values:
        raise InvalidInput(f"{table.key_column!r} is the key of entity table {table.name!r}; it cannot be changed")
    for column, value in write.values.items():
        check_value(table.domains, column, value, table.name)


def unknown_table(name: str, known: Iterable[str]) -> NotFound:
    there = ", ".join(sorted(known)) or "none yet (foretell entities load)"
    return NotFound(f"no entity table {name!r}; entity tables: {there}")


def plain_value(value: Any) -> Any:
    """A feature value as JSON keeps it: NaN (a missing float) is None."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _column(rows: pa.Table, name: str, role: str) -> pa.ChunkedArray:
    if name not in rows.column_names:
        raise InvalidInput(f"the {role} column {name!r} is not in the file; its columns are {rows.column_names}")
    return rows.column(name)


def key_column_text(rows: pa.Table, key_column: str) -> pa.ChunkedArray:
    """The key column as the store's string keys (17 → "17"), refusing missing keys."""
    column = _column(rows, key_column, "key")
    if column.null_count:
        first = pc.index(pc.is_null(column), True).as_py()
        raise InvalidInput(f"row {first}: the key column {key_column!r} is missing (null); every row needs a key")
    if pa.types.is_floating(column.type):
        if not pc.all(pc.equal(column, pc.floor(column))).as_py():
            raise InvalidInput(f"the key column {key_column!r} holds fractional numbers; keys are ids")
        column = pc.cast(column, pa.int64())
    return pc.cast(column, pa.string())


def interaction_rows(
    rows: pa.Table, key_column: str, interactions: Interactions
) -> tuple[list[str], list[str], list[float]]:
    """(keys, items, values) of every interaction row, items as text (JSON object keys are text)."""
    keys = key_column_text(rows, key_column).to_pylist()
    items = _column(rows, interactions.item, "item")
    values = _column(rows, interactions.value, "value")
    if items.null_count:
        raise InvalidInput(f"the item column {interactions.item!r} has missing values; every interaction names one")
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        raise InvalidInput(f"the value column {interactions.value!r} must hold numbers, it holds {values.type}")
    numbers = pc.cast(values, pa.float64())
    if numbers.null_count or not pc.all(pc.is_finite(numbers)).as_py():
        raise InvalidInput(f"the value column {interactions.value!r} must hold finite numbers, with none missing")
    item_text = key_column_text(rows, interactions.item).to_pylist()
    return keys, item_text, numbers.to_pylist()


def key_value(text: str, key_type: str) -> Any:
    """A key back in its column's type: "17" → 17 for an integer key column."""
    if key_type == "int":
        try:
            return int(text)
        except ValueError:
            raise InvalidInput(f"key {text!r} is not a whole number, and this table's keys are") from None
    return text


def loaded_table(
    name: str,
    key_column: str,
    rows: pa.Table,
    interactions: Interactions | None,
    count: int,
    models: Iterable[str],
    stamp: str,
    domains: Mapping[str, Domain] | None = None,
) -> EntityTable:
    """The description of a table just loaded from `rows`, the same whichever backend holds it.

    `domains` are what `checked_domains` gave before anything was written.
    """
    kind = rows.schema.field(key_column).type
    key_type = "int" if pa.types.is_integer(kind) or pa.types.is_floating(kind) else "str"
    columns = tuple(rows.column_names) if interactions is None else (key_column, interactions.column)
    named = tuple(dict.fromkeys(str(model) for model in models))
    return EntityTable(name, key_column, key_type, columns, named, interactions, count, stamp, dict(domains or {}))


def checked_domains(
    name: str,
    rows: pa.Table,
    key_column: str,
    interactions: Interactions | None,
    domains: Mapping[str, Domain] | None,
) -> dict[str, Domain]:
    """`domains` for a load of `rows`, refused (before anything is written) when the rows break them."""
    if not domains:
        return {}
    bounded = table_domains(
        name, rows.column_names if interactions is None else (interactions.value,), key_column, domains
    )
    check_rows(rows, bounded, name)
    return bounded
