"""Every route fuzzed from the server's own OpenAPI document (schemathesis), against a real `foretell serve`.

The fast tier of issue 20's fuzzing: schemathesis's coverage phase (boundary and invalid values of
every parameter and body field) and its fuzzing phase, a bounded number of examples per route,
derandomized so that CI sees the same cases every run. A 5xx, an error that is not JSON, a status,
content type, header or body the document does not describe, or an invalid request accepted, fails.
`benchmarks/fuzz.py` runs the same checks for 10,000 cases and more.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fuzzkit import (
    CHECKS,
    ONE_MODEL,
    SERVED,
    HostileRequest,
    build_home,
    churn_requests,
    events,
    lookups,
    movie_requests,
    problem,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.openapi import from_url
from servekit import server

from foretell.http.app import OPEN_PATHS

EXAMPLES = 150
"""Per route and phase; with the coverage phase's own cases and the hostile tests, about 3,500 requests."""
TIMEOUT = 10.0
"""Seconds a response may take: a request that hangs fails instead of stalling the run."""


@pytest.fixture(scope="module")
def fuzz_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_home(tmp_path_factory.mktemp("fuzz") / "home")


@pytest.fixture(scope="module")
def served(fuzz_home: Path) -> Iterator[str]:
    with server(fuzz_home, *SERVED) as url:
        yield url


@pytest.fixture(scope="module")
def one_model(fuzz_home: Path) -> Iterator[str]:
    with server(fuzz_home, *ONE_MODEL) as url:
        yield url


@pytest.fixture(scope="module")
def keyed(fuzz_home: Path) -> Iterator[str]:
    with server(fuzz_home, *SERVED, env={"FORETELL_API_KEY": "fuzz-key"}) as url:
        yield url


@pytest.fixture(autouse=True)
def _node_id(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's lazy schemas read and rename `request.node._nodeid`, which pytest 9 no longer has
    (`nodeid` is a property of `_id`): given one, they run and name each route's subtest as they mean to."""
    request.node._nodeid = request.node.nodeid


@pytest.fixture(scope="module")
def every_route(served: str) -> schemathesis.BaseSchema:
    return from_url(f"{served}/openapi.json")


@pytest.fixture(scope="module")
def invocations(one_model: str) -> schemathesis.BaseSchema:
    return from_url(f"{one_model}/openapi.json")


@pytest.fixture(scope="module")
def keyed_routes(keyed: str) -> schemathesis.BaseSchema:
    return from_url(f"{keyed}/openapi.json", headers={"X-API-Key": "fuzz-key"})


fuzzed = schemathesis.pytest.from_fixture("every_route").exclude(path="/invocations")
fuzzed_invocations = schemathesis.pytest.from_fixture("invocations").include(path="/invocations")
fuzzed_without_the_key = schemathesis.pytest.from_fixture("keyed_routes").exclude(path="/invocations")
FAST = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@fuzzed.parametrize()
@FAST
def test_every_route_answers_as_its_document_says(case: Case) -> None:
    case.call_and_validate(checks=CHECKS, timeout=TIMEOUT)


@fuzzed_invocations.parametrize()
@FAST
def test_invocations_answers_as_its_document_says(case: Case) -> None:
    case.call_and_validate(checks=CHECKS, timeout=TIMEOUT)


@fuzzed_without_the_key.parametrize()
@settings(FAST, max_examples=5)
def test_without_the_key_every_route_but_the_probes_answers_the_documented_401(case: Case) -> None:
    response = case.call_and_validate(checks=CHECKS, timeout=TIMEOUT)
    if case.path not in OPEN_PATHS:
        assert response.status_code == 401, (case.method, case.path, response.status_code)


# -- hostile values in the shape the served models take ---------------------------------------------------------
# The document's schemas cannot say what a model's signature takes, so schemathesis's requests mostly stop at
# the first 400. These (fuzzkit's strategies) reach the signature's rules, the entity tables and the models.

HOSTILE = settings(
    max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)


@pytest.fixture(scope="module")
def churn_inputs(served: str) -> list[dict[str, Any]]:
    inputs: list[dict[str, Any]] = httpx.get(f"{served}/v2/models/churn", timeout=TIMEOUT).json()["inputs"]
    return inputs


def send(url: str, request: HostileRequest) -> None:
    method, path, params, body = request
    content = None if body is None else json.dumps(body, allow_nan=True)  # bare NaN and Infinity too
    response = httpx.request(method, f"{url}{path}", params=params, content=content, timeout=TIMEOUT)
    assert problem(response) is None, problem(response)


@HOSTILE
@given(data=st.data())
def test_hostile_values_in_churns_signature_get_an_answer_or_a_json_400(
    served: str, churn_inputs: list[dict[str, Any]], data: st.DataObject
) -> None:
    send(served, ("POST", "/v2/models/churn/infer", {}, data.draw(churn_requests(churn_inputs))))


@HOSTILE
@given(body=movie_requests())
def test_hostile_users_and_ratings_for_the_recommender_get_an_answer_or_a_json_400(
    served: str, body: dict[str, Any]
) -> None:
    send(served, ("POST", "/v2/models/movies/infer", {}, body))


@HOSTILE
@given(request=lookups())
def test_hostile_lookups_and_batch_gets_get_an_answer_or_a_json_4xx(served: str, request: HostileRequest) -> None:
    send(served, request)


@HOSTILE
@given(event=events())
def test_hostile_events_get_an_answer_or_a_json_4xx(served: str, event: dict[str, Any]) -> None:
    send(served, ("POST", "/v1/events", {}, event))


def test_ratings_for_a_film_no_int64_holds_are_left_out_rather_than_failing_the_batch(served: str) -> None:
    # Found by the fuzzing above (issue 20): the recommender's batch failed with an OverflowError, a 500.
    body = {
        "inputs": [
            {"name": "user_id", "datatype": "INT64", "shape": [1], "data": [1]},
            {"name": "ratings", "datatype": "BYTES", "shape": [1], "data": ['{"99999999999999999999": 5, "1": 4}']},
        ]
    }
    response = httpx.post(f"{served}/v2/models/movies/infer", json=body, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    assert len(response.json()["outputs"][0]["data"]) == 10
