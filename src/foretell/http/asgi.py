"""The few raw-ASGI pieces the hot endpoints need: header lookup, bounded body reading, replies.

Kept apart from the endpoints so each stays a short "decode → service → encode".
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import Receive, Send

from foretell import tracing
from foretell.errors import BodyTooLarge, ClientDisconnected

__all__ = ["header", "read_body", "reply"]

RawHeaders = Iterable[tuple[bytes, bytes]]


def header(headers: RawHeaders, name: bytes) -> str | None:
    """One request header's value (`name` lower-case, as ASGI servers give them), or None."""
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


async def read_body(receive: Receive, declared_length: str | None, limit: int) -> bytes:
    """The whole request body, refusing one over `limit` bytes as soon as that is known."""
    # ASCII digits only: str.isdigit alone takes '²', which int() refuses.
    if declared_length and declared_length.isascii() and declared_length.isdigit() and int(declared_length) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected("the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        if not message.get("more_body", False):
            if not chunks:
                return bytes(chunk)
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)


async def reply(send: Send, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    """Send a complete response; JSON unless `headers` names another content type."""
    raw = [(b"content-length", str(len(body)).encode())]
    content_type = b"application/json"
    for name, value in (headers or {}).items():
        if name.lower() == "content-type":
            content_type = value.encode("latin-1")
        else:
            raw.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    raw.append((b"content-type", content_type))
    if tracing.tracer is not None and (parent := tracing.answered(status)) is not None:
        raw.append((b"traceparent", parent))  # here rather than by wrapping `send`: a third of tracing's fixed cost
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
