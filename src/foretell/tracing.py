"""OpenTelemetry tracing: off unless asked for, and then a span per request, batch and chunk.

Tracing off must cost nothing: this module imports no OpenTelemetry package until
`enable` runs, and every instrumented place asks one question first (`tracer is None`),
so a server without `--tracing` runs the code it ran before, plus that one test.

Tracing on must cost little (issue 19: at most 10 % of a server's requests/s), and the
SDK's own spans do not: each costs 12-15 µs of Python (locks, attribute validation,
context tokens), half a served request's budget for five of them. So foretell records its
spans itself and hands each, finished, to the SDK's span processor as the SDK's own
`ReadableSpan`: what an exporter receives is exactly what the SDK would send (random ids as
its generator makes them, W3C trace context, the resource from `OTEL_SERVICE_NAME` /
`OTEL_RESOURCE_ATTRIBUTES`), at about 3 µs a span. The current span is this module's own
context variable, not OpenTelemetry's context: nothing else in a foretell process makes
spans under foretell's.

`enable` exports as the standard variables say: `OTEL_TRACES_EXPORTER` (`otlp`, the default,
over HTTP/protobuf to `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`;
`console`; `none`) behind the SDK's batching span processor (`OTEL_BSP_*`), so exporting
never runs on a request's path; `OTEL_TRACES_SAMPLER` (`parentbased_always_on`, the
default, `always_on`, `always_off`, `traceidratio` and their `parentbased_` forms, with
`OTEL_TRACES_SAMPLER_ARG`) decides which traces are recorded. Tests hand it their own
processor (an in-memory exporter).

Spans cross the micro-batcher by hand: a request waits in a queue that another task
drains, so its span context travels on its queue entry (`Pending.trace`), and the batch's
span links to every request it answers (docs/tracing.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from random import getrandbits
from typing import TYPE_CHECKING, Any

from foretell.errors import InvalidServeConfig, MissingExtra

if TYPE_CHECKING:  # never at run time: tracing off imports no OpenTelemetry module
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.trace import SpanContext

__all__ = [
    "Queued",
    "Span",
    "annotate",
    "batch_span",
    "child",
    "continued",
    "current_span",
    "disable",
    "enable",
    "enabled",
    "maybe_span",
    "queue_waits",
    "queued",
    "require",
    "resumed",
    "span",
    "traceparent",
    "tracer",
]

EXPORTERS = ("otlp", "console", "none")
SAMPLERS = ("always_on", "always_off", "traceidratio")
EXTRA = "otel"

Queued = tuple["SpanContext", int]
"""A queued request's span context and when it was queued (ns since the epoch, as spans count time)."""


class Tracer:
    """Where finished spans go, and what they are stamped with: one per process while tracing is on."""

    def __init__(self, processor: SpanProcessor | None, resource: Resource, sampler: tuple[bool, float]) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.processor = processor
        self.resource = resource
        self.scope = InstrumentationScope("foretell")
        self.parent_based, ratio = sampler
        self.bound = round(ratio * (1 << 64))
        self.readable = ReadableSpan
        self.api = trace
        self.sampled = trace.TraceFlags(trace.TraceFlags.SAMPLED)
        self.unsampled = trace.TraceFlags(trace.TraceFlags.DEFAULT)
        self.unset = trace.Status(trace.StatusCode.UNSET)
        self.internal = trace.SpanKind.INTERNAL

    def context(self, parent: SpanContext | None) -> SpanContext:
        """A new span's context: in its parent's trace (and sampling decision), else in a new, sampled or not."""
        if parent is not None and parent.is_valid:
            trace_id = parent.trace_id
            sampled = parent.trace_flags.sampled if self.parent_based or not parent.is_remote else self._ratio(trace_id)
        else:
            trace_id = getrandbits(128) or 1  # as the SDK's RandomIdGenerator, without its retry loop
            sampled = self._ratio(trace_id)
        flags = self.sampled if sampled else self.unsampled
        return self.api.SpanContext(trace_id, getrandbits(64) or 1, False, flags)

    def _ratio(self, trace_id: int) -> bool:
        return (trace_id & 0xFFFFFFFFFFFFFFFF) < self.bound  # as the SDK's TraceIdRatioBased decides


tracer: Tracer | None = None
"""The tracer while tracing is on; None (the hot path's one test) while it is off."""


class Span:
    """One span being recorded; on `end` it goes to the span processor as the SDK's `ReadableSpan`.

    As a `with`, it is the current span inside, ends on the way out, and records the error
    that left it (a class, not a generator: this runs several times per request).
    """

    __slots__ = ("attributes", "context", "error", "kind", "links", "name", "parent", "sampled", "start", "token")

    def __init__(
        self,
        name: str,
        parent: SpanContext | None,
        attributes: dict[str, Any],
        *,
        start: int | None = None,
        kind: Any = None,
        links: tuple[Any, ...] = (),
    ) -> None:
        assert tracer is not None
        self.name = name
        self.parent = parent
        self.context = tracer.context(parent)
        self.sampled: bool = self.context.trace_flags.sampled
        self.attributes = attributes
        self.start = time.time_ns() if start is None else start
        self.kind = kind
        self.links = links
        self.error: BaseException | None = None
        self.token: Any = None

    def __enter__(self) -> Span:
        self.token = _current.set(self)
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        _current.reset(self.token)
        if error is not None:
            self.error = error
        self.end()

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
        if t is None or t.processor is None or not self.sampled:
            return
        status = None
        if self.error is not None:
            from opentelemetry.trace import Status, StatusCode

            self.attributes["exception.type"] = type(self.error).__name__
            status = Status(StatusCode.ERROR, f"{type(self.error).__name__}: {self.error}")
        finished = t.readable(
            name=self.name,
            context=self.context,
            parent=self.parent,
            resource=t.resource,
            attributes=self.attributes,
            links=self.links,
            kind=self.kind if self.kind is not None else t.internal,
            status=status or t.unset,
            start_time=self.start,
            end_time=time.time_ns() if end_time is None else end_time,
            instrumentation_scope=t.scope,
        )
        t.processor.on_end(finished)


class _NoSpan:
    """The current span outside any: what is set on it goes nowhere."""

    def set_attribute(self, key: str, value: Any) -> None:
        return None

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        return None

    def update_name(self, name: str) -> None:
        return None


_NO_SPAN = _NoSpan()
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
    require(env)
    from opentelemetry.sdk.resources import Resource

    sampler = _sampler_from(env)
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", "foretell")})
    chosen = processor if processor is not None else _processor_from(env)
    disable()
    tracer = Tracer(chosen, resource, sampler)


def require(environ: Mapping[str, str] | None = None) -> None:
    """Check that tracing can be turned on as the `OTEL_*` variables say, without turning it on."""
    env = os.environ if environ is None else environ
    try:
        import opentelemetry.sdk.trace  # noqa: F401 - only whether it imports
    except ImportError:
        raise MissingExtra("tracing", "opentelemetry-sdk", EXTRA, needed_by="tracing") from None
    _sampler_from(env)
    _processor_from(env, build=False)


def disable() -> None:
    """Flush and stop exporting; the hot paths are untraced again."""
    global tracer
    current, tracer = tracer, None
    if current is not None and current.processor is not None:
        current.processor.shutdown()


def _sampler_from(env: Mapping[str, str]) -> tuple[bool, float]:
    """(parent-based?, the share of new traces recorded) from `OTEL_TRACES_SAMPLER` and its argument."""
    name = env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower() or "parentbased_always_on"
    parent_based = name.startswith("parentbased_")
    kind = name.removeprefix("parentbased_")
    if kind not in SAMPLERS:
        known = [*SAMPLERS, *(f"parentbased_{s}" for s in SAMPLERS)]
        raise InvalidServeConfig(f"OTEL_TRACES_SAMPLER must be one of {known}, got {name!r}")
    if kind != "traceidratio":
        return parent_based, 1.0 if kind == "always_on" else 0.0
    raw = env.get("OTEL_TRACES_SAMPLER_ARG", "1.0")
    try:
        ratio = float(raw)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise InvalidServeConfig(f"OTEL_TRACES_SAMPLER_ARG must be a ratio between 0 and 1, got {raw!r}")
    return parent_based, ratio


def _processor_from(env: Mapping[str, str], *, build: bool = True) -> SpanProcessor | None:
    name = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if name not in EXPORTERS:
        raise InvalidServeConfig(f"OTEL_TRACES_EXPORTER must be one of {list(EXPORTERS)}, got {name!r}")
    if name == "none":
        return None
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if name == "console":
        return BatchSpanProcessor(ConsoleSpanExporter()) if build else None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise MissingExtra(
            "tracing", "opentelemetry-exporter-otlp-proto-http", EXTRA, needed_by="the OTLP trace exporter"
        ) from None
    return BatchSpanProcessor(OTLPSpanExporter()) if build else None  # reads OTEL_EXPORTER_OTLP_* itself


# -- spans (call only while `tracer` is not None) ----------------------------------------------


def continued(name: str, headers: Iterable[tuple[bytes, bytes]], **attributes: Any) -> Span:
    """A request's server span, current while the request runs, continuing the caller's W3C `traceparent`."""
    assert tracer is not None
    parent = None
    for key, value in headers:
        if key == b"traceparent":
            parent = _parsed(value.decode("latin-1"))
    return Span(name, parent, attributes, kind=tracer.api.SpanKind.SERVER)


def resumed(parent: str, name: str, **attributes: Any) -> Any:
    """A span continuing the trace a `traceparent` string names (sent to another process), or None while off."""
    if tracer is None:  # a worker process that was not told to trace
        return _UNTRACED
    return Span(name, _parsed(parent), attributes)


def _parsed(header: str) -> SpanContext | None:
    assert tracer is not None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    found = tracer.api.get_current_span(TraceContextTextMapPropagator().extract({"traceparent": header}))
    context = found.get_span_context()
    return context if context.is_valid else None


def traceparent(current: Span) -> str:
    """The W3C `traceparent` naming `current`, for a response to hand back or a worker process to continue."""
    context = current.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def span(name: str, **attributes: Any) -> Any:
    """A child of the current span, current itself inside the `with`; nothing under a trace not sampled."""
    current = _current.get()
    if current is None:
        return Span(name, None, attributes)
    if not current.sampled:  # nothing under it is recorded: spend nothing on it (most requests, when sampling)
        return _UNTRACED
    return Span(name, current.context, attributes)


def current_span() -> Span | _NoSpan:
    """The current span when it is recorded; else one that takes attributes and keeps none."""
    current = _current.get()
    return current if current is not None and current.sampled else _NO_SPAN


def queued() -> Queued | None:
    """What a request entering the micro-batcher's queue carries across it: its span context and the time."""
    current = _current.get()
    return None if current is None or not current.sampled else (current.context, time.time_ns())


def queue_waits(entries: Iterable[Queued]) -> None:
    """One ended `queue wait` span per request just taken into a batch, from its arrival until now."""
    now = time.time_ns()
    for parent, since in entries:
        Span("queue wait", parent, {}, start=since).end(now)


def batch_span(requests: list[Queued], rows: int) -> Span:
    """The span of one model call on a batch: a child of its first request, linked to every request in it."""
    assert tracer is not None
    links = tuple(tracer.api.Link(context) for context, _ in requests)
    attributes = {"foretell.batch.rows": rows, "foretell.batch.requests": len(requests)}
    return Span("batch", requests[0][0], attributes, links=links)


@contextmanager
def child(parent: Span, name: str) -> Iterator[Span | None]:
    """A child of `parent` in any thread (the model thread has no current span of the request)."""
    if tracer is None:  # turned off while the batch waited: its model call must run all the same
        yield None
        return
    recorded = Span(name, parent.context, {})
    try:
        yield recorded
    except BaseException as error:
        recorded.record_exception(error)
        raise
    finally:
        recorded.end()


class _Untraced:
    """What `maybe_span` gives while tracing is off: a `with` that does nothing (one shared instance)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_UNTRACED = _Untraced()


def maybe_span(name: str, **attributes: Any) -> Any:
    """`span(name)` while tracing is on, else a shared no-op `with`: for paths where one call costs nothing."""
    return _UNTRACED if tracer is None else span(name, **attributes)


def annotate(**attributes: Any) -> None:
    """Set attributes on the current span (the request's) while tracing is on; nothing while it is off."""
    if tracer is not None:
        current_span().set_attributes({k.replace("_", "."): v for k, v in attributes.items()})
