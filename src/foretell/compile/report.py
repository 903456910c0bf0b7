"""The outcome of compiling one version, as recorded and as `foretell models show` says it.

A `CompileReport` is stored as JSON beside the build (`ModelInfo.compiled` is its dict
form), so `describe_outcome` reads the dict: it must describe reports written by any
earlier version of foretell too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["CompileReport", "describe_outcome"]

_EVALUATORS = {"quickscorer": "bit-vector tables", "tl2cgen": "tl2cgen's branches"}


@dataclass(frozen=True)
class CompileReport:
    """The outcome of compiling one version: used or not, why, and what was measured."""

    status: Literal["passed", "failed", "unsupported"]
    compiler: str = ""
    reason: str = ""
    parity: Mapping[str, Any] = field(default_factory=dict)
    speed: Mapping[str, Any] = field(default_factory=dict)
    toolchain: Mapping[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    settings: Mapping[str, str] = field(default_factory=dict)

    @property
    def used(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "compiler": self.compiler,
            "reason": self.reason,
            "parity": dict(self.parity),
            "speed": dict(self.speed),
            "toolchain": dict(self.toolchain),
            "seconds": round(self.seconds, 3),
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompileReport:
        return cls(
            status=data["status"],
            compiler=data.get("compiler", ""),
            reason=data.get("reason", ""),
            parity=data.get("parity", {}),
            speed=data.get("speed", {}),
            toolchain=data.get("toolchain", {}),
            seconds=float(data.get("seconds", 0.0)),
            settings=data.get("settings", {}),
        )


def describe_outcome(compiled: Mapping[str, Any]) -> str:
    """One line from a `CompileReport`'s dict form: which predictor a version uses, and the proof or the reason."""
    status = compiled.get("status")
    parity = compiled.get("parity") or {}
    if status == "passed":
        worst = max((parity.get("max_abs_diff") or {"-": 0.0}).values())
        speedup = (compiled.get("speed") or {}).get("speedup") or {}
        faster = f"; one row {speedup['single_row']:g}× faster" if "single_row" in speedup else ""
        evaluator = (compiled.get("settings") or {}).get("evaluator")
        how = f" ({_EVALUATORS.get(evaluator, evaluator)})" if evaluator else ""
        return (
            f"compiled with {compiled.get('compiler')}{how}: parity passed on {parity.get('rows', 0):,} rows "
            f"(max abs diff {worst:.2g} ≤ {parity.get('tolerance', 0):g}, labels identical){faster}"
        )
    if status == "failed":
        return f"keeps its original predictor: {compiled.get('reason')}"
    return f"keeps its original predictor (not compilable): {compiled.get('reason')}"
