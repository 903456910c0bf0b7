"""`foretell_rollout_*`: a rollout's figures at `/metrics`, read from the challengers at scrape time.

Nothing is counted twice: the request path adds to the challenger's `RolloutStats`
(which the registry and the guards need anyway), and this collector turns it into
Prometheus families when scraped. Counters are this worker's since the rollout reached
it; quantiles (latency per arm, score difference) are this worker's too. The sum over
every worker is `foretell rollout status`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from foretell.rollout import ARMS

if TYPE_CHECKING:
    from foretell.serving.runtime import Runtime

__all__ = ["RolloutCollector"]

_QUANTILES = (0.5, 0.9, 0.99)


class RolloutCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def describe(self) -> list[Any]:
        return []  # families depend on the rollouts of the moment; the registry must not fix them at register

    def collect(self) -> Iterator[Any]:
        active = GaugeMetricFamily(
            "foretell_rollout_active",
            "1 while a rollout of the model runs on this server, by mode and versions",
            labels=["model", "mode", "champion", "challenger", "percent"],
        )
        requests = CounterMetricFamily(
            "foretell_rollout_requests", "Requests measured on each arm of a rollout", labels=["model", "arm"]
        )
        errors = CounterMetricFamily(
            "foretell_rollout_errors",
            "Requests an arm failed (a challenger's: answered by the champion)",
            labels=["model", "arm"],
        )
        latency = GaugeMetricFamily(
            "foretell_rollout_latency_seconds",
            "Each arm's model latency (queue and prediction), by quantile",
            labels=["model", "arm", "quantile"],
        )
        compared = CounterMetricFamily(
            "foretell_rollout_compared_rows", "Rows scored by both versions", labels=["model"]
        )
        flips = CounterMetricFamily(
            "foretell_rollout_label_flips", "Compared rows whose decision changed", labels=["model"]
        )
        dropped = CounterMetricFamily(
            "foretell_rollout_dropped", "Comparisons dropped because too many were pending", labels=["model"]
        )
        diff = GaugeMetricFamily(
            "foretell_rollout_score_diff",
            "Absolute score difference between the versions on the same rows, by quantile",
            labels=["model", "quantile"],
        )
        flip_rate = GaugeMetricFamily(
            "foretell_rollout_label_flip_rate", "Share of compared rows whose decision changed", labels=["model"]
        )
        for slot in list(self.runtime.slots.values()):
            challenger = slot.challenger
            if challenger is None:
                continue
            name, rollout, stats = slot.name, challenger.rollout, challenger.stats
            active.add_metric(
                [name, rollout.mode, str(rollout.champion), str(rollout.challenger), f"{rollout.percent:g}"], 1
            )
            for arm in ARMS:
                counted = stats.arm(arm)
                requests.add_metric([name, arm], counted.requests)
                errors.add_metric([name, arm], counted.errors)
                for q in _QUANTILES:
                    value = counted.latency.quantile(q)
                    if value is not None:
                        latency.add_metric([name, arm, str(q)], value)
            compared.add_metric([name], stats.compared)
            flips.add_metric([name], stats.flips)
            dropped.add_metric([name], stats.dropped)
            for q in _QUANTILES:
                value = stats.diffs.quantile(q)
                if value is not None:
                    diff.add_metric([name, str(q)], value)
            if stats.flip_rate is not None:
                flip_rate.add_metric([name], stats.flip_rate)
        yield from (active, requests, errors, latency, compared, flips, dropped, diff, flip_rate)
