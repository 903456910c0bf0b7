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
import contextlib
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from foretell import tracing
from foretell.core.columns import Columns
from foretell.core.predictor import NO_OPTIONS, PredictOptions
from foretell.errors import InvalidInput, NotFound
from foretell.hybrid.batched import Refresh, burst_outcomes, refresh_keys, write_entities, writes_of
from foretell.hybrid.changes import change_of, model_row, refusals
from foretell.hybrid.events import Event, key_of, parse_event, resolve
from foretell.hybrid.freshness import DEFAULT_MAX_AGE_S
from foretell.hybrid.lookup import Lookup, annotate_outcomes, from_store, outcomes_of, rank_of, sliced
from foretell.hybrid.reads import CoalescedReads
from foretell.ledger.record import Source
from foretell.rollout import Arm, staged_store_name
from foretell.serving.service import Call, InferenceService, ModelSlot
from foretell.store.base import PredictionStore, StoredPrediction
from foretell.store.entities import Entity, EntityStore, EntityTable

__all__ = ["HybridService", "Lookup"]

_TABLES_TTL_S = 1.0  # entity tables change when someone runs `foretell entities load`; a second is soon enough


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
        outcomes = outcomes_of(wanted, answers, computed)
        self.inference.metrics.looked_up(slot.name, outcomes)
        if tracing.tracer is not None:
            annotate_outcomes(outcomes)
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
                    if known is None or rank_of(found, slot.version) > rank_of(known, slot.version):
                        stored[key] = found
        now = self._clock()  # after the read, which may have waited for a hop: ages as of the answer
        answers: dict[str, Lookup] = {}
        stale: dict[str, Lookup] = {}
        for key, found in stored.items():
            lookup = sliced(from_store(found, now, name), slot.model.signature, k)
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
        key, change = change_of(event, table)
        outcome = (await self._apply_bursts(table, {key: [(event, change)]}, call))[key]
        if isinstance(outcome, Exception):
            raise outcome
        if isinstance(outcome[0], InvalidInput):
            raise outcome[0]
        tracing.annotate(foretell_event_entity=table.name, foretell_event_duplicate=outcome[0]["duplicate"])
        return {**outcome[0], "ms": round((time.perf_counter() - started) * 1000, 3)}

    async def apply_many(
        self, events: Sequence[Event], call_for: Callable[[], Call | None] = lambda: None
    ) -> list[dict[str, Any] | Exception]:
        """Apply `events` (in order for each key) with one refresh per key, as `apply` would each.

        What a stream consumer reads at once: a burst of events about one key becomes one
        prediction refresh after all of them are written, and the events of all the keys of
        one entity table are written in one store call and refreshed in one inference and one
        write-back. Each event's outcome is returned in place: `apply`'s answer, or the
        `InvalidInput` that refused it (nothing of it was applied), or another error that
        stopped its key's burst (some of its events may be written: deliver them again, with
        their `event_id`s, and they are applied once). `call_for` gives each table's refresh its `Call`.
        """
        tables = await self._entity_tables(refresh=True)
        outcomes: list[dict[str, Any] | Exception | None] = [None] * len(events)
        grouped: dict[str, tuple[EntityTable, dict[str, list[tuple[int, Event, dict[str, Any]]]]]] = {}
        for index, event in enumerate(events):
            try:
                table = resolve(event, tables)
                key, change = change_of(event, table)
            except InvalidInput as exc:
                outcomes[index] = exc
                continue
            grouped.setdefault(table.name, (table, {}))[1].setdefault(key, []).append((index, event, change))
        groups = list(grouped.values())
        results = await asyncio.gather(
            *(
                self._apply_bursts(table, {k: [(e, c) for _, e, c in items] for k, items in bursts.items()}, call_for())
                for table, bursts in groups
            ),
            return_exceptions=True,
        )
        for (_table, bursts), result in zip(groups, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # a cancellation stops the whole read
            for key, items in bursts.items():
                found = result if isinstance(result, Exception) else result[key]
                for position, (index, _, _) in enumerate(items):
                    outcomes[index] = found if isinstance(found, Exception) else found[position]
        return [outcome for outcome in outcomes if outcome is not None]

    async def _apply_bursts(
        self, table: EntityTable, bursts: dict[str, list[tuple[Event, dict[str, Any]]]], call: Call | None
    ) -> dict[str, list[dict[str, Any] | InvalidInput] | Exception]:
        """Check, write and then refresh some keys' events, each checked on the features the ones before it left.

        One entity read, one write (`write_events`) and, per model, one inference and one
        write-back (`put_live_many`) for all the keys (`hybrid.batched`).
        """
        linked = [slot for m in table.models if (slot := self.inference.slot_if_served(m)) is not None]
        keys = sorted(bursts)  # locks taken in one order, so two reads sharing keys cannot deadlock
        async with contextlib.AsyncExitStack() as held:
            for key in keys:
                await held.enter_async_context(self._locks.setdefault((table.name, key), asyncio.Lock()))
            with tracing.maybe_span("entity read", **{"foretell.store.keys": len(keys)}):
                found = await self._entity_rows.get_many(table.name, keys)
            checked: dict[str, list[InvalidInput | None] | Exception] = {}
            for key in keys:
                try:  # a key the table cannot have ("x" for whole numbers) fails its own events only
                    current = found.get(key) or Entity(table.name, key, {}, None)
                    checked[key] = refusals(current, table, key, bursts[key], linked)
                except Exception as exc:
                    checked[key] = exc
            writes = {
                key: writes_of(key, bursts[key], refused)
                for key, refused in checked.items()
                if not isinstance(refused, Exception)
            }
            at = _stamp(self._clock())
            with tracing.maybe_span("entity write", **{"foretell.store.keys": len(writes)}):
                applied = await write_entities(self.entities, table.name, {k: w for k, w in writes.items() if w}, at)
            # A duplicate refreshes too: it is usually the retry a 503 asked for, after the first
            # delivery changed the entity but could not queue its refresh.
            written = [key for key in keys if isinstance(applied.get(key), list)]
            refreshed, failed = await refresh_keys(self._refreshed(table, call), linked, written)
        return {
            key: burst_outcomes(table.name, key, checked[key], applied.get(key, []), refreshed.get(key, []), failed)
            for key in keys
        }

    def _refreshed(self, table: EntityTable, call: Call | None) -> Refresh:
        async def refresh(slot: ModelSlot, keys: list[str]) -> dict[str, dict[str, Any]]:
            found = await self._live(slot, table, keys, NO_OPTIONS, call, "event-refresh")
            return {key: lookup.to_dict() for key, lookup in found.items()}

        return refresh

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

    def _write_back(self, model: str, answers: Iterable[Lookup]) -> None:
        rows = [(a.key, a.prediction, a.model_version, a.computed_at) for a in answers]
        self.predictions.put_live_many(model, rows)

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


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
