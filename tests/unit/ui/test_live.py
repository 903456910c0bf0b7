"""The Live page's figures from a real `ServingMetrics` registry, sampled with a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from foretell.serving.metrics import ServingMetrics
from foretell.ui.live import LiveSampler, quantile


def test_quantiles_interpolate_within_the_bucket_they_fall_in() -> None:
    buckets = {0.001: 0.0, 0.002: 50.0, 0.005: 100.0, float("inf"): 100.0}
    assert quantile(buckets, 0.5) == pytest.approx(0.002)
    assert quantile(buckets, 0.25) == pytest.approx(0.0015)
    assert quantile(buckets, 0.99) == pytest.approx(0.002 + 0.003 * 49 / 50)
    assert quantile({0.1: 0.0, float("inf"): 0.0}, 0.5) is None  # nothing answered in that second
    assert quantile({0.1: 0.0, float("inf"): 4.0}, 0.5) == 0.1  # beyond the last bound: that bound


def test_a_point_per_second_from_the_counters_deltas() -> None:
    metrics = ServingMetrics()
    now = [1000.0]
    live = LiveSampler(metrics.registry, clock=lambda: now[0])
    live.sample()
    for _ in range(10):
        metrics.answered("churn", "infer", 200, 0.003)
    metrics.answered("churn", "infer", 503, 0.0001)
    observer = metrics.observer("churn")
    observer.batch(4)
    observer.batch(8)
    observer.rejected("overload")
    now[0] += 2.0
    live.sample()
    document = live.document()
    [point] = document["models"]["churn"]["points"]
    assert point["at"] == 1002.0
    assert point["requests_per_second"] == pytest.approx(5.5)  # 11 answered in 2 s
    assert point["mean_batch_size"] == 6.0
    assert point["rejected_per_second"] == 0.5
    assert point["p50_ms"] is not None and 1.0 < point["p50_ms"] <= 5.0
    assert document["models"]["churn"]["totals"] == {"requests": 11.0, "rejected": 1.0, "batches": 2.0}
    now[0] += 1.0
    live.sample()  # a quiet second: no rate, no latency, no batch
    quiet = live.document()["models"]["churn"]["points"][-1]
    assert (quiet["requests_per_second"], quiet["p50_ms"], quiet["mean_batch_size"]) == (0.0, None, None)


def test_the_ring_keeps_the_last_window_only() -> None:
    live = LiveSampler(ServingMetrics().registry, window=3)
    for _ in range(10):
        live.sample()
    assert len(live.ring) == 4  # three intervals


def test_the_timer_samples_while_started_and_stops() -> None:
    async def run() -> int:
        live = LiveSampler(ServingMetrics().registry, interval=0.01)
        live.start()
        await asyncio.sleep(0.1)
        await live.stop()
        taken = len(live.ring)
        await asyncio.sleep(0.05)
        assert len(live.ring) == taken  # stopped: no more samples
        return taken

    assert asyncio.run(run()) >= 3
