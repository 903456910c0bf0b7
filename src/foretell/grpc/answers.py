"""Domain errors → gRPC status codes, in one table: the gRPC side of `InferenceService.observed`.

The details string is the message REST puts in its `{"error": ...}` body, word for word, so a
client reads the same field, rule and value whichever transport it speaks.
"""

from __future__ import annotations

import hmac
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
)

__all__ = ["UNAUTHENTICATED", "GrpcAnswers", "Outcome", "code_for", "key_given"]

Message = TypeVar("Message")

# Most specific first: the first matching class decides.
_TABLE: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFound, grpc.StatusCode.NOT_FOUND),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (BodyTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (BatcherClosed, grpc.StatusCode.UNAVAILABLE),
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


UNAUTHENTICATED = "missing or wrong API key"
"""The details of an RPC refused for its key (REST's 401 says the same)."""


def key_given(expected: str | None, metadata: Iterable[tuple[str, str | bytes]]) -> bool:
    """No key needed, or `authorization: Bearer KEY` / `x-api-key: KEY` metadata holds it (constant-time)."""
    if expected is None:
        return True
    given = dict(metadata)
    key = given.get("x-api-key") or str(given.get("authorization", "")).removeprefix("Bearer ")
    return hmac.compare_digest(str(key).encode(), expected.encode())
