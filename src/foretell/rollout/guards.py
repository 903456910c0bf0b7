"""A rollout's guards, and the verdict they give on its figures: abort, promote, or wait.

Two kinds of guard, because they protect different things:

- **health** (`max_error_rate`, `max_p99_ratio`) protects the clients: once broken the
  rollout is aborted at once, whatever `--auto` says, so the champion alone serves again;
- **divergence** (`max_score_diff_p99`, `max_label_flip_rate`) protects the decision to
  promote: a broken one blocks promotion (the rollout keeps running for a person to look
  at), it does not abort.

`min_requests` is how many requests the challenger must have been measured on before
`--auto` promotes. Health needs a few samples too before a rate means anything
(`MIN_TO_JUDGE_ERRORS`, `MIN_TO_JUDGE_LATENCY`): a challenger that fails every call is
aborted after its twentieth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from foretell.errors import InvalidRollout
from foretell.rollout.divergence import RolloutStats

__all__ = ["GUARD_NAMES", "MIN_TO_JUDGE_ERRORS", "MIN_TO_JUDGE_LATENCY", "Guards", "Verdict", "judge", "parse_guards"]

MIN_TO_JUDGE_ERRORS = 20
"""Challenger requests before its error rate is judged."""
MIN_TO_JUDGE_LATENCY = 100
"""Latency samples on each arm before the p99 ratio is judged (a p99 of fewer is one slow request)."""


@dataclass(frozen=True, slots=True)
class Guards:
    """The limits a rollout is held to; None: not checked."""

    max_error_rate: float | None = 0.01
    max_p99_ratio: float | None = 3.0
    max_score_diff_p99: float | None = None
    max_label_flip_rate: float | None = None
    min_requests: int = 1000

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Guards:
        return parse_guards(f"{k}={'none' if v is None else v}" for k, v in data.items())


GUARD_NAMES = tuple(f.name for f in fields(Guards))

_RATES = {"max_error_rate", "max_label_flip_rate"}


def parse_guards(assignments: Iterable[str], base: Guards | None = None) -> Guards:
    """`NAME=VALUE` strings over the defaults (`none` turns a guard off); errors name the guard and the rule."""
    guards = base or Guards()
    for text in assignments:
        name, sep, raw = text.partition("=")
        name, raw = name.strip().replace("-", "_"), raw.strip()
        if not sep or not name:
            raise InvalidRollout(f"a guard is NAME=VALUE (e.g. max_error_rate=0.01), got {text!r}")
        if name not in GUARD_NAMES:
            raise InvalidRollout(f"there is no guard {name!r}; the guards are {', '.join(GUARD_NAMES)}")
        changed: dict[str, Any] = {name: _value(name, raw)}
        guards = replace(guards, **changed)
    return guards


def _value(name: str, raw: str) -> float | int | None:
    if raw.lower() == "none" and name != "min_requests":
        return None
    try:
        number = float(raw)
    except ValueError:
        raise InvalidRollout(f"guard {name} must be a number, got {raw!r}") from None
    if name == "min_requests":
        if not number.is_integer() or number < 1:
            raise InvalidRollout(f"guard min_requests must be a whole number of requests ≥ 1, got {raw!r}")
        return int(number)
    if not number >= 0 or number == float("inf"):
        raise InvalidRollout(f"guard {name} must be a finite number ≥ 0, got {raw!r}")
    if name in _RATES and number > 1:
        raise InvalidRollout(f"guard {name} is a rate between 0 and 1, got {raw!r}")
    return number


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the guards say now, why, and the figures they judged."""

    action: Literal["abort", "promote", "wait"]
    reasons: tuple[str, ...]
    figures: dict[str, Any]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def judge(stats: RolloutStats, guards: Guards, *, auto: bool) -> Verdict:
    """The guards' verdict on `stats` (every worker's, summed)."""
    figures = stats.summary()
    challenger = stats.challenger
    broken: list[str] = []
    error_rate = challenger.error_rate
    limit = guards.max_error_rate
    judged = challenger.requests >= MIN_TO_JUDGE_ERRORS
    if limit is not None and error_rate is not None and judged and error_rate > limit:
        broken.append(
            f"max_error_rate broken: the challenger failed {challenger.errors} of {challenger.requests} "
            f"requests ({error_rate:.2%} > {limit:.2%})"
        )
    ratio = figures["p99_ratio"]
    enough = min(stats.champion.latency.count, challenger.latency.count) >= MIN_TO_JUDGE_LATENCY
    if guards.max_p99_ratio is not None and ratio is not None and enough and ratio > guards.max_p99_ratio:
        broken.append(
            f"max_p99_ratio broken: the challenger's p99 is {figures['challenger']['p99_ms']:.2f} ms against the "
            f"champion's {figures['champion']['p99_ms']:.2f} ms ({ratio:.2f}× > {guards.max_p99_ratio}×)"
        )
    if broken:
        return Verdict("abort", tuple(broken), figures)
    blocked = _divergence(stats, guards, figures)
    if challenger.requests < guards.min_requests:
        waiting = f"{challenger.requests} of min_requests={guards.min_requests} requests measured on the challenger"
        return Verdict("wait", (waiting, *blocked), figures)
    if blocked:
        return Verdict("wait", tuple(blocked), figures)
    if not auto:
        return Verdict("wait", ("every guard holds; promote with `foretell rollout promote`",), figures)
    return Verdict("promote", (f"every guard holds after {challenger.requests} requests",), figures)


def _divergence(stats: RolloutStats, guards: Guards, figures: Mapping[str, Any]) -> list[str]:
    blocked = []
    diff_p99 = figures["score_diff"]["p99"]
    if guards.max_score_diff_p99 is not None and diff_p99 is not None and diff_p99 > guards.max_score_diff_p99:
        blocked.append(
            f"promotion blocked by max_score_diff_p99: the p99 score difference is {diff_p99:.4g} "
            f"> {guards.max_score_diff_p99}"
        )
    flip_rate = stats.flip_rate
    if guards.max_label_flip_rate is not None and flip_rate is not None and flip_rate > guards.max_label_flip_rate:
        blocked.append(
            f"promotion blocked by max_label_flip_rate: {stats.flips} of {stats.decided} compared rows changed "
            f"label ({flip_rate:.2%} > {guards.max_label_flip_rate:.2%})"
        )
    if guards.max_label_flip_rate is not None and flip_rate is None and stats.compared:
        blocked.append("promotion blocked by max_label_flip_rate: the model makes no decision to compare")
    return blocked
