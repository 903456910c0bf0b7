"""The workload that really happened: `foretell advise MODEL --from-ledger` measures it from the ledger.

Every figure is one SQL query over a ledger session's `predictions` view (live requests,
lookups, event refreshes and indexed batch jobs alike), in the window asked for:

- **requests a day**: rows of `live`, `precomputed` and `live-fallback` (one per answered
  key or input row), over the days the window covers. `event-refresh` rows are events, not
  requests: the cost model prices them apart.
- **peak rate**: the busiest second; the busiest minute / 60 is shown beside it, since one
  second of a short window is a noisy figure.
- **population**: the latest batch job's rows; without a job, the distinct keys seen.
- **active keys a day** and **repeat lookups** (the share of keyed requests for a key already
  asked that day).
- **events per entity a day**: `event-refresh` rows over the population and the days.
- **staleness of precomputed answers**: a lookup's time minus when its stored answer was
  made, the newest of the latest batch job before it and the key's latest live write-back
  (a `live-fallback` or `event-refresh`, which the store keeps in its place).
- **live fallbacks**: `live-fallback` over all lookups; **latency** per source as served.

What a ledger cannot know (the latency objective, how fresh an answer must be, whether the
population needs its scores each day anyway) comes from options, from the serve config, or
from stated defaults, and the provenance of every figure says which.
"""

# ruff: noqa: S608 - the SQL is built here from constants and ints; no value from outside is spliced in

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from foretell.advisor.workload import DAY_S, Workload, workload_from
from foretell.errors import InvalidInput

__all__ = [
    "DEFAULT_P99_MS",
    "LedgerWorkload",
    "ObservedTraffic",
    "Session",
    "current_mode",
    "observe",
    "workload_from_ledger",
]

Mode = Literal["batch", "real-time", "hybrid"]

#: Sources that answer an online request; `event-refresh` rows are events, priced apart.
REQUEST_SOURCES = ("live", "precomputed", "live-fallback")
LOOKUP_SOURCES = ("precomputed", "live-fallback")
#: Sources whose answer the hybrid service writes back to the store, where later lookups find it.
WRITE_BACK_SOURCES = ("live-fallback", "event-refresh")

DEFAULT_P99_MS = 200.0
"""The latency objective when none is given: a ledger records what latency was, not what it had to be."""


class Session(Protocol):
    """What the advisor reads from a ledger session (`foretell.ledger.query.LedgerReader.session`)."""

    def rows(self, sql: str) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True, slots=True)
class ObservedTraffic:
    """What the ledger shows for one model over a window (see the module docstring)."""

    model: str
    since: datetime
    until: datetime
    day_s: float
    days: float
    """Days the window covers, from its start (or the ledger's first row in it, if later) to its end."""
    rows: int
    """Ledger rows read (batch rows included)."""
    rows_by_source: dict[str, int]
    errors: int
    requests: int
    events: int
    peak_second: int
    """Requests in the busiest second."""
    peak_minute: int
    """Requests in the busiest minute."""
    population: int
    population_from: str
    distinct_keys: int
    active_per_day: float
    repeat_share: float | None
    staleness_s: dict[str, float | int | None]
    """Precomputed answers' age: `count`, `p50`, `p95`, `max` (seconds), `unknown` (no job before them)."""
    fallback_share: float | None
    latency_ms: dict[str, dict[str, float]]
    jobs: list[dict[str, Any]]
    """The batch jobs in the window: `job_id`, `predicted_at`, `rows`, `input` (when indexed)."""
    keyless_requests: int
    current: Mode

    @property
    def requests_per_day(self) -> float:
        return self.requests / self.days

    @property
    def jobs_per_day(self) -> float:
        return len(self.jobs) / self.days

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "day_s": self.day_s,
            "days": self.days,
            "rows": self.rows,
            "rows_by_source": dict(self.rows_by_source),
            "errors": self.errors,
            "requests": self.requests,
            "requests_per_day": self.requests_per_day,
            "events": self.events,
            "peak_second": self.peak_second,
            "peak_minute_rps": self.peak_minute / 60.0,
            "population": self.population,
            "population_from": self.population_from,
            "distinct_keys": self.distinct_keys,
            "active_per_day": self.active_per_day,
            "repeat_share": self.repeat_share,
            "staleness_s": dict(self.staleness_s),
            "fallback_share": self.fallback_share,
            "latency_ms": {k: dict(v) for k, v in self.latency_ms.items()},
            "jobs": [dict(j) for j in self.jobs],
            "jobs_per_day": self.jobs_per_day,
            "keyless_requests": self.keyless_requests,
            "current": self.current,
        }


def observe(
    session: Session,
    model: str,
    *,
    since: datetime,
    until: datetime,
    jobs: Sequence[Mapping[str, Any]],
    day_s: float = DAY_S,
) -> ObservedTraffic:
    """`model`'s traffic between `since` and `until`; `jobs` are every indexed batch job of the model (any time).

    Raises `InvalidInput` when the window holds no row of the model.
    """
    if not day_s > 0:
        raise InvalidInput(f"the length of a day must be > 0 seconds, got {day_s}")
    counts = session.rows(
        "SELECT source, status, count(*), epoch_us(min(predicted_at)), epoch_us(max(predicted_at)) "
        "FROM predictions WHERE source <> 'shadow' GROUP BY ALL"
    )
    if not counts:
        raise InvalidInput(
            f"the ledger has no predictions of model {model!r} between {_shown(since)} and {_shown(until)}; "
            "check the model's name and --since"
        )
    by_source: dict[str, int] = {}
    errors = 0
    first_us = min(int(row[3]) for row in counts)
    for source, status, n, _first, _last in counts:
        by_source[str(source)] = by_source.get(str(source), 0) + int(n)
        errors += int(n) if status == "error" else 0
    start = max(since, _EPOCH + timedelta(microseconds=first_us))
    span_s = max((until - start).total_seconds(), 1e-3)
    start_us = (start - _EPOCH) // timedelta(microseconds=1)
    day_us = int(day_s * 1e6)
    requests = sum(by_source.get(s, 0) for s in REQUEST_SOURCES)
    asked = f"source IN {_in(REQUEST_SOURCES)}"
    day = f"(epoch_us(predicted_at) - {start_us}) // {day_us}"

    peak_second, peak_minute = (
        int(v or 0)
        for v in session.rows(
            f"SELECT (SELECT max(n) FROM (SELECT count(*) AS n FROM predictions WHERE {asked} "
            "GROUP BY epoch_us(predicted_at) // 1000000)), "
            f"(SELECT max(n) FROM (SELECT count(*) AS n FROM predictions WHERE {asked} "
            "GROUP BY epoch_us(predicted_at) // 60000000))"
        )[0]
    )
    keyed = f"{asked} AND key IS NOT NULL"
    distinct, key_days, repeats, keyed_rows = session.rows(
        f"SELECT count(DISTINCT key), count(DISTINCT ({day}, key)), "
        f"count(*) FILTER (WHERE seen > 1), count(*) FROM "
        f"(SELECT key, predicted_at, row_number() OVER (PARTITION BY {day}, key ORDER BY predicted_at) AS seen "
        f"FROM predictions WHERE {keyed})"
    )[0]
    days = span_s / day_s
    # Keys asked per day: over whole days, the mean of each day's distinct keys; within one day, all of them.
    active = float(key_days) / max(days, 1.0)

    before = [j for j in jobs if _when(j) <= until]
    in_window = [j for j in before if _when(j) >= since]
    if before:
        latest = before[-1]
        population, population_from = int(latest["rows"]), f"rows of the latest batch job, {latest['job_id']}"
    else:
        (seen,) = session.rows("SELECT count(DISTINCT key) FROM predictions WHERE key IS NOT NULL")[0]
        population, population_from = int(seen), "distinct keys seen (no batch job in the ledger)"
    population = max(population, math.ceil(active))

    lookups = sum(by_source.get(s, 0) for s in LOOKUP_SOURCES)
    return ObservedTraffic(
        model=model,
        since=start,
        until=until,
        day_s=day_s,
        days=days,
        rows=sum(by_source.values()),
        rows_by_source=dict(sorted(by_source.items())),
        errors=errors,
        requests=requests,
        events=by_source.get("event-refresh", 0),
        peak_second=peak_second,
        peak_minute=peak_minute,
        population=population,
        population_from=population_from,
        distinct_keys=int(distinct),
        active_per_day=active,
        repeat_share=int(repeats) / int(keyed_rows) if keyed_rows else None,
        staleness_s=_staleness(session, before),
        fallback_share=by_source.get("live-fallback", 0) / lookups if lookups else None,
        latency_ms=_latency(session),
        jobs=[_job_summary(j) for j in in_window],
        keyless_requests=requests - int(keyed_rows),
        current=current_mode(by_source, len(in_window)),
    )


def current_mode(rows_by_source: Mapping[str, int], jobs: int) -> Mode:
    """The way the model is used now, read from its traffic: lookups from the store → hybrid; only live → real-time."""
    if rows_by_source.get("precomputed", 0):
        return "hybrid"
    if any(rows_by_source.get(s, 0) for s in ("live", "live-fallback", "event-refresh")):
        return "real-time"
    return "batch"


def _staleness(session: Session, jobs: Sequence[Mapping[str, Any]]) -> dict[str, float | int | None]:
    if not jobs:
        made = "SELECT NULL::TIMESTAMPTZ AS at WHERE false"
    else:
        made = " UNION ALL ".join(f"SELECT make_timestamptz({_micros(j)}) AS at" for j in jobs)
    count, unknown, p50, p95, oldest = session.rows(
        f"""
WITH jobs AS ({made}),
looked AS (SELECT predicted_at, key FROM predictions WHERE source = 'precomputed' AND status = 'ok'),
written AS (
    SELECT predicted_at AS at, key FROM predictions
    WHERE source IN {_in(WRITE_BACK_SOURCES)} AND status = 'ok' AND key IS NOT NULL
),
aged AS (
    SELECT (epoch_us(l.predicted_at) - greatest(epoch_us(j.at), coalesce(epoch_us(w.at), 0))) / 1e6 AS age,
           j.at IS NULL AND w.at IS NULL AS unknown
    FROM looked l
    ASOF LEFT JOIN jobs j ON l.predicted_at >= j.at
    ASOF LEFT JOIN written w ON l.key = w.key AND l.predicted_at >= w.at
)
SELECT count(*), count(*) FILTER (WHERE unknown),
       quantile_cont(age, 0.5) FILTER (WHERE NOT unknown), quantile_cont(age, 0.95) FILTER (WHERE NOT unknown),
       max(age) FILTER (WHERE NOT unknown)
FROM aged
"""
    )[0]
    return {"count": int(count), "unknown": int(unknown), "p50": p50, "p95": p95, "max": oldest}


def _latency(session: Session) -> dict[str, dict[str, float]]:
    found = session.rows(
        "SELECT source, count(*), quantile_cont(latency_ms, 0.5), quantile_cont(latency_ms, 0.99), max(latency_ms) "
        "FROM predictions WHERE source NOT IN ('batch', 'shadow') AND status = 'ok' AND latency_ms IS NOT NULL "
        "GROUP BY source ORDER BY source"
    )
    return {
        str(source): {"count": int(n), "p50": float(p50), "p99": float(p99), "max": float(top)}
        for source, n, p50, p99, top in found
    }


@dataclass(frozen=True, slots=True)
class LedgerWorkload:
    """The workload the advisor prices, with where each of its figures came from."""

    workload: Workload
    traffic: ObservedTraffic
    provenance: dict[str, str]
    overridden: list[str] = field(default_factory=list)
    """Figures the ledger measured that an option replaced."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload.to_dict(),
            "traffic": self.traffic.to_dict(),
            "provenance": dict(self.provenance),
            "overridden": list(self.overridden),
        }


#: The figures the ledger measures (each overridable by an option).
MEASURED = ("population", "active_per_day", "requests_per_day", "peak_rps", "events_per_entity_per_day")


def workload_from_ledger(
    traffic: ObservedTraffic,
    options: Mapping[str, Any] | None = None,
    *,
    config_max_age_s: float | None = None,
) -> LedgerWorkload:
    """The `Workload` measured in `traffic`, with `options` (workload settings, a `preset`) over it.

    `config_max_age_s` is the serve config's `max_age` for the model: the freshness the
    current set-up was told to keep, used when no `freshness` option is given.
    """
    t = traffic
    given = {k: v for k, v in (options or {}).items() if v is not None}
    source = f"measured from {t.rows:,} ledger rows over {span(t.days, t.day_s)}"
    values: dict[str, Any] = {
        "population": t.population,
        "active_per_day": min(math.ceil(t.active_per_day), t.population),
        "requests_per_day": t.requests_per_day,
        "peak_rps": float(t.peak_second),
        "events_per_entity_per_day": t.events / t.population / t.days if t.population else 0.0,
        "day_s": t.day_s,
    }
    provenance = {
        "population": f"{source}: {t.population_from}",
        "active_per_day": f"{source}: distinct keys asked a day",
        "requests_per_day": f"{source}: {t.requests:,} requests (live, precomputed, live-fallback)",
        "peak_rps": f"{source}: the busiest second (the busiest minute averaged {t.peak_minute / 60:,.1f}/s)",
        "events_per_entity_per_day": f"{source}: {t.events:,} event refreshes",
    }
    values["p99_ms"] = DEFAULT_P99_MS
    provenance["p99_ms"] = f"default: {DEFAULT_P99_MS:,.0f} ms (a ledger records latency, not its objective)"
    if config_max_age_s is not None:
        values["freshness_s"] = config_max_age_s
        provenance["freshness_s"] = "inferred: the serve config's max_age for the model"
    else:
        values["freshness_s"] = t.day_s
        provenance["freshness_s"] = "default: one day (a nightly job's answers); --freshness or --config to change"
    if t.fallback_share is not None and "freshness" not in given and "freshness_s" not in given:
        values["fallback_share"] = t.fallback_share
        provenance["fallback_share"] = f"{source}: live fallbacks over all lookups"
    if t.keyless_requests == t.requests and t.requests and not t.jobs:
        values["precomputable"] = False
        provenance["precomputable"] = (
            "inferred: no request named an entity and no batch job ran, so nothing is scored ahead"
        )
    else:
        values["precomputable"] = True
        provenance["precomputable"] = "default: inputs exist before the request (--not-precomputable if not)"
    daily = bool(t.jobs) and t.jobs_per_day >= 0.9
    if daily and not t.rows_by_source.get("precomputed", 0):
        values["bulk_daily"] = True
        provenance["bulk_daily"] = "inferred: a daily batch job scores the population and no lookup reads it"
    else:
        values["bulk_daily"] = False
        provenance["bulk_daily"] = (
            "default: no; a batch job that feeds lookups is part of the hybrid set-up "
            "(--bulk-daily if its scores are also used offline)"
            if daily
            else "default: no daily batch job in the ledger (--bulk-daily if every entity needs a score each day)"
        )
    overridden = sorted(k for k in _overrides(given) if k in MEASURED or k in ("fallback_share",))
    settings = {**values, **_overrides(given)}
    for key in _overrides(given):
        provenance[key] = "option" + (" (overrides the measured figure)" if key in overridden else "")
    if "preset" in given:
        settings["preset"] = given["preset"]
    settings.setdefault("description", f"{source}, {_shown(t.since)} to {_shown(t.until)}")
    if settings["population"] < settings["active_per_day"]:
        settings["active_per_day"] = settings["population"]
    workload = workload_from(_plain(settings), f"{t.model} (ledger)")
    return LedgerWorkload(workload, traffic, provenance, overridden)


def _overrides(given: Mapping[str, Any]) -> dict[str, Any]:
    """The workload settings the options set (a preset's every figure, then the explicit ones)."""
    from foretell.advisor.workload import PRESETS

    found: dict[str, Any] = {}
    preset = given.get("preset")
    if preset is not None:
        if preset not in PRESETS:
            raise InvalidInput(f"no preset {preset!r}; presets: {', '.join(PRESETS)}")
        found.update({k: v for k, v in PRESETS[preset].to_dict().items() if k not in ("name", "description")})
    found.update({k: v for k, v in given.items() if k != "preset"})
    if "freshness" in found:
        found["freshness_s"] = found.pop("freshness")
    return found


def _plain(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as `workload_from` reads them: a preset's name is dropped (its figures are already in)."""
    plain = {k: v for k, v in settings.items() if k != "preset"}
    if isinstance(plain.get("freshness_s"), str):
        plain["freshness"] = plain.pop("freshness_s")
    return plain


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _when(job: Mapping[str, Any]) -> datetime:
    moment = datetime.fromisoformat(str(job["predicted_at"]))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _micros(job: Mapping[str, Any]) -> int:
    return (_when(job) - _EPOCH) // timedelta(microseconds=1)


def _job_summary(job: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "job_id": str(job["job_id"]),
        "predicted_at": _when(job).isoformat(),
        "rows": int(job["rows"]),
        "input": job.get("input"),
    }


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _shown(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def span(days: float, day_s: float = DAY_S) -> str:
    """A window's length: in days from a day up, else in hours, minutes or seconds (of a compressed day's scale)."""
    if days >= 1:
        return f"{days:,.2f} days" if days < 10 else f"{days:,.0f} days"
    seconds = days * DAY_S if day_s == DAY_S else days * day_s
    for unit, size in (("h", 3_600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:,.1f} s"
