"""The API key check every transport makes (REST's headers, gRPC's metadata): the same rule and the same words."""

from __future__ import annotations

import hmac

__all__ = ["REFUSED", "key_given"]

REFUSED = "missing or wrong API key"
"""What a request without the right key is told (REST's 401, gRPC's UNAUTHENTICATED)."""


def key_given(expected: str, x_api_key: str | bytes | None, authorization: str | bytes | None) -> bool:
    """Whether `X-API-Key: KEY`, else `Authorization: Bearer KEY`, holds `expected` (compared in constant time)."""
    given = x_api_key or authorization or ""
    if isinstance(given, str):
        given = given.encode()
    if not x_api_key:
        given = given.removeprefix(b"Bearer ")
    return hmac.compare_digest(given, expected.encode())
