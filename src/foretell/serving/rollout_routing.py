"""Answering a prediction request while its model has a rollout: shadow and canary.

Which arm a request meets is `foretell.rollout.arm_for` on its unit: the entity key when
the request has one and the rollout is sticky by key, else the client's request id, else
a digest of its input rows. So a customer always meets one version, on every worker and
after a restart.

- **Shadow**: the champion answers. For the rollout's share of requests the challenger
  then scores the same rows off the response path (a task started after the answer is
  ready, never awaited by it); its predictions go to the ledger as `source: shadow` with
  the client's request id (or, when it gave none, the champion's prediction id).
- **Canary**: the rollout's share is answered by the challenger. If the challenger
  refuses the rows, fails or is overloaded, the champion answers instead (counted as a
  challenger error): the client never sees a failure the challenger caused. The champion
  then scores those rows off the response path, as the shadow of the canary, so both
  modes measure the difference between the versions on the same rows.

The figures go into the challenger's `RolloutStats`; the keeper (`serving.rollouts`)
reports and judges them. Comparisons in flight are bounded per rollout; past the bound
one is dropped and counted (`dropped`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from foretell.core.columns import Columns
from foretell.core.model import Model
from foretell.core.predictor import Predictions, PredictOptions
from foretell.errors import BatcherClosed, ForetellError, Overloaded
from foretell.ledger.record import Entry, ModelCall, Source, new_prediction_id
from foretell.rollout import Arm, arm_for, compare, digest_of_frame
from foretell.serving.batcher import MicroBatcher
from foretell.serving.challenger import Challenger

if TYPE_CHECKING:
    from foretell.serving.service import Call, Inference, InferenceService, ModelSlot

__all__ = ["RolloutRouter"]

log = logging.getLogger("foretell.rollout")


class _Note:
    """Filled in by the batcher for a comparison's model call (as `Call` is for a request's)."""

    __slots__ = ("batch_rows", "model_call", "offset")

    def __init__(self) -> None:
        self.batch_rows = 0
        self.model_call: ModelCall | None = None
        self.offset = 0


@dataclass(frozen=True, slots=True)
class _Later:
    """A comparison to make off the response path: the other version's model and batcher, and the answered rows."""

    challenger: Challenger
    model: Model
    batcher: MicroBatcher
    other: Arm
    columns: Columns
    answered: Predictions
    call: Call | None
    keys: Sequence[str] | None
    options: PredictOptions


class RolloutRouter:
    def __init__(self, service: InferenceService) -> None:
        self.service = service

    def arm_of(self, challenger: Challenger, key: str | None, call: Call | None, columns: Columns | None) -> Arm:
        rollout = challenger.rollout
        if rollout.mode == "shadow" and rollout.percent >= 100:
            return "challenger"
        unit: str | bytes | None = key if rollout.sticky == "key" else None
        if unit is None and call is not None:
            unit = call.request_id
        if unit is None:
            unit = digest_of_frame(columns.frame) if columns is not None else (key or "")
        return arm_for(rollout.id, unit, rollout.percent)

    async def infer(
        self,
        slot: ModelSlot,
        challenger: Challenger,
        rows: Any,
        columns: Columns,
        *,
        deadline: float | None,
        options: PredictOptions,
        call: Call | None,
        source: Source,
        keys: Sequence[str] | None,
        per_key: bool,
        arm: Arm | None,
    ) -> Inference:
        if arm is None:
            arm = self.arm_of(challenger, keys[0] if keys else None, call, columns)
        stats = challenger.stats
        predict = self.service.predict_with
        failed: BaseException | None = None
        if challenger.rollout.mode == "canary" and arm == "challenger":
            mine = columns if challenger.reuses_columns_of(slot.model) else challenger.model.coerce(rows)
            started = time.perf_counter()
            try:
                if mine.errors:
                    raise ForetellError(
                        "the challenger refuses the rows: " + "; ".join(e.describe() for e in mine.errors)
                    )
                inference = await predict(
                    challenger.model, challenger.batcher, mine, deadline, options, call, source, keys, per_key
                )
            except Exception as error:  # the champion answers instead; the client never sees it
                stats.challenger.requests += 1
                stats.challenger.errors += 1
                failed = error
            else:
                stats.challenger.requests += 1
                stats.challenger.latency.add(time.perf_counter() - started)
                self._compare_later(
                    challenger,
                    slot.model,
                    slot.batcher,
                    "champion",
                    columns,
                    inference.predictions,
                    call,
                    keys,
                    options,
                )
                return inference
        started = time.perf_counter()
        try:
            inference = await predict(slot.model, slot.batcher, columns, deadline, options, call, source, keys, per_key)
        except Exception:
            stats.champion.requests += 1
            stats.champion.errors += 1
            raise
        stats.champion.requests += 1
        stats.champion.latency.add(time.perf_counter() - started)
        if failed is not None:  # recorded once the champion's answer has its id, which ties the two
            self._record_failure(challenger.model, call, keys, failed)
        elif challenger.rollout.mode == "shadow" and arm == "challenger":
            reused = challenger.reuses_columns_of(slot.model)
            mine = columns if reused else challenger.model.coerce(rows)
            if mine.errors:
                stats.challenger.requests += 1
                stats.challenger.errors += 1
                refused = ForetellError(
                    "the challenger refuses the rows: " + "; ".join(e.describe() for e in mine.errors)
                )
                self._record_failure(challenger.model, call, keys, refused)
            else:
                self._compare_later(
                    challenger,
                    challenger.model,
                    challenger.batcher,
                    "challenger",
                    mine,
                    inference.predictions,
                    call,
                    keys,
                    options,
                )
        return inference

    # -- off the response path ---------------------------------------------------------------------

    def _compare_later(
        self,
        challenger: Challenger,
        model: Model,
        batcher: MicroBatcher,
        other: Arm,
        columns: Columns,
        answered: Predictions,
        call: Call | None,
        keys: Sequence[str] | None,
        options: PredictOptions,
    ) -> None:
        """Have `other`'s version score `columns` once the answer has gone; drop it when too many are pending."""
        if challenger.full:
            challenger.stats.dropped += 1
            return
        later = _Later(challenger, model, batcher, other, columns, answered, call, keys, options)
        challenger.track(asyncio.get_running_loop().create_task(self._compare(later)))

    async def _compare(self, later: _Later) -> None:
        challenger, model, batcher, other = later.challenger, later.model, later.batcher, later.other
        columns, answered, call, keys, options = later.columns, later.answered, later.call, later.keys, later.options
        stats = challenger.stats
        note = _Note()
        started = time.perf_counter()
        try:
            scored = await batcher.submit(columns, options=options, note=note)
        except (Overloaded, BatcherClosed):
            stats.dropped += 1  # load, not a fault of either version
            return
        except Exception as error:
            if other == "challenger":
                stats.challenger.requests += 1
                stats.challenger.errors += 1
            self._record_failure(model, call, keys, error)
            return
        seconds = time.perf_counter() - started
        if other == "challenger":
            stats.challenger.requests += 1
            stats.challenger.latency.add(seconds)
            stats.add_comparison(compare(answered, scored))
        else:
            stats.add_comparison(compare(scored, answered))
        ledger = self.service.ledger
        if ledger is not None and call is not None and note.model_call is not None:
            ledger.record(
                Entry.answered(
                    new_prediction_id(),
                    self.service.served_as(model),
                    "shadow",
                    call.endpoint,
                    call.transport,
                    _request_of(call),
                    seconds * 1000,
                    note.batch_rows,
                    keys,
                    note.model_call,
                    note.offset,
                    len(scored),
                )
            )

    def _record_failure(
        self, model: Model, call: Call | None, keys: Sequence[str] | None, error: BaseException
    ) -> None:
        """A version that did not answer failed: one `shadow` error row, the reason as a person needs it."""
        ledger = self.service.ledger
        if ledger is None or call is None:
            return
        reason = str(error) if isinstance(error, ForetellError) else f"{type(error).__name__}: {error}"
        info = model.info
        ledger.record(
            Entry(
                new_prediction_id(),
                info.name,
                source="shadow",
                endpoint=call.endpoint,
                transport=call.transport,
                version=info.version,
                sha256=info.sha256,
                predictor=model.variant,
                keys=list(keys[:1]) if keys else None,
                request_id=_request_of(call),
                latency_ms=(time.perf_counter() - call.started) * 1000,
                status="error",
                error=reason,
            )
        )


def _request_of(call: Call) -> str | None:
    """What ties a shadow row to the answer's: the client's request id, else the answer's prediction id."""
    return call.request_id or call.prediction_id
