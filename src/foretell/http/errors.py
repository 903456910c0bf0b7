"""Domain errors → HTTP status and a JSON body, in one table. Nothing below this package knows about status codes.

`HttpAnswers` is the HTTP side of `InferenceService.observed`: the service runs every
request through it once, so every route answers a failure the same way.
"""

from __future__ import annotations

import math

import orjson

from foretell.errors import (
    ArtifactIntegrityError,
    BatcherClosed,
    BodyTooLarge,
    ClientDisconnected,
    DeadlineExceeded,
    ForetellError,
    InvalidInput,
    ModelLoadError,
    ModelNotFound,
    NotFound,
    Overloaded,
    PredictionError,
    StoreUnavailable,
    UnsupportedMediaType,
)

__all__ = ["CLIENT_CLOSED", "HttpAnswers", "Reply", "error_reply", "method_not_allowed", "no_route", "status_for"]

Reply = tuple[int, bytes, dict[str, str]]
"""(status, body, headers): a whole HTTP answer."""

CLIENT_CLOSED = 499  # nginx's code for "the client went away first"; only ever a metrics label


def no_route(method: str, path: str) -> bytes:
    """A 404's body for a path no route serves, naming it."""
    return orjson.dumps({"error": f"no route serves {method} {path} (the routes: GET /openapi.json)"})


def method_not_allowed(method: str, path: str, allowed: str) -> bytes:
    """A 405's body, naming the method refused and the ones the path takes (also in its `Allow` header)."""
    return orjson.dumps({"error": f"{path} does not take {method}: use {allowed}"})


# Most specific first: the first matching class decides.
_TABLE: tuple[tuple[type[BaseException], int], ...] = (
    (UnsupportedMediaType, 415),
    (InvalidInput, 400),
    (ModelNotFound, 404),
    (NotFound, 404),
    (BodyTooLarge, 413),
    (Overloaded, 503),
    (BatcherClosed, 503),
    (StoreUnavailable, 503),
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

    Our own errors say what went wrong; anything else is a bug (the service logs it with
    its traceback), answered without leaking its message. Refusals for load carry `Retry-After`.
    """
    status = overload_status if isinstance(error, Overloaded) else status_for(error)
    if status >= 500 and not isinstance(error, ForetellError):
        message = f"internal error: {type(error).__name__}"
    else:
        message = str(error)
    headers = {}
    if status in (429, 503):
        retry = max(1, math.ceil(error.retry_after_s)) if isinstance(error, Overloaded) else retry_after_seconds
        headers["Retry-After"] = str(retry)
    return status, orjson.dumps({"error": message}), headers


class HttpAnswers:
    """How HTTP answers for `InferenceService.observed`: the status of a reply, and the reply for a failure."""

    __slots__ = ("overload_status", "retry_after_seconds")

    def __init__(self, *, overload_status: int = 503, retry_after_seconds: int = 1) -> None:
        self.overload_status = overload_status
        self.retry_after_seconds = retry_after_seconds

    def status(self, answer: Reply) -> int:
        return answer[0]

    def failure(self, error: BaseException) -> Reply:
        if isinstance(error, ClientDisconnected):
            return CLIENT_CLOSED, b"", {}  # nobody is left to answer; counted, never sent
        return error_reply(error, overload_status=self.overload_status, retry_after_seconds=self.retry_after_seconds)
