"""Guards: parsing errors name the guard; the verdict aborts on health, blocks on divergence, promotes with --auto."""

from __future__ import annotations

import numpy as np
import pytest

from foretell.errors import InvalidRollout
from foretell.rollout import Comparison, Guards, RolloutStats, judge, parse_guards


def test_defaults_and_overrides() -> None:
    assert parse_guards([]) == Guards()
    guards = parse_guards(["max_error_rate=0.05", "max-p99-ratio=2", "min_requests=10", "max_score_diff_p99=0.1"])
    assert (guards.max_error_rate, guards.max_p99_ratio, guards.min_requests) == (0.05, 2.0, 10)
    assert guards.max_score_diff_p99 == 0.1
    assert parse_guards(["max_p99_ratio=none"]).max_p99_ratio is None
    assert Guards.from_dict(guards.to_dict()) == guards


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ("nope=1", "there is no guard 'nope'"),
        ("max_error_rate", "a guard is NAME=VALUE"),
        ("=3", "a guard is NAME=VALUE"),
        ("max_error_rate=lots", "guard max_error_rate must be a number, got 'lots'"),
        ("max_error_rate=1.5", "guard max_error_rate is a rate between 0 and 1"),
        ("max_label_flip_rate=-0.1", "guard max_label_flip_rate must be a finite number ≥ 0"),
        ("max_p99_ratio=inf", "guard max_p99_ratio must be a finite number ≥ 0"),
        ("min_requests=2.5", "guard min_requests must be a whole number"),
        ("min_requests=0", "guard min_requests must be a whole number"),
        ("min_requests=none", "guard min_requests must be a number"),
    ],
)
def test_a_bad_guard_is_refused_naming_it(given: str, named: str) -> None:
    with pytest.raises(InvalidRollout) as caught:
        parse_guards([given])
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)


def stats(*, requests: int, errors: int = 0, champion_s: float = 0.001, challenger_s: float = 0.001,
          diffs: float = 0.0, flips: int = 0) -> RolloutStats:  # fmt: skip
    """`requests` on each arm (the challenger failing `errors` of them), every one compared."""
    found = RolloutStats()
    found.champion.requests = requests
    found.challenger.requests = requests
    found.challenger.errors = errors
    found.champion.latency.add_many(np.full(requests, champion_s))
    found.challenger.latency.add_many(np.full(requests, challenger_s))
    flipped = np.zeros(requests, dtype=bool)
    flipped[:flips] = True
    found.add_comparison(Comparison(np.full(requests, diffs), flipped))
    return found


def test_a_failing_challenger_is_aborted_even_without_auto() -> None:
    verdict = judge(stats(requests=50, errors=50), Guards(), auto=False)
    assert verdict.action == "abort"
    assert verdict.reason.startswith("max_error_rate broken: the challenger failed 50 of 50 requests")
    assert verdict.figures["challenger"]["errors"] == 50


def test_too_few_requests_are_not_judged_on_errors() -> None:
    assert judge(stats(requests=10, errors=10), Guards(), auto=True).action == "wait"


def test_a_slow_challenger_is_aborted_on_its_p99() -> None:
    verdict = judge(stats(requests=200, challenger_s=0.010), Guards(), auto=True)
    assert verdict.action == "abort"
    assert "max_p99_ratio broken" in verdict.reason
    assert verdict.figures["p99_ratio"] == pytest.approx(10.0, rel=0.03)


def test_an_identical_challenger_waits_for_min_requests_then_promotes_with_auto() -> None:
    guards = Guards(min_requests=1000)
    early = judge(stats(requests=999), guards, auto=True)
    assert early.action == "wait" and "999 of min_requests=1000" in early.reason
    assert early.figures["score_diff"]["p99"] == 0.0 and early.figures["label_flip_rate"] == 0.0
    assert judge(stats(requests=1000), guards, auto=True).action == "promote"
    manual = judge(stats(requests=1000), guards, auto=False)
    assert manual.action == "wait" and "foretell rollout promote" in manual.reason


def test_divergence_blocks_promotion_and_does_not_abort() -> None:
    guards = Guards(min_requests=100, max_label_flip_rate=0.01, max_score_diff_p99=0.05)
    flipping = judge(stats(requests=1000, flips=50), guards, auto=True)
    assert flipping.action == "wait"
    assert "max_label_flip_rate: 50 of 1000 compared rows changed label (5.00% > 1.00%)" in flipping.reason
    far = judge(stats(requests=1000, diffs=0.2), guards, auto=True)
    assert far.action == "wait" and "max_score_diff_p99" in far.reason
    assert judge(stats(requests=1000, diffs=0.01, flips=5), guards, auto=True).action == "promote"


def test_a_flip_guard_on_a_model_without_decisions_blocks_promotion() -> None:
    found = RolloutStats()
    found.challenger.requests = 10
    found.add_comparison(Comparison(np.zeros(10), None))
    verdict = judge(found, Guards(min_requests=1, max_label_flip_rate=0.1), auto=True)
    assert verdict.action == "wait" and "makes no decision" in verdict.reason
