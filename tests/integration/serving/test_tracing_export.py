"""Spans leaving the process: foretell's batching in front of the SDK's `BatchSpanProcessor` (`tracing.export`).

The processor's settings hold (batch size, queue bound, schedule), a full queue drops the
oldest span instead of blocking the request path, and flushing or turning tracing off
exports every span still queued, each with its parent intact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from foretell import tracing


class Kept(SpanExporter):
    """Keeps what it is handed, batch by batch; `hold` makes an export wait until it is set."""

    def __init__(self) -> None:
        self.batches: list[list[ReadableSpan]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.exporting = threading.Event()
        self.stopped = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exporting.set()
        self.hold.wait(10)
        self.batches.append(list(spans))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.stopped = True

    @property
    def spans(self) -> list[ReadableSpan]:
        return [span for batch in self.batches for span in batch]


def requests(n: int) -> None:
    """`n` request-like spans, each with one leaf child recorded as the hot path records it."""
    for i in range(n):
        with tracing.span(f"request {i}"):
            parent = tracing.recorded()
            assert parent is not None
            tracing.timed(parent, "decode", {"i": i}, lambda: None)


def test_queued_spans_go_out_in_the_processors_batch_size_with_their_parents_on_flush() -> None:
    exporter = Kept()
    tracing.enable(BatchSpanProcessor(exporter, max_export_batch_size=4, schedule_delay_millis=60_000))
    try:
        assert tracing.tracer is not None and tracing.tracer.exporting is not None
        requests(5)
        tracing.flush()
        found = exporter.spans
        assert len(found) == 10
        assert all(len(batch) <= 4 for batch in exporter.batches), [len(b) for b in exporter.batches]
        by_id = {span.context.span_id: span for span in found}
        for child in (s for s in found if s.name == "decode"):
            assert child.parent is not None
            parent = by_id[child.parent.span_id]
            assert parent.name == f"request {dict(child.attributes or {})['i']}"
            assert child.context.trace_id == parent.context.trace_id
    finally:
        tracing.disable()


def test_a_full_queue_drops_the_oldest_spans_and_never_blocks_the_request_path() -> None:
    exporter = Kept()
    exporter.hold.clear()  # the export thread is stuck in the exporter: nothing leaves the queue
    tracing.enable(BatchSpanProcessor(exporter, max_queue_size=8, max_export_batch_size=2, schedule_delay_millis=5))
    try:
        requests(1)  # two spans: the thread takes them and waits in the exporter
        assert exporter.exporting.wait(5)
        started = time.monotonic()
        requests(20)  # 40 spans for a queue of 8
        assert time.monotonic() - started < 1.0
        exporter.hold.set()
        tracing.flush()
        names = [span.name for span in exporter.spans[2:]]
        assert len(names) == 8
        assert names == ["decode", "request 16", "decode", "request 17", "decode", "request 18", "decode", "request 19"]
    finally:
        exporter.hold.set()
        tracing.disable()


def test_turning_tracing_off_exports_what_is_queued_and_shuts_the_exporter_down() -> None:
    exporter = Kept()
    tracing.enable(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    requests(3)
    assert exporter.spans == []  # under the batch size, before the schedule: still queued
    tracing.disable()
    assert sorted(span.name for span in exporter.spans) == ["decode"] * 3 + ["request 0", "request 1", "request 2"]
    assert exporter.stopped
