"""When a micro-batcher flushes: a pure decision over plain numbers, so it is tested without a clock.

The rule (docs/serving-batching.md says why):

1. Nothing queued → `Idle`: sleep until a request arrives.
2. The model is busy → `ModelBusy`: requests pile up while it runs, and the next flush
   takes them together. This is what makes the batcher adaptive: under load batches grow
   by themselves, at low load they stay at one request, and no timer is involved.
3. The model is idle and the queue holds at least `fill_target` rows → `Flush` now.
   With the default `fill_target=1` that is every queued request: a lone request is
   never held back waiting for company.
4. The model is idle but the queue is below `fill_target` → `Wait` for company, yet no
   longer than `max_delay_ms` after the oldest request arrived; then `Flush` whatever
   is there. `max_delay_ms=0` means never wait.

A flush takes up to `max_batch_size` rows. Queued rows are also what `max_queue` bounds:
the wait a request faces, and the memory it holds, grow with the rows ahead of it, not
with how many requests carried them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "THREAD_THRESHOLD_S",
    "BatchPolicy",
    "Decision",
    "Flush",
    "Idle",
    "ModelBusy",
    "Wait",
    "admits",
    "decide",
    "retry_after",
    "runs_in_thread",
]

#: One-row predict time from which a model runs off the event loop. The hop to a one-thread
#: executor is a fixed cost per call, while running inline stalls the loop (every model, probe
#: and deadline it serves) for back-to-back batches. Below this the hop would be a large share
#: of each call and the stalls stay short; above it the hop is a shrinking share and the loop
#: keeps answering within the GIL's switch interval (docs/serving-batching.md, "Inline or in a thread").
THREAD_THRESHOLD_S = 1e-3


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """The knobs of one model's micro-batcher."""

    max_batch_size: int = 64
    """Most rows handed to one model call (a single larger request still runs, alone)."""
    max_delay_ms: float = 10.0
    """Longest an idle model waits for company: under load, for the clients it just answered
    (see `MicroBatcher`), or for `fill_target` rows. 0 means never wait; a lone request never does."""
    max_queue: int = 1024
    """Most rows waiting for the model; past it a request is refused at once (`Overloaded`)."""
    fill_target: int = 1
    """Rows an idle model waits for before it runs; 1 means a lone request runs at once."""

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        if not (math.isfinite(self.max_delay_ms) and self.max_delay_ms >= 0):
            raise ValueError(f"max_delay_ms must be a finite number ≥ 0, got {self.max_delay_ms}")
        if self.max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {self.max_queue}")
        if not 1 <= self.fill_target <= self.max_batch_size:
            raise ValueError(
                f"fill_target must be between 1 and max_batch_size ({self.max_batch_size}), got {self.fill_target}"
            )


@dataclass(frozen=True, slots=True)
class Flush:
    """Run the model now on queued requests totalling up to `rows` rows (at least one request)."""

    rows: int


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait for company for at most `seconds`, then decide again (an arrival decides sooner)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class ModelBusy:
    """The model is running: decide again when it finishes."""


@dataclass(frozen=True, slots=True)
class Idle:
    """Nothing is queued: decide again when a request arrives."""


Decision = Flush | Wait | ModelBusy | Idle

_IDLE = Idle()
_BUSY = ModelBusy()


def decide(policy: BatchPolicy, queued_rows: int, oldest_wait_s: float, model_busy: bool) -> Decision:
    """What to do now, given the queued rows, how long the oldest has waited, and whether the model runs."""
    if queued_rows <= 0:
        return _IDLE
    if model_busy:
        return _BUSY
    rows = min(queued_rows, policy.max_batch_size)
    if queued_rows >= policy.fill_target:
        return Flush(rows)
    remaining = policy.max_delay_ms / 1000.0 - oldest_wait_s
    if remaining <= 0:
        return Flush(rows)
    return Wait(remaining)


def admits(policy: BatchPolicy, queued_rows: int, new_rows: int) -> bool:
    """Whether a request of `new_rows` rows may join a queue holding `queued_rows`.

    An empty queue takes any request, so one larger than `max_queue` is served alone
    rather than refused forever (its size is the body-size limit's business).
    """
    return queued_rows <= 0 or queued_rows + new_rows <= policy.max_queue


def retry_after(policy: BatchPolicy, queued_rows: int, batch_seconds: float) -> float:
    """Seconds a refused client should wait: the time to run the queue ahead of it, in whole seconds ≥ 1.

    Whole seconds because that is what a `Retry-After` header carries; never 0, which
    would invite a client to retry in a hot loop.
    """
    batches = math.ceil(max(queued_rows, 0) / policy.max_batch_size)
    per_batch = batch_seconds if math.isfinite(batch_seconds) and batch_seconds > 0 else 0.0
    estimate = batches * per_batch
    return float(max(1, math.ceil(estimate)))


def runs_in_thread(single_row_seconds: float, threshold_s: float = THREAD_THRESHOLD_S) -> bool:
    """Whether a model whose one-row predict takes `single_row_seconds` should run off the event loop."""
    return single_row_seconds >= threshold_s
