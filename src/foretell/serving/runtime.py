"""Which model versions this server holds, and swapping them without dropping a request.

Each served name has a *slot*: the URI it follows (`churn@production`), the loaded
version, and that version's micro-batcher. A reload watcher polls the registry; when an
alias moves, the new version is loaded and warmed off the event loop, gets a batcher of
its own, and only then replaces the slot's pair in one assignment. Requests already
queued on the old batcher finish there (it drains before it stops); a new version that
fails to load leaves the old one serving and the failure on record.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from threadpoolctl import threadpool_limits

from foretell.core.model import Model, ModelInfo, PredictorChoice
from foretell.errors import ModelNotFound, VersionNotFound
from foretell.memory import release_free_memory
from foretell.registry import Registry, load_model
from foretell.serving.batcher import MicroBatcher
from foretell.serving.challenger import Challenger
from foretell.serving.metrics import ServingMetrics
from foretell.serving.policy import BatchPolicy, runs_in_thread
from foretell.serving.rollouts import RolloutKeeper

__all__ = ["InFlight", "ModelSlot", "Runtime"]

log = logging.getLogger("foretell.serving")

#: Longest one-row call that may run on the event loop when its request is the only one in
#: flight (it saves the thread hop; docs/serving.md, "Why the server is built the way it is").
#: The loop reads nothing while it runs, so this is kept to the GIL's switch interval: a model
#: thread holding the GIL stalls the loop as long.
INLINE_ALONE_MAX_S = 0.005


#: The garbage collector's thresholds once the models are loaded. A served request allocates
#: hundreds of containers (a named-tensor row: one dict and list per feature) that live until
#: it is answered, so with 64 requests in flight Python's default first threshold (700 net
#: allocations) started a collection every few requests, each scanning every live request's
#: objects and moving the survivors up to be scanned again. Almost all of them are freed by
#: reference counting, not by the collector: a first threshold of 20,000 lets them go before
#: a collection sees them (cycles wait a little longer; RSS rose 3 MB over 590,000 requests).
#: benchmarks/tensors.py, c=64: +7 % req/s for one [1, 31] tensor of the churn model, +9 % for
#: its 31 named tensors (docs/benchmarks.md, "Named tensors").
GC_THRESHOLDS = (20_000, 20, 20)

#: How often the server hands the memory its allocators keep free back to the system (`foretell.memory`):
#: a few milliseconds of a worker thread, against RSS creeping up ~3 MB a minute under mixed traffic.
RELEASE_EVERY_S = 30.0


class InFlight:
    """How many requests the server is answering now, every model together.

    A lone one-row request may run on the event loop's own thread only while nothing else
    is in flight: any other request in flight needs the loop (to be read or answered).
    """

    __slots__ = ("requests",)

    def __init__(self) -> None:
        self.requests = 0


@dataclass
class ModelSlot:
    name: str
    uri: str
    model: Model
    batcher: MicroBatcher
    loaded_at: float
    load_seconds: float
    reload_error: str | None = None
    challenger: Challenger | None = None
    """The challenger of the model's active rollout, while this server serves its champion (serving.rollouts)."""

    @property
    def version(self) -> int:
        return self.model.info.version


class Runtime:
    """The served models: load at start, look up per request, reload on alias moves, stop on shutdown."""

    def __init__(
        self,
        registry: Registry,
        uris: Sequence[str],
        *,
        policy: BatchPolicy | None = None,
        policies: Mapping[str, BatchPolicy] | None = None,
        metrics: ServingMetrics | None = None,
        reload_seconds: float = 1.0,
        threads_per_model: int = 1,
        predictor: PredictorChoice = "auto",
    ) -> None:
        self.registry = registry
        """Where the served URIs are resolved, again whenever the watcher looks for moved aliases."""
        self.predictor = predictor
        """`auto`: a version's compiled predictor when it passed its parity proof; `original`; `compiled`."""
        self.threads_per_model = threads_per_model
        self.uris = list(uris)
        self.policy = policy or BatchPolicy()
        self.policies = dict(policies or {})
        """Knobs for particular models, by model name; the others get `policy`."""
        self.metrics = metrics or ServingMetrics()
        self.reload_seconds = reload_seconds
        self.slots: dict[str, ModelSlot] = {}
        self.ready = False
        self.in_flight = InFlight()
        """Requests being answered, every model together; `InferenceService.observed` counts them."""
        self._watcher: asyncio.Task[None] | None = None
        self.rollouts = RolloutKeeper(self)
        """Loads each active rollout's challenger, reports its figures and applies its guards' verdicts."""

    async def start(self) -> None:
        for uri in self.uris:
            slot = await self._load(uri)
            self.slots[slot.name] = slot
        await self.rollouts.follow()  # a restart serves an active rollout from its first request
        _settle_heap()
        if self.reload_seconds > 0:
            self._watcher = asyncio.create_task(self._watch(), name="foretell-reload")
        self.ready = True

    async def stop(self, *, drain: bool = True) -> None:
        """Turn readiness off and stop every model's batcher; with `drain`, queued requests are answered first."""
        self.ready = False
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        await self.rollouts.stop()
        for slot in self.slots.values():
            await slot.batcher.stop(drain=drain)

    def get(self, name: str, version: str | None = None) -> ModelSlot:
        slot = self.slots.get(name)
        if slot is None:
            served = ", ".join(sorted(self.slots)) or "none"
            raise ModelNotFound(f"model {name!r} is not served here; served models: {served}")
        if version is not None and version != str(slot.version):
            raise VersionNotFound(
                f"model {name!r} version {version!r} is not served here; this server serves version {slot.version}"
            )
        return slot

    async def _load(self, uri: str) -> ModelSlot:
        started = time.perf_counter()
        model = await asyncio.to_thread(self._load_and_warm, uri)
        seconds = time.perf_counter() - started
        batcher = await self.start_batcher(model)
        self.metrics.load_seconds.labels(model.info.name, str(model.info.version)).set(seconds)
        predictor = "original predictor" if model.variant == "original" else f"compiled with {model.variant}"
        log.info("serving %s as %s, %s (loaded in %.2f s)", uri, model.info.uri, predictor, seconds)
        return ModelSlot(model.info.name, uri, model, batcher, time.time(), seconds)

    async def start_batcher(self, model: Model, *, challenger: bool = False) -> MicroBatcher:
        """A started micro-batcher for `model`, with the knobs of its name.

        A challenger's never runs on the event loop: in shadow its work starts while the
        champion's answer is still being written, and must not delay it.
        """
        # Lone requests run on the loop's own thread (`alone_inline`), so it gets the model threads'
        # limits too. Set after loading: threadpoolctl limits only the native libraries already
        # loaded, and the model's OpenMP arrives with the model. Without it a lone request runs
        # several times slower: OpenMP's spinning team takes a core the loop needs
        # (docs/benchmarks.md, "serve: real-time serving on one core").
        threadpool_limits(self.threads_per_model)
        name = model.info.name
        one_row = _one_row_seconds(model)
        batcher = MicroBatcher(
            model.predictor.predict,
            policy=self.policies.get(name, self.policy),
            run_in_thread=runs_in_thread(one_row),
            # Native thread-pool limits are per thread: set them in the model's own thread, or
            # OpenMP fights the event loop for the core (docs/serving-batching.md, "Thread limits
            # are per thread").
            thread_setup=lambda: threadpool_limits(self.threads_per_model),
            alone_inline=(
                (lambda: self.in_flight.requests <= 1) if one_row <= INLINE_ALONE_MAX_S and not challenger else None
            ),
            observer=self.metrics.observer(name),
            name=f"{name}/{model.info.version}",
        )
        await batcher.start()
        return batcher

    def load_and_warm(self, uri: str) -> Model:
        """Load `uri` and run one prediction (off the event loop: call it in a thread)."""
        return self._load_and_warm(uri)

    def _load_and_warm(self, uri: str) -> Model:
        model = load_model(self.registry, uri, predictor=self.predictor)
        _warm(model)
        return model

    async def _watch(self) -> None:
        released = time.monotonic()
        while True:
            await asyncio.sleep(self.reload_seconds)
            if time.monotonic() - released >= RELEASE_EVERY_S:
                released = time.monotonic()
                await asyncio.to_thread(release_free_memory)
            for slot in list(self.slots.values()):
                try:
                    target = await asyncio.to_thread(self._resolve, slot.uri)
                    # A new compile of the served version (`foretell models compile`, or a rebuild for
                    # this machine) reloads it too, so the server uses what new batch jobs would.
                    if target.version != slot.version or target.compiled != slot.model.info.compiled:
                        await self._swap(slot)
                except Exception as exc:  # a reload must never take the serving version down
                    slot.reload_error = f"{type(exc).__name__}: {exc}"
                    log.warning("reloading %s failed, still serving version %s: %s", slot.uri, slot.version, exc)
            try:
                await self.rollouts.follow()
            except Exception as exc:  # nor may a rollout: the champion keeps serving whatever the registry says
                log.warning("following rollouts failed, the served versions are unchanged: %s", exc)

    def _resolve(self, uri: str) -> ModelInfo:
        return self.registry.get(uri)

    async def _swap(self, slot: ModelSlot) -> None:
        fresh = await self._load(slot.uri)
        old = slot.batcher
        # One assignment each, no await in between: a request sees the old pair or the new one.
        slot.model, slot.batcher = fresh.model, fresh.batcher
        slot.loaded_at, slot.load_seconds, slot.reload_error = fresh.loaded_at, fresh.load_seconds, None
        await old.stop(drain=True)
        _settle_heap()
        predictor = "original predictor" if slot.model.variant == "original" else f"compiled with {slot.model.variant}"
        log.info("%s now serves version %s, %s", slot.uri, slot.version, predictor)


def _settle_heap() -> None:
    """Exempt what is loaded now (frameworks, models) from every later garbage collection.

    A full collection walks every tracked object, and a process that imported scikit-learn,
    pandas and pyarrow holds a great many: each one stalled all requests, and under load those
    stalls were the p99 (docs/serving.md, "Why the server is built the way it is").
    Requests allocate only short-lived objects, freed by reference counting, so the frozen
    heap is the one collections never needed to scan. What a replaced version leaves behind
    in cycles stays frozen: a reload costs some memory, not pauses. The young generation's
    threshold is raised then too (`GC_THRESHOLDS`), once the loading is done.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _warm(model: Model) -> None:
    """One prediction before the model takes traffic: lazy framework set-up happens now, not in a request."""
    row: dict[str, object] = {}
    for feature in model.signature.inputs:
        if feature.categories:
            row[feature.name] = feature.categories[0]
        elif feature.dtype == "string":
            row[feature.name] = ""
        elif feature.dtype == "bool":
            row[feature.name] = False
        elif feature.shape:
            row[feature.name] = [0.0] * feature.shape[0]
        else:
            row[feature.name] = 0
    model.predict(row)


def _one_row_seconds(model: Model) -> float:
    """The fastest of a few one-row predictions (the model is warm by now)."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        _warm(model)
        best = min(best, time.perf_counter() - started)
    return best
