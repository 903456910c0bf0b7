"""Domain errors → gRPC status codes, in one table: the gRPC side of `InferenceService.observed`.

The details string is the message REST puts in its `{"error": ...}` body, word for word, so a
client reads the same field, rule and value whichever transport it speaks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc

from foretell.errors import (
    BatcherClosed,
    BodyTooLarge,
    ClientDisconnected,
    DeadlineExceeded,
    ForetellError,
    InvalidInput,
    ModelNotFound,
    NotFound,
    Overloaded,
    StoreUnavailable,
)
from foretell.serving.access import Access, presented

__all__ = ["GrpcAnswers", "Outcome", "code_for", "refusal"]

Message = TypeVar("Message")

# Most specific first: the first matching class decides.
_TABLE: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFound, grpc.StatusCode.NOT_FOUND),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (BodyTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (BatcherClosed, grpc.StatusCode.UNAVAILABLE),
    (StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (ClientDisconnected, grpc.StatusCode.CANCELLED),
)


def code_for(error: BaseException) -> grpc.StatusCode:
    for kind, code in _TABLE:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


@dataclass(frozen=True, slots=True)
class Outcome(Generic[Message]):
    """One RPC's answer: a message, or a status code and its details."""

    message: Message | None
    code: grpc.StatusCode = grpc.StatusCode.OK
    details: str = ""
    traceparent: str | None = None
    """The RPC's span, for the trailing metadata (tracing on: `grpc.traced`)."""


class GrpcAnswers(Generic[Message]):
    """How gRPC answers for `InferenceService.observed`; requests are counted under the code's number (0: OK)."""

    def status(self, answer: Outcome[Message]) -> int:
        value: int = answer.code.value[0]
        return value

    def failure(self, error: BaseException) -> Outcome[Message]:
        if not isinstance(error, ForetellError):
            return Outcome(None, grpc.StatusCode.INTERNAL, f"internal error: {type(error).__name__}")
        return Outcome(None, code_for(error), str(error))


def refusal(access: Access | None, metadata: Iterable[tuple[str, str | bytes]]) -> Outcome[Any] | None:
    """Why the call may not go on (its code and words, as REST's 401/403/429), or None when it may.

    The key comes from `x-api-key` or `authorization: Bearer` metadata, as REST's from its headers;
    every OIP RPC needs the `predict` scope.
    """
    if access is None:
        return None
    given = dict(metadata)
    decision = access.decide(presented(given.get("x-api-key"), given.get("authorization")), "predict")
    if not decision.status:
        return None
    return Outcome(None, _DENIED[decision.status], decision.message)


_DENIED = {
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
