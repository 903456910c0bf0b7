"""Infer and `/invocations`, the plain-ASGI hot endpoints: paths, deadlines, and every answer they give.

The app is the real one over a real runtime, started by its own lifespan and driven in
process (httpx's ASGI transport); a client that hangs up is played by calling the app
with an ASGI `receive` that says so.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from servedmodels import POISON, Gate, Lifespan, Stack, run, serving, until

from foretell.errors import InvalidInput
from foretell.http.app import ServerOptions
from foretell.http.inference import Target, match, request_deadline
from foretell.serving.policy import BatchPolicy


def tensors(a: list[float], b: list[float]) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "a", "datatype": "FP64", "shape": [len(a)], "data": a},
            {"name": "b", "datatype": "FP64", "shape": [len(b)], "data": b},
        ]
    }


def answered(stack: Stack, model: str, endpoint: str, status: int) -> float | None:
    return stack.metric("foretell_requests_total", model=model, endpoint=endpoint, status=str(status), transport="http")


# -- which paths are hot -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/invocations", Target("invocations")),
        ("/v2/models/churn/infer", Target("infer", "churn")),
        ("/v2/models/churn/versions/3/infer", Target("infer", "churn", "3")),
        ("/v2/models/churn", None),
        ("/v2/models/churn/ready", None),
        ("/v2/models//infer", None),
        ("/v2/models/churn/versions//infer", None),
        ("/v2/models/churn/versions/3/ready", None),
        ("/v2/models/churn/infer/", None),
        ("/v2/models/a/b/infer", None),
        ("/invocations/", None),
        ("/v2/models/churn/INFER", None),
        ("/v1/models/churn/infer", None),
    ],
)
def test_match_finds_the_hot_endpoint_a_path_names(path, target):
    assert match(path) == target


segments = st.text(st.characters(blacklist_characters="/"), min_size=1, max_size=12)


@given(name=segments, version=segments)
def test_match_reads_any_model_name_and_version_back_out_of_its_path(name, version):
    assert match(f"/v2/models/{name}/infer") == Target("infer", name)
    assert match(f"/v2/models/{name}/versions/{version}/infer") == Target("infer", name, version)


@given(st.lists(st.sampled_from(["", "v2", "models", "versions", "infer", "x", "invocations"]), max_size=7))
def test_match_gives_a_target_only_for_a_path_it_would_build_again(parts):
    path = "/" + "/".join(parts)
    target = match(path)
    if target is None:
        return
    if target.endpoint == "invocations":
        assert path == "/invocations"
    elif target.version is None:
        assert path == f"/v2/models/{target.name}/infer"
    else:
        assert path == f"/v2/models/{target.name}/versions/{target.version}/infer"


# -- deadlines from the request --------------------------------------------------------------------------


def test_the_timeout_header_wins_over_the_body_timeout():
    before = time.monotonic()
    deadline = request_deadline("2", 60.0)
    assert deadline is not None and before + 2 <= deadline <= time.monotonic() + 2


def test_the_body_timeout_applies_without_a_header_and_no_timeout_is_no_deadline():
    before = time.monotonic()
    deadline = request_deadline(None, 0.5)
    assert deadline is not None and before + 0.5 <= deadline <= time.monotonic() + 0.5
    assert request_deadline(None, None) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", "X-Request-Timeout must be a number of seconds, got 'soon'"),
        ("", "X-Request-Timeout must be a number of seconds, got ''"),
        ("0", "a request timeout must be a positive number of seconds, got 0.0"),
        ("-1", "a request timeout must be a positive number of seconds, got -1.0"),
        ("nan", "a request timeout must be a positive number of seconds, got nan"),
        ("inf", "a request timeout must be a positive number of seconds, got inf"),
        ("1e999", "a request timeout must be a positive number of seconds, got inf"),
    ],
)
def test_a_timeout_header_that_is_not_a_positive_finite_number_is_refused_naming_it(value, message):
    with pytest.raises(InvalidInput) as caught:
        request_deadline(value, None)
    assert str(caught.value) == message


@given(st.text(max_size=12))
def test_any_timeout_header_gives_a_finite_deadline_or_invalid_input(value):
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    try:
        deadline = request_deadline(value, None)
    except InvalidInput:
        assert not 0 < seconds < math.inf
    else:
        assert 0 < seconds < math.inf
        assert deadline is not None and math.isfinite(deadline)


# -- infer --------------------------------------------------------------------------------------------------


@pytest.fixture
def stack(models_home, tmp_path) -> Stack:
    return Stack(models_home, tmp_path, ("sums",))


def test_infer_answers_one_tensor_per_feature_with_the_served_version(stack):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.post("/v2/models/sums/infer", json={"id": "r1", **tensors([1, 2], [3, 4])})
            assert response.status_code == 200
            assert response.json() == {
                "model_name": "sums",
                "model_version": "1",
                "id": "r1",
                "outputs": [{"name": "score", "datatype": "FP64", "shape": [2], "data": [4.0, 6.0]}],
            }

    run(scenario)
    assert answered(stack, "sums", "infer", 200) == 1.0


def test_infer_with_a_pinned_version_answers_only_for_the_served_one(stack):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            ok = await client.post("/v2/models/sums/versions/1/infer", json=tensors([1], [1]))
            assert (ok.status_code, ok.json()["model_version"]) == (200, "1")
            other = await client.post("/v2/models/sums/versions/2/infer", json=tensors([1], [1]))
            assert other.status_code == 404
            assert other.json() == {
                "error": "model 'sums' version '2' is not served here; this server serves version 1"
            }

    run(scenario)
    assert answered(stack, "-", "infer", 404) == 1.0


def test_infer_for_a_model_not_served_is_404_counted_under_a_dash(stack):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.post("/v2/models/churn/infer", json=tensors([1], [1]))
            assert response.status_code == 404
            assert response.json() == {"error": "model 'churn' is not served here; served models: sums"}

    run(scenario)
    assert answered(stack, "-", "infer", 404) == 1.0
    assert b'model="churn"' not in stack.runtime.metrics.render()


@pytest.mark.parametrize("path", ["/v2/models/sums/infer", "/invocations"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_the_hot_endpoints_take_only_post_and_say_so_with_allow(stack, path, method):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.request(method, path)
            assert response.status_code == 405
            assert response.headers["allow"] == "POST"
            assert response.json() == {"error": f"{path} does not take {method}: use POST"}

    run(scenario)
    assert answered(stack, "-", "infer" if "infer" in path else "invocations", 405) == 1.0
    assert stack.metric("foretell_batch_size_count", model="sums") == 0.0  # the model never ran


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{nope", "the request body is not valid JSON: unexpected character"),
        (b'{"inputs": [{"name": "a", "datatype": "FP64", "shape": [1], "data": [1]}]}', "missing ['b']"),
        (
            b'{"inputs": [{"name": "a", "datatype": "FP64", "shape": [1], "data": [1]},'
            b' {"name": "b", "datatype": "FP64", "shape": [1], "data": ["x"]}]}',
            "input 'b': FP64 data must be numbers (or null for missing); got a string 'x' at position 0",
        ),
    ],
    ids=["not-json", "missing-feature", "wrong-type"],
)
def test_a_malformed_infer_request_is_400_saying_what_is_wrong(stack, body, message):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.post("/v2/models/sums/infer", content=body)
            assert response.status_code == 400
            assert message in response.json()["error"]

    run(scenario)
    assert answered(stack, "sums", "infer", 400) == 1.0


@pytest.mark.parametrize(
    ("timeout", "message"),
    [
        ("soon", "X-Request-Timeout must be a number of seconds, got 'soon'"),
        ("0", "a request timeout must be a positive number of seconds, got 0.0"),
    ],
)
def test_a_bad_timeout_header_is_400(stack, timeout, message):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.post(
                "/v2/models/sums/infer", json=tensors([1], [1]), headers={"X-Request-Timeout": timeout}
            )
            assert (response.status_code, response.json()) == (400, {"error": message})

    run(scenario)


def test_a_body_declared_over_the_limit_is_413_before_it_is_read(stack):
    async def scenario() -> None:
        async with serving(stack.app(ServerOptions(max_body_bytes=64))) as client:
            response = await client.post("/v2/models/sums/infer", json=tensors([1, 2, 3], [4, 5, 6]))
            assert response.status_code == 413
            assert response.json() == {
                "error": "request body is larger than the server's limit of 64 bytes (max_body_bytes)"
            }

    run(scenario)
    assert answered(stack, "sums", "infer", 413) == 1.0


def test_a_streamed_body_over_the_limit_is_413_too(stack):
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 10

    async def scenario() -> None:
        async with serving(stack.app(ServerOptions(max_body_bytes=64))) as client:
            response = await client.post("/invocations", content=chunks())
            assert "content-length" not in response.request.headers
            assert response.status_code == 413

    run(scenario)


def test_a_failing_model_is_500_with_its_error_and_the_next_request_is_served(stack):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            broken = await client.post("/v2/models/sums/infer", json=tensors([POISON], [0]))
            assert broken.status_code == 500
            assert broken.json()["error"].endswith("ValueError: a = -1 broke the model")
            fine = await client.post("/v2/models/sums/infer", json=tensors([2], [0]))
            assert fine.json()["outputs"][0]["data"] == [2.0]

    run(scenario)
    assert answered(stack, "sums", "infer", 500) == 1.0


# -- a client that hangs up --------------------------------------------------------------------------------


def test_a_client_that_hangs_up_before_its_body_arrives_is_counted_as_499_and_sent_nothing(stack):
    app = stack.app()
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v2/models/sums/infer",
        "headers": [(b"content-type", b"application/json")],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def scenario() -> None:
        async with Lifespan(app):
            await app(scope, receive, send)

    run(scenario)
    assert sent == []
    assert answered(stack, "sums", "infer", 499) == 1.0
    assert stack.metric("foretell_in_flight_requests", model="sums") == 0.0
    assert stack.runtime.in_flight.requests == 0


# -- load and deadlines, with the model held mid-call --------------------------------------------------------


def gated(models_home, tmp_path, max_queue: int = 1) -> Stack:
    return Stack(models_home, tmp_path, ("gated",), policy=BatchPolicy(max_queue=max_queue))


@pytest.mark.parametrize(("configured", "status"), [(None, 503), (429, 429)])
def test_a_full_queue_answers_the_configured_status_with_retry_after(models_home, tmp_path, configured, status):
    stack = gated(models_home, tmp_path)
    options = ServerOptions(overload_status=configured) if configured else None
    url = "/v2/models/gated/infer"

    async def scenario() -> None:
        async with serving(stack.app(options)) as client:
            slot = stack.runtime.slots["gated"]
            Gate.hold()
            try:
                running = asyncio.create_task(client.post(url, json=tensors([1], [1])))
                await until(Gate.entered.is_set)
                queued = asyncio.create_task(client.post(url, json=tensors([2], [2])))
                await until(lambda: slot.batcher.queued_rows == 1)
                refused = await client.post(url, json=tensors([3], [3]))
            finally:
                Gate.release()
            assert refused.status_code == status
            assert refused.headers["retry-after"] == "1"
            assert "1 rows are waiting (limit 1) and this request brings 1" in refused.json()["error"]
            assert [(await t).json()["outputs"][0]["data"] for t in (running, queued)] == [[2.0], [4.0]]

    run(scenario)
    assert answered(stack, "gated", "infer", status) == 1.0


def test_a_request_whose_deadline_passes_in_the_queue_is_504_and_never_runs(models_home, tmp_path):
    stack = gated(models_home, tmp_path, max_queue=10)
    url = "/v2/models/gated/infer"

    async def scenario() -> None:
        async with serving(stack.app()) as client:
            slot = stack.runtime.slots["gated"]
            Gate.hold()
            try:
                running = asyncio.create_task(client.post(url, json=tensors([1], [1])))
                await until(Gate.entered.is_set)
                late = await client.post(url, json=tensors([2], [2]), headers={"X-Request-Timeout": "0.05"})
                assert slot.batcher.queued_requests == 0  # dropped from the queue at its deadline
            finally:
                Gate.release()
            assert late.status_code == 504
            assert "ms in the queue" in late.json()["error"]
            assert (await running).status_code == 200

    run(scenario)
    assert stack.metric("foretell_batch_size_sum", model="gated") == 1.0  # the running request's row alone
    assert stack.metric("foretell_rejected_total", model="gated", reason="deadline") == 1.0


# -- /invocations ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type", "predictions"),
    [
        (b'{"dataframe_records": [{"a": 1, "b": 2}]}', "application/json", [3.0]),
        (b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}}', "application/json", [3.0, 7.0]),
        (b'{"instances": [{"a": 0.5, "b": 0.25}]}', "application/json", [0.75]),
        (b"a,b\n1,2\n5,5\n", "text/csv", [3.0, 10.0]),
    ],
    ids=["records", "split", "instances", "csv"],
)
def test_invocations_answers_mlflow_predictions_for_the_one_served_model(stack, content, content_type, predictions):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.post("/invocations", content=content, headers={"content-type": content_type})
            assert (response.status_code, response.json()) == (200, {"predictions": predictions})

    run(scenario)
    assert answered(stack, "sums", "invocations", 200) == 1.0


def test_invocations_refuses_a_content_type_it_does_not_read_with_415(stack):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.post("/invocations", content=b"<a/>", headers={"content-type": "application/xml"})
            assert response.status_code == 415
            assert response.json() == {
                "error": "unsupported content type 'application/xml': /invocations reads application/json or "
                "text/csv (charset utf-8)"
            }

    run(scenario)


def test_invocations_on_a_server_with_several_models_points_to_infer(models_home, tmp_path):
    stack = Stack(models_home, tmp_path, ("sums", "topk"))

    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.post("/invocations", json={"dataframe_records": [{"a": 1, "b": 2}]})
            assert response.status_code == 400
            assert response.json() == {
                "error": "/invocations serves a server with exactly one model: use /v2/models/{name}/infer; "
                "this one serves ['sums', 'topk']"
            }

    run(scenario)
    assert answered(stack, "-", "invocations", 400) == 1.0
