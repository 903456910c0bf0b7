"""A read's events in one store call and one refresh per model, and key by key only when that fails.

`HybridService.apply_many` writes the events of all the keys of one entity table at once
(`EntityStore.write_events`, all or none) and refreshes them in one inference and one
write-back per model: a store call costs a transaction or a round trip whatever it carries,
so per key they were most of a read's time. When the one call fails, each key is tried again
on its own, so that one key's failure (a model refusing its stored features, say) is still
only its own, as when each key was applied alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from foretell.errors import InvalidInput, PredictionError
from foretell.hybrid.changes import entity_write
from foretell.hybrid.events import Event
from foretell.store.entities import EntityStore, EntityWrite

if TYPE_CHECKING:
    from foretell.serving.service import ModelSlot

__all__ = ["Outcomes", "Refresh", "burst_outcomes", "refresh_keys", "write_entities", "writes_of"]

Refresh = Callable[["ModelSlot", list[str]], Awaitable[dict[str, dict[str, Any]]]]
"""Predict some keys with one model and write them back; each key's answer as shown to the client."""

Outcomes = list[dict[str, Any] | InvalidInput] | Exception
"""One key's events' outcomes in order, or the error that stopped them all."""


def writes_of(
    key: str, items: list[tuple[Event, dict[str, Any]]], refused: list[InvalidInput | None]
) -> list[EntityWrite]:
    """The writes of one key's events that no model refused, in order."""
    return [entity_write(key, *item) for item, refusal in zip(items, refused, strict=True) if refusal is None]


async def write_entities(
    entities: EntityStore, table: str, writes: Mapping[str, list[EntityWrite]], at: str
) -> dict[str, list[bool] | Exception]:
    """Each key's writes and whether each was new: one store call for them all, key by key if that one fails."""
    if not writes:
        return {}
    try:
        flat = [write for found in writes.values() for write in found]
        news = iter(await asyncio.to_thread(entities.write_events, table, flat, at=at))
        return {key: [next(news) for _ in found] for key, found in writes.items()}
    except _ONE_KEYS as exc:
        if len(writes) == 1:
            return dict.fromkeys(writes, exc)
    except Exception as exc:  # the store is down or busy: every key fails alike, trying each would only wait longer
        return dict.fromkeys(writes, exc)
    # A key's writes were refused and nothing was written (all or none): each key again on its own.
    results: dict[str, list[bool] | Exception] = {}
    for key, found in writes.items():
        try:
            results[key] = await asyncio.to_thread(entities.write_events, table, found, at=at)
        except Exception as exc:
            results[key] = exc
    return results


async def refresh_keys(
    refresh: Refresh, linked: list[ModelSlot], keys: list[str]
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Exception]]:
    """Each key's refreshed predictions (one per model) and the keys that failed: one `refresh` per model."""
    refreshed: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    failed: dict[str, Exception] = {}
    for slot in linked:
        todo = [key for key in keys if key not in failed]
        if not todo:
            break
        try:
            answers = await refresh(slot, todo)
        except _ONE_KEYS as exc:
            if len(todo) == 1:
                failed[todo[0]] = exc
                continue
            answers = {}
            for key in todo:
                try:
                    answers.update(await refresh(slot, [key]))
                except Exception as exc:
                    failed[key] = exc
        except Exception as exc:  # the store down, the queue full: the same for every key, so no retry one by one
            failed.update(dict.fromkeys(todo, exc))
            continue
        for key, answer in answers.items():
            refreshed[key].append(answer)
    return refreshed, failed


_ONE_KEYS = (InvalidInput, PredictionError)
"""Failures that may be one key's doing (its features refused, the model raising on them): worth trying each
key on its own so that the others still apply. Any other failure (a store down, a full queue) is everyone's."""


def burst_outcomes(
    table: str,
    key: str,
    refused: list[InvalidInput | None] | Exception,
    applied: list[bool] | Exception,
    refreshed: list[dict[str, Any]],
    failed: Mapping[str, Exception],
) -> Outcomes:
    """One key's outcomes as `HybridService.apply` answers each event."""
    if isinstance(refused, Exception):
        return refused
    if isinstance(applied, Exception):
        return applied
    if key in failed:
        return failed[key]
    news = iter(applied)
    outcomes: list[dict[str, Any] | InvalidInput] = []
    for refusal in refused:
        if refusal is not None:
            outcomes.append(refusal)
            continue
        new = next(news)
        outcomes.append({"applied": new, "duplicate": not new, "entity": table, "key": key, "refreshed": refreshed})
    return outcomes
