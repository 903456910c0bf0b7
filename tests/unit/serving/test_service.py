"""`InferenceService`, the one data plane: a real registry home, a real `Runtime`, real batchers.

`observed` is driven with the HTTP transport's own table (`HttpAnswers`) where the answer
matters, and with a small transport of the test's own where only the seam does: a second
transport (gRPC, later) implements the same two methods.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import math
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from servedmodels import POISON, Gate, Stack, run, started, until

from foretell.core.coerce import Columns
from foretell.core.predictor import PredictOptions
from foretell.errors import (
    DeadlineExceeded,
    ForetellError,
    InvalidInput,
    ModelNotFound,
    Overloaded,
    PredictionError,
    VersionNotFound,
)
from foretell.http.errors import HttpAnswers, Reply
from foretell.serving.policy import BatchPolicy
from foretell.serving.runtime import GC_THRESHOLDS
from foretell.serving.service import MAX_K, Call, deadline_after

ANSWERS = HttpAnswers()


class Words:
    """A transport whose answers are words, and whose status labels are its own numbers."""

    codes: ClassVar[dict[str, int]] = {"ok": 0, "bad": 3, "gone": 5, "broken": 13}

    def status(self, answer: str) -> int:
        return self.codes[answer.split(":")[0]]

    def failure(self, error: BaseException) -> str:
        if isinstance(error, InvalidInput):
            return f"bad: {error}"
        if isinstance(error, ModelNotFound):
            return f"gone: {error}"
        return f"broken: {type(error).__name__}"


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def serving_log() -> Iterator[list[logging.LogRecord]]:
    """What `foretell.serving` logs, heard on the logger itself (a server process stops it propagating)."""
    logger, records = logging.getLogger("foretell.serving"), Records()
    level = logger.level
    logger.addHandler(records)
    logger.setLevel(logging.DEBUG)
    yield records.records
    logger.removeHandler(records)
    logger.setLevel(level)


@pytest.fixture
def stack(models_home, tmp_path) -> Stack:
    return Stack(models_home, tmp_path, ("sums", "topk"))


def requests(stack: Stack, model: str, endpoint: str, status: int | str) -> float | None:
    return stack.metric("foretell_requests_total", model=model, endpoint=endpoint, status=str(status), transport="http")


def in_flight(stack: Stack, model: str) -> float | None:
    return stack.metric("foretell_in_flight_requests", model=model)


def batches(stack: Stack, model: str) -> float:
    return stack.metric("foretell_batch_size_count", model=model) or 0.0


# -- observed: one wrapper for every request --------------------------------------------------------


def test_observed_returns_the_work_answer_and_counts_it_under_the_served_model(stack):
    service = stack.inference

    async def work(call: Call) -> Reply:
        slot = service.resolve(call, "sums")
        inference = await service.infer(slot, [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.5}])
        return 200, repr(inference.predictions.column("score").tolist()).encode(), {}

    async def scenario() -> None:
        async with started(service):
            assert await service.observed("infer", work, ANSWERS) == (200, b"[3.0, 7.5]", {})

    run(scenario)
    assert requests(stack, "sums", "infer", 200) == 1.0
    assert stack.metric("foretell_request_seconds_count", model="sums", endpoint="infer", transport="http") == 1.0
    assert in_flight(stack, "sums") == 0.0
    assert stack.runtime.in_flight.requests == 0


def test_a_request_is_in_flight_once_while_it_runs_however_often_it_resolves(stack):
    service = stack.inference
    seen: list[tuple[int, float | None]] = []

    async def work(call: Call) -> Reply:
        seen.append((stack.runtime.in_flight.requests, in_flight(stack, "sums")))
        service.resolve(call, "sums")
        service.resolve(call, "sums")  # a route may ask twice (batchGet); counted once
        seen.append((stack.runtime.in_flight.requests, in_flight(stack, "sums")))
        return 200, b"", {}

    async def scenario() -> None:
        async with started(service):
            await service.observed("lookup", work, ANSWERS)

    run(scenario)
    assert seen == [(1, None), (1, 1.0)]
    assert (stack.runtime.in_flight.requests, in_flight(stack, "sums")) == (0, 0.0)


def test_a_foretell_error_becomes_the_transports_answer_and_is_not_logged(stack, serving_log):
    service = stack.inference

    async def work(call: Call) -> str:
        slot = service.resolve(call, "sums")
        await service.infer(slot, [{"a": 1.0, "b": "x"}])
        return "ok"

    async def scenario() -> None:
        async with started(service):
            answer = await service.observed("predict", work, Words())
            assert answer == "bad: 1 of 1 input row invalid: row 0, field 'b': expected a number (float64); got str 'x'"

    run(scenario)
    assert [r for r in serving_log if r.levelno >= logging.WARNING] == []
    assert requests(stack, "sums", "predict", 3) == 1.0  # the transport's own status label
    assert in_flight(stack, "sums") == 0.0


def test_a_bug_in_the_work_is_logged_with_its_traceback_and_answered_without_its_text(stack, serving_log):
    service = stack.inference

    async def work(call: Call) -> Reply:
        service.resolve(call, "sums")
        return {"token": "s3cret"}["missing"]  # type: ignore[return-value]  # a KeyError, as a bug would raise

    async def scenario() -> None:
        async with started(service):
            status, body, headers = await service.observed("infer", work, ANSWERS)
            assert (status, body, headers) == (500, b'{"error":"internal error: KeyError"}', {})

    run(scenario)
    [record] = [r for r in serving_log if r.levelno == logging.ERROR]
    assert record.getMessage() == "unexpected error answering infer"
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert requests(stack, "sums", "infer", 500) == 1.0
    assert (stack.runtime.in_flight.requests, in_flight(stack, "sums")) == (0, 0.0)


def test_a_request_for_a_model_not_served_is_counted_under_a_dash_never_the_clients_text(stack):
    service = stack.inference
    asked = 'x"} 1\nforetell_evil{a="'  # a client may send anything as a model name

    async def work(call: Call) -> Reply:
        service.resolve(call, asked)
        return 200, b"", {}

    async def scenario() -> None:
        async with started(service):
            status, body, _ = await service.observed("infer", work, ANSWERS)
            assert status == 404
            assert json.loads(body) == {"error": f"model {asked!r} is not served here; served models: sums, topk"}

    run(scenario)
    assert requests(stack, "-", "infer", 404) == 1.0
    labels = {s.labels.get("model") for m in stack.runtime.metrics.registry.collect() for s in m.samples}
    assert labels <= {None, "-", "sums", "topk"}
    assert b"foretell_evil" not in stack.runtime.metrics.render()


def test_a_cancelled_request_leaves_nothing_in_flight_and_is_not_counted_as_answered(stack):
    service = stack.inference
    entered = asyncio.Event()

    async def work(call: Call) -> Reply:
        service.resolve(call, "sums")
        entered.set()
        await asyncio.sleep(60)
        return 200, b"", {}

    async def scenario() -> None:
        async with started(service):
            task = asyncio.create_task(service.observed("infer", work, ANSWERS))
            await entered.wait()
            assert (stack.runtime.in_flight.requests, in_flight(stack, "sums")) == (1, 1.0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run(scenario)
    assert (stack.runtime.in_flight.requests, in_flight(stack, "sums")) == (0, 0.0)
    assert stack.metric("foretell_request_seconds_count", model="sums", endpoint="infer", transport="http") is None


def test_refused_counts_a_request_the_transport_turned_away_under_a_dash(stack):
    stack.inference.refused("infer", 405, time.perf_counter())
    assert requests(stack, "-", "infer", 405) == 1.0


# -- resolving the model ----------------------------------------------------------------------------


def test_resolve_names_the_served_models_when_the_asked_one_is_not_served(stack):
    async def scenario() -> None:
        async with started(stack.inference) as service:
            with pytest.raises(ModelNotFound) as caught:
                service.resolve(Call("infer"), "churn")
            assert str(caught.value) == "model 'churn' is not served here; served models: sums, topk"

    run(scenario)


def test_resolve_refuses_a_pinned_version_this_server_does_not_serve(stack):
    async def scenario() -> None:
        async with started(stack.inference) as service:
            assert service.resolve(Call("infer"), "sums", "1").version == 1
            with pytest.raises(VersionNotFound) as caught:
                service.resolve(Call("infer"), "sums", "2")
            assert str(caught.value) == ("model 'sums' version '2' is not served here; this server serves version 1")

    run(scenario)


def test_only_model_is_the_one_model_a_server_serves(models_home, tmp_path):
    one = Stack(models_home, tmp_path, ("sums",))

    async def scenario() -> None:
        async with started(one.inference) as service:
            call = Call("invocations")
            assert service.only_model(call, "use infer").name == "sums"
            assert call.model == "sums"

    run(scenario)


def test_only_model_refuses_with_the_transports_words_when_several_are_served(stack):
    async def scenario() -> None:
        async with started(stack.inference) as service:
            call = Call("invocations")
            with pytest.raises(InvalidInput) as caught:
                service.only_model(call, "/invocations needs a server with one model")
            assert str(caught.value) == "/invocations needs a server with one model; this one serves ['sums', 'topk']"
            assert call.model == "-"

    run(scenario)


def test_the_service_reports_what_it_serves_and_readiness_is_the_runtimes(stack):
    service = stack.inference

    async def scenario() -> None:
        assert not service.ready
        async with started(service):
            assert service.served == ["sums", "topk"]
            assert service.ready and stack.runtime.ready
            service.ready = False  # what a SIGTERM does first
            assert not stack.runtime.ready
            assert service.slot_if_served("topk") is stack.runtime.slots["topk"]
            assert service.slot_if_served("nope") is None
        assert not service.ready

    run(scenario)


def test_once_the_models_are_loaded_the_heap_is_frozen_and_young_collections_are_rarer(stack):
    service = stack.inference
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # Python's default, whatever an earlier test left

    async def scenario() -> None:
        async with started(service):
            assert gc.get_threshold() == GC_THRESHOLDS
            assert gc.get_freeze_count() > 0

    try:
        run(scenario)
    finally:
        gc.set_threshold(*before)


# -- predict options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "k", "message"),
    [
        ("sums", 3, "model 'sums' returns no top-k lists; 'k' is for recommenders"),
        ("topk", 0, f"k must be between 1 and {MAX_K}, got 0"),
        ("topk", -2, f"k must be between 1 and {MAX_K}, got -2"),
        ("topk", MAX_K + 1, f"k must be between 1 and {MAX_K}, got {MAX_K + 1}"),
    ],
)
def test_check_options_refuses_k_a_model_cannot_honour(stack, model, k, message):
    async def scenario() -> None:
        async with started(stack.inference) as service:
            with pytest.raises(InvalidInput) as caught:
                service.check_options(service.resolve(Call("lookup"), model), PredictOptions(k=k))
            assert str(caught.value) == message

    run(scenario)


def test_check_options_accepts_k_from_1_to_the_maximum_and_no_k_anywhere(stack):
    async def scenario() -> None:
        async with started(stack.inference) as service:
            topk, sums = service.resolve(Call("lookup"), "topk"), service.resolve(Call("lookup"), "sums")
            for k in (1, MAX_K):
                service.check_options(topk, PredictOptions(k=k))
            service.check_options(sums, PredictOptions())

    run(scenario)


def test_infer_with_k_refuses_before_any_work_is_queued(stack):
    async def scenario() -> None:
        async with started(stack.inference) as service:
            slot = service.resolve(Call("lookup"), "topk")
            with pytest.raises(InvalidInput, match="got 0"):
                await service.infer(slot, [{"user_id": 1}], options=PredictOptions(k=0))

    run(scenario)
    assert batches(stack, "topk") == 0.0


def test_infer_with_k_asks_the_model_for_k_items(stack):
    async def scenario() -> None:
        async with started(stack.inference) as service:
            slot = service.resolve(Call("lookup"), "topk")
            inference = await service.infer(slot, [{"user_id": 4}, {"user_id": 7}], options=PredictOptions(k=5))
            assert inference.predictions.column("items").tolist() == [
                [40, 41, 42, 43, 44],
                [70, 71, 72, 73, 74],
            ]
            assert inference.version == 1 and inference.model is slot.model

    run(scenario)


# -- infer ---------------------------------------------------------------------------------------------


def test_infer_runs_the_rows_through_the_models_batcher(stack):
    async def scenario() -> None:
        async with started(stack.inference) as service:
            slot = service.resolve(Call("infer"), "sums")
            inference = await service.infer(slot, [[1.0, 2.0], [0.25, 0.5]])
            assert inference.predictions.column("score").tolist() == [3.0, 0.75]

    run(scenario)
    assert stack.metric("foretell_batch_size_sum", model="sums") == 2.0  # one batch of two rows


def test_infer_names_each_invalid_row_and_field_and_runs_nothing(stack):
    async def scenario() -> None:
        async with started(stack.inference) as service:
            slot = service.resolve(Call("infer"), "sums")
            with pytest.raises(InvalidInput) as caught:
                await service.infer(slot, [{"a": 1.0, "b": 2.0}, {"a": 1.0, "b": "x"}, {"a": None, "b": 1.0}])
            assert str(caught.value) == (
                "2 of 3 input rows invalid: row 1, field 'b': expected a number (float64); got str 'x'; "
                "row 2, field 'a': expected a float64 value, not a missing one "
                "(this feature does not accept missing values)"
            )
            assert [(e.row, e.field) for e in caught.value.errors] == [(1, "b"), (2, "a")]

    run(scenario)
    assert batches(stack, "sums") == 0.0


def test_infer_words_invalid_rows_with_the_callers_refusal(stack):
    keys = ["C-7", "C-9"]

    def refused(columns: Columns) -> ForetellError:
        return InvalidInput("; ".join(f"key {keys[e.row or 0]!r} has a bad {e.field}" for e in columns.errors))

    async def scenario() -> None:
        async with started(stack.inference) as service:
            slot = service.resolve(Call("lookup"), "sums")
            with pytest.raises(InvalidInput) as caught:
                await service.infer(slot, [{"a": 1.0, "b": 1.0}, {"a": "?", "b": 1.0}], refused=refused)
            assert str(caught.value) == "key 'C-9' has a bad a"

    run(scenario)


def test_a_request_past_its_deadline_is_refused_before_its_rows_are_even_read(stack):
    async def scenario() -> None:
        async with started(stack.inference) as service:
            slot = service.resolve(Call("infer"), "sums")
            with pytest.raises(DeadlineExceeded) as caught:  # not InvalidInput: the bad rows were never looked at
                await service.infer(slot, [{"a": "not a number"}], deadline=time.monotonic() - 0.25)
            message = str(caught.value)
            assert message.startswith("the request for model 'sums' arrived 25")
            assert message.endswith(" ms past its deadline; it was not run")
            assert isinstance(caught.value, TimeoutError)

    run(scenario)
    assert batches(stack, "sums") == 0.0


def test_a_model_that_fails_fails_the_request_with_a_prediction_error(stack):
    async def scenario() -> None:
        async with started(stack.inference) as service:
            slot = service.resolve(Call("infer"), "sums")
            with pytest.raises(PredictionError, match="ValueError: a = -1 broke the model"):
                await service.infer(slot, [{"a": POISON, "b": 0.0}])
            assert (await service.infer(slot, [{"a": 2.0, "b": 0.0}])).predictions.column("score").tolist() == [2.0]

    run(scenario)


def test_a_full_queue_refuses_the_request_as_overloaded(models_home, tmp_path):
    gated = Stack(models_home, tmp_path, ("gated",), policy=BatchPolicy(max_queue=1))

    async def scenario() -> None:
        async with started(gated.inference) as service:
            slot = service.resolve(Call("infer"), "gated")
            Gate.hold()
            try:
                running = asyncio.create_task(service.infer(slot, [{"a": 1.0, "b": 1.0}]))
                await until(Gate.entered.is_set)
                queued = asyncio.create_task(service.infer(slot, [{"a": 2.0, "b": 2.0}]))
                await until(lambda: slot.batcher.queued_rows == 1)
                with pytest.raises(Overloaded, match=r"1 rows are waiting \(limit 1\) and this request brings 1"):
                    await service.infer(slot, [{"a": 3.0, "b": 3.0}])
            finally:
                Gate.release()
            assert [(await t).predictions.column("score").tolist() for t in (running, queued)] == [[2.0], [4.0]]

    run(scenario)
    assert gated.metric("foretell_rejected_total", model="gated", reason="queue_full") == 1.0


# -- deadlines from client timeouts --------------------------------------------------------------------


def test_deadline_after_is_the_timeout_from_now_on_the_monotonic_clock():
    before = time.monotonic()
    deadline = deadline_after(2.5)
    assert deadline is not None and before + 2.5 <= deadline <= time.monotonic() + 2.5
    assert deadline_after(None) is None


@pytest.mark.parametrize("timeout", [0.0, -1.0, math.inf, math.nan, -math.inf])
def test_deadline_after_refuses_a_timeout_that_is_not_a_positive_finite_number(timeout):
    with pytest.raises(InvalidInput) as caught:
        deadline_after(timeout)
    assert str(caught.value) == f"a request timeout must be a positive number of seconds, got {timeout}"


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_deadline_after_gives_a_finite_future_deadline_or_refuses_with_invalid_input(timeout):
    before = time.monotonic()
    try:
        deadline = deadline_after(timeout)
    except InvalidInput:
        assert not 0 < timeout < math.inf
    else:
        assert 0 < timeout < math.inf
        assert deadline is not None and math.isfinite(deadline) and deadline >= before
