"""The cost model: batch, real-time and hybrid priced from measurements of the user's own model.

Pure arithmetic over a `Workload` and `Measurements`, so it is tested with fixed numbers.
The three ways, as this model prices them (core-seconds are CPU time on this machine):

- **batch**: score the whole population on a schedule (once a day, or as often as the
  freshness need demands) into files. It answers no online request by itself.
- **real-time**: compute every answer when it is asked for. A lone request pays a whole
  model call; requests that arrive while the model runs share the next call (the server's
  micro-batching), so the cost per request falls as traffic rises, down to the saturated
  throughput measured on this machine.
- **hybrid**: a nightly batch into the prediction store; online answers are lookups; answers
  older than the freshness need, and entities that an event changed, are predicted live.

The recommendation follows the seed's rules of thumb, each checked against the figures:
bulk scoring of a whole population on a schedule → batch; instant, per-input answers →
real-time; both needs → hybrid; otherwise the cheaper of hybrid and real-time that meets
the latency objective, with the request rate and population at which that would change.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from foretell.advisor.workload import DAY_S, Workload

__all__ = [
    "Advice",
    "Measurements",
    "ModeCost",
    "advise",
    "job_core_seconds",
    "live_cost_per_request",
    "lookup_cost_per_request",
]

Mode = Literal["batch", "real-time", "hybrid"]
MODES: tuple[Mode, ...] = ("batch", "real-time", "hybrid")


@dataclass(frozen=True, slots=True)
class Measurements:
    """What the advisor measured on this machine, per core unless said otherwise."""

    batch_rows_per_s: float
    """Rows scored per second per core through the real batch path (read, validate, predict, write)."""
    single_p50_ms: float
    """One request alone through the real server: what a lone online request costs."""
    single_p99_ms: float
    live_rps: float
    """Requests/s one server worker answers when saturated (micro-batched)."""
    live_p99_ms: float
    """p99 at that saturation."""
    lookup_rps: float
    """Precomputed lookups/s one server worker answers when saturated."""
    lookup_p99_ms: float
    """p99 of one lookup alone (no queueing)."""
    lookup_loaded_p99_ms: float
    """p99 of lookups at saturation."""
    store_write_rows_per_s: float
    prediction_bytes: float
    """One stored prediction, encoded."""
    cores: int = 1
    batch_startup_s: float = 0.0
    """A batch job's fixed cost before its first row: opening the input, starting workers, loading the model."""
    # CPU time (advisor/cpu.py), what a way costs; None when not measured (figures given by hand): the
    # cost model then derives it from the times above.
    single_cpu_ms: float | None = None
    """Server CPU one more lone request adds (each arriving at an idle server)."""
    live_cpu_ms: float | None = None
    """Server CPU per request at saturation (64 clients)."""
    lookup_single_cpu_ms: float | None = None
    lookup_cpu_ms: float | None = None
    idle_cpu_per_s: float = 0.0
    """CPU seconds a serving process burns each second with no traffic: online ways pay it all day."""
    active_cpu_per_s: float = 0.0
    """CPU a second with any traffic costs the server beyond its requests' own (the ledger's segment for it)."""
    event_cpu_ms: float | None = None
    """Server CPU for one event: the entity's features written, the model run, the new answer stored."""
    batch_cpu_ms_per_row: float | None = None
    """CPU of a batch job per row, every process of it."""
    batch_startup_cpu_s: float = 0.0
    store_write_cpu_ms_per_row: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def batch_seconds(self, rows: float) -> float:
        """Wall-clock seconds a batch job over `rows` takes on this machine, all cores working."""
        return self.batch_startup_s + rows / (self.batch_rows_per_s * max(self.cores, 1)) if rows else 0.0


@dataclass(frozen=True, slots=True)
class ModeCost:
    mode: Mode
    feasible: bool
    why_not: str | None
    core_hours_per_day: float
    peak_cores: float
    """Cores one needs at the peak request rate to keep answers within the latency objective."""
    p99_ms: float | None
    """p99 of an online answer (None: no online answers)."""
    freshness_s: float
    """The oldest an answer can be when it is given."""
    store_bytes: float
    wasted_fraction: float
    """Share of computed predictions nobody asks for that day."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Advice:
    workload: Workload
    measurements: Measurements
    modes: dict[str, ModeCost]
    recommendation: Mode
    reasons: list[str]
    crossover: dict[str, float | None]
    """`requests_per_day`: where hybrid and real-time cost the same for this population;
    `population`: where they cost the same for this traffic (None when they never do)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload.to_dict(),
            "measurements": self.measurements.to_dict(),
            "modes": {name: cost.to_dict() for name, cost in self.modes.items()},
            "recommendation": self.recommendation,
            "reasons": list(self.reasons),
            "crossover": dict(self.crossover),
        }


def live_cost_per_request(m: Measurements, rate: float) -> float:
    """Core-seconds one live request costs when `rate` requests/s arrive at one worker.

    A call costs about what a lone request does; the requests that arrive while it runs
    share the next one, so at rate r a call serves about 1 + r·t of them, until the worker
    saturates at its measured throughput. With CPU measurements, a lone request costs its
    measured CPU and the floor is the CPU per request at saturation.
    """
    call_s = m.single_p50_ms / 1000.0
    if m.single_cpu_ms is not None and m.live_cpu_ms is not None:
        lone, floor = m.single_cpu_ms / 1000.0, m.live_cpu_ms / 1000.0
    else:
        lone, floor = call_s, 1.0 / m.live_rps
    return max(lone / (1.0 + max(rate, 0.0) * call_s), floor)


def lookup_cost_per_request(m: Measurements, rate: float) -> float:
    """Core-seconds one lookup from the store costs at `rate` lookups/s (as `live_cost_per_request` reasons)."""
    if m.lookup_single_cpu_ms is None or m.lookup_cpu_ms is None:
        return 1.0 / m.lookup_rps
    lone = m.lookup_single_cpu_ms / 1000.0  # a lookup keeps the server busy about as long as it uses the CPU
    return max(lone / (1.0 + max(rate, 0.0) * lone), m.lookup_cpu_ms / 1000.0)


#: How often a server's ledger publishes a segment (`[ledger] flush_seconds`): a second with traffic costs one.
LEDGER_FLUSH_S = 1.0


def server_core_seconds(m: Measurements, w: Workload, answers_per_day: float) -> float:
    """A serving process's own cost for a day: idling all day, and each ledger interval that had traffic."""
    active_s = min(w.day_s, answers_per_day * LEDGER_FLUSH_S)
    return m.idle_cpu_per_s * w.day_s + m.active_cpu_per_s * active_s


def job_core_seconds(m: Measurements, rows: float, *, to_store: bool) -> float:
    """CPU of one batch job over `rows` (its start-up, scoring, and the store's bulk write when `to_store`)."""
    if m.batch_cpu_ms_per_row is None:
        scoring = rows / m.batch_rows_per_s
    else:
        scoring = m.batch_startup_cpu_s + rows * m.batch_cpu_ms_per_row / 1000.0
    if not to_store:
        return scoring
    if m.store_write_cpu_ms_per_row is None:
        return scoring + rows / m.store_write_rows_per_s
    return scoring + rows * m.store_write_cpu_ms_per_row / 1000.0


def batch_cost(w: Workload, m: Measurements) -> ModeCost:
    wall = m.batch_seconds(w.population)
    run_s = wall * max(m.cores, 1)  # core-seconds of one run: every core is the job's while it runs
    # An answer is as old as the time since its run started: runs must start `need - wall` apart.
    interval = w.day_s if w.freshness_s >= w.day_s else w.freshness_s - wall
    runs = w.day_s / interval if interval > 0 else math.inf
    why = None
    if not w.precomputable:
        why = "the input exists only when a request comes: there is nothing to score ahead"
    elif w.online:
        why = "it answers no online request by itself (the hybrid way serves its output by key)"
    elif interval <= 0:
        why = f"one run takes {wall:,.0f} s on {m.cores} cores, longer than the {w.freshness_s:,.0f} s freshness allows"
    return ModeCost(
        "batch",
        why is None,
        why,
        core_hours_per_day=runs * run_s / 3600.0 if math.isfinite(runs) else math.inf,
        peak_cores=float(m.cores) if w.population else 0.0,
        p99_ms=None,
        freshness_s=max(interval, 0.0) + wall,
        store_bytes=0.0,
        wasted_fraction=0.0,
    )


def real_time_cost(w: Workload, m: Measurements) -> ModeCost:
    average = w.requests_per_day / w.day_s
    serve_s = w.requests_per_day * live_cost_per_request(m, average)
    serve_s += server_core_seconds(m, w, w.requests_per_day) if w.online else 0.0
    bulk_s = job_core_seconds(m, w.population, to_store=False) if w.bulk_daily else 0.0  # the need takes a job
    peak_cores = w.peak_rps * live_cost_per_request(m, w.peak_rps)
    p99 = m.single_p99_ms if peak_cores < 0.5 else m.live_p99_ms
    why = None
    if not w.online:
        why = "there are no online requests to answer"
    elif p99 > w.p99_ms:
        why = f"its p99 here is {p99:,.1f} ms, over the {w.p99_ms:,.0f} ms objective"
    return ModeCost(
        "real-time",
        why is None,
        why,
        core_hours_per_day=(serve_s + bulk_s) / 3600.0,
        peak_cores=peak_cores,
        p99_ms=p99 if w.online else None,
        freshness_s=0.0,
        store_bytes=0.0,
        wasted_fraction=0.0,
    )


def hybrid_cost(w: Workload, m: Measurements) -> ModeCost:
    stale = w.fallback_share
    if stale is None:  # requests whose nightly answer is older than the need
        stale = max(0.0, 1.0 - w.freshness_s / w.day_s)
    batch_s = job_core_seconds(m, w.population, to_store=True)
    lookup_rate = w.requests_per_day * (1.0 - stale) / w.day_s
    lookups_s = w.requests_per_day * (1.0 - stale) * lookup_cost_per_request(m, lookup_rate)
    events = w.population * w.events_per_entity_per_day
    if w.online:  # the server that answers them runs all day
        lookups_s += server_core_seconds(m, w, w.requests_per_day + events)
    live_rate = w.requests_per_day * stale / w.day_s
    live_s = w.requests_per_day * stale * live_cost_per_request(m, live_rate)
    event_rate = w.population * w.events_per_entity_per_day / w.day_s
    per_event = live_cost_per_request(m, event_rate) if m.event_cpu_ms is None else m.event_cpu_ms / 1000.0
    events_s = w.population * w.events_per_entity_per_day * per_event
    peak_live = w.peak_rps * stale
    peak_lookups = w.peak_rps * (1.0 - stale)
    peak_cores = peak_lookups * lookup_cost_per_request(m, peak_lookups) + peak_live * live_cost_per_request(
        m, peak_live
    )
    lookup_p99 = m.lookup_p99_ms if w.peak_rps / m.lookup_rps < 0.5 else m.lookup_loaded_p99_ms
    if stale > 0.01:
        p99 = m.single_p99_ms if peak_live * live_cost_per_request(m, peak_live) < 0.5 else m.live_p99_ms
        p99 = max(p99, lookup_p99)
    else:
        p99 = lookup_p99
    why = None
    if not w.precomputable:
        why = "the input exists only when a request comes: there is nothing to precompute"
    elif not w.online:
        why = "there are no online requests to serve from the store"
    elif p99 > w.p99_ms:
        why = f"its p99 here is {p99:,.1f} ms, over the {w.p99_ms:,.0f} ms objective"
    return ModeCost(
        "hybrid",
        why is None,
        why,
        core_hours_per_day=(batch_s + lookups_s + live_s + events_s) / 3600.0,
        peak_cores=peak_cores,
        p99_ms=p99 if w.online else None,
        freshness_s=min(w.freshness_s, w.day_s),
        store_bytes=w.population * m.prediction_bytes,
        wasted_fraction=0.0 if w.bulk_daily else 1.0 - w.active_fraction,
    )


def advise(w: Workload, m: Measurements) -> Advice:
    modes = {"batch": batch_cost(w, m), "real-time": real_time_cost(w, m), "hybrid": hybrid_cost(w, m)}
    choice, reasons = _recommend(w, modes)
    return Advice(w, m, modes, choice, reasons, crossover(w, m))


def _recommend(w: Workload, modes: dict[str, ModeCost]) -> tuple[Mode, list[str]]:
    batch, live, hybrid = modes["batch"], modes["real-time"], modes["hybrid"]
    if not w.online:
        return "batch", [
            f"Bulk scoring of a whole population on a schedule: {w.population:,} entities, no online requests.",
            f"One run costs {batch.core_hours_per_day:,.2f} core-hours a day and answers are at most "
            f"{_duration(batch.freshness_s)} old.",
        ]
    if not w.precomputable:
        return "real-time", [
            "Instant, per-input answers: the input exists only when the request comes, so nothing can be scored ahead.",
            f"At {w.peak_rps:,.0f} requests/s at peak it needs {live.peak_cores:,.2f} cores; p99 here "
            f"{_ms(live.p99_ms)} against a {w.p99_ms:,.0f} ms objective.",
        ]
    if w.bulk_daily and hybrid.feasible:
        return "hybrid", [
            f"Both needs: every one of {w.population:,} entities needs a score each day, and "
            f"{w.requests_per_day:,.0f} online requests a day need answers.",
            f"The daily job is needed anyway, so online answers come from its store for a lookup's cost "
            f"(p99 {_ms(hybrid.p99_ms)}); answers older than {_duration(w.freshness_s)}"
            + (" and entities an event changed" if w.events_per_entity_per_day else "")
            + " are predicted live.",
        ]
    feasible = [c for c in (hybrid, live) if c.feasible]
    if not feasible:
        best = min((hybrid, live), key=lambda c: c.p99_ms or math.inf)
        return best.mode, [f"Nothing meets the {w.p99_ms:,.0f} ms objective here; {best.mode} comes closest "
                           f"(p99 {_ms(best.p99_ms)}). More cores will not lower a single call's latency."]  # fmt: skip
    cheapest = min(feasible, key=lambda c: c.core_hours_per_day)
    other = next((c for c in (hybrid, live) if c is not cheapest), None)
    reasons = [
        f"{cheapest.mode} costs {_hours(cheapest.core_hours_per_day)} core-hours a day"
        + (f" against {_hours(other.core_hours_per_day)} for {other.mode}" if other is not None else "")
        + f", and meets the {w.p99_ms:,.0f} ms objective (p99 {_ms(cheapest.p99_ms)})."
    ]
    if other is not None and not other.feasible:
        reasons.append(f"{other.mode} is out: {other.why_not}.")
    if cheapest.mode == "hybrid" and cheapest.wasted_fraction > 0.5:
        reasons.append(
            f"{cheapest.wasted_fraction:.0%} of the nightly predictions are never asked for, and it is still cheaper."
        )
    return cheapest.mode, reasons


def crossover(w: Workload, m: Measurements) -> dict[str, float | None]:
    """Where hybrid and real-time cost the same: in requests a day (this population) and population (this traffic)."""

    def gap(workload: Workload) -> float:
        return real_time_cost(workload, m).core_hours_per_day - hybrid_cost(workload, m).core_hours_per_day

    if not w.precomputable or not w.online:
        return {"requests_per_day": None, "population": None}  # only one way fits, whatever the figures
    plain = w.replace(bulk_daily=False, peak_rps=max(w.peak_rps, 1e-9))
    requests = _root(lambda r: gap(plain.replace(requests_per_day=r)), 0.0, 1e12)
    population = _root(
        lambda n: -gap(plain.replace(population=int(n), active_per_day=min(plain.active_per_day, int(n)))),
        0.0,
        1e12,
    )
    return {"requests_per_day": requests, "population": population}


def _root(f: Any, low: float, high: float) -> float | None:
    """The x in [low, high] where f changes sign (f increasing), by bisection; None if it never does."""
    f_low, f_high = f(low), f(high)
    if f_low > 0 or f_high < 0:
        return None
    for _ in range(200):
        mid = (low + high) / 2
        if f(mid) < 0:
            low = mid
        else:
            high = mid
        if high - low <= max(1.0, 1e-6 * high):
            break
    return (low + high) / 2


def _hours(value: float) -> str:
    """Core-hours: two decimals, or three significant digits below 0.1 (a small day is not "0.00 against 0.00")."""
    return f"{value:,.2f}" if value >= 0.1 or value == 0 else f"{value:.3g}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} ms"


def _duration(seconds: float) -> str:
    for unit, size in (("d", DAY_S), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:,.1f} s"
