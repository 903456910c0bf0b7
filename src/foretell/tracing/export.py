"""Finished spans on their way to the exporter: foretell's batching in front of the SDK's `BatchSpanProcessor`.

The SDK's `BatchSpanProcessor.on_end` does, for every span on the request path, what a
server at 10,000 requests/s (four spans each) feels: a check for a fork that asks the kernel
for the process id, its shutdown and queue-size checks, and the `ReadableSpan` it is handed
must be made first. `Exporting` takes its place when tracing is given one (by the `OTEL_*`
variables or by the caller): the request path appends foretell's own record of the span to a
bounded queue, and one thread turns the records into `ReadableSpan`s and hands them to the
processor's exporter in batches, as the processor would have: its queue bound, batch size and
schedule (`OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BSP_SCHEDULE_DELAY`,
or the arguments it was made with), the oldest span dropped rather than the request blocked
when the queue is full, everything queued exported on `force_flush` and `shutdown`. Any other
processor (a test's `SimpleSpanProcessor`) is handed each span as it ends.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from random import getrandbits
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

    from foretell.tracing import Child, Span, Tracer

__all__ = ["Exporting", "batching_front", "readables"]

_new_tuple = tuple.__new__

log = logging.getLogger("foretell.tracing")


def batching_front(processor: SpanProcessor, convert: Callable[[list[Any]], list[ReadableSpan]]) -> Exporting | None:
    """`Exporting` in place of `processor` when it is the SDK's own `BatchSpanProcessor`; else None."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if type(processor) is not BatchSpanProcessor:  # a subclass may do more than batch: hand it each span
        return None
    settings = getattr(processor, "_batch_processor", None)  # what it was configured with (arguments or OTEL_BSP_*)
    try:
        queue_size = int(settings._max_queue_size)  # type: ignore[union-attr]
        batch_size = int(settings._max_export_batch_size)  # type: ignore[union-attr]
        delay_s = float(settings._schedule_delay_millis) / 1e3  # type: ignore[union-attr]
    except (AttributeError, TypeError, ValueError):  # another SDK version: its own on_end, then
        return None
    return Exporting(processor, convert, queue_size, batch_size, delay_s)


class Exporting:
    """A bounded queue of finished spans (foretell's records) and the thread that exports them in batches."""

    def __init__(
        self,
        processor: SpanProcessor,
        convert: Callable[[list[Any]], list[ReadableSpan]],
        queue_size: int,
        batch_size: int,
        delay_s: float,
    ) -> None:
        self.processor = processor
        self.exporter = processor.span_exporter  # type: ignore[attr-defined]
        self.convert = convert
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.delay_s = delay_s
        self.queue: deque[Any] = deque(maxlen=queue_size)  # full: appending drops the oldest, as the SDK's
        self.stopped = False
        self.full_said = False
        self._start()
        if hasattr(os, "register_at_fork"):  # a forked child exports its own spans, as the SDK's processor does
            restart = weakref.WeakMethod(self._start)
            os.register_at_fork(after_in_child=lambda: (method := restart()) is not None and method())

    def _start(self) -> None:
        self.queue.clear()
        self.wake = threading.Event()
        self.lock = threading.Lock()  # one export at a time: the thread's, or a flush's
        self.thread = threading.Thread(target=self._work, name="ForetellSpanExport", daemon=True)
        self.thread.start()

    def add(self, record: Any) -> None:
        """Queue one finished span (the request path: an append, and a length check)."""
        queue = self.queue
        if len(queue) >= self.batch_size:
            if len(queue) == self.queue_size and not self.full_said:  # once until the thread empties it
                self.full_said = True
                log.warning("span queue full (%d spans): dropping the oldest spans", self.queue_size)
            if not self.wake.is_set():
                self.wake.set()
        queue.append(record)

    def _work(self) -> None:
        while True:
            self.wake.wait(self.delay_s)
            self.wake.clear()  # before exporting: a batch filled meanwhile wakes the thread again
            if self.stopped:  # `shutdown` exports what is left
                return
            self._export()

    def _export(self) -> None:
        from opentelemetry import context

        key = getattr(context, "_SUPPRESS_INSTRUMENTATION_KEY", "suppress_instrumentation")  # the SDK's own key
        with self.lock:
            queue, convert = self.queue, self.convert
            while queue:
                batch = convert([queue.popleft() for _ in range(min(len(queue), self.batch_size))])
                # As the SDK's processor: an exporter's own calls (its HTTP request) are not traced.
                token = context.attach(context.set_value(key, True))
                try:
                    self.exporter.export(batch)
                except Exception:  # an exporter's failure loses its batch, never the server
                    log.exception("exporting %d spans failed", len(batch))
                finally:
                    context.detach(token)
            self.full_said = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export every queued span now."""
        if self.stopped:
            return False
        self._export()
        return bool(self.processor.force_flush(timeout_millis))

    def shutdown(self) -> None:
        """Export what is queued, stop the thread, and shut the processor (and its exporter) down."""
        if self.stopped:
            return
        self.stopped = True
        self.wake.set()
        self.thread.join(30)
        self._export()
        self.processor.shutdown()


def readables(tracer: Tracer, records: Iterable[Span | Child]) -> list[ReadableSpan]:
    """The SDK's `ReadableSpan`s of finished spans: `Span`s, or `Child`ren that had no `Span` of their own.

    One loop over a whole batch with the SDK's values in local variables: `Exporting`'s thread
    runs it for every span the server records, on the server's core. A child's `SpanContext` is
    made as `SpanContext.__new__` makes it, without its range checks (ours are drawn in range,
    never zero), at half its cost.
    """
    t = tracer
    made: list[ReadableSpan] = []
    new, span_context, state, flags = _new_tuple, t.api.SpanContext, t.trace_state, t.sampled
    readable, resource, scope, internal, unset, link = t.readable_span, t.resource, t.scope, t.internal, t.unset, t.link
    context_for, failed, add = t.context_for, t.failed, made.append
    for record in records:
        if type(record) is tuple:
            owner, name, attrs, start, end, error = record
            parent = owner._context or context_for(owner)
            context = new(span_context, (owner.trace_id, getrandbits(64) or 1, False, flags, state, True))
            status = unset if error is None else failed(attrs, error)
            add(readable(name, context, parent, resource, attrs, (), (), internal, None, status, start, end, scope))
            continue
        span: Span = record  # type: ignore[assignment]
        above = span.parent  # a Span of ours, or a SpanContext (a tuple) from another process, or None
        add(
            readable(
                span.name,
                span._context or context_for(span),
                above if above is None or isinstance(above, tuple) else above._context or context_for(above),
                resource,
                span.attributes,
                (),
                tuple(link(linked._context or context_for(linked)) for linked in span.links) if span.links else (),
                internal if span.kind is None else span.kind,
                None,
                unset if span.error is None else failed(span.attributes, span.error),
                span.start,
                span.end_time,
                scope,
            )
        )
    return made
