"""Whether a request may go on: its key, the scope its route needs, the key's rate limit. Every transport asks here.

A server has keys when `FORETELL_API_KEY` (or the serve config's `api_key`) is set, which is a key
with every scope and no limit, or when FORETELL_HOME holds a key book (`foretell keys create`).
A key found in the book is remembered for a second, so a request costs no lookup and a revoked
key stops working within a second. Rate limits are token buckets per key, in this process.
"""

from __future__ import annotations

import hmac
import math
import time
from dataclasses import dataclass
from pathlib import Path

from foretell.access import ApiKey, KeyBook

__all__ = ["REFUSED", "Access", "Decision", "presented"]

REFUSED = "missing or wrong API key"
"""What a request without a valid key is told (REST's 401, gRPC's UNAUTHENTICATED)."""

CACHE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Decision:
    """What to answer: `status` 0 to go on, else 401, 403 or 429 with `message` (and `retry_after` for 429)."""

    status: int
    message: str = ""
    retry_after: int = 0


_GO = Decision(0)
_REFUSED = Decision(401, REFUSED)


class Access:
    def __init__(self, *, single_key: str | None = None, book: KeyBook | None = None) -> None:
        self._single = None if single_key is None else single_key.encode()
        self._book = book
        self._found: dict[bytes, tuple[float, ApiKey | None]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}

    @classmethod
    def of(cls, home: Path | None, single_key: str | None) -> Access | None:
        """The access rules for a server on `home`, or None when it has no keys (everything is open)."""
        book = KeyBook(home) if home is not None and KeyBook.exists_in(home) else None
        if single_key is None and book is None:
            return None
        return cls(single_key=single_key, book=book)

    def decide(self, given: bytes | None, scope: str | None) -> Decision:
        """`given`: the token presented (`X-API-Key`, or `Authorization: Bearer`), None when there is none;
        `scope` None: any valid key will do (the dashboard's pages, which only read)."""
        if not given:
            return _REFUSED
        if self._single is not None and hmac.compare_digest(given, self._single):
            return _GO
        key = self._key(given)
        if key is None:
            return _REFUSED
        if scope is not None and not key.allows(scope):
            return Decision(
                403,
                f"API key {key.name!r} lacks the {scope!r} scope this route needs (it has: {', '.join(key.scopes)})",
            )
        if key.rate is not None:
            wait = self._take(key.id, key.rate)
            if wait > 0:
                return Decision(
                    429, f"API key {key.name!r} is over its rate limit of {key.rate:g} requests/s", math.ceil(wait)
                )
        return _GO

    def _key(self, given: bytes) -> ApiKey | None:
        if self._book is None:
            return None
        now = time.monotonic()
        cached = self._found.get(given)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        key = self._book.find(given)
        if len(self._found) > 10_000:  # wrong keys sent in bulk must not grow this without end
            self._found.clear()
        self._found[given] = (now, key)
        return key

    def _take(self, key_id: str, rate: float) -> float:
        """Take one request from the key's bucket; the seconds to wait when it is empty (0: taken)."""
        now = time.monotonic()
        tokens, then = self._buckets.get(key_id, (rate, now))
        tokens = min(rate, tokens + (now - then) * rate)
        if tokens < 1:
            self._buckets[key_id] = (tokens, now)
            return (1 - tokens) / rate
        self._buckets[key_id] = (tokens - 1, now)
        return 0.0


def presented(x_api_key: bytes | str | None, authorization: bytes | str | None) -> bytes | None:
    """The token a request presents: `X-API-Key: KEY`, else `Authorization: Bearer KEY`."""
    given = x_api_key or authorization
    if not given:
        return None
    if isinstance(given, str):
        given = given.encode()
    return given if x_api_key else given.removeprefix(b"Bearer ")
