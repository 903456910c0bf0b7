"""Drift of a column against its reference profile: PSI, KS, missing rate, categories never seen.

Each check grades ok / warn / alert against `Thresholds`, and only when its figure is
also above the figure sampling noise alone would reach with probability alpha (the
*noise floor* of the two sample sizes): a window of 200 rows must not raise an alarm
that a window of 200 000 rows would rightly raise for the same figure. alpha is 0.001
shared among the checks judged together (Bonferroni: `family` features, each with its
2-3 checks), so a window without drift raises nothing, for all of a model's 31
features, in about 999 windows of 1000; one check alone uses alpha 0.001.

- PSI floor: (1/n + 1/N) * chi2_(1-alpha)(bins - 1). Under no drift, PSI (a symmetrised
  Kullback-Leibler divergence) divided by (1/n + 1/N) is about chi-squared with bins - 1
  degrees of freedom; its quantile is the Wilson-Hilferty approximation (no scipy).
- KS floor: c(alpha) * sqrt((n + N) / (n * N)), c = sqrt(-ln(alpha / 2) / 2): the
  two-sample critical value (1.949 at alpha 0.001).
- missing-rate floor: z(1 - alpha/2) standard errors of the difference of two proportions.
- unseen floor: -ln(alpha) / N, the share a category may have and still be missed by all
  N reference rows with probability alpha.
N counts reference values, n current ones.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from foretell.errors import InvalidThresholds
from foretell.profiles.grids import CategoricalGrid, Counts, NumericGrid, grid_for
from foretell.profiles.reference import CategoricalProfile, NumericProfile, ReferenceProfile

__all__ = [
    "FeatureDrift",
    "Status",
    "Thresholds",
    "WindowedBins",
    "categorical_drift",
    "chi2_quantile",
    "counted_drift",
    "ks_floor",
    "missing_floor",
    "numeric_drift",
    "psi",
    "psi_floor",
    "rank",
    "unseen_floor",
    "worst",
]

Status = Literal["ok", "warn", "alert"]
_RANK: dict[Status, int] = {"ok": 0, "warn": 1, "alert": 2}
#: Shares below this count as this in PSI: an empty bin on one side would make it infinite.
SHARE_FLOOR = 1e-4
#: The chance that a window without drift raises any status (shared among the checks judged together).
FALSE_ALARM = 0.001
_NORMAL = NormalDist()


@dataclass(frozen=True)
class Thresholds:
    """When a drift figure warns and when it alerts; see the module docstring for the noise floors.

    The defaults are tighter than the folklore PSI 0.1 / 0.25: half the traffic shifted by
    half a standard deviation is PSI about 0.058 with decile bins, and that must alert.
    """

    psi_warn: float = 0.02
    psi_alert: float = 0.05
    ks_warn: float = 0.1
    ks_alert: float = 0.2
    missing_warn: float = 0.05
    missing_alert: float = 0.10
    unseen_warn: float = 0.01
    unseen_alert: float = 0.05
    min_rows: int = 200

    def __post_init__(self) -> None:
        for check in ("psi", "ks", "missing", "unseen"):
            warn, alert = getattr(self, f"{check}_warn"), getattr(self, f"{check}_alert")
            if not 0 <= warn <= alert:
                raise InvalidThresholds(f"{check}_warn must be >= 0 and <= {check}_alert; got {warn} and {alert}")
        if self.min_rows < 1:
            raise InvalidThresholds(f"min_rows must be at least 1; got {self.min_rows}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Thresholds:
        """Thresholds from a TOML table (or any mapping); unknown keys and wrong types are refused by name."""
        if not isinstance(data, Mapping):
            raise InvalidThresholds(f"thresholds are a table of numbers, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InvalidThresholds(f"unknown threshold keys {unknown}; allowed: {sorted(known)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            whole = name == "min_rows"
            if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
                wanted = "a whole number" if whole else "a number"
                raise InvalidThresholds(f"threshold {name!r} must be {wanted}; got {type(value).__name__} {value!r}")
            if not math.isfinite(value):
                raise InvalidThresholds(f"threshold {name!r} must be finite; got {value!r}")
            values[name] = value if whole else float(value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def psi(reference_fractions: npt.ArrayLike, current_counts: npt.ArrayLike) -> float:
    """The population stability index: sum((c - r) * ln(c / r)) over the bins, shares floored at 1e-4."""
    reference = np.maximum(np.asarray(reference_fractions, dtype=np.float64), SHARE_FLOOR)
    counts = np.asarray(current_counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return 0.0
    current = np.maximum(counts / total, SHARE_FLOOR)
    return float(np.sum((current - reference) * np.log(current / reference)))


def chi2_quantile(df: int, alpha: float = FALSE_ALARM) -> float:
    """The 1 - alpha quantile of chi-squared with `df` degrees of freedom (Wilson-Hilferty; no scipy)."""
    if df <= 0:
        return 0.0
    c = 2.0 / (9.0 * df)
    return float(df * (1.0 - c + _NORMAL.inv_cdf(1.0 - alpha) * math.sqrt(c)) ** 3)


def psi_floor(n: int, reference_n: int, bins: int, alpha: float = FALSE_ALARM) -> float:
    if n <= 0 or reference_n <= 0:
        return math.inf
    return (1.0 / n + 1.0 / reference_n) * chi2_quantile(bins - 1, alpha)


def ks_floor(n: int, reference_n: int, alpha: float = FALSE_ALARM) -> float:
    if n <= 0 or reference_n <= 0:
        return math.inf
    return math.sqrt(-math.log(alpha / 2.0) / 2.0) * math.sqrt((n + reference_n) / (n * reference_n))


def missing_floor(n: int, rate: float, reference_n: int, reference_rate: float, alpha: float = FALSE_ALARM) -> float:
    if n <= 0 or reference_n <= 0:
        return math.inf
    pooled = (rate * n + reference_rate * reference_n) / (n + reference_n)
    z = _NORMAL.inv_cdf(1.0 - alpha / 2.0)
    return z * math.sqrt(pooled * (1 - pooled) * (1.0 / n + 1.0 / reference_n))


def unseen_floor(reference_n: int, alpha: float = FALSE_ALARM) -> float:
    return -math.log(alpha) / reference_n if reference_n > 0 else math.inf


def rank(status: Status) -> int:
    """How bad a status is: ok 0, warn 1, alert 2."""
    return _RANK[status]


def worst(statuses: Any) -> Status:
    found: Status = "ok"
    for status in statuses:
        if _RANK[status] > _RANK[found]:
            found = status
    return found


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's (or output's) drift over a window, with why it has its status."""

    name: str
    kind: Literal["numeric", "categorical"]
    rows: int
    psi: float | None
    ks: float | None
    missing_rate: float
    reference_missing_rate: float
    unseen_share: float
    unseen_values: tuple[str, ...]
    status: Status
    reasons: tuple[str, ...]
    bins: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]
    since: str | None = None
    """ISO hour when it first passed its warn threshold in the window (None when ok)."""
    group: str | None = None
    """Which traffic the figures are of, when a monitor judges traffic in groups (`batch`, `online`)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("bins", "reference", "current", "unseen_values", "reasons"):
            out[key] = list(out[key])
        for key in ("psi", "ks"):
            if out[key] is not None and not math.isfinite(out[key]):
                out[key] = None
        return out


def numeric_drift(
    name: str, profile: NumericProfile, values: Any, thresholds: Thresholds, *, family: int = 1
) -> FeatureDrift:
    """Drift of numeric `values` (numpy or Arrow; NaN/null missing; vectors flattened) against `profile`.

    `family`: how many features are judged together (they share the false-alarm chance).
    """
    grid = NumericGrid(profile)
    return counted_drift(name, grid, grid.count(values), thresholds, family=family)


def categorical_drift(
    name: str, profile: CategoricalProfile, values: Any, thresholds: Thresholds, *, family: int = 1
) -> FeatureDrift:
    """Drift of categories (names; numpy object or Arrow; None/null missing) against `profile`."""
    grid = CategoricalGrid(profile)
    return counted_drift(name, grid, grid.count(values), thresholds, unseen=grid.unseen_names(values), family=family)


def counted_drift(
    name: str,
    grid: NumericGrid | CategoricalGrid,
    counts: Counts,
    thresholds: Thresholds,
    *,
    unseen: Mapping[str, int] | None = None,
    family: int = 1,
) -> FeatureDrift:
    """Drift from cell counts (`grid.count(...)`, or sums of them over several sources or slices).

    `family`: how many features are judged together; they share the false-alarm chance
    (module docstring), each of this feature's checks getting its part.
    """
    profile = grid.profile
    checks = 3 if isinstance(grid, CategoricalGrid) or grid.points.size else 2
    alpha = FALSE_ALARM / (max(family, 1) * checks)
    total = int(counts.sum())
    missing = int(counts[grid.missing_cell])
    present = total - missing
    missing_rate = missing / total if total else 0.0
    reference_present = round(profile.count * (1 - profile.missing_rate))
    binned = grid.bin_counts(counts)
    reference = grid.reference
    stability = psi(reference, binned) if present else None
    ks = grid.ks(counts) if isinstance(grid, NumericGrid) and present else None
    unseen_share = grid.unseen_count(counts) / present if isinstance(grid, CategoricalGrid) and present else 0.0
    binned_total = binned.sum()
    grades: list[tuple[Status, str]] = []
    if present < thresholds.min_rows:
        grades.append(("ok", f"{present} rows, fewer than min_rows {thresholds.min_rows}: not judged"))
    else:
        if stability is not None:
            floor = psi_floor(present, reference_present, len(reference), alpha)
            grades.append(_grade("PSI", stability, thresholds.psi_warn, thresholds.psi_alert, floor))
        if ks is not None:
            floor = ks_floor(present, reference_present, alpha)
            grades.append(_grade("KS", ks, thresholds.ks_warn, thresholds.ks_alert, floor))
        if isinstance(grid, CategoricalGrid):
            floor = unseen_floor(reference_present, alpha)
            grades.append(_grade("unseen share", unseen_share, thresholds.unseen_warn, thresholds.unseen_alert, floor))
    if total >= thresholds.min_rows:
        change = abs(missing_rate - profile.missing_rate)
        floor = missing_floor(total, missing_rate, profile.count, profile.missing_rate, alpha)
        grades.append(_grade("missing-rate change", change, thresholds.missing_warn, thresholds.missing_alert, floor))
    flagged = [(status, reason) for status, reason in grades if status != "ok" or "not judged" in reason]
    return FeatureDrift(
        name=name,
        kind=profile.kind,
        rows=total,
        psi=stability,
        ks=ks,
        missing_rate=missing_rate,
        reference_missing_rate=profile.missing_rate,
        unseen_share=unseen_share,
        unseen_values=tuple(unseen or ()),
        status=worst(status for status, _ in grades),
        reasons=tuple(reason for _, reason in flagged),
        bins=grid.labels(),
        reference=tuple(reference.tolist()),
        current=tuple((binned / binned_total).tolist()) if binned_total else tuple(0.0 for _ in reference),
    )


def _grade(what: str, value: float, warn: float, alert: float, floor: float) -> tuple[Status, str]:
    noise = f" (noise floor {floor:.3g})" if floor > warn else ""
    if value > max(alert, floor):
        return "alert", f"{what} {value:.3g} > alert {alert:g}{noise}"
    if value > max(warn, floor):
        return "warn", f"{what} {value:.3g} > warn {warn:g}{noise}"
    return "ok", f"{what} {value:.3g} ok"


class WindowedBins:
    """Cell counts per column over a sliding time window, for live drift gauges.

    Feed it from one thread (`add`), read it from another (`psi`, `drift`): counts are
    kept per `step`-second slice and a slice leaves the window `window` seconds after it
    began. Times are seconds (any clock, as long as one is used throughout).

        bins = WindowedBins(profile, window=3600)
        bins.add({"tenure": np.array([...]), "plan": np.array(["pro", ...], dtype=object)}, at=time.time())
        bins.psi("tenure")          # PSI of the last hour, None before any row
        bins.psi_by_feature()       # {feature: PSI or None} for every input the profile has
    Inputs and outputs share one namespace; an input wins when both have a name.
    """

    def __init__(self, profile: ReferenceProfile, *, window: float = 3600.0, step: float = 60.0) -> None:
        if window <= 0 or step <= 0:
            raise ValueError(f"window and step must be positive seconds; got {window} and {step}")
        self.profile = profile
        self.window = float(window)
        self.step = float(step)
        self._grids = {name: grid_for(p) for name, p in {**profile.outputs, **profile.inputs}.items()}
        self._slices: deque[tuple[float, dict[str, Counts]]] = deque()
        self._totals = {name: np.zeros(grid.ncells, dtype=np.int64) for name, grid in self._grids.items()}
        self._latest = -math.inf
        self._lock = threading.Lock()

    def add(self, columns: Mapping[str, Any], *, at: float) -> None:
        """Count `columns` (name → values for many rows) at time `at`; names the profile lacks are ignored."""
        counted = {name: self._grids[name].count(v) for name, v in columns.items() if name in self._grids}
        start = math.floor(at / self.step) * self.step
        with self._lock:
            if not self._slices or self._slices[-1][0] < start:
                self._slices.append((start, {}))
            bucket = self._slices[-1][1]  # a late row counts in the newest slice
            for name, counts in counted.items():
                bucket[name] = bucket[name] + counts if name in bucket else counts
                self._totals[name] += counts
            self._latest = max(self._latest, at)
            self._expire(self._latest)

    def counts(self, name: str, *, now: float | None = None) -> Counts:
        with self._lock:
            if now is not None:
                self._expire(now)
            return self._totals[name].copy()

    def rows(self, name: str, *, now: float | None = None) -> int:
        return int(self.counts(name, now=now).sum())

    def psi(self, name: str, *, now: float | None = None) -> float | None:
        """PSI of `name` over the window (None before any non-missing value)."""
        grid = self._grids[name]
        binned = grid.bin_counts(self.counts(name, now=now))
        return psi(grid.reference, binned) if binned.sum() else None

    def psi_by_feature(self, *, now: float | None = None) -> dict[str, float | None]:
        return {name: self.psi(name, now=now) for name in self.profile.inputs}

    def drift(self, name: str, thresholds: Thresholds, *, now: float | None = None) -> FeatureDrift:
        return counted_drift(name, self._grids[name], self.counts(name, now=now), thresholds)

    def _expire(self, now: float) -> None:
        while self._slices and self._slices[0][0] <= now - self.window:
            _, bucket = self._slices.popleft()
            for name, counts in bucket.items():
                self._totals[name] -= counts
