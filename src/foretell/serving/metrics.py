"""Prometheus metrics for the online path, all prefixed `foretell_`, on a registry of the server's own.

A registry per server (not the process-global default) keeps two servers in one test
process, or a reload, from double-registering, and lets /metrics show exactly this server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["BatchObserver", "ServingMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "foretell_requests",
            "Requests answered, by model, endpoint, status (HTTP's, or gRPC's code number) and transport.",
            ["model", "endpoint", "status", "transport"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "foretell_request_seconds",
            "Time from request received to response ready.",
            ["model", "endpoint", "transport"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "foretell_batch_size",
            "Rows per model call (coalesced requests).",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "foretell_queue_wait_seconds",
            "Time a request waited before its batch reached the model.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "foretell_in_flight_requests", "Requests being answered.", ["model"], registry=self.registry
        )
        self.rejected = Counter(
            "foretell_rejected",
            "Requests refused before the model: overload or an expired deadline.",
            ["model", "reason"],
            registry=self.registry,
        )
        self.load_seconds = Gauge(
            "foretell_model_load_seconds",
            "Seconds the serving version took to load and warm.",
            ["model", "version"],
            registry=self.registry,
        )
        self.lookups = Counter(
            "foretell_lookups",
            "Keys looked up by the hybrid path, by outcome: hit (fresh from the store), fallback (predicted live"
            " now), stale (an old stored answer, no live one possible) or miss (no answer).",
            ["model", "outcome"],
            registry=self.registry,
        )

        # Label lookups hash and lock on every call; a request's children are looked up once.
        self._answered: dict[tuple[str, str, int, str], tuple[Any, Any]] = {}
        self._in_flight: dict[str, Any] = {}
        self._looked_up: dict[tuple[str, str], Any] = {}

    def answered(self, model: str, endpoint: str, status: int, seconds: float, transport: str = "http") -> None:
        """One request answered over `transport` ("http", "grpc"). `model` must be a served name or "-":
        labels from client input would let any client grow the metrics without bound."""
        children = self._answered.get((model, endpoint, status, transport))
        if children is None:
            children = (
                self.requests.labels(model, endpoint, str(status), transport),
                self.latency.labels(model, endpoint, transport),
            )
            self._answered[(model, endpoint, status, transport)] = children
        children[0].inc()
        children[1].observe(seconds)

    def in_flight_of(self, model: str) -> Any:
        """The in-flight gauge of a served model (`inc()` when a request starts, `dec()` when answered)."""
        gauge = self._in_flight.get(model)
        if gauge is None:
            gauge = self._in_flight[model] = self.in_flight.labels(model)
        return gauge

    def looked_up(self, model: str, outcomes: dict[str, int]) -> None:
        """Count one lookup's keys of a served `model` by outcome (`hybrid.lookup.outcomes_of`)."""
        for outcome, count in outcomes.items():
            if count:
                child = self._looked_up.get((model, outcome))
                if child is None:
                    child = self._looked_up[(model, outcome)] = self.lookups.labels(model, outcome)
                child.inc(count)

    def watch_ledger(self, counts: Callable[[], dict[str, int]]) -> None:
        """Export the ledger writer's counts (read at each scrape): records, drops, segments, queue."""
        self.registry.register(_LedgerCollector(counts))

    def observer(self, model: str) -> BatchObserver:
        return BatchObserver(self, model)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class BatchObserver:
    """What the micro-batcher reports, turned into metrics for one model."""

    def __init__(self, metrics: ServingMetrics, model: str) -> None:
        self._batch = metrics.batch_size.labels(model)
        self._wait = metrics.queue_wait.labels(model)
        self._rejected = metrics.rejected
        self._model = model

    def batch(self, size: int) -> None:
        self._batch.observe(size)

    def queue_wait(self, seconds: float) -> None:
        self._wait.observe(seconds)

    def rejected(self, reason: str) -> None:
        self._rejected.labels(self._model, reason).inc()


class _LedgerCollector(Collector):
    """The prediction ledger's own counts, as `foretell_ledger_*` metrics."""

    _COUNTERS = (
        ("records", "foretell_ledger_records", "Prediction rows written to the ledger."),
        (
            "dropped",
            "foretell_ledger_dropped",
            "Prediction rows dropped: the ledger's queue was full or a write failed.",
        ),
        ("segments", "foretell_ledger_segments", "Ledger segment files published."),
        ("bytes", "foretell_ledger_bytes", "Bytes of ledger segments published."),
    )

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def describe(self) -> Iterator[Any]:
        return iter(())  # the families are the same at every scrape; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        counts = self._counts()
        for key, name, text in self._COUNTERS:
            yield CounterMetricFamily(name, text, value=counts.get(key, 0))
        yield GaugeMetricFamily(
            "foretell_ledger_pending_rows", "Prediction rows queued for the ledger.", value=counts.get("pending", 0)
        )
