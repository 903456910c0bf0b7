"""`InferenceService`: the one data plane every transport calls.

REST (infer, `/invocations`, metadata), the hybrid lookups and events, and the same app
inside a Ray Serve replica all answer through this class, so there is one place where a
request is resolved to a served version, validated, checked against its deadline, queued
on the model's micro-batcher, counted and timed. A transport only decodes its wire format
into rows and encodes the outcome back; the prediction ledger and traffic splitting hook
in here, never in a transport.

Status codes are a transport's business: `observed` takes the transport's own mapping
from an outcome (or an error) to its answer and status label, applies it in one place,
and records the metrics with that label.

The ledger: every prediction answered here, and every failed prediction request, is
handed to the ledger (`foretell.ledger`) as one `Entry` per request (per key for
lookups), by reference: the writer's thread turns it into rows off the response path, and
a full queue drops it (counted) rather than slow the answer. The request's prediction id
is on its `Call`, for the transport to return.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from foretell import tracing
from foretell.core.columns import Columns
from foretell.core.model import Model
from foretell.core.predictor import NO_OPTIONS, TOPK_KINDS, Predictions, PredictOptions
from foretell.errors import DeadlineExceeded, ForetellError, InvalidInput
from foretell.ledger.record import Entry, ModelCall, Served, Source
from foretell.rollout import Arm
from foretell.serving.batcher import MicroBatcher
from foretell.serving.metrics import ServingMetrics
from foretell.serving.recording import Recorder
from foretell.serving.rollout_metrics import RolloutCollector
from foretell.serving.rollout_routing import RolloutRouter
from foretell.serving.runtime import ModelSlot, Runtime

if TYPE_CHECKING:  # the server's assembly makes one; its module reads the ledger with DuckDB
    from foretell.serving.live_monitor import LiveMonitor

__all__ = [
    "Call",
    "Inference",
    "InferenceService",
    "Ledger",
    "ModelSlot",
    "Stored",
    "Transport",
    "deadline_after",
    "request_deadline",
]

log = logging.getLogger("foretell.serving")

Answer = TypeVar("Answer")

MAX_K = 1000

#: The endpoints whose requests are predictions (and so are in the ledger, failures too), and the
#: source a failed one is recorded under.
PREDICTING: dict[str, Source] = {
    "infer": "live",
    "invocations": "live",
    "lookup": "precomputed",
    "batchGet": "precomputed",
    "events": "event-refresh",
}


class Ledger(Protocol):
    """Where the service hands what it predicted (`foretell.ledger.LedgerWriter`)."""

    def record(self, entry: Entry) -> bool:
        """Queue `entry` without blocking; False when it was dropped (the queue was full)."""
        ...

    def start(self) -> None: ...

    def close(self, timeout: float = ...) -> None: ...

    @property
    def counts(self) -> dict[str, int]: ...


class Transport(Protocol[Answer]):
    """How one transport turns outcomes into answers: its own status codes, bodies and headers."""

    def status(self, answer: Answer) -> int:
        """The status label `answer` is counted under in the request metrics."""
        ...

    def failure(self, error: BaseException) -> Answer:
        """The answer for a request that raised `error` (which may be a bug: never leak its text)."""
        ...


class Call:
    """One request as the service sees it: which endpoint, which served model once resolved, since when."""

    __slots__ = (
        "batch_rows",
        "endpoint",
        "model",
        "model_call",
        "model_version",
        "offset",
        "prediction_id",
        "recorded",
        "request_id",
        "started",
        "trace",
        "transport",
    )

    def __init__(self, endpoint: str, transport: str = "http") -> None:
        self.endpoint = endpoint
        self.transport = transport
        self.model = "-"
        """A served model's name once resolved; never the client's text (see `ServingMetrics.answered`)."""
        self.started = time.perf_counter()
        self.request_id: str | None = None
        """The client's id for the request (OIP `id`, `X-Request-Id`), recorded in the ledger."""
        self.prediction_id: str | None = None
        """The first prediction id the ledger recorded for this request (`X-Prediction-Id`)."""
        self.recorded = False
        self.batch_rows = 0
        """Rows in the model call that answered the last prediction (the batcher fills it in) ..."""
        self.model_call: ModelCall | None = None
        """... that call itself (its inputs and predictions) ..."""
        self.offset = 0
        """... and where this request's rows start in it."""
        self.model_version: int | None = None
        """The version that answered the last prediction (`X-Model-Version`): a rollout's challenger or champion."""
        self.trace: tracing.Span | None = None
        """While tracing: the transport's span of this request when it is recorded (sampled), set by `observed`."""


class Stored(Protocol):
    """A lookup's answer taken from the store rather than a model call; recording it sets its `prediction_id`."""

    key: str
    prediction: dict[str, Any]
    model_version: int
    prediction_id: str | None


@dataclass(frozen=True, slots=True)
class Inference:
    """What a prediction request came to: the version that answered and its predictions."""

    model: Model
    predictions: Predictions
    prediction_ids: tuple[str, ...] = ()
    """The ledger's ids: one for the request, or one per key (`per_key`); none when nothing is recorded."""

    @property
    def version(self) -> int:
        return self.model.info.version


def deadline_after(timeout_seconds: float | None) -> float | None:
    """A client's timeout as a deadline on the monotonic clock the batchers read."""
    if timeout_seconds is None:
        return None
    if not timeout_seconds > 0 or timeout_seconds == float("inf"):
        raise InvalidInput(f"a request timeout must be a positive number of seconds, got {timeout_seconds}")
    return time.monotonic() + timeout_seconds


def request_deadline(header_value: str | None, timeout_seconds: float | None) -> float | None:
    """The request's deadline on the monotonic clock: `X-Request-Timeout` (seconds) wins over the body's."""
    if header_value is not None:
        try:
            timeout_seconds = float(header_value)
        except ValueError:
            raise InvalidInput(f"X-Request-Timeout must be a number of seconds, got {header_value!r}") from None
    return deadline_after(timeout_seconds)


class InferenceService:
    """Resolve → coerce → deadline → micro-batcher → outcome, with metrics and readiness, for every transport."""

    def __init__(self, runtime: Runtime, ledger: Ledger | None = None, live: LiveMonitor | None = None) -> None:
        self.runtime = runtime
        self.ledger = ledger
        """Where predictions are recorded; None: nowhere (`serve --no-ledger`)."""
        self.live = live
        """Score, drift and label gauges, fed by the ledger writer's thread (`serving.live_monitor`)."""
        self.router = RolloutRouter(self)
        self.recorder = Recorder(runtime, ledger)
        if ledger is not None:
            self.metrics.watch_ledger(lambda: ledger.counts)
        if live is not None:
            self.metrics.registry.register(live)
        self.metrics.registry.register(RolloutCollector(runtime))

    # -- lifecycle and health ----------------------------------------------------------------------

    async def start(self) -> None:
        if self.ledger is not None:
            self.ledger.start()
        await self.runtime.start()

    async def stop(self, *, drain: bool = True) -> None:
        await self.runtime.stop(drain=drain)
        if self.ledger is not None:  # after the drain: what the last requests predicted is recorded too
            await asyncio.to_thread(self.ledger.close)
        if self.live is not None:
            await asyncio.to_thread(self.live.close)

    @property
    def ready(self) -> bool:
        return self.runtime.ready

    @ready.setter
    def ready(self, value: bool) -> None:
        # A SIGTERM turns readiness off before the server drains (http.shutdown).
        self.runtime.ready = value

    @property
    def metrics(self) -> ServingMetrics:
        return self.runtime.metrics

    @property
    def served(self) -> list[str]:
        return sorted(self.runtime.slots)

    # -- resolving the model -----------------------------------------------------------------------

    def resolve(self, call: Call, name: str, version: str | None = None) -> ModelSlot:
        """The slot serving `name` (and `version`, when the client pinned one); the call is now that model's."""
        slot = self.runtime.get(name, version)
        if call.model == "-":  # counted in flight once, however often a route asks
            call.model = slot.name
            self.metrics.in_flight_of(slot.name).inc()
        return slot

    def only_model(self, call: Call, refusal: str) -> ModelSlot:
        """The one served model, for protocols that name none (MLflow's `/invocations`).

        `refusal` starts the error when the server serves several: the transport knows
        what its client should call instead.
        """
        if len(self.runtime.slots) != 1:
            raise InvalidInput(f"{refusal}; this one serves {self.served}")
        return self.resolve(call, next(iter(self.runtime.slots)))

    def knows_model(self, name: str) -> bool:
        """Whether `name` is served here or registered (labels may come for a model only batch jobs use)."""
        if name in self.runtime.slots:
            return True
        try:
            return bool(self.runtime.registry.list_versions(name))
        except ForetellError:
            return False

    def slot_if_served(self, name: str) -> ModelSlot | None:
        return self.runtime.slots.get(name)

    # -- predicting --------------------------------------------------------------------------------

    def check_options(self, slot: ModelSlot, options: PredictOptions) -> None:
        """Refuse options the model cannot honour, before any work is queued for them."""
        k = options.k
        if k is None:
            return
        if not any(o.kind in TOPK_KINDS for o in slot.model.signature.outputs):
            raise InvalidInput(f"model {slot.name!r} returns no top-k lists; 'k' is for recommenders")
        if not 1 <= k <= MAX_K:
            raise InvalidInput(f"k must be between 1 and {MAX_K}, got {k}")

    async def infer(
        self,
        slot: ModelSlot,
        rows: Any,
        *,
        deadline: float | None = None,
        options: PredictOptions = NO_OPTIONS,
        refused: Callable[[Columns], ForetellError] | None = None,
        call: Call | None = None,
        source: Source = "live",
        keys: Sequence[str] | None = None,
        per_key: bool = False,
        arm: Arm | None = None,
    ) -> Inference:
        """Predict `rows` (any input form `Signature.coerce` takes) with the version `slot` serves now.

        The rows go through the model's micro-batcher with every other request for it, so
        its queue bound, deadlines and thread apply whatever the transport. `refused`
        words the error for invalid rows when the caller knows better names for them (the
        hybrid path names entity keys instead of row numbers).

        With `call`, the predictions are recorded in the ledger under `source`, with an
        entity key per row when `keys` are given: as one entry for the request, or with
        `per_key` one per row (a lookup's answers are each their own prediction).

        While the model has a rollout, the request meets the arm its unit is assigned to
        (`serving.rollout_routing`), or `arm` when the caller assigned it already (a lookup
        splits its keys between the arms).
        """
        if deadline is not None and (late := time.monotonic() - deadline) >= 0:
            self.metrics.rejected.labels(slot.name, "deadline").inc()  # as the batcher counts the ones it drops
            raise DeadlineExceeded(
                f"the request for model {slot.name!r} arrived {late * 1000:.1f} ms past its deadline; it was not run"
            )
        if options is not NO_OPTIONS:
            self.check_options(slot, options)
        model, batcher = slot.model, slot.batcher  # one pair: a reload swaps both at once
        columns = model.coerce(rows)
        if columns.errors:
            if refused is not None:
                raise refused(columns)
            columns.raise_for_errors()
        if keys is not None and len(keys) != columns.n_input:
            raise InvalidInput(f"parameters.key gives {len(keys)} keys for {columns.n_input} rows; give one per row")
        challenger = slot.challenger
        if challenger is None:
            inference = await self.predict_with(model, batcher, columns, deadline, options, call, source, keys, per_key)
        else:
            inference = await self.router.infer(
                slot,
                challenger,
                rows,
                columns,
                deadline=deadline,
                options=options,
                call=call,
                source=source,
                keys=keys,
                per_key=per_key,
                arm=arm,
            )
        if call is not None:
            call.model_version = inference.version
        return inference

    async def predict_with(
        self,
        model: Model,
        batcher: MicroBatcher,
        columns: Columns,
        deadline: float | None,
        options: PredictOptions,
        call: Call | None,
        source: Source,
        keys: Sequence[str] | None,
        per_key: bool,
    ) -> Inference:
        """`columns` (valid for `model`) through `batcher`, recorded in the ledger when there is a `call`."""
        if call is None or self.ledger is None:
            return Inference(model, await batcher.submit(columns, deadline=deadline, options=options))
        predictions = await batcher.submit(columns, deadline=deadline, options=options, note=call)
        if tracing.tracer is None or (traced := tracing.recorded()) is None:  # off, or a request not sampled
            ids = self.recorder.predictions(call, model, source, columns, predictions, keys, per_key)
        else:
            ids = tracing.timed(
                traced, "ledger enqueue", {"foretell.ledger.source": source},
                self.recorder.predictions, call, model, source, columns, predictions, keys, per_key,
            )  # fmt: skip
        return Inference(model, predictions, ids)

    # -- the ledger (serving.recording) -----------------------------------------------------------

    def served_as(self, model: Model) -> Served:
        return self.recorder.served_as(model)

    def record_stored(self, call: Call, slot: ModelSlot, answers: Sequence[Stored]) -> None:
        """Record answers a lookup took from the store (source `precomputed`), one entry per key, and set their ids."""
        with tracing.leaf("ledger enqueue", **{"foretell.ledger.source": "precomputed"}):
            self.recorder.stored(call, slot, answers)

    # -- one wrapper for every request -------------------------------------------------------------

    async def observed(
        self,
        endpoint: str,
        work: Callable[[Call], Awaitable[Answer]],
        transport: Transport[Answer],
        *,
        over: str = "http",
    ) -> Answer:
        """Run one request's `work`, turn any failure into the transport's answer, and record its metrics.

        Every request a transport serves through the service passes here once: it is
        counted in flight while it runs (lone requests may run on the event loop only when
        nothing else is in flight), a bug is logged with its traceback, and the request is
        counted under its model, endpoint and the transport's status. `over` names the transport
        in the ledger ("http", "grpc").
        """
        call = Call(endpoint, over)
        if tracing.tracer is not None:  # read once here rather than by each step that records under it
            call.trace = tracing.recorded()
        in_flight = self.runtime.in_flight
        in_flight.requests += 1
        try:
            answer = await work(call)
        except Exception as error:  # every failure becomes the transport's error answer; nothing escapes
            answer = self._failure(call, transport, error)
        finally:
            in_flight.requests -= 1
            if call.model != "-":
                self.metrics.in_flight_of(call.model).dec()
        self._answered(call, transport, answer)
        return answer

    def _failure(self, call: Call, transport: Transport[Answer], error: Exception) -> Answer:
        if not isinstance(error, ForetellError):
            log.error("unexpected error answering %s", call.endpoint, exc_info=error)
        source = PREDICTING.get(call.endpoint)
        if source is not None and self.ledger is not None and not call.recorded:
            self.recorder.failure(call, error, source)
        return transport.failure(error)

    def _answered(self, call: Call, transport: Transport[Answer], answer: Answer) -> None:
        status = transport.status(answer)
        self.metrics.answered(call.model, call.endpoint, status, time.perf_counter() - call.started, call.transport)
        if call.trace is not None:  # tracing off, or a request not sampled: nothing to say
            _describe(call.trace, call, status)

    def refused(self, endpoint: str, status: int, started: float) -> None:
        """Count a request a transport refused before the service saw it (a wrong method)."""
        self.metrics.answered("-", endpoint, status, time.perf_counter() - started)


def _describe(span: tracing.Span, call: Call, status: int) -> None:
    """Name the transport's request span after the endpoint (low cardinality: never a key) and say what it did."""
    span.update_name(call.endpoint)
    attributes = span.attributes  # the span's own, set in place: every traced request pays this
    attributes["foretell.endpoint"] = call.endpoint
    attributes["foretell.model"] = call.model
    attributes["foretell.status"] = status
    if call.model_version is not None:
        attributes["foretell.model.version"] = call.model_version
    if call.prediction_id is not None:
        attributes["foretell.prediction_id"] = call.prediction_id
