"""`Recorder`: how the inference service hands what it predicted to the prediction ledger.

One `Entry` per request (per key for lookups), by reference to the model call that
answered it: the writer's thread turns it into rows off the response path, and a full
queue drops it (counted) rather than slow the answer. The request's prediction id is set
on its `Call`, for the transport to return.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from foretell.core.columns import Columns
from foretell.core.model import Model
from foretell.core.predictor import Predictions
from foretell.errors import ForetellError
from foretell.ledger.record import Entry, ModelCall, Served, Source, failure_status, new_prediction_id
from foretell.ledger.segments import UNRESOLVED_MODEL

if TYPE_CHECKING:
    from foretell.serving.runtime import ModelSlot, Runtime
    from foretell.serving.service import Call, Ledger, Stored

__all__ = ["Recorder"]


class Recorder:
    """The ledger's entries for one server's predictions, and the ids they give each request."""

    def __init__(self, runtime: Runtime, ledger: Ledger | None) -> None:
        self.runtime = runtime
        self.ledger = ledger
        self._digests: dict[tuple[str, int], str | None] = {}
        self._served: dict[str, dict[int, tuple[Model, Served]]] = {}

    def predictions(
        self,
        call: Call,
        model: Model,
        source: Source,
        columns: Columns,
        predictions: Predictions,
        keys: Sequence[str] | None,
        per_key: bool,
    ) -> tuple[str, ...]:
        """Hand the request's predictions to the ledger: rows of the model call that answered them, by reference."""
        assert self.ledger is not None
        served = self.served_as(model)
        made, n = call.model_call, len(predictions)
        if made is None:  # answered without a model call (no rows): the request's own, empty, frame
            made, call.offset = ModelCall(columns.frame, predictions), 0
        latency_ms = (time.perf_counter() - call.started) * 1000
        request = (source, call.endpoint, call.transport, call.request_id, latency_ms, call.batch_rows)
        if per_key and keys is not None and n > 1:
            ids = tuple(new_prediction_id() for _ in keys)
            for i, (prediction_id, key) in enumerate(zip(ids, keys, strict=True)):
                self.ledger.record(Entry.answered(prediction_id, served, *request, (key,), made, call.offset + i, 1))
        else:
            ids = (new_prediction_id(),)
            self.ledger.record(Entry.answered(ids[0], served, *request, keys, made, call.offset, n))
        self._answered_with(call, ids[0])
        return ids

    def served_as(self, model: Model) -> Served:
        """What the ledger repeats for every entry of `model`, made once per loaded version."""
        info = model.info
        versions = self._served.setdefault(info.name, {})
        found = versions.get(info.version)
        if found is None or found[0] is not model:
            # Two versions of one name at most (a rollout's champion and challenger): a replaced
            # version's model must not be kept alive by this cache.
            versions.pop(info.version, None)
            while len(versions) >= 2:
                del versions[next(iter(versions))]
            found = versions[info.version] = (
                model,
                Served(info.name, info.version, info.sha256, model.variant, info.signature),
            )
        return found[1]

    def stored(self, call: Call, slot: ModelSlot, answers: Sequence[Stored]) -> None:
        """Record answers a lookup took from the store (source `precomputed`), one entry per key, and set their ids."""
        if self.ledger is None or not answers:
            return
        latency_ms = (time.perf_counter() - call.started) * 1000
        record, name, endpoint, transport = self.ledger.record, slot.name, call.endpoint, call.transport
        request_id = call.request_id
        for answer in answers:
            answer.prediction_id = prediction_id = new_prediction_id()
            version = answer.model_version
            digest = self._digest(slot, version)
            key, prediction = answer.key, answer.prediction
            record(
                Entry.stored(
                    prediction_id,
                    name,
                    version,
                    digest,
                    key,
                    prediction,
                    endpoint,
                    transport,
                    request_id,
                    latency_ms,
                )
            )
        self._answered_with(call, answers[0].prediction_id or "")

    def _answered_with(self, call: Call, prediction_id: str) -> None:
        call.recorded = True
        if call.prediction_id is None:
            call.prediction_id = prediction_id

    def failure(self, call: Call, error: BaseException, source: Source) -> None:
        """A prediction request that failed or was refused: one row, its reason as the client was told."""
        assert self.ledger is not None
        slot = self.runtime.slots.get(call.model)
        reason = str(error) if isinstance(error, ForetellError) else "internal error (see the server's log)"
        prediction_id = new_prediction_id()
        self.ledger.record(
            Entry(
                prediction_id,
                call.model if slot is not None else UNRESOLVED_MODEL,
                source=source,
                endpoint=call.endpoint,
                transport=call.transport,
                version=slot.version if slot is not None else None,
                sha256=slot.model.info.sha256 if slot is not None else None,
                predictor=slot.model.variant if slot is not None else None,
                request_id=call.request_id,
                latency_ms=(time.perf_counter() - call.started) * 1000,
                status=failure_status(error),
                error=reason,
            )
        )
        self._answered_with(call, prediction_id)

    def _digest(self, slot: ModelSlot, version: int) -> str | None:
        """A stored prediction's version's artifact digest: the served one's, else the registry's (remembered)."""
        if version == slot.version:
            return slot.model.info.sha256
        found = self._digests.get((slot.name, version), "")
        if found == "":
            try:
                found = self.runtime.registry.get(f"{slot.name}/{version}").sha256
            except ForetellError:  # a version deleted since the batch job wrote it
                found = None
            self._digests[(slot.name, version)] = found
        return found
