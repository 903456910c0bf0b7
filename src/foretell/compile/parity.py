"""The parity proof: do two predictors give the same answers on the same rows?

A compiled predictor replaces the original only when, on every row of a validation
sample, each float output is within `tolerance` of the original's (max absolute
difference) and each discrete output (a label, a top-k item id) is identical. NaN must
meet NaN: a compiled model that answers where the original gave NaN is not the same
model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from foretell.core.predictor import Predictions

__all__ = ["DEFAULT_TOLERANCE", "ParityReport", "compare_predictions"]

#: Scores and probabilities may differ by at most this much (summation order, a sigmoid
#: computed by another libm); labels and top-k ids may not differ at all.
DEFAULT_TOLERANCE = 1e-6

_EXACT_KINDS = frozenset({"label", "topk_items"})


@dataclass(frozen=True)
class ParityReport:
    """What the comparison found, output by output."""

    rows: int
    tolerance: float
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    mismatched_rows: dict[str, int] = field(default_factory=dict)
    failures: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "rows": self.rows,
            "tolerance": self.tolerance,
            "max_abs_diff": dict(self.max_abs_diff),
            "mismatched_rows": dict(self.mismatched_rows),
            "failures": list(self.failures),
        }


def compare_predictions(original: Predictions, candidate: Predictions, tolerance: float) -> ParityReport:
    """Compare `candidate` with `original` output by output; `failures` says in words what differs."""
    if tolerance < 0 or not np.isfinite(tolerance):
        raise ValueError(f"tolerance must be a finite number ≥ 0, got {tolerance!r}")
    if len(original) != len(candidate):
        return ParityReport(
            len(original), tolerance, failures=(f"{len(original)} rows in the original, {len(candidate)} compiled",)
        )
    diffs: dict[str, float] = {}
    mismatched: dict[str, int] = {}
    failures: list[str] = []
    for output in original.outputs:
        want = original.column(output.name)
        got = candidate.column(output.name)
        if want.shape != got.shape:
            failures.append(f"{output.name}: shape {list(got.shape)}, the original's {list(want.shape)}")
            continue
        if output.kind in _EXACT_KINDS or want.dtype.kind not in "fc":
            bad = _rows_differing(want != got)
            mismatched[output.name] = bad
            if bad:
                failures.append(f"{output.name}: {bad} of {len(want)} rows differ (must be identical)")
            continue
        wanted = want.astype(np.float64, copy=False)
        gotten = got.astype(np.float64, copy=False)
        nan_apart = np.isnan(wanted) != np.isnan(gotten)
        difference = np.abs(np.where(np.isnan(wanted) | np.isnan(gotten), 0.0, wanted - gotten))
        worst = float(difference.max()) if difference.size else 0.0
        diffs[output.name] = worst
        bad = _rows_differing(nan_apart | (difference > tolerance))
        mismatched[output.name] = bad
        if _rows_differing(nan_apart):
            failures.append(f"{output.name}: {_rows_differing(nan_apart)} rows are NaN in one predictor only")
        elif worst > tolerance:
            failures.append(
                f"{output.name}: max abs diff {worst:.3g} > tolerance {tolerance:.3g} ({bad} of {len(want)} rows)"
            )
    return ParityReport(len(original), tolerance, diffs, mismatched, tuple(failures))


def _rows_differing(flags: object) -> int:
    cells = np.asarray(flags)
    rows = cells.reshape(len(cells), -1).any(axis=1) if cells.ndim > 1 else cells
    return int(np.count_nonzero(rows))
