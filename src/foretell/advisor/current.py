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
from foretell.advisor.observed import LedgerWorkload, Mode, span

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

    def measured_rows(self) -> list[tuple[str, str, str]]:
        """(figure, value, where it came from) for what the ledger showed and what the workload took."""
        t, w = self.observed.traffic, self.observed.workload
        prefix = f"measured from {t.rows:,} ledger rows over {span(t.days, t.day_s)}: "
        how = {k: v.replace(prefix, "ledger: ") for k, v in self.observed.provenance.items()}  # the window says it
        staleness = t.staleness_s
        rows = [
            ("window", f"{span(t.days, t.day_s)} from {t.rows:,} ledger rows ({_sources(t.rows_by_source)})", "ledger"),
            ("requests a day", f"{w.requests_per_day:,.0f}", how["requests_per_day"]),
            ("peak", f"{w.peak_rps:,.0f} requests in the busiest second, {t.peak_minute / 60:,.1f}/s over the "
                     "busiest minute", how["peak_rps"]),
            ("population", f"{w.population:,}", how["population"]),
            ("keys asked a day", f"{w.active_per_day:,} ({w.active_fraction:.1%} of the population)",
             how["active_per_day"]),
            ("repeat lookups", _share(t.repeat_share) + " of keyed requests: a key already asked that day",
             "ledger"),
            ("events", f"{w.events_per_entity_per_day:,.3f} per entity a day", how["events_per_entity_per_day"]),
            ("live fallbacks", _share(t.fallback_share) + " of lookups", "ledger"),
        ]  # fmt: skip
        if staleness.get("count"):
            rows.append(
                (
                    "precomputed answers' age",
                    f"p50 {_age(staleness['p50'])}, p95 {_age(staleness['p95'])}, max {_age(staleness['max'])}"
                    + (f" ({staleness['unknown']:,} with no job before them)" if staleness.get("unknown") else ""),
                    "ledger",
                )
            )
        for source, figures in t.latency_ms.items():
            rows.append(
                (f"latency seen, {source}", f"p50 {figures['p50']:,.2f} ms, p99 {figures['p99']:,.2f} ms", "ledger")
            )
        rows += [
            ("latency objective", f"{w.p99_ms:,.0f} ms", how["p99_ms"]),
            ("freshness need", _age(w.freshness_s), how["freshness_s"]),
            ("bulk daily", "yes" if w.bulk_daily else "no", how["bulk_daily"]),
            ("precomputable", "yes" if w.precomputable else "no", how["precomputable"]),
        ]
        return rows

    def comparison_lines(self) -> list[str]:
        """The current set-up against the recommendation, in sentences."""
        c = self.comparison()
        now, best = self.current_cost, self.recommended_cost
        if c["same"]:
            lines = [
                f"The current set-up, {self.current}, is the recommendation: "
                f"{now.core_hours_per_day:,.3g} core-hours a day."
            ]
        else:
            change = "saves" if c["saving_core_hours_per_day"] >= 0 else "costs"
            lines = [
                f"The current set-up, {self.current}, costs {now.core_hours_per_day:,.3g} core-hours a day against "
                f"{best.core_hours_per_day:,.3g} for {self.advice.recommendation}: the change {change} "
                f"{abs(c['saving_core_hours_per_day']):,.3g} core-hours a day."
            ]
        seen = c["p99_ms"]["seen"]
        lines.append(
            f"p99: {_ms(now.p99_ms)} now (seen in the ledger: {_ms(seen)}), {_ms(best.p99_ms)} recommended; "
            f"freshness: {_age(now.freshness_s)} now (precomputed answers seen at p95 "
            f"{_age(c['freshness_s']['seen_p95'])}), {_age(best.freshness_s)} recommended; "
            f"wasted: {now.wasted_fraction:.0%} now, {best.wasted_fraction:.0%} recommended."
        )
        if not now.feasible and now.why_not:
            lines.append(f"The current set-up does not fit the workload as given: {now.why_not}.")
        if self.observed.overridden:
            lines.append("Options replaced these measured figures: " + ", ".join(self.observed.overridden) + ".")
        return lines

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


def _sources(counts: dict[str, int]) -> str:
    return ", ".join(f"{source} {n:,}" for source, n in counts.items())


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} ms"


def _age(seconds: float | int | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds <= 0:
        return "live"
    for unit, size in (("d", 86_400.0), ("h", 3_600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:,.1f} s"
