"""Traffic: how many predictions each source made, hour by hour, how fast, and how many failed and why.

One pass of DuckDB aggregates over the session's `predictions` view each; nothing comes
back to Python but the counts. Latency percentiles are `quantile_cont` (linear
interpolation, as numpy's default `percentile`); batch rows have no latency of their own
and are left out of them.
"""

# ruff: noqa: S608 - the only value spliced into the SQL is a constant int

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from foretell.monitor.sql import iso, iso_or_none

if TYPE_CHECKING:
    from foretell.ledger.session import LedgerSession

__all__ = ["Latency", "SourceTraffic", "TrafficSection", "traffic_section"]

#: The sources in the order every table shows them.
SOURCE_ORDER = ("batch", "live", "precomputed", "live-fallback", "event-refresh", "shadow")
TOP_ERRORS = 5


@dataclass(frozen=True)
class Latency:
    p50: float
    p95: float
    p99: float
    max: float


@dataclass(frozen=True)
class SourceTraffic:
    source: str
    rows: int
    errors: int
    latency_ms: Latency | None  # None: no row of this source has a latency (batch)
    first_error_at: str | None  # ISO time of the first failed prediction in the window
    refused: int = 0  # requests that were the client's to fix (bad input, unknown key): no prediction failed

    @property
    def error_rate(self) -> float:
        return self.errors / self.rows if self.rows else 0.0

    @property
    def refused_rate(self) -> float:
        return self.refused / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        latency = None if self.latency_ms is None else self.latency_ms.__dict__.copy()
        return {
            "source": self.source,
            "rows": self.rows,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "refused": self.refused,
            "refused_rate": self.refused_rate,
            "latency_ms": latency,
            "first_error_at": self.first_error_at,
        }


@dataclass(frozen=True)
class TrafficSection:
    rows: int
    keys: int  # distinct entity keys
    sources: tuple[SourceTraffic, ...]
    hours: tuple[str, ...]  # ISO starts of the hours with traffic, oldest first
    by_hour: dict[str, tuple[int, ...]]  # source -> rows in each of `hours`
    top_errors: tuple[tuple[str, int], ...]  # (reason, count), most frequent first
    versions: dict[int, int]  # version -> rows
    top_refused: tuple[tuple[str, int], ...] = ()  # (reason, count) of refused requests, most frequent first

    def source(self, name: str) -> SourceTraffic | None:
        return next((s for s in self.sources if s.source == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "keys": self.keys,
            "by_source": {s.source: s.to_dict() for s in self.sources},
            "by_hour": {"hours": list(self.hours), "sources": {k: list(v) for k, v in self.by_hour.items()}},
            "top_errors": [{"error": reason, "count": n} for reason, n in self.top_errors],
            "top_refused": [{"error": reason, "count": n} for reason, n in self.top_refused],
            "by_version": {str(v): n for v, n in self.versions.items()},
        }


def _order(source: str) -> tuple[int, str]:
    return (SOURCE_ORDER.index(source) if source in SOURCE_ORDER else len(SOURCE_ORDER), source)


def traffic_section(session: LedgerSession) -> TrafficSection:
    per_source = session.rows(
        "SELECT source, count(*), count_if(status = 'error'), "
        "quantile_cont(latency_ms, [0.5, 0.95, 0.99]), max(latency_ms), "
        "min(epoch_us(predicted_at)) FILTER (status = 'error'), count_if(status = 'refused') "
        "FROM predictions GROUP BY source"
    )
    sources = []
    ordered = sorted(per_source, key=lambda r: _order(str(r[0])))
    for source, rows, errors, quantiles, top, first_error, refused in ordered:
        latency = None if top is None else Latency(quantiles[0], quantiles[1], quantiles[2], float(top))
        sources.append(
            SourceTraffic(str(source), int(rows), int(errors), latency, iso_or_none(first_error), int(refused))
        )
    hourly = session.rows(
        "SELECT epoch_us(date_trunc('hour', timezone('UTC', predicted_at))) AS hour, source, count(*) "
        "FROM predictions GROUP BY ALL ORDER BY hour"
    )
    hours = sorted({hour for hour, _, _ in hourly})
    index = {hour: i for i, hour in enumerate(hours)}
    by_hour: dict[str, list[int]] = {s.source: [0] * len(hours) for s in sources}
    for hour, source, n in hourly:
        by_hour[str(source)][index[hour]] = int(n)
    errors, refusals = (
        session.rows(
            f"SELECT error, count(*) AS n FROM predictions WHERE status = '{status}' GROUP BY error "
            f"ORDER BY n DESC, error LIMIT {TOP_ERRORS}"
        )
        for status in ("error", "refused")
    )
    keys = session.rows("SELECT count(DISTINCT key) FROM predictions")[0]
    versions = session.rows(
        "SELECT version, count(*) FROM predictions WHERE version IS NOT NULL GROUP BY version ORDER BY version"
    )
    return TrafficSection(
        rows=sum(s.rows for s in sources),
        keys=int(keys[0]) if keys else 0,
        sources=tuple(sources),
        hours=tuple(iso(h) for h in hours),
        by_hour={k: tuple(v) for k, v in by_hour.items()},
        top_errors=tuple((str(reason or ""), int(n)) for reason, n in errors),
        top_refused=tuple((str(reason or ""), int(n)) for reason, n in refusals),
        versions={int(v): int(n) for v, n in versions},
    )
