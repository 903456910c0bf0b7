"""OpenTelemetry tracing: off unless asked for, and then a span per request, batch and chunk.

Tracing off must cost nothing: this module imports no OpenTelemetry package until
`enable` runs, and every instrumented place asks one question first (`tracer is None`),
so a server without `--tracing` runs the code it ran before, plus that one test.

Tracing on must cost little (issue 19: at most 10 % of a server's requests/s), and the
SDK's own spans cost 12-15 µs each. So foretell records its spans itself (ids, times and
attributes; no SDK object on the request path) and its exporter gets them as the SDK's own
`ReadableSpan`s (ids as its generator draws them, W3C trace context, the resource from
`OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`), made in batches on the export thread
when the processor is the SDK's `BatchSpanProcessor` (`tracing.export`). The current
span is this module's own context variable, not OpenTelemetry's. `enable` exports as the
`OTEL_*` variables say (`tracing.settings`); tests hand it their own processor.

Spans cross the micro-batcher by hand: a request waits in a queue that another task
drains, so its span context travels on its queue entry (`Pending.trace`), and the batch's
span links to every request it answers (docs/tracing.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from random import getrandbits
from typing import TYPE_CHECKING, Any, TypeVar

from foretell.tracing import settings
from foretell.tracing.context import parsed, traceparent, traceparent_header
from foretell.tracing.export import Exporting, batching_front, readables
from foretell.tracing.noop import NO_SPAN as _NO_SPAN
from foretell.tracing.noop import UNTRACED as _UNTRACED
from foretell.tracing.noop import NoSpan as _NoSpan
from foretell.tracing.settings import require

if TYPE_CHECKING:  # never at run time: tracing off imports no OpenTelemetry module
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
    from opentelemetry.trace import SpanContext

__all__ = [
    "Queued",
    "Span",
    "annotate",
    "answered",
    "batch_taken",
    "child",
    "continued",
    "current_span",
    "disable",
    "enable",
    "enabled",
    "ended",
    "flush",
    "leaf",
    "maybe_span",
    "queued",
    "recorded",
    "require",
    "resumed",
    "span",
    "timed",
    "traceparent",
    "traceparent_header",
    "tracer",
]

_new_tuple = tuple.__new__

Queued = tuple["Span", int]
"""A queued request's span and when it was queued (ns since the epoch, as spans count time)."""

Child = tuple["Span", str, dict[str, Any], int, int, BaseException | None]
"""A finished span that had no `Span` (a leaf, a queue wait): parent, name, attributes, start, end, error."""


class Tracer:
    """Where finished spans go, and what they are stamped with: one per process while tracing is on.

    Every span foretell records ends in `record`: foretell's own record of it (a `Span`, or for
    a span that had no `Span` a tuple) queued for `Exporting`'s thread, or, for a processor that
    is not the SDK's batching one, handed to it at once. `readable` is the one place that turns
    those records into the SDK's `ReadableSpan`, with the few SDK values they share looked up once.
    """

    def __init__(self, processor: SpanProcessor | None, resource: Resource, sampler: tuple[bool, float]) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.processor = processor
        self.exporting: Exporting | None = None if processor is None else batching_front(processor, self.readable)
        self.record: Callable[[Any], None] | None = None  # None: no processor, nothing recorded goes anywhere
        """Where a `Span` goes when it ends."""
        self.append: Callable[[Any], None] | None = None
        """Where a `Child` goes: the queue itself (a request's children end before it, which checks the queue)."""
        if self.exporting is not None:
            self.record, self.append = self.exporting.add, self.exporting.queue.append
        elif processor is not None:
            self.record = self.append = self._hand
        self.resource = resource
        self.scope = InstrumentationScope("foretell")
        self.parent_based, ratio = sampler
        self.bound = round(ratio * (1 << 64))
        self.readable_span = ReadableSpan
        self.api = trace
        self.trace_state = trace.DEFAULT_TRACE_STATE
        self.link = trace.Link
        self.sampled = trace.TraceFlags(trace.TraceFlags.SAMPLED)
        self.unsampled = trace.TraceFlags(trace.TraceFlags.DEFAULT)
        self.unset = trace.Status(trace.StatusCode.UNSET)
        self.internal = trace.SpanKind.INTERNAL
        self.server = trace.SpanKind.SERVER

    def root(self, name: str, parent: SpanContext | None, attributes: dict[str, Any], kind: Any) -> Span:
        """A span whose parent is in another process (`parent`, from a `traceparent`) or that starts a trace."""
        if parent is not None:
            trace_id = parent.trace_id
            sampled = parent.trace_flags.sampled if self.parent_based else self._ratio(trace_id)
        else:
            trace_id = getrandbits(128) or 1  # as the SDK's RandomIdGenerator, without its retry loop
            sampled = self._ratio(trace_id)
        return Span(name, trace_id, getrandbits(64) or 1, parent, sampled, attributes, time.time_ns(), kind)

    def _ratio(self, trace_id: int) -> bool:
        return (trace_id & 0xFFFFFFFFFFFFFFFF) < self.bound  # as the SDK's TraceIdRatioBased decides

    def context_for(self, span: Span) -> SpanContext:
        """`span`'s `SpanContext`, made once (its own end, its children's, a batch's link may each ask)."""
        context = span._context
        if context is None:
            flags = self.sampled if span.sampled else self.unsampled
            context = span._context = _new_tuple(
                self.api.SpanContext, (span.trace_id, span.span_id, False, flags, self.trace_state, True)
            )
        return context

    def _hand(self, record: Span | Child) -> None:
        self.processor.on_end(self.readable([record])[0])  # type: ignore[union-attr] # only made with a processor

    def readable(self, records: Iterable[Span | Child]) -> list[ReadableSpan]:
        """The SDK's `ReadableSpan`s of finished spans (`tracing.export.readables`)."""
        return readables(self, records)

    def failed(self, attributes: dict[str, Any], error: BaseException) -> Any:
        attributes["exception.type"] = type(error).__name__
        return self.api.Status(self.api.StatusCode.ERROR, f"{type(error).__name__}: {error}")


tracer: Tracer | None = None
"""The tracer while tracing is on; None (the hot path's one test) while it is off."""


class Span:
    """One span being recorded: ids, times and attributes, and nothing of the SDK's until it ends.

    As a `with`, it is the current span inside, ends on the way out, and records the error
    that left it (a class, not a generator: this runs several times per request). Its
    `SpanContext` is made once, when something asks for it (the span's own end, a child's,
    a batch's link), not when the span starts.
    """

    __slots__ = (
        "_context", "attributes", "end_time", "error", "kind", "links", "name", "parent", "sampled", "span_id", "start",
        "token", "trace_id",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        trace_id: int,
        span_id: int,
        parent: Span | SpanContext | None,
        sampled: bool,
        attributes: dict[str, Any],
        start: int,
        kind: Any = None,
        links: tuple[Span, ...] = (),
    ) -> None:
        self.name = name
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent = parent
        self.sampled = sampled
        self.attributes = attributes
        self.start = start
        self.kind = kind
        self.links = links
        """The spans this one links to (a batch: the requests it answers), made `Link`s when it is exported."""
        self.end_time = 0
        self.error: BaseException | None = None
        self.token: Any = None
        self._context: SpanContext | None = None

    def __enter__(self) -> Span:
        self.token = _current.set(self)
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        _current.reset(self.token)
        if error is not None:
            self.error = error
        if self.sampled and tracer is not None and (record := tracer.record) is not None:  # `end()`, inlined
            self.end_time = time.time_ns()
            record(self)

    @property
    def context(self) -> SpanContext:
        """The SDK's `SpanContext` of this span (made on first use, then kept)."""
        t = tracer
        assert t is not None
        return t.context_for(self)

    def get_span_context(self) -> SpanContext:
        return self.context

    def update_name(self, name: str) -> None:
        self.name = name

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        self.attributes.update(attributes)

    def record_exception(self, error: BaseException) -> None:
        self.error = error

    def end(self, end_time: int | None = None) -> None:
        t = tracer
        if t is not None and self.sampled and (record := t.record) is not None:
            self.end_time = time.time_ns() if end_time is None else end_time
            record(self)

    def child(self, name: str, attributes: dict[str, Any], start: int | None = None) -> Span:
        """A new span under this one, in its trace and its sampling decision."""
        return Span(
            name, self.trace_id, getrandbits(64) or 1, self, self.sampled, attributes,
            time.time_ns() if start is None else start,
        )  # fmt: skip


_current: ContextVar[Span | None] = ContextVar("foretell_span", default=None)


def enabled() -> bool:
    return tracer is not None


def enable(processor: SpanProcessor | None = None, *, environ: Mapping[str, str] | None = None) -> None:
    """Turn tracing on for this process, exporting through `processor` or as the `OTEL_*` variables say.

    Raises `MissingExtra` (naming the `otel` extra) when the SDK or the OTLP exporter is
    not installed, and `InvalidServeConfig` for an `OTEL_*` setting it cannot honour.
    """
    global tracer
    env = os.environ if environ is None else environ
    settings.require(env)
    from opentelemetry.sdk.resources import Resource

    sampler = settings.sampler_from(env)
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", "foretell")})
    chosen = processor if processor is not None else settings.processor_from(env)
    disable()
    tracer = Tracer(chosen, resource, sampler)


def flush() -> None:
    """Export the spans still waiting in the span processor's queue (a server or consumer stopping)."""
    current = tracer
    if current is not None and current.processor is not None:
        (current.exporting or current.processor).force_flush()


def disable() -> None:
    """Flush and stop exporting; the hot paths are untraced again."""
    global tracer
    current, tracer = tracer, None
    if current is not None and current.processor is not None:
        (current.exporting or current.processor).shutdown()


# -- spans (call only while `tracer` is not None) ----------------------------------------------


def continued(name: str, headers: Iterable[tuple[bytes, bytes]], attributes: dict[str, Any] | None = None) -> Span:
    """A request's server span, continuing the caller's W3C `traceparent` (make it current with `with`); it
    keeps `attributes` (a new dict, not a copy) as its own."""
    t = tracer
    assert t is not None
    for key, value in headers:
        if key == b"traceparent":
            return t.root(name, parsed(value.decode("latin-1")), {} if attributes is None else attributes, t.server)
    trace_id = getrandbits(128) or 1  # `root` without a parent, inlined: every traced request starts here
    sampled = (trace_id & 0xFFFFFFFFFFFFFFFF) < t.bound
    return Span(
        name, trace_id, getrandbits(64) or 1, None, sampled, {} if attributes is None else attributes, time.time_ns(),
        t.server,
    )  # fmt: skip


def resumed(parent: str, name: str, **attributes: Any) -> Any:
    """A span continuing the trace a `traceparent` string names (sent to another process), or None while off."""
    if tracer is None:  # a worker process that was not told to trace
        return _UNTRACED
    return tracer.root(name, parsed(parent), attributes, None)


def answered(status: int) -> bytes | None:
    """The `traceparent` a response names its request by (sampled or not), once its status is known; None outside
    a request. The status goes on the request's span (`http.response.status_code`), which says it was answered."""
    current = _current.get()
    if current is None:
        return None
    current.attributes[STATUS_CODE] = status
    return b"00-%032x-%016x-%s" % (current.trace_id, current.span_id, b"01" if current.sampled else b"00")


STATUS_CODE = "http.response.status_code"


def span(name: str, **attributes: Any) -> Any:
    """A child of the current span, current itself inside the `with`; nothing under a trace not sampled."""
    current = _current.get()
    if current is None:
        assert tracer is not None
        return tracer.root(name, None, attributes, None)
    if not current.sampled:  # nothing under it is recorded: spend nothing on it (most requests, when sampling)
        return _UNTRACED
    return current.child(name, attributes)


def leaf(name: str, **attributes: Any) -> Any:
    """`span(name)` for a step that opens no span inside it (decode, ledger enqueue): it is never the current
    span, so it costs a third of one (no `Span`, no context variable); a shared no-op `with` while off."""
    if tracer is None:
        return _UNTRACED
    current = _current.get()
    if current is None:
        return tracer.root(name, None, attributes, None)
    if not current.sampled:
        return _UNTRACED
    return _Leaf(current, name, attributes)


def timed(parent: Span, name: str, attributes: dict[str, Any], run: Callable[..., R], *args: Any) -> R:
    """`run(*args)` recorded as a leaf span under `parent` (a recorded span: `recorded()`), with the error that
    leaves it: a `leaf` for the hot path, in one call rather than a `with`'s four."""
    start = time.time_ns()
    try:
        result = run(*args)
    except BaseException as error:
        if tracer is not None and (append := tracer.append) is not None:
            append((parent, name, attributes, start, time.time_ns(), error))
        raise
    if tracer is not None and (append := tracer.append) is not None:
        append((parent, name, attributes, start, time.time_ns(), None))
    return result


R = TypeVar("R")


class _Leaf:
    """A span no other span is opened under: recorded when its `with` ends, as a child of the span current then."""

    __slots__ = ("attributes", "name", "parent", "start")

    def __init__(self, parent: Span, name: str, attributes: dict[str, Any]) -> None:
        self.parent = parent
        self.name = name
        self.attributes = attributes
        self.start = time.time_ns()

    def __enter__(self) -> _Leaf:
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        t = tracer
        if t is not None and (append := t.append) is not None:
            append((self.parent, self.name, self.attributes, self.start, time.time_ns(), error))


def current_span() -> Span | _NoSpan:
    """The current span when it is recorded; else one that takes attributes and keeps none."""
    current = _current.get()
    return current if current is not None and current.sampled else _NO_SPAN


def recorded() -> Span | None:
    """The current span if it is recorded (sampled), else None: for work that only a recorded span needs."""
    current = _current.get()
    return current if current is not None and current.sampled else None


def queued() -> Queued | None:
    """What a request entering the micro-batcher's queue carries across it: its span and the time."""
    current = _current.get()
    return None if current is None or not current.sampled else (current, time.time_ns())


def batch_taken(requests: Iterable[Queued | None], rows: int) -> Span | None:
    """The span of one model call on a batch of `requests` (a child of the first, linked to every one), after
    one `queue wait` span per request, from its arrival until now; None if none was traced."""
    t = tracer
    traced = [request for request in requests if request is not None]  # none from before tracing was turned on
    if t is None or not traced:
        return None
    now = time.time_ns()
    append = t.append
    if append is not None:
        for parent, since in traced:
            append((parent, "queue wait", {}, since, now, None))
    batch = traced[0][0].child("batch", {"foretell.batch.rows": rows, "foretell.batch.requests": len(traced)})
    batch.links = tuple(request for request, _ in traced)
    return batch


def child(parent: Span | None, name: str) -> Any:
    """A child of `parent` in any thread (the model thread has no current span of the request), current in its
    `with`, which records the error that leaves it; a shared no-op `with` when `parent` is None or tracing is off."""
    if parent is None or tracer is None:  # also turned off while the batch waited: its model call runs all the same
        return _UNTRACED
    return parent.child(name, {})


def ended(span: Span | None, error: BaseException | None = None) -> None:
    """End `span` (if there is one), failed with `error` if given."""
    if span is not None:
        if error is not None:
            span.record_exception(error)
        span.end()


def maybe_span(name: str, **attributes: Any) -> Any:
    """`span(name)` while tracing is on, else a shared no-op `with`: for paths where one call costs nothing."""
    return _UNTRACED if tracer is None else span(name, **attributes)


def annotate(**attributes: Any) -> None:
    """Set attributes on the current span (the request's) while tracing is on; nothing while it is off."""
    if tracer is not None:
        current_span().set_attributes({k.replace("_", "."): v for k, v in attributes.items()})
