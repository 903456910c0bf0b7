"""The Live page's figures: the server's own Prometheus metrics, sampled once a second into a bounded ring.

A timer task reads the metric registry (never anything per request), so serving pays nothing
for the page: one `collect()` a second, a few hundred microseconds on a server with a handful
of models. Per model and per second the page gets requests/s, p50 and p99 from the latency
histogram's bucket deltas (interpolated within a bucket, as Prometheus' `histogram_quantile`
does), the mean batch size, the requests in flight (what waits for or is in the model) and
rejections/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

__all__ = ["LiveSampler", "Snapshot", "quantile"]

WINDOW_SECONDS = 300
"""How far back the ring reaches: five minutes of one-second samples."""


@dataclass
class ModelFigures:
    """One model's cumulative counters at one moment (requests, latency buckets, batches, rejections)."""

    requests: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    batch_rows: float = 0.0
    batches: float = 0.0
    in_flight: float = 0.0
    rejected: float = 0.0


@dataclass
class Snapshot:
    at: float
    """Seconds since the epoch (the page draws time axes in wall-clock time)."""
    models: dict[str, ModelFigures]


class LiveSampler:
    """Samples `registry` every `interval` seconds while started; `document()` is the Live page's JSON."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        interval: float = 1.0,
        window: int = WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.interval = interval
        self.clock = clock
        self.ring: deque[Snapshot] = deque(maxlen=window + 1)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="foretell-ui-live")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def sample(self) -> None:
        self.ring.append(Snapshot(self.clock(), read_figures(self.registry.collect())))

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def document(self) -> dict[str, Any]:
        """Per model, one point per interval between consecutive samples: time, req/s, p50/p99 ms, mean batch
        size, in flight, rejected/s; and the totals since the server started."""
        snapshots = list(self.ring)
        names = sorted({name for s in snapshots for name in s.models})
        models = {}
        for name in names:
            points = []
            for before, after in itertools.pairwise(snapshots):
                then, now = before.models.get(name, ModelFigures()), after.models.get(name, ModelFigures())
                points.append(_point(then, now, after.at - before.at, after.at))
            last = snapshots[-1].models.get(name, ModelFigures())
            models[name] = {
                "points": points,
                "totals": {"requests": last.requests, "rejected": last.rejected, "batches": last.batches},
            }
        window = self.ring.maxlen
        return {"running": True, "interval_seconds": self.interval, "window_seconds": window, "models": models}


def _point(then: ModelFigures, now: ModelFigures, seconds: float, at: float) -> dict[str, Any]:
    seconds = seconds or 1.0
    answered = {le: now.buckets.get(le, 0.0) - then.buckets.get(le, 0.0) for le in now.buckets}
    batches = now.batches - then.batches
    p50, p99 = quantile(answered, 0.5), quantile(answered, 0.99)
    return {
        "at": round(at, 3),
        "requests_per_second": round((now.requests - then.requests) / seconds, 3),
        "p50_ms": None if p50 is None else round(p50 * 1000, 3),
        "p99_ms": None if p99 is None else round(p99 * 1000, 3),
        "mean_batch_size": round((now.batch_rows - then.batch_rows) / batches, 3) if batches else None,
        "in_flight": now.in_flight,
        "rejected_per_second": round((now.rejected - then.rejected) / seconds, 3),
    }


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """The `q` quantile of cumulative bucket counts (upper bound → count at or below), None without samples;
    linear within the bucket it falls in, and the last finite bound when it falls in +Inf."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def read_figures(families: Iterable[Any]) -> dict[str, ModelFigures]:
    """Each model's figures from the families `CollectorRegistry.collect()` yields (summed over the other labels)."""
    models: dict[str, ModelFigures] = {}
    for family in families:
        for sample in family.samples:
            model = sample.labels.get("model")
            if model is None:
                continue
            figures = models.setdefault(model, ModelFigures())
            name, value = sample.name, sample.value
            if name == "foretell_requests_total":
                figures.requests += value
            elif name == "foretell_request_seconds_bucket":
                le = float(sample.labels["le"])
                figures.buckets[le] = figures.buckets.get(le, 0.0) + value
            elif name == "foretell_batch_size_sum":
                figures.batch_rows += value
            elif name == "foretell_batch_size_count":
                figures.batches += value
            elif name == "foretell_in_flight_requests":
                figures.in_flight += value
            elif name == "foretell_rejected_total":
                figures.rejected += value
    return models
