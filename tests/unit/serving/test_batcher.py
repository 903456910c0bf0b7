"""The micro-batcher, on a real event loop, a real `Predictor` and real coerced `Columns`.

Each test is a plain function running its scenario under `asyncio.run`. Models that must
be caught mid-call hold a `threading.Event` gate, so "while the model runs" is a state a
test sets up, not a race it hopes to win.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from foretell.core.columns import Columns
from foretell.core.frame import Frame
from foretell.core.predictor import Predictions, PredictOptions, Predictor
from foretell.errors import BatcherClosed, DeadlineExceeded, ForetellError, Overloaded, PredictionError
from foretell.serving import BatchPolicy, MicroBatcher
from foretell.testing.models import FailingModel, SumModel, model_of, sum_signature

NAMES = ("a", "b", "c")
SIGNATURE = sum_signature(NAMES)
BOTH_MODES = pytest.mark.parametrize("in_thread", [False, True], ids=["inline", "thread"])


class CountingSum(SumModel):
    """`SumModel` that records every call's row count and thread, and can be held mid-call."""

    def __init__(self, *, poison: float | None = None) -> None:
        super().__init__(NAMES)
        self.batches: list[int] = []
        self.options: list[PredictOptions] = []
        self.threads: set[int] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.poison = poison

    def predict(self, frame: Frame, options: PredictOptions) -> dict[str, Any]:
        self.batches.append(frame.n_rows)
        self.options.append(options)
        self.threads.add(threading.get_ident())
        self.entered.set()
        assert self.gate.wait(timeout=10), "a test forgot to open the gate"
        if self.poison is not None and bool(np.any(frame["a"] == self.poison)):
            raise ValueError(f"cannot score a = {self.poison}")
        return super().predict(frame, options)

    def hold(self) -> None:
        self.gate.clear()
        self.entered.clear()


def predictor_of(model: SumModel | FailingModel, name: str = "sums") -> Predictor:
    return model_of(model, SIGNATURE, name).predictor


def request(tag: float, n: int) -> Columns:
    """`n` rows `[tag, j, 0.5]`, coerced as a client's list of value lists would be."""
    return SIGNATURE.coerce([[tag, j, 0.5] for j in range(n)])


def scores(predictions: Predictions) -> list[float]:
    return predictions.column("score").tolist()


def expected(tag: float, n: int) -> list[float]:
    return [tag + j + 0.5 for j in range(n)]


class Recorder:
    """A `BatchObserver` that keeps everything it hears."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.waits: list[float] = []
        self.rejections: list[str] = []

    def batch(self, size: int) -> None:
        self.batches.append(size)

    def queue_wait(self, seconds: float) -> None:
        self.waits.append(seconds)

    def rejected(self, reason: str) -> None:
        self.rejections.append(reason)


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=20))  # a hung batcher fails the test, not the suite


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.001)


async def started(batcher: MicroBatcher) -> MicroBatcher:
    await batcher.start()
    return batcher


# -- coalescing ------------------------------------------------------------------------------------


def test_requests_with_other_predict_options_share_the_queue_but_never_a_model_call():
    """A top-k request with its own `k` waits in the same bounded queue, and is run with its own options."""
    model = CountingSum()
    policy = BatchPolicy(max_queue=9)

    async def scenario() -> None:
        batcher = await started(MicroBatcher(predictor_of(model).predict, policy=policy, run_in_thread=True))
        model.hold()
        first = asyncio.create_task(batcher.submit(request(0, 1)))
        await until(model.entered.is_set)
        asks = [None, 3, None, 5, 3, 3, None, 5]
        queued = [
            asyncio.create_task(batcher.submit(request(i + 1, 1), options=PredictOptions(k=k)))
            for i, k in enumerate(asks)
        ]
        await until(lambda: batcher.queued_rows == len(asks))
        with pytest.raises(Overloaded, match="limit 9"):  # every option counts against one bound
            await batcher.submit(request(99, 2), options=PredictOptions(k=7))
        model.gate.set()
        answers = await asyncio.gather(first, *queued)
        for i, answer in enumerate(answers):
            assert scores(answer) == expected(i, 1)
        calls = list(zip(model.batches, model.options, strict=True))
        assert calls[0] == (1, PredictOptions())
        assert sorted((o.k or 0, n) for n, o in calls[1:]) == [(0, 3), (3, 3), (5, 2)]  # one call per option, whole
        await batcher.stop()

    run(scenario)


@BOTH_MODES
def test_concurrent_requests_are_coalesced_and_each_gets_exactly_its_own_rows(in_thread):
    model = CountingSum()
    observer = Recorder()
    sizes = [1 + i % 3 for i in range(200)]

    async def scenario() -> None:
        batcher = await started(MicroBatcher(predictor_of(model).predict, run_in_thread=in_thread, observer=observer))
        answers = await asyncio.gather(*(batcher.submit(request(i, n)) for i, n in enumerate(sizes)))
        await batcher.stop()
        for i, (n, answer) in enumerate(zip(sizes, answers, strict=True)):
            assert len(answer) == n
            assert scores(answer) == expected(i, n)

    run(scenario)
    assert 1 <= len(model.batches) < len(sizes) / 10  # 200 requests, 400 rows: a handful of calls
    assert sum(model.batches) == sum(sizes)
    assert max(model.batches) <= 64
    assert observer.batches == model.batches
    assert len(observer.waits) == len(sizes)
    assert observer.rejections == []


@BOTH_MODES
def test_batched_answers_equal_predicting_each_request_alone(in_thread):
    predictor = predictor_of(CountingSum())
    sizes = [3, 1, 7, 2, 5]
    inputs = [SIGNATURE.coerce(np.random.default_rng(i).normal(size=(n, 3))) for i, n in enumerate(sizes)]

    async def scenario() -> None:
        batcher = await started(MicroBatcher(predictor.predict, run_in_thread=in_thread))
        answers = await asyncio.gather(*(batcher.submit(c) for c in inputs))
        await batcher.stop()
        for columns, answer in zip(inputs, answers, strict=True):
            np.testing.assert_array_equal(answer.column("score"), predictor.predict(columns.frame).column("score"))

    run(scenario)


def test_a_flush_takes_whole_requests_up_to_max_batch_size():
    model = CountingSum()

    async def scenario() -> None:
        batcher = await started(MicroBatcher(predictor_of(model).predict, policy=BatchPolicy(max_batch_size=4)))
        answers = await asyncio.gather(*(batcher.submit(request(i, n)) for i, n in enumerate([3, 3, 1, 10, 2])))
        await batcher.stop()
        assert [len(a) for a in answers] == [3, 3, 1, 10, 2]

    run(scenario)
    # 3 then 3+1 (a request is never split), 10 alone (bigger than a batch, still served), then 2.
    assert model.batches == [3, 4, 10, 2]


def test_requests_arriving_while_the_model_runs_form_the_next_batch():
    model = CountingSum()

    async def scenario() -> None:
        batcher = await started(MicroBatcher(predictor_of(model).predict, run_in_thread=True))
        model.hold()
        first = asyncio.create_task(batcher.submit(request(0, 1)))
        await until(model.entered.is_set)
        rest = [asyncio.create_task(batcher.submit(request(i, 1))) for i in range(1, 11)]
        await until(lambda: batcher.queued_requests == 10)
        assert (batcher.in_flight_rows, batcher.queued_rows) == (1, 10)
        model.gate.set()
        await asyncio.gather(first, *rest)
        await batcher.stop()

    run(scenario)
    assert model.batches == [1, 10]


# -- a lone request is not held back ---------------------------------------------------------------


@BOTH_MODES
def test_a_lone_request_is_answered_in_about_the_model_time(in_thread):
    predictor = predictor_of(CountingSum())
    policy = BatchPolicy(max_delay_ms=50.0)  # a delay that would show if a lone request waited for company
    columns = request(1, 1)

    async def scenario() -> None:
        batcher = await started(MicroBatcher(predictor.predict, policy=policy, run_in_thread=in_thread))
        latencies, model_times = [], []
        for _ in range(25):
            started_at = time.perf_counter()
            await batcher.submit(columns)
            latencies.append(time.perf_counter() - started_at)
            started_at = time.perf_counter()
            predictor.predict(columns.frame)
            model_times.append(time.perf_counter() - started_at)
        await batcher.stop()
        latency, model_time = statistics.median(latencies), statistics.median(model_times)
        assert latency < model_time + 0.005  # the loop hops (and the thread hop) cost microseconds, not the delay
        assert latency < policy.max_delay_ms / 1000 / 10

    run(scenario)


def test_a_fill_target_makes_an_idle_model_wait_for_company_up_to_max_delay():
    model = CountingSum()
    policy = BatchPolicy(max_delay_ms=40.0, fill_target=5)

    async def scenario() -> None:
        batcher = await started(MicroBatcher(predictor_of(model).predict, policy=policy))
        started_at = time.perf_counter()
        await batcher.submit(request(1, 1))  # alone: waits out the delay, then runs
        waited = time.perf_counter() - started_at
        assert 0.040 <= waited < 1.0
        started_at = time.perf_counter()
        await asyncio.gather(*(batcher.submit(request(i, 1)) for i in range(5)))  # the target is met at once
        assert time.perf_counter() - started_at < 0.040
        await batcher.stop()

    run(scenario)
    assert model.batches == [1, 5]


# -- overload --------------------------------------------------------------------------------------


def test_a_full_queue_refuses_at_once_with_a_retry_hint():
    model = CountingSum()
    observer = Recorder()
    policy = BatchPolicy(max_queue=4)

    async def scenario() -> None:
        batcher = MicroBatcher(predictor_of(model).predict, policy=policy, run_in_thread=True, observer=observer)
        await batcher.start()
        model.hold()
        running = asyncio.create_task(batcher.submit(request(0, 1)))
        await until(model.entered.is_set)
        queued = [asyncio.create_task(batcher.submit(request(i, 2))) for i in (1, 2)]
        await until(lambda: batcher.queued_rows == 4)
        with pytest.raises(Overloaded) as caught:
            await batcher.submit(request(9, 1))
        assert caught.value.retry_after_s == 1.0
        assert isinstance(caught.value, ForetellError)
        assert str(caught.value) == (
            "model 'model' is overloaded: 4 rows are waiting (limit 4) and this request brings 1; retry after 1 s"
        )
        model.gate.set()
        answers = await asyncio.gather(running, *queued)
        assert [scores(a) for a in answers] == [expected(0, 1), expected(1, 2), expected(2, 2)]
        assert scores(await batcher.submit(request(9, 1))) == expected(9, 1)  # room again
        await batcher.stop()

    run(scenario)
    assert observer.rejections == ["queue_full"]
    assert model.batches == [1, 4, 1]  # the refused request was never predicted


def test_a_full_queue_refuses_inline_too():
    model = CountingSum()
    policy = BatchPolicy(max_queue=4)

    async def scenario() -> None:
        batcher = await started(MicroBatcher(predictor_of(model).predict, policy=policy))
        queued = [asyncio.create_task(batcher.submit(request(i, 2))) for i in (1, 2)]
        await asyncio.sleep(0)  # both callers queue up; the runner, woken by the first, comes after us
        assert batcher.queued_rows == 4
        with pytest.raises(Overloaded, match="4 rows are waiting"):
            await batcher.submit(request(9, 1))
        assert [scores(a) for a in await asyncio.gather(*queued)] == [expected(1, 2), expected(2, 2)]
        await batcher.stop()

    run(scenario)
    assert model.batches == [4]


def test_a_request_bigger_than_the_queue_runs_when_the_queue_is_empty():
    model = CountingSum()

    async def scenario() -> None:
        batcher = await started(MicroBatcher(predictor_of(model).predict, policy=BatchPolicy(max_queue=4)))
        assert scores(await batcher.submit(request(1, 9))) == expected(1, 9)
        await batcher.stop()

    run(scenario)


# -- deadlines -------------------------------------------------------------------------------------


def test_a_request_past_its_deadline_on_arrival_is_refused_without_running():
    model = CountingSum()
    clock = FakeClock()
    observer = Recorder()

    async def scenario() -> None:
        batcher = await started(MicroBatcher(predictor_of(model).predict, clock=clock, observer=observer))
        with pytest.raises(DeadlineExceeded, match=r"arrived 5\.0 ms past its deadline; it was not run"):
            await batcher.submit(request(1, 1), deadline=clock.now - 0.005)
        await batcher.stop()

    run(scenario)
    assert model.batches == []
    assert observer.rejections == ["deadline"]


def test_a_request_whose_deadline_passes_in_the_queue_never_reaches_the_model():
    model = CountingSum()
    clock = FakeClock()
    observer = Recorder()

    async def scenario() -> None:
        batcher = MicroBatcher(predictor_of(model).predict, run_in_thread=True, clock=clock, observer=observer)
        await batcher.start()
        model.hold()
        running = asyncio.create_task(batcher.submit(request(0, 1)))
        await until(model.entered.is_set)
        late = asyncio.create_task(batcher.submit(request(1, 5), deadline=clock.now + 1.0))
        in_time = asyncio.create_task(batcher.submit(request(2, 2), deadline=clock.now + 60.0))
        await until(lambda: batcher.queued_requests == 2)
        clock.now += 2.0  # the first deadline passes while the model is busy
        model.gate.set()
        assert scores(await running) == expected(0, 1)
        with pytest.raises(DeadlineExceeded, match=r"waited 2000\.0 ms in the queue") as caught:
            await late
        assert isinstance(caught.value, TimeoutError)
        assert scores(await in_time) == expected(2, 2)
        await batcher.stop()

    run(scenario)
    assert model.batches == [1, 2]  # the 5 late rows were never predicted
    assert observer.rejections == ["deadline"]


def test_a_queued_request_fails_at_its_deadline_not_when_the_model_frees_up():
    model = CountingSum()

    async def scenario() -> None:
        batcher = await started(MicroBatcher(predictor_of(model).predict, run_in_thread=True))
        model.hold()
        running = asyncio.create_task(batcher.submit(request(0, 1)))
        await until(model.entered.is_set)
        started_at = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            await batcher.submit(request(1, 1), deadline=started_at + 0.03)
        assert time.monotonic() - started_at < 1.0  # while the model is still held
        assert batcher.queued_requests == 0
        model.gate.set()
        await running
        await batcher.stop()

    run(scenario)
    assert model.batches == [1]


# -- a failing model fails its own batch only ------------------------------------------------------


@BOTH_MODES
def test_a_model_that_raises_fails_every_request_of_its_batch_and_the_next_batch_succeeds(in_thread):
    model = CountingSum(poison=-1.0)

    async def scenario() -> None:
        batcher = MicroBatcher(predictor_of(model, "churn").predict, run_in_thread=in_thread, name="churn/3")
        await batcher.start()
        doomed = [batcher.submit(request(tag, 2)) for tag in (5.0, -1.0, 6.0)]  # one batch, one bad row
        outcomes = await asyncio.gather(*doomed, return_exceptions=True)
        assert all(isinstance(o, PredictionError) for o in outcomes)
        assert len({id(o) for o in outcomes}) == 3  # one error per caller, not one shared instance
        assert isinstance(outcomes[0], PredictionError)  # as all are; it narrows the type for the lines below
        assert str(outcomes[0]) == (
            "model 'churn/3' failed on a batch of 6 rows from 3 requests (every request in the batch failed): "
            "ValueError: cannot score a = -1.0"
        )
        assert isinstance(outcomes[0].__cause__, PredictionError)  # the Predictor's, with the model's own below
        assert isinstance(outcomes[0].__cause__.__cause__, ValueError)
        assert scores(await batcher.submit(request(7, 2))) == expected(7, 2)
        assert batcher.running
        await batcher.stop()

    run(scenario)
    assert model.batches == [6, 2]


@BOTH_MODES
def test_a_model_that_always_raises_fails_each_batch_with_the_model_named(in_thread):
    predictor = predictor_of(FailingModel(), "broken")

    async def scenario() -> None:
        batcher = await started(MicroBatcher(predictor.predict, run_in_thread=in_thread, name="broken"))
        outcomes = await asyncio.gather(*(batcher.submit(request(i, 1)) for i in range(4)), return_exceptions=True)
        assert [type(o) for o in outcomes] == [PredictionError] * 4
        assert "model 'broken' failed on a batch of 4 rows from 4 requests" in str(outcomes[0])
        assert "ZeroDivisionError: the model divided by zero" in str(outcomes[0])
        again = await asyncio.gather(batcher.submit(request(9, 2)), return_exceptions=True)
        assert "a batch of 2 rows from 1 requests" in str(again[0])
        await batcher.stop()

    run(scenario)


def test_a_predict_function_that_breaks_n_rows_in_n_rows_out_fails_the_batch():
    predictor = predictor_of(CountingSum())

    def short(frame: Frame, options: PredictOptions) -> Predictions:
        return predictor.predict(frame, options)[:-1]

    async def scenario() -> None:
        batcher = await started(MicroBatcher(short))
        outcomes = await asyncio.gather(*(batcher.submit(request(i, 2)) for i in range(3)), return_exceptions=True)
        assert all(isinstance(o, PredictionError) for o in outcomes)
        assert "the predict function returned 5 rows for 6" in str(outcomes[0])
        await batcher.stop()

    run(scenario)


# -- lifecycle -------------------------------------------------------------------------------------


def test_the_server_owns_the_lifecycle():
    predictor = predictor_of(CountingSum())

    async def scenario() -> None:
        batcher = MicroBatcher(predictor.predict, name="churn")
        assert not batcher.running
        with pytest.raises(BatcherClosed, match="has not been started; the server starts it"):
            await batcher.submit(request(1, 1))
        await batcher.start()
        assert batcher.running
        with pytest.raises(RuntimeError, match="already started"):
            await batcher.start()
        await batcher.stop()
        await batcher.stop()  # twice is harmless
        assert not batcher.running
        with pytest.raises(BatcherClosed, match="model 'churn' is shutting down and takes no new requests"):
            await batcher.submit(request(1, 1))
        await MicroBatcher(predictor.predict).stop()  # never started: nothing to do

    run(scenario)


@BOTH_MODES
def test_stop_with_drain_answers_every_queued_request(in_thread):
    model = CountingSum()
    policy = BatchPolicy(max_batch_size=4, max_delay_ms=1000.0, fill_target=4)  # draining ignores the wait

    async def scenario() -> None:
        batcher = await started(MicroBatcher(predictor_of(model).predict, policy=policy, run_in_thread=in_thread))
        pending = [asyncio.create_task(batcher.submit(request(i, 1))) for i in range(7)]
        await until(lambda: batcher.queued_requests == 3)  # 4 ran at once; 3 wait (up to 1 s) for company
        started_at = time.perf_counter()
        await batcher.stop(drain=True)
        assert time.perf_counter() - started_at < 0.5
        answers = await asyncio.gather(*pending)
        assert [scores(a) for a in answers] == [expected(i, 1) for i in range(7)]

    run(scenario)
    assert model.batches == [4, 3]


def test_stop_without_drain_fails_queued_requests_and_finishes_the_running_one():
    model = CountingSum()
    observer = Recorder()

    async def scenario() -> None:
        batcher = MicroBatcher(predictor_of(model).predict, run_in_thread=True, name="churn", observer=observer)
        await batcher.start()
        model.hold()
        running = asyncio.create_task(batcher.submit(request(0, 1)))
        await until(model.entered.is_set)
        queued = [asyncio.create_task(batcher.submit(request(i, 1))) for i in (1, 2)]
        await until(lambda: batcher.queued_requests == 2)
        stopping = asyncio.create_task(batcher.stop(drain=False))
        outcomes = await asyncio.gather(*queued, return_exceptions=True)
        assert [str(o) for o in outcomes] == ["model 'churn' is shutting down; the request was not run"] * 2
        assert all(isinstance(o, BatcherClosed) for o in outcomes)
        assert not stopping.done()  # waits for the model call in progress
        model.gate.set()
        await stopping
        assert scores(await running) == expected(0, 1)

    run(scenario)
    assert model.batches == [1]
    assert observer.rejections == ["closed", "closed"]


def test_stop_gives_up_on_a_hung_model_after_its_timeout():
    model = CountingSum()

    async def scenario() -> None:
        batcher = await started(MicroBatcher(predictor_of(model).predict, run_in_thread=True, name="stuck"))
        model.hold()
        running = asyncio.create_task(batcher.submit(request(0, 1)))
        await until(model.entered.is_set)
        queued = asyncio.create_task(batcher.submit(request(1, 1)))
        await until(lambda: batcher.queued_requests == 1)
        started_at = time.perf_counter()
        await batcher.stop(drain=True, timeout=0.05)
        assert time.perf_counter() - started_at < 1.0
        for task in (running, queued):
            with pytest.raises(BatcherClosed, match=r"model 'stuck' did not finish .* within 0\.05 s of shutdown"):
                await task
        model.gate.set()  # let the abandoned thread end

    run(scenario)


def test_thread_setup_runs_once_in_the_model_thread_before_any_batch():
    model = CountingSum()
    setups: list[int] = []

    async def scenario() -> None:
        batcher = MicroBatcher(
            predictor_of(model).predict, run_in_thread=True, thread_setup=lambda: setups.append(threading.get_ident())
        )
        await batcher.start()
        assert len(setups) == 1
        for i in range(3):
            await batcher.submit(request(i, 1))
        await batcher.stop()

    run(scenario)
    assert len(setups) == 1
    assert model.threads == set(setups)
    assert setups[0] != threading.get_ident()


def test_a_failing_thread_setup_fails_start_as_itself():
    def setup() -> None:
        raise OSError("no such thread pool")

    async def scenario() -> None:
        batcher = MicroBatcher(predictor_of(CountingSum()).predict, run_in_thread=True, thread_setup=setup)
        with pytest.raises(OSError, match="no such thread pool"):
            await batcher.start()
        assert not batcher.running
        with pytest.raises(BatcherClosed, match="has not been started"):
            await batcher.submit(request(1, 1))

    run(scenario)


def test_thread_setup_is_left_alone_inline():
    calls: list[int] = []

    async def scenario() -> None:
        batcher = MicroBatcher(predictor_of(CountingSum()).predict, thread_setup=lambda: calls.append(1))
        await batcher.start()
        await batcher.submit(request(1, 1))
        await batcher.stop()

    run(scenario)
    assert calls == []  # the event loop's thread is the server's to configure


def test_a_caller_that_gives_up_frees_its_place_and_is_never_predicted():
    model = CountingSum()

    async def scenario() -> None:
        batcher = await started(MicroBatcher(predictor_of(model).predict, run_in_thread=True))
        model.hold()
        running = asyncio.create_task(batcher.submit(request(0, 1)))
        await until(model.entered.is_set)
        abandoned = asyncio.create_task(batcher.submit(request(1, 3)))
        kept = asyncio.create_task(batcher.submit(request(2, 1)))
        await until(lambda: batcher.queued_rows == 4)
        abandoned.cancel()
        await asyncio.sleep(0)
        assert (batcher.queued_requests, batcher.queued_rows) == (1, 1)
        model.gate.set()
        await running
        assert scores(await kept) == expected(2, 1)
        await batcher.stop()

    run(scenario)
    assert model.batches == [1, 1]


# -- odds and ends ---------------------------------------------------------------------------------


def test_a_request_with_no_valid_rows_is_answered_without_the_model():
    model = CountingSum()
    columns = SIGNATURE.coerce([{"a": "x", "b": 1.0, "c": 2.0}])
    assert columns.frame.n_rows == 0

    async def scenario() -> None:
        batcher = await started(MicroBatcher(predictor_of(model).predict, run_in_thread=True))
        answer = await batcher.submit(columns)
        assert len(answer) == 0
        assert answer.column("score").shape == (0,)
        await batcher.stop()

    run(scenario)
    assert model.batches == []


def test_an_inline_backlog_gives_the_loop_a_turn_between_batches():
    model = CountingSum()
    seen: list[int] = []

    async def ticker() -> None:
        while len(model.batches) < 5:
            seen.append(len(model.batches))
            await asyncio.sleep(0)

    async def scenario() -> None:
        batcher = await started(MicroBatcher(predictor_of(model).predict, policy=BatchPolicy(max_batch_size=1)))
        watching = asyncio.create_task(ticker())
        await asyncio.gather(*(batcher.submit(request(i, 1)) for i in range(5)))
        await watching
        await batcher.stop()

    run(scenario)
    assert {1, 2, 3, 4} <= set(seen)  # other tasks ran while the backlog was worked off


def test_run_in_thread_keeps_the_loop_free_while_inline_runs_on_it():
    thread_model, inline_model = CountingSum(), CountingSum()

    async def scenario() -> None:
        threaded = await started(MicroBatcher(predictor_of(thread_model).predict, run_in_thread=True))
        inline = await started(MicroBatcher(predictor_of(inline_model).predict))
        thread_model.hold()
        running = asyncio.create_task(threaded.submit(request(0, 1)))
        await until(thread_model.entered.is_set)
        ticks = 0
        for _ in range(5):  # the loop keeps turning while the model thread is held
            await asyncio.sleep(0.001)
            ticks += 1
        assert ticks == 5
        await inline.submit(request(1, 1))
        thread_model.gate.set()
        await running
        await threaded.stop()
        await inline.stop()

    run(scenario)
    assert thread_model.threads.isdisjoint({threading.get_ident()})
    assert inline_model.threads == {threading.get_ident()}


class SlowSum(CountingSum):
    """A model with a fixed cost per call, as real ones have (2-3 ms whatever the batch size)."""

    def predict(self, frame: Frame, options: PredictOptions) -> dict[str, Any]:
        time.sleep(0.02)
        return super().predict(frame, options)


async def _eight_clients(max_delay_ms: float) -> tuple[list[int], float]:
    model = SlowSum()
    policy = BatchPolicy(max_delay_ms=max_delay_ms)
    batcher = MicroBatcher(predictor_of(model).predict, policy=policy, run_in_thread=True)
    await batcher.start()
    # A lone client first: its call is not held back (20 ms model, far below 20 + 5 ms).
    started = time.perf_counter()
    await batcher.submit(request(1, 1))
    lone = time.perf_counter() - started

    # Then load: 8 clients that each send again as soon as they are answered, arriving
    # a little apart, as requests over a network do.
    async def client(tag: int) -> None:
        for _ in range(5):
            await asyncio.sleep(0.001 * (tag % 4))
            await batcher.submit(request(tag, 1))

    await asyncio.gather(*(client(t) for t in range(8)))
    await batcher.stop()
    return model.batches, lone


def test_under_load_an_idle_model_waits_for_the_clients_it_answered_but_a_lone_client_never_waits() -> None:
    batches, lone = asyncio.run(_eight_clients(max_delay_ms=100))
    assert lone < 0.025
    under_load = batches[2:]  # after the lone call and the first coalesced one
    # Waiting (up to two calls) for the answered clients to come back keeps batches full: without
    # it, arrivals a millisecond apart split into a one-row call followed by the rest.
    assert statistics.mean(under_load) >= 7, batches


def test_max_delay_zero_never_waits_for_company() -> None:
    batches, _ = asyncio.run(_eight_clients(max_delay_ms=0))
    assert min(batches[2:]) < 4, batches  # an idle model took whatever had arrived, however little
