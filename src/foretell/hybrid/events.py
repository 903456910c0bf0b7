"""`POST /v1/events` bodies: parsed and checked before anything changes.

Two kinds (docs/hybrid.md):

- `{"type": "features", "key": "C-001", "values": {"support_calls_30d": 4}}` sets columns
  of one row of a features table (`"entity": "customers"` names the table when the column
  names alone do not).
- An interaction, typed by the value it carries: `{"type": "rating", "user_id": 17,
  "movie_id": 3301, "rating": 5}` sets one item of one key's map in the interactions table
  whose key, item and value columns those are.

Either may carry `"event_id"`: an event delivered twice is applied once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from foretell.errors import InvalidInput
from foretell.store.entities import EntityTable

__all__ = ["Event", "FeaturesEvent", "InteractionEvent", "parse_event", "resolve"]

_MAX_ID = 200


@dataclass(frozen=True, slots=True)
class FeaturesEvent:
    key: str
    values: dict[str, Any]
    entity: str | None
    event_id: str | None


@dataclass(frozen=True, slots=True)
class InteractionEvent:
    kind: str
    fields: dict[str, Any]
    entity: str | None
    event_id: str | None


Event = FeaturesEvent | InteractionEvent


def parse_event(body: bytes) -> Event:
    """The event in a request body, or `InvalidInput` saying which field is wrong and why."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the event is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInput(f"an event is a JSON object with a 'type', got {type(document).__name__}")
    kind = document.pop("type", None)
    if not isinstance(kind, str) or not kind:
        raise InvalidInput("an event needs a 'type': 'features', or the value an interaction carries (e.g. 'rating')")
    event_id = _optional_text(document.pop("event_id", None), "event_id")
    entity = _optional_text(document.pop("entity", None), "entity")
    if kind == "features":
        key = key_of(document.pop("key", None), "key")
        values = document.pop("values", None)
        if not isinstance(values, dict) or not values:
            raise InvalidInput("a features event needs 'values': an object of column → new value, not empty")
        for column, value in values.items():
            _check_scalar(value, f"values.{column}")
        if document:
            raise InvalidInput(f"a features event has no field(s) {sorted(document)}")
        return FeaturesEvent(key, values, entity, event_id)
    for name, value in document.items():
        _check_scalar(value, name)
    return InteractionEvent(kind, document, entity, event_id)


def resolve(event: Event, tables: list[EntityTable]) -> EntityTable:
    """The entity table an event is about, or `InvalidInput` explaining why none (or several) fit."""
    if event.entity is not None:
        table = next((t for t in tables if t.name == event.entity), None)
        if table is None:
            raise InvalidInput(f"no entity table {event.entity!r}; there are {sorted(t.name for t in tables)}")
        candidates = [table]
    elif isinstance(event, FeaturesEvent):
        candidates = [t for t in tables if t.interactions is None and set(event.values) <= set(t.columns)]
    else:
        candidates = [t for t in tables if t.interactions is not None and _fits(event, t)]
    if len(candidates) == 1:
        table = candidates[0]
        if isinstance(event, FeaturesEvent) and table.interactions is not None:
            raise InvalidInput(f"entity table {table.name!r} holds interactions; send an interaction event")
        if isinstance(event, InteractionEvent) and not _fits(event, table):
            raise InvalidInput(_interaction_hint(event, [table]))
        return table
    if candidates:
        raise InvalidInput(
            f"entity tables {sorted(t.name for t in candidates)} all fit this event; name one with 'entity'"
        )
    if isinstance(event, FeaturesEvent):
        raise InvalidInput(
            f"no features table has the column(s) {sorted(event.values)}; tables: "
            + "; ".join(f"{t.name} ({', '.join(t.columns)})" for t in tables if t.interactions is None)
        )
    raise InvalidInput(_interaction_hint(event, [t for t in tables if t.interactions is not None]))


def interaction_parts(event: InteractionEvent, table: EntityTable) -> tuple[str, str, float]:
    """(key, item, value) of an interaction event for `table` (which `resolve` found)."""
    assert table.interactions is not None
    spec = table.interactions
    key = key_of(event.fields[table.key_column], table.key_column)
    item = key_of(event.fields[spec.item], spec.item)
    value = event.fields[spec.value]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"'{spec.value}' must be a finite number, got {value!r}")
    return key, item, float(value)


def key_of(value: Any, field: str) -> str:
    """An id from an event (a string or a whole number) as the store's key text."""
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise InvalidInput(f"'{field}' must be an id (a non-empty string or a whole number), got {value!r}")
    return str(value)


def _fits(event: InteractionEvent, table: EntityTable) -> bool:
    spec = table.interactions
    return (
        spec is not None
        and event.kind in (spec.value, "interaction")
        and {table.key_column, spec.item, spec.value} == set(event.fields)
    )


def _interaction_hint(event: InteractionEvent, tables: list[EntityTable]) -> str:
    if not tables:
        return f"no interactions table takes '{event.kind}' events (foretell entities load ... --interactions)"
    shapes = "; ".join(
        f'{{"type": "{t.interactions.value}", "{t.key_column}": ..., "{t.interactions.item}": ..., '
        f'"{t.interactions.value}": ...}} for {t.name}'
        for t in tables
        if t.interactions is not None
    )
    return f"this '{event.kind}' event with fields {sorted(event.fields)} fits no interactions table; expected {shapes}"


def _optional_text(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > _MAX_ID:
        raise InvalidInput(f"'{field}' must be a non-empty string of at most {_MAX_ID} characters, got {value!r}")
    return value


def _check_scalar(value: Any, field: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):  # orjson never gives these; Python callers might
        raise InvalidInput(f"'{field}' must be a finite number or null, got {value!r}")
    if value is not None and not isinstance(value, str | int | float | bool):
        raise InvalidInput(f"'{field}' must be a single value (text, number, true/false or null), got {value!r}")
