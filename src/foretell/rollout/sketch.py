"""`Sketch`: quantiles of a stream of non-negative numbers, mergeable across workers and kept in JSON.

A rollout's p50/p99 latencies and score-difference quantiles are read by `rollout status`
(another process) and judged by the guards over every worker of every server. Raw
samples cannot travel that way; a histogram with logarithmic buckets can: each worker
sends its bucket counts, and the sum of two sketches is the sketch of both streams. A
quantile read from it is within `RELATIVE_ACCURACY` of a value that was seen (the idea
of DDSketch, Masson et al., VLDB 2019). Exact zeros, common when two versions agree,
have their own count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = ["RELATIVE_ACCURACY", "Sketch"]

RELATIVE_ACCURACY = 0.01
_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)
#: Below this a value counts as zero: score differences this small are float noise.
_SMALLEST = 1e-12
_FEW = 16


class Sketch:
    """Bucket counts of the values seen: `add`, `merge`, `quantile`, and a JSON form."""

    __slots__ = ("buckets", "count", "zeros")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.zeros = 0
        self.count = 0

    def add(self, value: float) -> None:
        value = abs(value)  # as `add_many` does: one value at a time or many, the same sketch
        self.count += 1
        if not value > _SMALLEST:  # NaN too: a missing difference is no difference
            self.zeros += 1
            return
        index = math.ceil(math.log(value) / _LOG_GAMMA)
        self.buckets[index] = self.buckets.get(index, 0) + 1

    def add_many(self, values: Iterable[float] | np.ndarray) -> None:
        array = np.abs(np.asarray(values, dtype=np.float64).reshape(-1))
        if array.size <= _FEW:  # a served request's few rows: numpy's set-up costs more than the loop
            for value in array.tolist():
                self.add(value)
            return
        if array.size == 0:
            return
        positive = array[array > _SMALLEST]
        self.count += int(array.size)
        self.zeros += int(array.size - positive.size)
        if positive.size:
            indexes, counts = np.unique(np.ceil(np.log(positive) / _LOG_GAMMA).astype(np.int64), return_counts=True)
            for index, n in zip(indexes.tolist(), counts.tolist(), strict=True):
                self.buckets[index] = self.buckets.get(index, 0) + n

    def merge(self, other: Sketch) -> None:
        self.count += other.count
        self.zeros += other.zeros
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n

    def quantile(self, q: float) -> float | None:
        """The `q`-quantile (0 ≤ q ≤ 1) of what was added; None before anything was."""
        if self.count == 0:
            return None
        rank = q * (self.count - 1)
        if rank < self.zeros:
            return 0.0
        seen = self.zeros
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen > rank:
                # The bucket (γ^(i-1), γ^i] is reported by the value within RELATIVE_ACCURACY of both ends.
                return 2 * _GAMMA**index / (_GAMMA + 1)
        return 2 * _GAMMA ** max(self.buckets) / (_GAMMA + 1)

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "zeros": self.zeros, "buckets": {str(i): n for i, n in self.buckets.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Sketch:
        sketch = cls()
        sketch.count = int(data.get("count", 0))
        sketch.zeros = int(data.get("zeros", 0))
        sketch.buckets = {int(i): int(n) for i, n in dict(data.get("buckets", {})).items()}
        return sketch

    def __repr__(self) -> str:
        return f"Sketch(count={self.count}, p50={self.quantile(0.5)}, p99={self.quantile(0.99)})"
