"""Domain errors → gRPC status codes, in one table: the gRPC side of `InferenceService.observed`.

The details string is the message REST puts in its `{"error": ...}` body, word for word, so a
client reads the same field, rule and value whichever transport it speaks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

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
from foretell.serving.api_key import REFUSED as UNAUTHENTICATED
from foretell.serving.api_key import key_given

__all__ = ["UNAUTHENTICATED", "GrpcAnswers", "Outcome", "code_for", "key_in"]

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


def key_in(expected: str | None, metadata: Iterable[tuple[str, str | bytes]]) -> bool:
    """No key needed, or the call's `x-api-key` / `authorization: Bearer` metadata holds it (as REST's headers)."""
    if expected is None:
        return True
    given = dict(metadata)
    return key_given(expected, given.get("x-api-key"), given.get("authorization"))
