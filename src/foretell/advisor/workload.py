"""What a team needs from its predictions: the workload the advisor weighs the three ways against.

Given as options, a small TOML file, or one of the seed's scenarios (`PRESETS`):

```toml
population = 1_000_000        # entities that could be scored (customers, users)
active_per_day = 40_000       # of them, how many are asked about on a day
requests_per_day = 60_000     # online requests (0: predictions are only used offline)
peak_rps = 5                  # the busiest second
p99_ms = 200                  # latency objective for an online answer
freshness = "1d"              # how old an answer may be
events_per_entity_per_day = 0.1   # how often something happens that changes an entity's answer
precomputable = true          # false when the input only exists at request time (a new transaction)
bulk_daily = true             # every entity needs a score each day anyway (a campaign, a report)
```
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foretell.config import parse_duration
from foretell.errors import InvalidInput

__all__ = ["PRESETS", "Workload", "load_workload"]

DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Workload:
    population: int
    """Entities that could be scored: what a batch job would score."""
    active_per_day: int
    """Entities that get at least one online request on a typical day."""
    requests_per_day: float
    """Online requests a day; 0 when predictions are only used offline (a mailing, a report)."""
    peak_rps: float
    """Online requests in the busiest second."""
    p99_ms: float
    """Latency objective for an online answer, at the 99th percentile."""
    freshness_s: float
    """How old an answer may be when it is given, in seconds."""
    events_per_entity_per_day: float = 0.0
    """How often something happens to an entity that should change its answer (a rating, a support call)."""
    precomputable: bool = True
    """False when the input exists only at request time (a transaction being paid), so nothing can be scored ahead."""
    bulk_daily: bool = False
    """Every entity needs a score on a schedule anyway (a retention campaign, a report, a CRM field)."""
    fallback_share: float | None = None
    """Share of lookups the store cannot answer fresh, as measured in the ledger (None: priced from `freshness_s`)."""
    day_s: float = DAY_S
    """Seconds in the day the figures are per. Always a real day, except when replaying a compressed
    recording of one (the advisor's accuracy test), where every time figure is in the recording's seconds."""
    name: str = "custom"
    description: str = ""

    def __post_init__(self) -> None:
        checks = [
            (self.population >= 0, "population must be ≥ 0"),
            (0 <= self.active_per_day <= max(self.population, 0) or not self.precomputable,
             "active_per_day must be between 0 and population"),
            (self.requests_per_day >= 0, "requests_per_day must be ≥ 0"),
            (self.peak_rps >= 0, "peak_rps must be ≥ 0"),
            (self.requests_per_day == 0 or self.peak_rps > 0, "peak_rps must be > 0 when there are online requests"),
            (self.p99_ms > 0, "p99_ms must be > 0"),
            (self.freshness_s >= 0, "freshness must be ≥ 0"),
            (self.events_per_entity_per_day >= 0, "events_per_entity_per_day must be ≥ 0"),
            (self.fallback_share is None or 0 <= self.fallback_share <= 1, "fallback_share must be between 0 and 1"),
            (self.day_s > 0, "day_s must be > 0"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise InvalidInput(f"workload {self.name!r}: {message}")
        for value in (self.requests_per_day, self.peak_rps, self.p99_ms, self.freshness_s, self.day_s):
            if not math.isfinite(value):
                raise InvalidInput(f"workload {self.name!r}: every figure must be a finite number")

    @property
    def online(self) -> bool:
        return self.requests_per_day > 0

    @property
    def active_fraction(self) -> float:
        return self.active_per_day / self.population if self.population else 1.0

    def replace(self, **changes: Any) -> Workload:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, Workload] = {
    "nightly-churn": Workload(
        name="nightly-churn",
        description=(
            "Churn risk for 1M customers, scored every night; agents look a customer up during a support call, "
            "and a call itself changes the risk."
        ),
        population=1_000_000,
        active_per_day=20_000,
        requests_per_day=30_000,
        peak_rps=5,
        p99_ms=200,
        freshness_s=DAY_S,
        events_per_entity_per_day=0.02,
        bulk_daily=True,
    ),
    "movie-recs": Workload(
        name="movie-recs",
        description=(
            "Top-10 films for every user prepared overnight; a user who rates a film expects new "
            "recommendations at once."
        ),
        population=5_000,
        active_per_day=2_000,
        requests_per_day=40_000,
        peak_rps=20,
        p99_ms=100,
        freshness_s=5.0,
        events_per_entity_per_day=2.0,
        bulk_daily=True,
    ),
    "fraud-check": Workload(
        name="fraud-check",
        description="Every card transaction needs a decision before it is approved; the transaction is the input.",
        population=0,
        active_per_day=0,
        requests_per_day=2_000_000,
        peak_rps=100,
        p99_ms=50,
        freshness_s=0.0,
        precomputable=False,
    ),
}


def load_workload(path: Path | str) -> Workload:
    return workload_from(workload_settings(path), Path(path).stem)


def workload_settings(path: Path | str) -> dict[str, Any]:
    """A workload file's settings as written (some may be missing: `--from-ledger` measures the rest)."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"workload file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path.name} is not valid TOML: {exc}") from None


def workload_from(data: dict[str, Any], name: str = "custom") -> Workload:
    """A `Workload` from plain settings (a TOML table, or CLI options); `freshness` may be "1d", "5s", ..."""
    values = dict(data)
    base = values.pop("preset", None)
    start = PRESETS[_preset(base)].to_dict() if base else {}
    if "freshness" in values:
        try:
            values["freshness_s"] = parse_duration(values.pop("freshness"))
        except ValueError as exc:
            raise InvalidInput(f"freshness: {exc}") from None
    known = {f.name for f in dataclasses.fields(Workload)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InvalidInput(
            f"unknown workload setting(s) {unknown}; known: {sorted(known - {'freshness_s'})}, freshness"
        )
    merged = {**start, "name": name if not base else start["name"], **values}
    missing = [
        f.name for f in dataclasses.fields(Workload) if f.default is dataclasses.MISSING and f.name not in merged
    ]
    if missing:
        raise InvalidInput(f"the workload needs {', '.join(missing)} (or start from a --preset)")
    try:
        return Workload(**merged)
    except TypeError as exc:
        raise InvalidInput(f"workload: {exc}") from None


def _preset(name: object) -> str:
    if not isinstance(name, str) or name not in PRESETS:
        raise InvalidInput(f"no preset {name!r}; presets: {', '.join(PRESETS)}")
    return name
