"""The hybrid routes: lookup by key, batchGet and events, decoded and answered through the one service."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from servedmodels import Gate, Stack, hybrid_stack, publish, run, running_app, serving, until

from foretell.http.app import ServerOptions
from foretell.serving.policy import BatchPolicy


@pytest.fixture
def stack(models_home, tmp_path, tables) -> Stack:
    return hybrid_stack(models_home, tmp_path, tables)


def answered(stack: Stack, model: str, endpoint: str, status: int) -> float | None:
    return stack.metric("foretell_requests_total", model=model, endpoint=endpoint, status=str(status), transport="http")


# -- lookup ------------------------------------------------------------------------------------------------


def test_a_lookup_answers_the_stored_prediction_as_json(stack):
    publish(stack, "sums", [("T-1", {"score": 99.0}, 10)])

    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.get("/v1/models/sums/predictions/T-1")
            assert response.status_code == 200
            assert response.json() == {
                "model": "sums",
                "key": "T-1",
                "source": "precomputed",
                "prediction": {"score": 99.0},
                "model_version": 1,
                "computed_at": stack.clock.ago(minutes=10),
                "generation": 1,
                "age_seconds": 600.0,
                "stale": False,
            }

    run(scenario)
    assert answered(stack, "sums", "lookup", 200) == 1.0


@pytest.mark.parametrize(("flag", "source"), [("true", "live"), ("1", "live"), ("YES", "live"), ("no", "precomputed")])
def test_fresh_takes_true_or_false_in_the_usual_spellings(stack, flag, source):
    publish(stack, "sums", [("T-1", {"score": 99.0}, 10)])

    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.get("/v1/models/sums/predictions/T-1", params={"fresh": flag})
            assert response.json()["source"] == source

    run(scenario)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"fresh": "maybe"}, "?fresh= takes true or false, got 'maybe'"),
        ({"k": "abc"}, "?k= takes a whole number, got 'abc'"),
        ({"k": "²"}, "?k= takes a whole number, got '²'"),  # a digit to str.isdigit, not to int()
        ({"k": "-1"}, "?k= takes a whole number, got '-1'"),
        ({"k": "2.5"}, "?k= takes a whole number, got '2.5'"),
        ({"k": "0"}, "k must be between 1 and 1000, got 0"),
    ],
)
def test_a_bad_query_parameter_is_400_naming_it(stack, params, message):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.get("/v1/models/topk/predictions/1", params=params)
            assert (response.status_code, response.json()) == (400, {"error": message})

    run(scenario)


def test_k_in_the_query_cuts_the_stored_top_k(stack):
    publish(stack, "topk", [("1", {"items": [7, 8, 9], "scores": [0.9, 0.8, 0.7]}, 5)])

    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.get("/v1/models/topk/predictions/1", params={"k": "2"})
            assert response.json()["prediction"] == {"items": [7, 8], "scores": [0.9, 0.8]}

    run(scenario)


def test_a_lookup_for_a_model_not_served_is_404_under_a_dash(stack):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.get("/v1/models/churn/predictions/T-1")
            assert response.status_code == 404
            assert response.json() == {"error": "model 'churn' is not served here; served models: sums, tiers, topk"}

    run(scenario)
    assert answered(stack, "-", "lookup", 404) == 1.0


def test_a_key_with_nothing_to_answer_is_404_under_its_model(stack):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.get("/v1/models/sums/predictions/T-404")
            assert response.status_code == 404
            assert response.json()["error"].endswith("entity table 'things' has no row for it to predict one live")

    run(scenario)
    assert answered(stack, "sums", "lookup", 404) == 1.0


@pytest.fixture(scope="module")
def client(models_home, tables, tmp_path_factory) -> Iterator[tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]]:
    stack = hybrid_stack(models_home, tmp_path_factory.mktemp("routes"), tables)
    with running_app(stack.app()) as running:
        yield running


@settings(max_examples=150, deadline=None)
@given(
    k=st.none() | st.text(st.sampled_from("019²٣½ -+.eE"), max_size=4) | st.text(max_size=5),  # digits of all kinds
    fresh=st.none() | st.sampled_from(["true", "FALSE", "1", "no"]) | st.text(max_size=6),
    # "." alone would be a dot segment, which the client folds away before sending
    key=st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=6).filter(
        lambda k: k not in (".", "..")
    ),
)
def test_no_query_string_gets_a_5xx(client, k, fresh, key):
    loop, http = client
    params = {name: value for name, value in (("k", k), ("fresh", fresh)) if value is not None}
    response = loop.run_until_complete(http.get(f"/v1/models/topk/predictions/{quote(key, safe='')}", params=params))
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()) == {"error"}
    else:
        assert response.json()["key"] == key


# -- batchGet --------------------------------------------------------------------------------------------------


def test_batch_get_answers_found_keys_in_order_and_lists_the_missing(stack):
    publish(stack, "sums", [("T-1", {"score": 99.0}, 10)])

    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.post("/v1/models/sums/predictions:batchGet", json={"keys": ["T-2", "T-404", "T-1"]})
            assert response.status_code == 200
            body = response.json()
            assert [(p["key"], p["source"], p["prediction"]) for p in body["predictions"]] == [
                ("T-2", "live", {"score": 22.0}),
                ("T-1", "precomputed", {"score": 99.0}),
            ]
            assert body["missing"] == ["T-404"]

    run(scenario)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{nope", "the body is not valid JSON: "),
        (b'["T-1"]', "the body must be a JSON object"),
        (b"{}", "'keys' must be a list of 1 to 10,000 ids (the limit per batchGet), got none"),
        (b'{"keys": []}', "'keys' must be a list of 1 to 10,000 ids (the limit per batchGet), got 0"),
        (b'{"keys": "T-1"}', "'keys' must be a list of 1 to 10,000 ids (the limit per batchGet), got 'T-1'"),
        (
            b'{"keys": [' + b",".join(b"1" for _ in range(10_001)) + b"]}",
            "'keys' must be a list of 1 to 10,000 ids (the limit per batchGet), got 10,001",
        ),
        (b'{"keys": ["T-1"], "fresh": "yes"}', "'fresh' must be true or false, got 'yes'"),
        (b'{"keys": ["T-1"], "k": true}', "'k' must be a whole number, got True"),
        (b'{"keys": ["T-1"], "k": "3"}', "'k' must be a whole number, got '3'"),
        (b'{"keys": [["T-1"]]}', "'key' must be an id (a non-empty string or a whole number), got ['T-1']"),
    ],
    ids=["not-json", "array", "no-keys", "empty", "text", "too-many", "fresh", "k-bool", "k-text", "nested-key"],
)
def test_a_bad_batch_get_body_is_400_counted_under_its_model(stack, body, message):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.post("/v1/models/sums/predictions:batchGet", content=body)
            assert response.status_code == 400
            assert response.json()["error"].startswith(message)

    run(scenario)
    assert answered(stack, "sums", "batchGet", 400) == 1.0


def test_batch_get_for_a_model_not_served_is_404_under_a_dash(stack):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.post("/v1/models/churn/predictions:batchGet", json={"keys": ["x"]})
            assert response.status_code == 404

    run(scenario)
    assert answered(stack, "-", "batchGet", 404) == 1.0


def test_a_batch_get_body_over_the_limit_is_413(stack):
    async def scenario() -> None:
        async with serving(stack.app(ServerOptions(max_body_bytes=32))) as client:
            response = await client.post("/v1/models/sums/predictions:batchGet", json={"keys": ["T-1"] * 20})
            assert response.status_code == 413
            assert response.json() == {
                "error": "request body is larger than the server's limit of 32 bytes (max_body_bytes)"
            }

    run(scenario)


# -- events ---------------------------------------------------------------------------------------------------


def test_an_event_is_applied_and_answered_with_the_refreshed_predictions(stack):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.post("/v1/events", json={"type": "features", "key": "T-3", "values": {"b": 1}})
            assert response.status_code == 200
            body = response.json()
            assert {k: body[k] for k in ("applied", "duplicate", "entity", "key")} == {
                "applied": True,
                "duplicate": False,
                "entity": "things",
                "key": "T-3",
            }
            assert [(r["model"], r["prediction"]) for r in body["refreshed"]] == [
                ("sums", {"score": 4.0}),
                ("tiers", {"score": 30.0}),
            ]
            assert body["ms"] >= 0
            lookup = await client.get("/v1/models/sums/predictions/T-3")
            assert lookup.json()["prediction"] == {"score": 4.0}

    run(scenario)
    assert answered(stack, "-", "events", 200) == 1.0  # an event names no model


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{nope", "the event is not valid JSON: "),
        (b'{"type": "features", "key": "T-1"}', "a features event needs 'values'"),
        (b'{"type": "features", "key": "T-1", "values": {"a": "lots"}}', "the event would give things key 'T-1'"),
    ],
)
def test_a_bad_event_is_400_and_changes_nothing(stack, body, message):
    before = stack.entities.get("things", "T-1")

    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.post("/v1/events", content=body)
            assert response.status_code == 400
            assert response.json()["error"].startswith(message)

    run(scenario)
    assert stack.entities.get("things", "T-1") == before


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/events", "POST"),
        ("POST", "/v1/models/sums/predictions/T-1", "GET, HEAD"),
        ("DELETE", "/v1/models/sums/predictions/T-1", "GET, HEAD"),
        ("GET", "/v1/models/sums/predictions:batchGet", "POST"),
    ],
)
def test_a_hybrid_route_answers_only_its_own_method(stack, method, path, allow):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.request(method, path)
            assert response.status_code == 405
            assert response.json() == {"error": f"{path} does not take {method}: use {response.headers['allow']}"}
            assert set(response.headers["allow"].split(", ")) == set(allow.split(", "))

    run(scenario)


# -- a full queue answers the configured status on the hybrid routes too ---------------------------------------


@pytest.mark.parametrize(("configured", "status"), [(None, 503), (429, 429)])
def test_a_live_lookup_refused_by_a_full_queue_answers_the_configured_status(
    models_home, tmp_path, tables, configured, status
):
    stack = hybrid_stack(models_home, tmp_path, tables, ("gated",), policy=BatchPolicy(max_queue=1))
    rows = pa.table({"id": ["G-1", "G-2", "G-3"], "a": [1.0, 2.0, 3.0], "b": [0.0, 0.0, 0.0]})
    stack.entities.load_features("gthings", "id", rows, models=["gated"], at=stack.clock.ago(hours=1))
    options = ServerOptions(overload_status=configured) if configured else None
    lookup = "/v1/models/gated/predictions"

    async def scenario() -> None:
        async with serving(stack.app(options)) as client:
            slot = stack.runtime.slots["gated"]
            Gate.hold()
            try:
                running = asyncio.create_task(client.get(f"{lookup}/G-1"))
                await until(Gate.entered.is_set)
                queued = asyncio.create_task(client.get(f"{lookup}/G-2"))
                await until(lambda: slot.batcher.queued_rows == 1)
                refused = await client.post(f"{lookup}:batchGet", json={"keys": ["G-3"]})
                assert refused.status_code == status
                assert refused.headers["retry-after"] == "1"
                assert "(limit 1)" in refused.json()["error"]
                event = {"type": "features", "key": "G-3", "values": {"a": 9}, "entity": "gthings"}
                refreshing = await client.post("/v1/events", json=event)
                assert refreshing.status_code == status  # applied, but its refresh could not be queued
                assert refreshing.headers["retry-after"] == "1"
            finally:
                Gate.release()
            assert [(await t).json()["prediction"] for t in (running, queued)] == [{"score": 1.0}, {"score": 2.0}]

    run(scenario)
    assert answered(stack, "gated", "batchGet", status) == 1.0
    assert answered(stack, "-", "events", status) == 1.0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/events/"),
        ("GET", "/v1/models/sums/predictions/T-1/"),
        ("POST", "/v1/models/sums/predictions:batchGet//"),
    ],
)
def test_a_hybrid_path_with_a_trailing_slash_redirects_to_the_path_without(stack, method, path):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.request(method, f"{path}?k=1", follow_redirects=False)
            assert response.status_code == 307
            assert response.headers["location"] == f"http://t{path.rstrip('/')}?k=1"

    run(scenario)
