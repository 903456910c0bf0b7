"""Domain errors → HTTP status, in one table. Nothing below this package knows about status codes."""

from __future__ import annotations

from foretell.errors import (
    ArtifactIntegrityError,
    ForetellError,
    InvalidInput,
    ModelLoadError,
    ModelNotFound,
    PredictionError,
)
from foretell.protocols import UnsupportedMediaType
from foretell.serving.batcher import BatcherClosed, DeadlineExceeded, Overloaded

__all__ = ["status_for"]

# Most specific first: the first matching class decides.
_TABLE: tuple[tuple[type[BaseException], int], ...] = (
    (UnsupportedMediaType, 415),
    (InvalidInput, 400),
    (ModelNotFound, 404),
    (Overloaded, 503),
    (BatcherClosed, 503),
    (DeadlineExceeded, 504),
    (PredictionError, 500),
    (ModelLoadError, 500),
    (ArtifactIntegrityError, 500),
    (ForetellError, 500),
)


def status_for(error: BaseException) -> int:
    for kind, status in _TABLE:
        if isinstance(error, kind):
            return status
    return 500
