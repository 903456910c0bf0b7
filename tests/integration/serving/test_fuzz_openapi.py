"""Every route fuzzed from the server's own OpenAPI document (schemathesis), against a real `foretell serve`.

The fast tier of issue 20's fuzzing: schemathesis's coverage phase (boundary and invalid values of
every parameter and body field) and its fuzzing phase, a bounded number of examples per route,
derandomized so that CI sees the same cases every run. A 5xx, an error that is not JSON, a status,
content type, header or body the document does not describe, or an invalid request accepted, fails.
`benchmarks/fuzz.py` runs the same checks for 10,000 cases and more.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from fuzzkit import CHECKS, ONE_MODEL, SERVED, build_home
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.openapi import from_url
from servekit import server

EXAMPLES = 150
"""Per route and phase; with the coverage phase's own cases, about 3,000 requests in all."""
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


fuzzed = schemathesis.pytest.from_fixture("every_route").exclude(path="/invocations")
fuzzed_invocations = schemathesis.pytest.from_fixture("invocations").include(path="/invocations")
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


# -- hostile values in the shape the served models take ---------------------------------------------------------
# The document's schemas cannot say what a model's signature takes, so schemathesis's requests mostly stop at
# the first 400. These reach the signature's rules and the models themselves: the right names and datatypes,
# with any value in them.

EDGE_INTS = st.sampled_from([2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**20, -(10**30)])
FLOATS = st.one_of(st.floats(), st.integers(), st.sampled_from([1e308, -0.0, 5e-324]), EDGE_INTS)
TEXTS = st.one_of(st.text(max_size=12), st.sampled_from(["basic", "europe", "monthly", ""]))
RATINGS = st.one_of(  # the recommender's optional ratings: JSON text {"movie id": rating}, or anything else
    TEXTS,
    st.dictionaries(
        st.one_of(st.integers(0, 120), st.integers(), EDGE_INTS).map(str), FLOATS, min_size=1, max_size=4
    ).map(lambda d: json.dumps(d, allow_nan=True)),
    st.dictionaries(st.text(max_size=4), st.one_of(FLOATS, st.text(max_size=3), st.none()), max_size=4).map(json.dumps),
)
USER_IDS = st.one_of(EDGE_INTS, st.integers(0, 120), FLOATS, st.text(max_size=4))
KEYS = st.one_of(st.integers(0, 2100).map(lambda i: f"C-{i:06d}"), st.integers(-5, 150).map(str), st.text(max_size=8))
HOSTILE = settings(
    max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)


def assert_answered(response: httpx.Response) -> None:
    """A 2xx, or a 4xx whose body is `{"error": "..."}` that counts bad rows within the rows sent: never a 5xx."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        error = response.json().get("error")
        assert isinstance(error, str), response.text[:500]
        counted = re.match(r"(\d+) of (\d+) input rows? invalid", error)
        assert counted is None or int(counted[1]) <= int(counted[2]), error


@st.composite
def churn_requests(draw: st.DrawFn, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Valid rows for churn's signature but for up to two hostile cells: each request gets as far as it can."""
    n = draw(st.integers(1, 3))
    hostile = draw(st.sets(st.tuples(st.integers(0, len(inputs) - 1), st.integers(0, n - 1)), max_size=2))
    tensors = []
    for position, feature in enumerate(inputs):
        categories = feature.get("parameters", {}).get("categories")
        valid = st.sampled_from(categories) if categories else st.floats(0, 1000)
        wrong = TEXTS if categories else FLOATS
        data = [draw(wrong if (position, row) in hostile else valid) for row in range(n)]
        tensors.append({"name": feature["name"], "datatype": feature["datatype"], "shape": [n], "data": data})
    return {"inputs": tensors}


@st.composite
def movie_requests(draw: st.DrawFn) -> dict[str, Any]:
    """Known or new users, with the ratings they come with: hostile ids, datatypes or ratings now and then."""
    n = draw(st.integers(1, 3))
    users: list[Any] = draw(st.lists(st.integers(0, 120), min_size=n, max_size=n))
    datatype = "INT64"
    if draw(st.integers(0, 3)) == 0:
        users[draw(st.integers(0, n - 1))] = draw(USER_IDS)
        datatype = draw(st.sampled_from(["INT64", "FP64", "BYTES"]))
    inputs = [{"name": "user_id", "datatype": datatype, "shape": [n], "data": users}]
    if draw(st.booleans()):
        ratings = draw(st.lists(RATINGS, min_size=n, max_size=n))
        inputs.append({"name": "ratings", "datatype": "BYTES", "shape": [n], "data": ratings})
    return {"inputs": inputs}


@pytest.fixture(scope="module")
def churn_inputs(served: str) -> list[dict[str, Any]]:
    inputs: list[dict[str, Any]] = httpx.get(f"{served}/v2/models/churn", timeout=TIMEOUT).json()["inputs"]
    return inputs


@HOSTILE
@given(data=st.data())
def test_hostile_values_in_churns_signature_get_an_answer_or_a_json_400(
    served: str, churn_inputs: list[dict[str, Any]], data: st.DataObject
) -> None:
    body = data.draw(churn_requests(churn_inputs))
    content = json.dumps(body, allow_nan=True)  # bare NaN and Infinity too: refused as JSON, or read
    assert_answered(httpx.post(f"{served}/v2/models/churn/infer", content=content, timeout=TIMEOUT))


@HOSTILE
@given(body=movie_requests())
def test_hostile_users_and_ratings_for_the_recommender_get_an_answer_or_a_json_400(
    served: str, body: dict[str, Any]
) -> None:
    content = json.dumps(body, allow_nan=True)
    assert_answered(httpx.post(f"{served}/v2/models/movies/infer", content=content, timeout=TIMEOUT))


@HOSTILE
@given(
    model=st.sampled_from(["churn", "movies"]),
    key=KEYS,
    k=st.one_of(st.none(), st.integers(-3, 2**70).map(str), st.text(max_size=3)),
    fresh=st.sampled_from([None, "true", "false", "1", "maybe"]),
)
def test_hostile_lookups_get_an_answer_or_a_json_4xx(
    served: str, model: str, key: str, k: str | None, fresh: str | None
) -> None:
    params = {name: value for name, value in (("k", k), ("fresh", fresh)) if value is not None}
    response = httpx.get(
        f"{served}/v1/models/{model}/predictions/{quote(key, safe='')}", params=params, timeout=TIMEOUT
    )
    assert_answered(response)
    batch = {
        "keys": [key, key],
        "k": None if k is None or not k.lstrip("-").isdigit() else int(k),
        "fresh": fresh == "true",
    }
    assert_answered(httpx.post(f"{served}/v1/models/{model}/predictions:batchGet", json=batch, timeout=TIMEOUT))


@HOSTILE
@given(
    event=st.one_of(
        st.fixed_dictionaries(
            {
                "type": st.just("features"),
                "entity": st.just("customers"),
                "key": KEYS,
                "values": st.dictionaries(
                    st.sampled_from(["tenure_months", "plan", "age", "region", "nope"]),
                    st.one_of(FLOATS, TEXTS, st.none()),
                    max_size=3,
                ),
            },
        ),
        st.fixed_dictionaries(
            {
                "type": st.just("rating"),
                "user_id": USER_IDS,
                "movie_id": USER_IDS,
                "rating": st.one_of(FLOATS, TEXTS, st.none()),
            },
            optional={"event_id": st.text(max_size=8)},
        ),
    )
)
def test_hostile_events_get_an_answer_or_a_json_4xx(served: str, event: dict[str, Any]) -> None:
    response = httpx.post(f"{served}/v1/events", content=json.dumps(event, allow_nan=True), timeout=TIMEOUT)
    assert_answered(response)


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
