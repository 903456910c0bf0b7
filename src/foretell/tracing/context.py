"""W3C trace context: a caller's `traceparent` read, and ours written, on every traced request.

A split and three hex reads, as the W3C spec (and the SDK's propagator's regular
expression) reads it, and %-formatting to write: every request pays these, so no regex
and no propagator objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

    from foretell.tracing import Span

__all__ = ["parsed", "traceparent", "traceparent_header"]


def parsed(header: str) -> SpanContext | None:
    """The caller's span from a W3C `traceparent` (version 00, or a later one read as 00), or None if malformed."""
    from opentelemetry.trace import SpanContext, TraceFlags  # imported already: only a tracing process calls this

    parts = header.strip().split("-")
    if len(parts) < 4:
        return None
    version, trace, span, flags = parts[0], parts[1], parts[2], parts[3]
    if len(version) != 2 or len(trace) != 32 or len(span) != 16 or len(flags) != 2 or version == "ff":
        return None
    if (version == "00" and len(parts) != 4) or not _HEX.issuperset(version + trace + span + flags):
        return None
    trace_id, span_id = int(trace, 16), int(span, 16)
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, True, TraceFlags(int(flags, 16)))


_HEX = frozenset("0123456789abcdef")


def traceparent(current: Span) -> str:
    """The W3C `traceparent` naming `current`, for a response to hand back or a worker process to continue."""
    return "00-%032x-%016x-%s" % (current.trace_id, current.span_id, "01" if current.sampled else "00")  # noqa: UP031 - twice as fast as an f-string with format specs


def traceparent_header(current: Span) -> bytes:
    """`traceparent(current)` as a header value: every traced response carries one."""
    return b"00-%032x-%016x-%s" % (current.trace_id, current.span_id, b"01" if current.sampled else b"00")
