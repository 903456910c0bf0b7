"""Hybrid serving: last night's predictions by key, a live prediction when they are missing or stale,
and an entity's predictions refreshed the moment an event about it arrives.

A lookup reads the prediction store. A stored prediction fresher than the model's
`max_age` is returned as it is (`source: precomputed` for a batch generation's row,
`live` for one computed on request or by an event). Otherwise the entity's features are
read from its entity table, the model predicts through the same batcher and validation as
every other request, and the result is written back to the store.

Ordering, across servers as well as within one: a live prediction is stamped with the time
*before* its features were read. The store keeps the later stamp (`put_live`), and the
precedence rule lets a live entry beat any generation whose rows were computed before it.
So a write-back computed from older features never replaces one computed from newer
features, and a nightly generation published later, but computed earlier, does not
either.

An event is checked against every model the entity table feeds before anything changes:
its new features must pass each model's validation. Then it is applied, and each model's
prediction for that key is recomputed and written back before the answer goes out, so the
next lookup already sees it.

No store call runs on the event loop: reads go through `CoalescedReads` (one thread hop
carries the keys of every request that arrived meanwhile), writes through a worker thread.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from foretell import tracing
from foretell.core.columns import Columns
from foretell.core.predictor import NO_OPTIONS, TOPK_KINDS, PredictOptions
from foretell.core.schema import Signature
from foretell.errors import InvalidInput, NotFound
from foretell.hybrid.events import Event, FeaturesEvent, interaction_parts, key_of, parse_event, resolve
from foretell.hybrid.freshness import DEFAULT_MAX_AGE_S, age_seconds
from foretell.hybrid.reads import CoalescedReads
from foretell.ledger.record import Source
from foretell.rollout import Arm, staged_store_name
from foretell.serving.service import Call, InferenceService, ModelSlot
from foretell.store.base import PredictionStore, StoredPrediction
from foretell.store.entities import Entity, EntityStore, EntityTable, key_value

__all__ = ["HybridService", "Lookup"]

_TABLES_TTL_S = 1.0  # entity tables change when someone runs `foretell entities load`; a second is soon enough


@dataclass(slots=True)
class Lookup:
    """One key's answer, and where it came from.

    Made anew for every request (never shared between two), so the ledger's id can be set
    on it once recorded: re-creating the answer to add it cost a lookup more than the rest
    of its recording.
    """

    model: str
    key: str
    source: Literal["precomputed", "live"]
    prediction: dict[str, Any]
    model_version: int
    computed_at: str
    generation: int | None
    age_seconds: float
    stale: bool = False
    """True when the stored prediction was too old but nothing could replace it (no features)."""
    prediction_id: str | None = None
    """The ledger's id for this answer (None when the server keeps no ledger)."""

    def to_dict(self) -> dict[str, Any]:
        shown = {
            "model": self.model,
            "key": self.key,
            "source": self.source,
            "prediction": self.prediction,
            "model_version": self.model_version,
            "computed_at": self.computed_at,
            "generation": self.generation,
            "age_seconds": round(self.age_seconds, 3),
            "stale": self.stale,
        }
        if self.prediction_id is not None:
            shown["prediction_id"] = self.prediction_id
        return shown


class HybridService:
    """Lookups by key and events, over one server's inference service, a prediction store and an entity store."""

    def __init__(
        self,
        inference: InferenceService,
        predictions: PredictionStore,
        entities: EntityStore,
        *,
        max_age: Mapping[str, float] | None = None,
        default_max_age: float = DEFAULT_MAX_AGE_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.inference = inference
        self.predictions = predictions
        self.entities = entities
        self.max_age = dict(max_age or {})
        self.default_max_age = default_max_age
        self._clock = clock
        self._tables: tuple[float, list[EntityTable]] = (-1.0, [])
        self._staged: dict[str, tuple[float, bool]] = {}
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = weakref.WeakValueDictionary()
        # One thread for every read: one hop is in flight at a time per store, and a SQLite
        # store keeps its read connection in the thread that reads (docs/hybrid.md, "Backends").
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="foretell-store-read")
        self._stored: CoalescedReads[StoredPrediction] = CoalescedReads(predictions.get_many, self._reader)
        self._entity_rows: CoalescedReads[Entity] = CoalescedReads(entities.get_many, self._reader)

    def close(self) -> None:
        """Let the read thread go; the server calls this once it has stopped taking requests."""
        self._reader.shutdown(wait=False, cancel_futures=True)

    # -- lookups -----------------------------------------------------------------------------------

    async def lookup(self, call: Call, name: str, key: str, *, fresh: bool = False, k: int | None = None) -> Lookup:
        found, missing = await self.lookup_many(call, name, [key], fresh=fresh, k=k)
        if missing:
            raise NotFound(await self._missing_reason(name, key))
        return found[0]

    async def lookup_many(
        self, call: Call, name: str, keys: Sequence[str], *, fresh: bool = False, k: int | None = None
    ) -> tuple[list[Lookup], list[str]]:
        """Answers for the keys that have one, in the order asked, and the keys that have none."""
        slot = self.inference.resolve(call, name)
        wanted = list(dict.fromkeys(key_of(key, "key") for key in keys))
        options = NO_OPTIONS if k is None else PredictOptions(k=k)
        self.inference.check_options(slot, options)
        answers: dict[str, Lookup] = {}
        computed: dict[str, Lookup] = {}
        for arm, store_names, arm_keys in await self._by_arm(call, slot, wanted):
            found, live = await self._answers(call, slot, store_names, arm_keys, fresh, k, options, arm)
            answers.update(found)
            computed.update(live)
        found_list = [answers[key] for key in wanted if key in answers]
        if tracing.tracer is not None:
            _annotate_outcomes(wanted, answers, computed)
        if self.inference.ledger is not None:  # those from the store are recorded now; live ones were, when made
            self.inference.record_stored(call, slot, [a for a in found_list if a.key not in computed])
        return found_list, [key for key in wanted if key not in answers]

    async def _by_arm(
        self, call: Call, slot: ModelSlot, keys: list[str]
    ) -> list[tuple[Arm | None, tuple[str, ...], list[str]]]:
        """The keys each arm answers, and where its stored predictions are.

        A canary's challenger reads its staged generation. The champion reads the model's
        own, and also the staged generation of the version it serves when there is one: a
        promoted challenger's, until the next nightly generation is published under the
        model's own name (the served version's prediction wins, then the newer).
        """
        champion: tuple[str, ...] = (slot.name,)
        promoted = await self._staged_generation(slot.name, slot.version)
        if promoted is not None:
            champion = (slot.name, promoted)
        challenger = slot.challenger
        if challenger is None or challenger.rollout.mode != "canary":
            return [(None, champion, keys)]
        arms: dict[Arm, list[str]] = {"champion": [], "challenger": []}
        for key in keys:
            arms[self.inference.router.arm_of(challenger, key, call, None)].append(key)
        staged = (staged_store_name(slot.name, challenger.version),)
        return [(arm, staged if arm == "challenger" else champion, found) for arm, found in arms.items() if found]

    async def _staged_generation(self, model: str, version: int) -> str | None:
        """The store name of `version`'s staged generation when one is published (checked once a second)."""
        name = staged_store_name(model, version)
        read_at, published = self._staged.get(name, (-1.0, False))
        if time.monotonic() - read_at > _TABLES_TTL_S:
            loop = asyncio.get_running_loop()
            generation = await loop.run_in_executor(self._reader, self.predictions.current_generation, name)
            published = generation is not None
            self._staged[name] = (time.monotonic(), published)
        return name if published else None

    async def _answers(
        self,
        call: Call,
        slot: ModelSlot,
        store_names: tuple[str, ...],
        wanted: list[str],
        fresh: bool,
        k: int | None,
        options: PredictOptions,
        arm: Arm | None,
    ) -> tuple[dict[str, Lookup], dict[str, Lookup]]:
        """One arm's answers (stored, else live, else stale) and, of them, those computed now."""
        name = slot.name
        with tracing.maybe_span("store read", **{"foretell.store.keys": len(wanted)}):
            stored = {} if fresh else await self._stored.get_many(store_names[0], wanted)
            for other in () if fresh else store_names[1:]:
                for key, found in (await self._stored.get_many(other, wanted)).items():
                    known = stored.get(key)
                    if known is None or _rank(found, slot.version) > _rank(known, slot.version):
                        stored[key] = found
        now = self._clock()  # after the read, which may have waited for a hop: ages as of the answer
        answers: dict[str, Lookup] = {}
        stale: dict[str, Lookup] = {}
        for key, found in stored.items():
            lookup = _sliced(_from_store(found, now, name), slot.model.signature, k)
            if lookup is not None and lookup.age_seconds <= self.max_age.get(name, self.default_max_age):
                answers[key] = lookup
            elif lookup is not None:
                stale[key] = replace(lookup, stale=True)
        live_keys = [key for key in wanted if key not in answers]
        computed: dict[str, Lookup] = {}
        if live_keys:
            table = await self._table_for(name)
            if table is not None:
                computed = await self._live(slot, table, live_keys, options, call, "live-fallback", arm)
                answers.update(computed)
            for key in live_keys:
                if key not in answers and key in stale:
                    answers[key] = stale[key]
        return answers, computed

    # -- events ------------------------------------------------------------------------------------

    async def apply(self, event: bytes | Event, call: Call | None = None) -> dict[str, Any]:
        """Apply one event and refresh the predictions it changes; see the module docstring.

        With `call`, each refreshed prediction is recorded in the ledger (`event-refresh`).
        """
        started = time.perf_counter()
        if isinstance(event, bytes):
            event = parse_event(event)
        table = resolve(event, await self._entity_tables(refresh=True))
        change: dict[str, Any]
        if isinstance(event, FeaturesEvent):
            key, change = event.key, {"features": event.values}
        else:
            key, item, value = interaction_parts(event, table)
            change = {"item": item, "value": value}
        linked = [slot for m in table.models if (slot := self.inference.slot_if_served(m)) is not None]
        lock = self._locks.setdefault((table.name, key), asyncio.Lock())
        async with lock:
            with tracing.maybe_span("entity read"):
                found = await self._entity_rows.get_many(table.name, [key])
            current = found.get(key) or Entity(table.name, key, {}, None)
            candidate = _changed(current, table, change)
            for slot in linked:  # before anything changes: the new features must suit every model they feed
                columns = slot.model.coerce([model_row(slot.model.signature, table, candidate)])
                if columns.errors:
                    raise InvalidInput(
                        f"the event would give {table.name} key {key!r} features model {slot.name!r} refuses: "
                        + "; ".join(error.describe() for error in columns.errors)
                    )
            at = _stamp(self._clock())
            with tracing.maybe_span("entity write"):
                if isinstance(event, FeaturesEvent):
                    applied = await asyncio.to_thread(
                        self.entities.set_features, table.name, key, event.values, at=at, event_id=event.event_id
                    )
                else:
                    applied = await asyncio.to_thread(
                        self.entities.set_interaction,
                        table.name,
                        key,
                        change["item"],
                        change["value"],
                        at=at,
                        event_id=event.event_id,
                    )
            tracing.annotate(foretell_event_entity=table.name, foretell_event_duplicate=not applied)
            refreshed: list[dict[str, Any]] = []
            # A duplicate refreshes too: it is usually the retry a 503 asked for, after the first
            # delivery changed the entity but could not queue its refresh.
            for slot in linked:
                for lookup in (await self._live(slot, table, [key], NO_OPTIONS, call, "event-refresh")).values():
                    refreshed.append(lookup.to_dict())
        return {
            "applied": applied,
            "duplicate": not applied,
            "entity": table.name,
            "key": key,
            "refreshed": refreshed,
            "ms": round((time.perf_counter() - started) * 1000, 3),
        }

    # -- live predictions --------------------------------------------------------------------------

    async def _live(
        self,
        slot: ModelSlot,
        table: EntityTable,
        keys: list[str],
        options: PredictOptions,
        call: Call | None,
        source: Source,
        arm: Arm | None = None,
    ) -> dict[str, Lookup]:
        """Predict `keys` from their entity rows (those that have one) and write the results back.

        With `call`, each key's prediction is recorded in the ledger under `source`. During a
        canary the keys meet their arm (`arm` when the caller split them already), and a
        challenger's prediction is written back beside its staged generation.
        """
        computed = self._clock()  # before the features are read: see the module docstring
        with tracing.maybe_span("entity read", **{"foretell.store.keys": len(keys)}):
            entities = await self._entity_rows.get_many(table.name, keys)
        order = [key for key in keys if key in entities]
        if not order:
            return {}
        signature = slot.model.signature
        rows = [model_row(signature, table, entities[key]) for key in order]

        def refused(columns: Columns) -> InvalidInput:
            return InvalidInput(
                f"the stored features of {table.name} do not suit model {slot.name!r}: "
                + "; ".join(
                    f"key {order[e.row]!r}: {e.describe()}" if e.row is not None else e.describe()
                    for e in columns.errors
                )
            )

        inference = await self.inference.infer(
            slot, rows, options=options, refused=refused, call=call, source=source, keys=order, per_key=True, arm=arm
        )
        stamp, version = _stamp(computed), inference.version
        ids = inference.prediction_ids or (None,) * len(order)
        answers = {
            key: Lookup(
                slot.name, key, "live", inference.predictions[i], version, stamp, None, 0.0, prediction_id=ids[i]
            )
            for i, key in enumerate(order)
        }
        challenger = slot.challenger
        answered_by_challenger = challenger is not None and version == challenger.version and version != slot.version
        store_name = staged_store_name(slot.name, version) if answered_by_challenger else slot.name
        with tracing.maybe_span("store write", **{"foretell.store.keys": len(answers)}):
            await asyncio.to_thread(self._write_back, store_name, answers.values())
        return answers

    def _write_back(self, model: str, answers: Any) -> None:
        for answer in answers:
            self.predictions.put_live(model, answer.key, answer.prediction, answer.model_version, answer.computed_at)

    # -- plumbing ----------------------------------------------------------------------------------

    async def _entity_tables(self, *, refresh: bool = False) -> list[EntityTable]:
        read_at, tables = self._tables
        if refresh or time.monotonic() - read_at > _TABLES_TTL_S:
            tables = await asyncio.get_running_loop().run_in_executor(self._reader, self.entities.tables)
            self._tables = (time.monotonic(), tables)
        return tables

    async def _table_for(self, model: str) -> EntityTable | None:
        return next((t for t in await self._entity_tables() if model in t.models), None)

    async def _missing_reason(self, name: str, key: str) -> str:
        table = await self._table_for(name)
        if table is None:
            return (
                f"model {name!r} has no prediction stored for key {key!r}, and no entity table feeds it to predict "
                f"one live (foretell entities load ... --model {name})"
            )
        return (
            f"model {name!r} has no prediction stored for key {key!r}, and entity table {table.name!r} "
            f"has no row for it to predict one live"
        )


def _annotate_outcomes(wanted: list[str], answers: Mapping[str, Lookup], computed: Mapping[str, Lookup]) -> None:
    """The lookup's outcome per key (hit, fallback, stale or miss) on its request span (docs/tracing.md)."""
    counts = {"hit": 0, "fallback": 0, "stale": 0, "miss": 0}
    for key in wanted:
        answer = answers.get(key)
        outcome = "miss" if answer is None else "fallback" if key in computed else "stale" if answer.stale else "hit"
        counts[outcome] += 1
    attributes: dict[str, Any] = {f"foretell.hybrid.{outcome}s": n for outcome, n in counts.items()}
    if len(wanted) == 1:
        attributes["foretell.hybrid.outcome"] = next(o for o, n in counts.items() if n)
    tracing.current_span().set_attributes(attributes)


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


def _changed(entity: Entity, table: EntityTable, change: Mapping[str, Any]) -> Entity:
    features = dict(entity.features)
    features.setdefault(table.key_column, key_value(entity.key, table.key_type))
    if "features" in change:
        features.update(change["features"])
    else:
        assert table.interactions is not None
        column = table.interactions.column
        features[column] = {**features.get(column, {}), change["item"]: change["value"]}
    return Entity(entity.table, entity.key, features, entity.updated_at)


def _from_store(found: StoredPrediction, now: datetime, model: str) -> Lookup:
    source: Literal["precomputed", "live"] = "precomputed" if found.source == "batch" else "live"
    return Lookup(
        model,
        found.key,
        source,
        found.prediction,
        found.model_version,
        found.computed_at,
        found.generation,
        age_seconds(found.computed_at, now),
    )


def _rank(found: StoredPrediction, served: int) -> tuple[bool, str]:
    return found.model_version == served, found.computed_at


def _sliced(lookup: Lookup, signature: Signature, k: int | None) -> Lookup | None:
    """The stored top-k lists cut to `k`; None when they are shorter (the model must run again)."""
    if k is None:
        return lookup
    prediction = dict(lookup.prediction)
    for output in signature.outputs:
        if output.kind in TOPK_KINDS:
            values = prediction.get(output.name)
            if not isinstance(values, list) or len(values) < k:
                return None
            prediction[output.name] = values[:k]
    return replace(lookup, prediction=prediction)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
