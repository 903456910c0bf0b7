"""How far a challenger's predictions are from the champion's on the same rows, and each arm's health.

Both the server (shadow and canary traffic) and a batch job (`batch run --compare`)
compare with `compare`, so a rollout's figures mean one thing wherever they come from:

- the **score difference** of a row is the absolute difference of the model's main score
  (a `score` or `value` output; for class probabilities, the largest difference over the
  classes; for top-k lists, the share of the champion's items the challenger does not
  return);
- a **label flip** is a row whose decision changed: its `label` output, else the most
  probable class, else the first recommended item. A model with no decision (a
  regressor) has no flips, and its flip rate is not reported.

`RolloutStats` is what one worker has counted since the rollout began; the sums of every
worker's are what `rollout status` shows and the guards judge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from foretell.core.predictor import Predictions
from foretell.core.schema import Output
from foretell.rollout.sketch import Sketch

__all__ = ["ARMS", "Arm", "ArmStats", "Comparison", "RolloutStats", "compare", "decision_output", "score_output"]

Arm = Literal["champion", "challenger"]
ARMS: tuple[Arm, ...] = ("champion", "challenger")


@dataclass(frozen=True, slots=True)
class Comparison:
    """Per row: the score difference (NaN where there is no score) and whether the decision flipped."""

    diffs: np.ndarray
    flips: np.ndarray | None
    """None when the model makes no decision (a regressor): no flip rate is reported."""


def score_output(outputs: Iterable[Output]) -> Output | None:
    """The output whose difference is a row's score difference."""
    outputs = tuple(outputs)
    for kinds in (("score", "value"), ("proba",), ("topk_items",)):
        for output in outputs:
            if output.kind in kinds:
                return output
    return None


def decision_output(outputs: Iterable[Output]) -> Output | None:
    """The output a row's decision is read from (a label, else probabilities, else a top-k list)."""
    outputs = tuple(outputs)
    for kind in ("label", "proba", "topk_items"):
        for output in outputs:
            if output.kind == kind:
                return output
    return None


def compare(champion: Predictions, challenger: Predictions) -> Comparison:
    """Row by row, how `challenger`'s predictions differ from `champion`'s on the same rows."""
    n = len(champion)
    if len(challenger) != n:
        raise ValueError(f"compared {n} champion predictions with {len(challenger)} challenger predictions")
    mine = {o.name: o for o in challenger.outputs}
    diffs = np.full(n, np.nan)
    scored = score_output(champion.outputs)
    if scored is not None and scored.name in mine:
        diffs = _score_diffs(scored, champion.column(scored.name), challenger.column(scored.name))
    decided = decision_output(champion.outputs)
    flips = None
    if decided is not None and decided.name in mine:
        flips = _flips(decided, champion.column(decided.name), challenger.column(decided.name))
    return Comparison(diffs, flips)


def _score_diffs(output: Output, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if output.kind == "topk_items":
        k = a.shape[1] if a.ndim > 1 else 1
        if a.ndim < 2 or k == 0:
            return np.zeros(len(a))
        shared = np.array([len(set(x.tolist()) & set(y.tolist())) for x, y in zip(a, b, strict=True)], dtype=float)
        return np.asarray(1.0 - shared / k)
    left, right = a.astype(np.float64, copy=False), b.astype(np.float64, copy=False)
    if left.ndim > 1:
        return np.asarray(np.max(np.abs(left - right), axis=1))
    return np.asarray(np.abs(left - right))


def _flips(output: Output, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if output.kind == "proba":
        return np.asarray(np.argmax(a, axis=1) != np.argmax(b, axis=1))
    if output.kind == "topk_items":
        if a.ndim < 2 or a.shape[1] == 0:
            return np.zeros(len(a), dtype=bool)
        return np.asarray(a[:, 0] != b[:, 0])
    return np.asarray(a != b)


@dataclass
class ArmStats:
    """One arm's requests (each answered or shadow-scored), errors, and model latency."""

    requests: int = 0
    errors: int = 0
    latency: Sketch = field(default_factory=Sketch)
    """Seconds from queueing on the arm's model to its predictions (the same measure for both arms)."""

    def merge(self, other: ArmStats) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.latency.merge(other.latency)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def summary(self) -> dict[str, Any]:
        p50, p99 = self.latency.quantile(0.5), self.latency.quantile(0.99)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "p50_ms": None if p50 is None else p50 * 1000,
            "p99_ms": None if p99 is None else p99 * 1000,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "latency": self.latency.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArmStats:
        return cls(int(data["requests"]), int(data["errors"]), Sketch.from_dict(data["latency"]))


@dataclass
class RolloutStats:
    """What has been counted for one rollout: both arms, the compared rows, and the shadow work dropped."""

    champion: ArmStats = field(default_factory=ArmStats)
    challenger: ArmStats = field(default_factory=ArmStats)
    compared: int = 0
    """Rows scored by both versions."""
    flips: int = 0
    decided: int = 0
    """Compared rows whose decision could be read (the denominator of the flip rate)."""
    diffs: Sketch = field(default_factory=Sketch)
    dropped: int = 0
    """Comparisons not made because the comparison queue was full (the response never waits for one)."""

    def arm(self, arm: Arm) -> ArmStats:
        return self.champion if arm == "champion" else self.challenger

    def add_comparison(self, comparison: Comparison) -> None:
        diffs = comparison.diffs
        self.compared += len(diffs)
        if len(diffs) == 1:  # one served row, the common case: no temporary arrays
            value = float(diffs[0])
            if value == value:  # not NaN
                self.diffs.add(value)
        else:
            self.diffs.add_many(diffs[~np.isnan(diffs)])
        if comparison.flips is not None:
            self.decided += len(comparison.flips)
            self.flips += int(np.count_nonzero(comparison.flips))

    @property
    def flip_rate(self) -> float | None:
        return self.flips / self.decided if self.decided else None

    def merge(self, other: RolloutStats) -> None:
        self.champion.merge(other.champion)
        self.challenger.merge(other.challenger)
        self.compared += other.compared
        self.flips += other.flips
        self.decided += other.decided
        self.diffs.merge(other.diffs)
        self.dropped += other.dropped

    @classmethod
    def total(cls, parts: Iterable[RolloutStats]) -> RolloutStats:
        whole = cls()
        for part in parts:
            whole.merge(part)
        return whole

    def summary(self) -> dict[str, Any]:
        """The figures a person reads (and the guards judge): rates, quantiles in ms, counts."""
        quantiles = {f"p{round(q * 100)}": self.diffs.quantile(q) for q in (0.5, 0.9, 0.99)}
        champion, challenger = self.champion.summary(), self.challenger.summary()
        ratio = None
        if champion["p99_ms"] and challenger["p99_ms"] is not None:
            ratio = challenger["p99_ms"] / champion["p99_ms"]
        return {
            "champion": champion,
            "challenger": challenger,
            "p99_ratio": ratio,
            "compared": self.compared,
            "score_diff": quantiles,
            "label_flip_rate": self.flip_rate,
            "dropped": self.dropped,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "champion": self.champion.to_dict(),
            "challenger": self.challenger.to_dict(),
            "compared": self.compared,
            "flips": self.flips,
            "decided": self.decided,
            "diffs": self.diffs.to_dict(),
            "dropped": self.dropped,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutStats:
        return cls(
            ArmStats.from_dict(data["champion"]),
            ArmStats.from_dict(data["challenger"]),
            int(data["compared"]),
            int(data["flips"]),
            int(data["decided"]),
            Sketch.from_dict(data["diffs"]),
            int(data.get("dropped", 0)),
        )
