"""How a batched request can end without predictions, and where the batcher reports what happened.

The errors a caller of `MicroBatcher.submit` may get besides `PredictionError` (`Overloaded`,
`DeadlineExceeded`, `BatcherClosed`), and `BatchObserver`, the hook metrics hang on.
"""

from __future__ import annotations

from typing import Protocol

from foretell.errors import ForetellError

__all__ = ["BatchObserver", "BatcherClosed", "DeadlineExceeded", "Overloaded"]


class Overloaded(ForetellError):
    """The model's queue is full; `retry_after_s` says when trying again is likely to succeed."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadlineExceeded(ForetellError, TimeoutError):
    """A request's deadline passed before the model ran it; it was not run."""


class BatcherClosed(ForetellError, RuntimeError):
    """The model's batcher is not taking requests: not started yet, stopping, or stopped."""


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
