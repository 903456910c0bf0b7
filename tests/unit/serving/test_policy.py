"""The flush policy is pure: plain numbers in, a decision out, no clock needed."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foretell.serving.policy import (
    THREAD_THRESHOLD_S,
    BatchPolicy,
    Flush,
    Idle,
    ModelBusy,
    Wait,
    admits,
    decide,
    retry_after,
    runs_in_thread,
)

DEFAULT = BatchPolicy()


@st.composite
def policies(draw: st.DrawFn) -> BatchPolicy:
    size = draw(st.integers(1, 512))
    return BatchPolicy(
        max_batch_size=size,
        max_delay_ms=draw(st.sampled_from([0.0, 0.5, 2.0, 10.0, 250.0])),
        max_queue=draw(st.integers(1, 4096)),
        fill_target=draw(st.integers(1, size)),
    )


rows = st.integers(0, 10_000)
waits = st.floats(0.0, 5.0, allow_nan=False)


def test_defaults():
    assert (DEFAULT.max_batch_size, DEFAULT.max_delay_ms, DEFAULT.max_queue, DEFAULT.fill_target) == (64, 10.0, 1024, 1)


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"max_batch_size": 0}, "max_batch_size must be at least 1, got 0"),
        ({"max_delay_ms": -1.0}, "max_delay_ms must be a finite number ≥ 0, got -1.0"),
        ({"max_delay_ms": math.inf}, "max_delay_ms must be a finite number ≥ 0, got inf"),
        ({"max_delay_ms": math.nan}, "max_delay_ms must be a finite number ≥ 0, got nan"),
        ({"max_queue": 0}, "max_queue must be at least 1, got 0"),
        ({"fill_target": 0}, r"fill_target must be between 1 and max_batch_size \(64\), got 0"),
        ({"fill_target": 65}, r"fill_target must be between 1 and max_batch_size \(64\), got 65"),
    ],
)
def test_bad_knobs_are_refused_with_the_value(knobs, message):
    with pytest.raises(ValueError, match=message):
        BatchPolicy(**knobs)


# -- examples: the rule, case by case -------------------------------------------------------------


def test_nothing_queued_is_idle_busy_or_not():
    assert decide(DEFAULT, 0, 0.0, model_busy=False) == Idle()
    assert decide(DEFAULT, 0, 0.0, model_busy=True) == Idle()


def test_a_lone_request_flushes_at_once_by_default():
    assert decide(DEFAULT, 1, 0.0, model_busy=False) == Flush(1)


def test_requests_pile_up_while_the_model_runs_and_leave_together():
    assert decide(DEFAULT, 40, 0.010, model_busy=True) == ModelBusy()
    assert decide(DEFAULT, 40, 0.010, model_busy=False) == Flush(40)


def test_a_flush_takes_at_most_max_batch_size_rows():
    assert decide(DEFAULT, 500, 0.0, model_busy=False) == Flush(64)


def test_below_the_fill_target_an_idle_model_waits_out_the_delay_then_flushes():
    policy = BatchPolicy(max_batch_size=32, max_delay_ms=10.0, fill_target=8)
    assert decide(policy, 3, 0.0, model_busy=False) == Wait(0.010)
    waited = decide(policy, 3, 0.004, model_busy=False)
    assert isinstance(waited, Wait)
    assert waited.seconds == pytest.approx(0.006)
    assert decide(policy, 3, 0.010, model_busy=False) == Flush(3)
    assert decide(policy, 3, 0.500, model_busy=False) == Flush(3)


def test_reaching_the_fill_target_flushes_without_waiting():
    policy = BatchPolicy(max_batch_size=32, max_delay_ms=10.0, fill_target=8)
    assert decide(policy, 8, 0.0, model_busy=False) == Flush(8)
    assert decide(policy, 100, 0.0, model_busy=False) == Flush(32)


def test_zero_delay_never_waits_whatever_the_fill_target():
    policy = BatchPolicy(max_batch_size=32, max_delay_ms=0.0, fill_target=32)
    assert decide(policy, 1, 0.0, model_busy=False) == Flush(1)


def test_admission_counts_rows():
    policy = BatchPolicy(max_queue=10)
    assert admits(policy, 0, 1)
    assert admits(policy, 9, 1)
    assert not admits(policy, 10, 1)
    assert not admits(policy, 8, 3)  # two requests of 4 rows ahead leave room for 2 more rows, not 3
    assert admits(policy, 0, 500)  # an empty queue takes a request bigger than the limit: it runs alone


def test_retry_after_is_the_queue_ahead_in_whole_seconds_and_never_zero():
    policy = BatchPolicy(max_batch_size=10)
    assert retry_after(policy, 0, 0.0) == 1.0
    assert retry_after(policy, 1000, 0.001) == 1.0  # 100 batches of 1 ms
    assert retry_after(policy, 1000, 0.025) == 3.0  # 100 batches of 25 ms = 2.5 s, rounded up
    assert retry_after(policy, 5, math.nan) == 1.0
    assert retry_after(policy, 5, math.inf) == 1.0


def test_running_in_a_thread_from_a_millisecond():
    assert THREAD_THRESHOLD_S == 1e-3
    assert not runs_in_thread(50e-6)
    assert runs_in_thread(3e-3)
    assert runs_in_thread(3e-3, threshold_s=1e-3)
    assert not runs_in_thread(3e-3, threshold_s=5e-3)


# -- properties ------------------------------------------------------------------------------------


@given(policies(), rows, waits, st.booleans())
def test_every_decision_is_one_of_four_and_well_formed(policy, queued, waited, busy):
    decision = decide(policy, queued, waited, busy)
    if queued == 0:
        assert decision == Idle()
    elif busy:
        assert decision == ModelBusy()
    elif isinstance(decision, Flush):
        assert decision.rows == min(queued, policy.max_batch_size)
        assert 1 <= decision.rows <= policy.max_batch_size
    else:
        assert isinstance(decision, Wait)
        assert queued < policy.fill_target  # only a batch below its fill target waits
        assert 0 < decision.seconds <= policy.max_delay_ms / 1000


@given(policies(), st.integers(1, 10_000), waits)
def test_an_idle_model_never_holds_a_request_past_max_delay(policy, queued, waited):
    decision = decide(policy, queued, waited, model_busy=False)
    if isinstance(decision, Wait):
        assert waited + decision.seconds == pytest.approx(policy.max_delay_ms / 1000)
        assert decide(policy, queued, waited + decision.seconds, model_busy=False) == Flush(
            min(queued, policy.max_batch_size)
        )
    else:
        assert decision == Flush(min(queued, policy.max_batch_size))


@given(st.integers(1, 512), st.floats(0, 1000), st.integers(1, 10_000), waits)
def test_with_the_default_fill_target_an_idle_model_never_waits(size, delay, queued, waited):
    policy = BatchPolicy(max_batch_size=size, max_delay_ms=delay)
    assert decide(policy, queued, waited, model_busy=False) == Flush(min(queued, size))


@given(st.integers(1, 512), st.integers(1, 512), st.integers(1, 10_000), waits)
def test_zero_delay_never_waits(size, target, queued, waited):
    policy = BatchPolicy(max_batch_size=max(size, target), max_delay_ms=0.0, fill_target=target)
    assert isinstance(decide(policy, queued, waited, model_busy=False), Flush)


@given(policies(), st.integers(1, 10_000), waits, waits)
def test_waiting_longer_or_queueing_more_never_turns_a_flush_into_a_wait(policy, queued, waited, extra):
    if isinstance(decide(policy, queued, waited, model_busy=False), Flush):
        assert isinstance(decide(policy, queued, waited + extra, model_busy=False), Flush)
        assert isinstance(decide(policy, queued + 1, waited, model_busy=False), Flush)


@given(policies(), st.lists(st.integers(1, 300), max_size=60))
def test_an_admitting_queue_stays_within_its_bound(policy, requests):
    queued = 0
    for size in requests:
        if admits(policy, queued, size):
            queued += size
    assert queued <= max(policy.max_queue, requests[0] if requests else 0)


@given(policies(), rows, rows, st.floats(0, 10, allow_nan=False))
def test_retry_after_is_whole_at_least_one_and_grows_with_the_queue(policy, queued, more, seconds):
    hint = retry_after(policy, queued, seconds)
    assert hint >= 1.0
    assert hint == int(hint)
    assert retry_after(policy, queued + more, seconds) >= hint
