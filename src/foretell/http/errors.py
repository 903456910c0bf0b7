"""Domain errors → HTTP status and a JSON body, in one table. Nothing below this package knows about status codes."""

from __future__ import annotations

import logging
import math

import orjson

from foretell.errors import (
    ArtifactIntegrityError,
    BatcherClosed,
    BodyTooLarge,
    DeadlineExceeded,
    ForetellError,
    InvalidInput,
    ModelLoadError,
    ModelNotFound,
    NotFound,
    Overloaded,
    PredictionError,
    UnsupportedMediaType,
)

__all__ = ["error_reply", "status_for"]

log = logging.getLogger("foretell.http")

# Most specific first: the first matching class decides.
_TABLE: tuple[tuple[type[BaseException], int], ...] = (
    (UnsupportedMediaType, 415),
    (InvalidInput, 400),
    (ModelNotFound, 404),
    (NotFound, 404),
    (BodyTooLarge, 413),
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


def error_reply(
    error: BaseException, *, overload_status: int = 503, retry_after_seconds: int = 1
) -> tuple[int, bytes, dict[str, str]]:
    """(status, `{"error": ...}` body, headers) for a failed request.

    Our own errors say what went wrong; anything else is a bug, logged with its traceback
    and answered without leaking its message. Refusals for load carry `Retry-After`.
    """
    status = overload_status if isinstance(error, Overloaded) else status_for(error)
    if status >= 500 and not isinstance(error, ForetellError):
        log.error("unexpected error", exc_info=error)
        message = f"internal error: {type(error).__name__}"
    else:
        message = str(error)
    headers = {}
    if status in (429, 503):
        retry = max(1, math.ceil(error.retry_after_s)) if isinstance(error, Overloaded) else retry_after_seconds
        headers["Retry-After"] = str(retry)
    return status, orjson.dumps({"error": message}), headers
