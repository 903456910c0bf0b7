"""What an event changes: the key it is about, the entity it leaves, whether the models it feeds accept that,
and its write to the entity store (`HybridService.apply` and `apply_many` put these together)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from foretell.core.schema import Signature
from foretell.errors import InvalidInput
from foretell.hybrid.events import Event, FeaturesEvent, interaction_parts
from foretell.store.entities import Entity, EntityTable, EntityWrite, check_write, key_value

if TYPE_CHECKING:
    from foretell.serving.service import ModelSlot

__all__ = ["change_of", "changed", "entity_write", "model_row", "refusal_of", "refusals"]


def model_row(signature: Signature, table: EntityTable, entity: Entity) -> dict[str, Any]:
    """What the model is given for an entity: its features named as the model's inputs."""
    row: dict[str, Any] = {}
    for feature in signature.inputs:
        if feature.name in entity.features:
            value = entity.features[feature.name]
            # An interaction map reaches a text input as JSON, as the recommender reads it.
            row[feature.name] = orjson.dumps(value).decode() if isinstance(value, dict) else value
        elif feature.name == table.key_column:
            row[feature.name] = key_value(entity.key, table.key_type)
    return row


def change_of(event: Event, table: EntityTable) -> tuple[str, dict[str, Any]]:
    """The key an event is about and what it changes there."""
    if isinstance(event, FeaturesEvent):
        return event.key, {"features": event.values}
    key, item, value = interaction_parts(event, table)
    return key, {"item": item, "value": value}


def refusal_of(linked: list[ModelSlot], table: EntityTable, key: str, candidate: Entity) -> InvalidInput | None:
    """Why a model fed by `table` would refuse `candidate`'s features (checked before anything changes); None: none."""
    for slot in linked:
        columns = slot.model.coerce([model_row(slot.model.signature, table, candidate)])
        if columns.errors:
            return InvalidInput(
                f"the event would give {table.name} key {key!r} features model {slot.name!r} refuses: "
                + "; ".join(error.describe() for error in columns.errors)
            )
    return None


def changed(entity: Entity, table: EntityTable, change: Mapping[str, Any]) -> Entity:
    """`entity` as it would be once `change` is written (nothing is written here)."""
    features = dict(entity.features)
    features.setdefault(table.key_column, key_value(entity.key, table.key_type))
    if "features" in change:
        features.update(change["features"])
    else:
        assert table.interactions is not None
        column = table.interactions.column
        features[column] = {**features.get(column, {}), change["item"]: change["value"]}
    return Entity(entity.table, entity.key, features, entity.updated_at)


def refusals(
    current: Entity, table: EntityTable, key: str, items: list[tuple[Event, dict[str, Any]]], linked: list[ModelSlot]
) -> list[InvalidInput | None]:
    """Why each of one key's events is refused (None: it is not), each checked on what the ones before it left."""
    found: list[InvalidInput | None] = []
    for event, change in items:
        try:  # what the store would refuse (an unknown column, the key changed) fails this event only
            check_write(table, entity_write(key, event, change))
        except InvalidInput as refused:
            found.append(refused)
            continue
        candidate = changed(current, table, change)
        refusal = refusal_of(linked, table, key, candidate)
        found.append(refusal)
        if refusal is None:
            current = candidate
    return found


def entity_write(key: str, event: Event, change: Mapping[str, Any]) -> EntityWrite:
    """The entity store's write for an event about `key` that changes `change` (`change_of`)."""
    if "features" in change:
        return EntityWrite(key, values=change["features"], event_id=event.event_id)
    return EntityWrite(key, item=change["item"], value=change["value"], event_id=event.event_id)
