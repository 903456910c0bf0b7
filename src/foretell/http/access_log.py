"""Structured access logs: one JSON object per request, on the `foretell.access` logger.

Off by default: writing a line per request costs the hot path a large share of its
throughput (docs/serving.md, "Access logs"). When on, each line is plain JSON a log
shipper can parse without a pattern: `{"ts": ..., "client": ..., "method": ...,
"path": ..., "status": ..., "bytes": ..., "ms": ..., "request_id": ...}`. `request_id` is
the `X-Request-ID` header, when the client (or a proxy in front) sent one.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from foretell.config import lines_on_stderr
from foretell.http.asgi import header

__all__ = ["ACCESS_LOGGER", "with_access_log"]

ACCESS_LOGGER = "foretell.access"
log = logging.getLogger(ACCESS_LOGGER)


def with_access_log(app: ASGIApp) -> ASGIApp:
    """`app`, writing one JSON line per HTTP request to `foretell.access` (stderr unless configured)."""
    lines_on_stderr(ACCESS_LOGGER)

    async def logged(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status, size = 0, 0

        async def watched(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await app(scope, receive, watched)
        finally:
            client = scope.get("client")
            entry = {
                "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "client": f"{client[0]}:{client[1]}" if client else None,
                "method": scope["method"],
                "path": scope["path"],
                "status": status or None,  # None: the connection ended before a response started
                "bytes": size,
                "ms": round((time.perf_counter() - started) * 1000, 3),
                "request_id": header(scope["headers"], b"x-request-id"),
            }
            log.info(orjson.dumps(entry).decode())

    return logged
