"""OpenTelemetry tracing: off unless asked for, and then a span per request, batch and chunk.

Tracing off must cost nothing: this module imports no OpenTelemetry package until
`enable` runs, and every instrumented place asks one question first (`tracer is None`),
so a server without `--tracing` runs the code it ran before, plus that one test.

`enable` builds the SDK's tracer provider from the standard variables: the resource from
`OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` (the SDK reads them), the exporter from
`OTEL_TRACES_EXPORTER` (`otlp`, the default, over HTTP/protobuf to
`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `console`; `none`),
behind the SDK's batching span processor (`OTEL_BSP_*`), so exporting never runs on a
request's path. Tests hand it their own processor (an in-memory exporter).

Spans cross the micro-batcher by hand: a request waits in a queue that another task
drains, so its span context travels on its queue entry (`Pending.trace`), and the batch's
span links to every request it answers (docs/tracing.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from foretell.errors import InvalidServeConfig, MissingExtra

if TYPE_CHECKING:  # never at run time: tracing off imports no OpenTelemetry module
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import Span, SpanContext, Tracer

__all__ = [
    "Queued",
    "annotate",
    "batch_span",
    "child",
    "continued",
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

tracer: Tracer | None = None
"""The tracer while tracing is on; None (the hot path's one test) while it is off."""
_provider: TracerProvider | None = None

EXPORTERS = ("otlp", "console", "none")
EXTRA = "otel"

Queued = tuple["SpanContext", int]
"""A queued request's span context and when it was queued (ns since the epoch, as spans count time)."""


def enabled() -> bool:
    return tracer is not None


def enable(processor: SpanProcessor | None = None, *, environ: Mapping[str, str] | None = None) -> None:
    """Turn tracing on for this process, exporting through `processor` or as the `OTEL_*` variables say.

    Raises `MissingExtra` (naming the `otel` extra) when the SDK or the OTLP exporter is
    not installed, and `InvalidServeConfig` for an `OTEL_TRACES_EXPORTER` it cannot honour.
    """
    global tracer, _provider
    env = os.environ if environ is None else environ
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        raise MissingExtra("tracing", "opentelemetry-sdk", EXTRA, needed_by="tracing") from None
    provider = TracerProvider(resource=Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", "foretell")}))
    chosen = processor if processor is not None else _processor_from(env)
    if chosen is not None:
        provider.add_span_processor(chosen)
    if _provider is not None:
        _provider.shutdown()
    _provider = provider
    tracer = provider.get_tracer("foretell")


def require(environ: Mapping[str, str] | None = None) -> None:
    """Check that tracing can be turned on as the `OTEL_*` variables say, without turning it on."""
    env = os.environ if environ is None else environ
    try:
        import opentelemetry.sdk.trace  # noqa: F401 - only whether it imports
    except ImportError:
        raise MissingExtra("tracing", "opentelemetry-sdk", EXTRA, needed_by="tracing") from None
    _processor_from(env, build=False)


def disable() -> None:
    """Flush and stop exporting; the hot paths are untraced again."""
    global tracer, _provider
    tracer = None
    if _provider is not None:
        _provider.shutdown()
        _provider = None


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


@contextmanager
def continued(name: str, headers: Iterable[tuple[bytes, bytes]], **attributes: Any) -> Iterator[Span]:
    """A request's server span, current while the request runs, continuing the caller's W3C `traceparent`."""
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    assert tracer is not None
    carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k in (b"traceparent", b"tracestate")}
    parent = TraceContextTextMapPropagator().extract(carrier) if carrier else None
    with tracer.start_as_current_span(name, parent, SpanKind.SERVER, attributes) as current:
        yield current


@contextmanager
def resumed(parent: str, name: str, **attributes: Any) -> Iterator[Span | None]:
    """A span continuing the trace a `traceparent` string names (sent to another process), or None while off."""
    if tracer is None:  # a worker process that was not told to trace
        yield None
        return
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = TraceContextTextMapPropagator().extract({"traceparent": parent})
    with tracer.start_as_current_span(name, context, attributes=attributes) as current:
        yield current


def traceparent(current: Span) -> str:
    """The W3C `traceparent` naming `current`, for a response to hand back to its caller."""
    context = current.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def span(name: str, **attributes: Any) -> Any:
    """A child of the current span, current itself inside the `with`."""
    assert tracer is not None
    return tracer.start_as_current_span(name, attributes=attributes)


def current_span() -> Span:
    from opentelemetry import trace

    return trace.get_current_span()


def queued() -> Queued:
    """What a request entering the micro-batcher's queue carries across it: its span context and the time."""
    return current_span().get_span_context(), time.time_ns()


def queue_waits(entries: Iterable[Queued]) -> None:
    """One ended `queue wait` span per request just taken into a batch, from its arrival until now."""
    from opentelemetry import trace

    assert tracer is not None
    now = time.time_ns()
    for parent, since in entries:
        context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
        tracer.start_span("queue wait", context, start_time=since).end(end_time=now)


def batch_span(requests: list[Queued], rows: int) -> Span:
    """The span of one model call on a batch: a child of its first request, linked to every request in it."""
    from opentelemetry import trace

    assert tracer is not None
    links = [trace.Link(context) for context, _ in requests]
    parent = trace.set_span_in_context(trace.NonRecordingSpan(requests[0][0]))
    attributes = {"foretell.batch.rows": rows, "foretell.batch.requests": len(requests)}
    return tracer.start_span("batch", parent, links=links, attributes=attributes)


@contextmanager
def child(parent: Span, name: str) -> Iterator[Span]:
    """A child of `parent` in any thread (the model thread has no current span of the request)."""
    from opentelemetry import trace

    assert tracer is not None
    with tracer.start_as_current_span(name, trace.set_span_in_context(parent)) as current:
        yield current


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
