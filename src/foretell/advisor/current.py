"""Advice on measured traffic: the recommendation, and what the way in use now costs against it.

The current set-up is read from the traffic (`observed.current_mode`) and priced by the
same cost model as the recommendation, on the same workload and measurements, so the two
are compared like for like. Beside the prices, what the ledger saw it deliver: the p99 of
its online answers and the age of its precomputed ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from foretell.advisor.cost import Advice, Measurements, ModeCost, advise
from foretell.advisor.observed import LedgerWorkload, Mode

__all__ = ["LedgerAdvice", "advise_observed"]


@dataclass(frozen=True, slots=True)
class LedgerAdvice:
    advice: Advice
    observed: LedgerWorkload
    current: Mode

    @property
    def current_cost(self) -> ModeCost:
        return self.advice.modes[self.current]

    @property
    def recommended_cost(self) -> ModeCost:
        return self.advice.modes[self.advice.recommendation]

    def comparison(self) -> dict[str, Any]:
        """The current way against the recommended one: cost a day, p99, freshness, waste; and what was seen."""
        now, best = self.current_cost, self.recommended_cost
        traffic = self.observed.traffic
        saving = now.core_hours_per_day - best.core_hours_per_day
        return {
            "current": self.current,
            "recommended": self.advice.recommendation,
            "same": self.current == self.advice.recommendation,
            "core_hours_per_day": {"current": now.core_hours_per_day, "recommended": best.core_hours_per_day},
            "saving_core_hours_per_day": saving,
            "ratio": now.core_hours_per_day / best.core_hours_per_day if best.core_hours_per_day > 0 else None,
            "p99_ms": {"current": now.p99_ms, "recommended": best.p99_ms, "seen": _seen_p99(traffic.latency_ms)},
            "freshness_s": {
                "current": now.freshness_s,
                "recommended": best.freshness_s,
                "seen_p95": traffic.staleness_s.get("p95"),
            },
            "wasted_fraction": {"current": now.wasted_fraction, "recommended": best.wasted_fraction},
            "current_feasible": now.feasible,
            "current_why_not": now.why_not,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.advice.to_dict(),
            "ledger": self.observed.to_dict(),
            "current": self.comparison(),
        }


def advise_observed(observed: LedgerWorkload, measurements: Measurements) -> LedgerAdvice:
    return LedgerAdvice(advise(observed.workload, measurements), observed, observed.traffic.current)


def _seen_p99(latency: dict[str, dict[str, float]]) -> float | None:
    """The p99 of the online answers the ledger saw: the worst source's that served at least 1% of them."""
    total = sum(v["count"] for v in latency.values() if v)
    kept = [v["p99"] for source, v in latency.items() if source != "event-refresh" and v["count"] >= 0.01 * total]
    return max(kept) if kept else None
