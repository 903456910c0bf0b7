"""Rollouts between two versions of a model: the plan, the assignment of requests, the figures, the guards.

Pure and deterministic: the registry keeps a rollout (`registry.rollouts`), the serving
path and batch jobs act on it, and both measure with `divergence` and judge with `guards`.
"""

from __future__ import annotations

from foretell.rollout.assignment import arm_for, bucket_of, digest_of_frame
from foretell.rollout.divergence import ARMS, Arm, ArmStats, Comparison, RolloutStats, compare
from foretell.rollout.guards import GUARD_NAMES, Guards, Verdict, judge, parse_guards
from foretell.rollout.plan import (
    MODES,
    STICKY,
    Mode,
    Rollout,
    State,
    Sticky,
    check_percent,
    new_rollout,
    staged_store_name,
)
from foretell.rollout.sketch import Sketch

__all__ = [
    "ARMS",
    "GUARD_NAMES",
    "MODES",
    "STICKY",
    "Arm",
    "ArmStats",
    "Comparison",
    "Guards",
    "Mode",
    "Rollout",
    "RolloutStats",
    "Sketch",
    "State",
    "Sticky",
    "Verdict",
    "arm_for",
    "bucket_of",
    "check_percent",
    "compare",
    "digest_of_frame",
    "judge",
    "new_rollout",
    "parse_guards",
    "staged_store_name",
]
