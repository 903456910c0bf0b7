"""`RequestQueue`: one model's waiting requests, in arrival order, and the counts read off them.

Only bookkeeping: which requests wait, how many rows and requests that makes, and the
earliest deadline among them. Deciding when to run them, and answering or failing them,
is `MicroBatcher`'s.

A request can leave from anywhere in the queue (its caller gives up, or its deadline
passes); it is marked as gone at once, so the counts stay exact, and its entry is dropped
later, when the queue is walked anyway.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from foretell.core.frame import Frame
from foretell.core.predictor import Predictions, PredictOptions
from foretell.ledger.record import ModelCall
from foretell.tracing import Queued

__all__ = ["Batch", "BatchNote", "Pending", "RequestQueue"]


@dataclass(slots=True, eq=False)
class Pending:
    """One submitted request: its rows, its predict options, when it arrived, its deadline, and the future its
    caller awaits."""

    frame: Frame
    rows: int
    enqueued_at: float
    deadline: float | None
    future: asyncio.Future[Predictions]
    options: PredictOptions
    queued: bool = True
    """False once taken into a batch, expired, failed or abandoned by its caller."""
    note: BatchNote | None = None
    """Told how many rows the model call that answered this request had (for the prediction ledger)."""
    trace: Queued | None = None
    """While tracing: the request's span and arrival, for its queue-wait span and the batch's links."""


@dataclass(slots=True)
class Batch:
    """Requests taken from the queue together, for one model call."""

    requests: list[Pending]
    rows: int
    started_at: float
    options: PredictOptions
    frame: Frame | None = None
    """The requests' rows joined, once the model was called with them."""
    span: Any = None
    """While tracing: the batch's span (linked to its requests'), ended when they are answered."""


class BatchNote(Protocol):
    """What the batcher fills in when it answers a request: the model call, its size, and where the request starts."""

    batch_rows: int
    model_call: ModelCall | None
    offset: int


class RequestQueue:
    """The requests waiting for one model, oldest first."""

    __slots__ = ("_entries", "_next_expiry", "_requests", "_rows")

    def __init__(self) -> None:
        self._entries: deque[Pending] = deque()
        self._rows = 0
        self._requests = 0
        self._next_expiry = math.inf  # a lower bound on the queued deadlines: no scan before it

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def requests(self) -> int:
        return self._requests

    @property
    def next_expiry(self) -> float:
        """No queued deadline is earlier than this (`math.inf` when none is known to be set)."""
        return self._next_expiry

    def push(self, pending: Pending) -> None:
        self._entries.append(pending)
        self._rows += pending.rows
        self._requests += 1
        if pending.deadline is not None and pending.deadline < self._next_expiry:
            self._next_expiry = pending.deadline

    def leave(self, pending: Pending) -> None:
        """Take `pending` out of the counts, if it is still queued; its entry is skipped from now on."""
        if pending.queued:
            pending.queued = False
            self._rows -= pending.rows
            self._requests -= 1

    def oldest_wait(self, now: float) -> float:
        """How long the oldest queued request has waited by `now`; 0 when none is queued."""
        while self._entries and not self._entries[0].queued:
            self._entries.popleft()
        return now - self._entries[0].enqueued_at if self._entries else 0.0

    def take(self, max_rows: int) -> list[Pending]:
        """Whole requests in arrival order, up to `max_rows` rows; always at least one request if any waits.

        One model call has one set of predict options, so only requests asking for the oldest
        request's options are taken; the others keep their places for a later call.
        """
        taken: list[Pending] = []
        passed: list[Pending] = []  # queued with other options: they stay, in their order
        options: PredictOptions | None = None
        rows = 0
        while self._entries:
            if taken and rows >= max_rows:
                break  # full: what waits with other options stays where it is, unread
            pending = self._entries[0]
            if pending.queued:
                if options is None:
                    options = pending.options
                elif pending.options is not options and pending.options != options:
                    passed.append(self._entries.popleft())
                    continue
                if taken and rows + pending.rows > max_rows:
                    break
                self.leave(pending)
                taken.append(pending)
                rows += pending.rows
            self._entries.popleft()
        self._entries.extendleft(reversed(passed))
        return taken

    def expire(self, now: float) -> list[Pending]:
        """Take out every queued request whose deadline has passed by `now`, and return them."""
        if now < self._next_expiry:
            return []
        expired: list[Pending] = []
        next_expiry = math.inf
        for pending in self._entries:
            if not pending.queued or pending.deadline is None:
                continue
            if pending.deadline <= now:
                self.leave(pending)
                expired.append(pending)
            else:
                next_expiry = min(next_expiry, pending.deadline)
        self._next_expiry = next_expiry
        self._entries = deque(p for p in self._entries if p.queued)
        return expired

    def clear(self) -> list[Pending]:
        """Take out every queued request, and return them in arrival order."""
        left = [p for p in self._entries if p.queued]
        for pending in left:
            self.leave(pending)
        self._entries.clear()
        return left
