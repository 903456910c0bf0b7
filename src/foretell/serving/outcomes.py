"""`BatchObserver`: where the batcher reports what happened to the requests it was given, for metrics.

The errors a caller of `MicroBatcher.submit` may get (`Overloaded`, `DeadlineExceeded`,
`BatcherClosed`, `PredictionError`) live in `foretell.errors` with every other.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["BatchObserver"]


class BatchObserver(Protocol):
    """Where the batcher reports what metrics need; every method is called on the event loop."""

    def batch(self, size: int) -> None:
        """A model call started on `size` rows."""

    def queue_wait(self, seconds: float) -> None:
        """One request left the queue for the model after waiting `seconds`."""

    def rejected(self, reason: str) -> None:
        """One request was refused or dropped without running: "queue_full", "deadline" or "closed"."""


class _NoObserver:
    def batch(self, size: int) -> None:
        pass

    def queue_wait(self, seconds: float) -> None:
        pass

    def rejected(self, reason: str) -> None:
        pass
