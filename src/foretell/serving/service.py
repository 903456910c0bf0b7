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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from foretell.core.columns import Columns
from foretell.core.model import Model
from foretell.core.predictor import NO_OPTIONS, TOPK_KINDS, Predictions, PredictOptions
from foretell.errors import DeadlineExceeded, ForetellError, InvalidInput
from foretell.serving.metrics import ServingMetrics
from foretell.serving.runtime import ModelSlot, Runtime

__all__ = ["Call", "Inference", "InferenceService", "ModelSlot", "Transport", "deadline_after"]

log = logging.getLogger("foretell.serving")

Answer = TypeVar("Answer")

MAX_K = 1000


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

    __slots__ = ("endpoint", "model", "started")

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.model = "-"
        """A served model's name once resolved; never the client's text (see `ServingMetrics.answered`)."""
        self.started = time.perf_counter()


@dataclass(frozen=True, slots=True)
class Inference:
    """What a prediction request came to: the version that answered and its predictions."""

    model: Model
    predictions: Predictions

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


class InferenceService:
    """Resolve → coerce → deadline → micro-batcher → outcome, with metrics and readiness, for every transport."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    # -- lifecycle and health ----------------------------------------------------------------------

    async def start(self) -> None:
        await self.runtime.start()

    async def stop(self, *, drain: bool = True) -> None:
        await self.runtime.stop(drain=drain)

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
    ) -> Inference:
        """Predict `rows` (any input form `Signature.coerce` takes) with the version `slot` serves now.

        The rows go through the model's micro-batcher with every other request for it, so
        its queue bound, deadlines and thread apply whatever the transport. `refused`
        words the error for invalid rows when the caller knows better names for them (the
        hybrid path names entity keys instead of row numbers).
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
        predictions = await batcher.submit(columns, deadline=deadline, options=options)
        return Inference(model, predictions)

    # -- one wrapper for every request -------------------------------------------------------------

    async def observed(
        self, endpoint: str, work: Callable[[Call], Awaitable[Answer]], transport: Transport[Answer]
    ) -> Answer:
        """Run one request's `work`, turn any failure into the transport's answer, and record its metrics.

        Every request a transport serves through the service passes here once: it is
        counted in flight while it runs (lone requests may run on the event loop only when
        nothing else is in flight), a bug is logged with its traceback, and the request is
        counted under its model, endpoint and the transport's status.
        """
        call = Call(endpoint)
        in_flight = self.runtime.in_flight
        in_flight.requests += 1
        try:
            answer = await work(call)
        except Exception as error:  # every failure becomes the transport's error answer; nothing escapes
            if not isinstance(error, ForetellError):
                log.error("unexpected error answering %s", endpoint, exc_info=error)
            answer = transport.failure(error)
        finally:
            in_flight.requests -= 1
            if call.model != "-":
                self.metrics.in_flight_of(call.model).dec()
        self.metrics.answered(call.model, endpoint, transport.status(answer), time.perf_counter() - call.started)
        return answer

    def refused(self, endpoint: str, status: int, started: float) -> None:
        """Count a request a transport refused before the service saw it (a wrong method)."""
        self.metrics.answered("-", endpoint, status, time.perf_counter() - started)
