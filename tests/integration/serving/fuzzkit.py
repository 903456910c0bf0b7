"""What the OpenAPI fuzz test and `benchmarks/fuzz.py` share (imported by name): the home they serve and the checks.

The home is the demo's (churn and the movie recommender, both @production) with their entity tables
loaded and last night's churn predictions in the store, so that a fuzzed lookup, batchGet or event
reaches the store, the entity tables and the models rather than stopping at "no such model".
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, Response, check
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

SERVED = ("churn@production", "movies@production")
"""What the fuzzed server serves: every route but `/invocations` (one-model servers only) is fuzzed there."""
ONE_MODEL = ("churn@production",)
"""What the `/invocations` server serves."""


def foretell(home: Path, *args: str) -> None:
    """Run a foretell command on `home`; its stderr is the failure's message."""
    command, env = [sys.executable, "-m", "foretell", *args], {**os.environ, "FORETELL_HOME": str(home)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"foretell {' '.join(args)}: {done.stderr[-2000:]}"


def build_home(home: Path) -> Path:
    """The demo's models, entity tables and a published churn generation, under `home`."""
    demo = home / "demo"
    for command in (
        ("demo", "init", "--customers", "2000", "--users", "100", "--movies", "100"),
        ("entities", "load", "customers", str(demo / "customers.parquet"), "--key", "customer_id", "--model", "churn"),
        ("entities", "load", "users", str(demo / "ratings.parquet"), "--key", "user_id", "--model", "movies",
         "--interactions", "ratings", "--item", "movie_id", "--value", "rating"),
        ("batch", "run", "churn@production", "--input", str(demo / "customers.parquet"), "--output",
         str(home / "scores"), "--id-column", "customer_id", "--to-store", "--workers", "1"),
    ):  # fmt: skip
        foretell(home, *command)
    return home


@check
def error_is_json(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every 4xx and 5xx with a body is `{"error": "..."}` (the documented error schema says so for the
    statuses a route lists; this holds the ones it does not list to it too)."""
    if response.status_code < 400 or case.method.upper() == "HEAD":
        return None
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise AssertionError(f"a {response.status_code} whose body is not JSON: {response.content[:200]!r}") from None
    if not (isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]):
        raise AssertionError(f'a {response.status_code} whose body is not {{"error": "..."}}: {body!r:.200}')
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    error_is_json,
]
"""Every check that holds for this server. Not `positive_data_acceptance`: a request the document's schema
takes may still break a model's signature (a feature's type, a top-k `k` for a classifier), and is a 400."""


# -- hostile values in the shape the served models take ---------------------------------------------------------

HostileRequest = tuple[str, str, dict[str, str], Any]
"""(method, path, query, JSON body or None)."""

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


def problem(response: httpx.Response) -> str | None:
    """What is wrong with an answer to a hostile request, if anything: a 5xx, an error that is not
    `{"error": "..."}`, or one that counts more bad rows than were sent."""
    if response.status_code >= 500:
        return f"{response.status_code}: {response.text[:500]}"
    if response.status_code < 400 or response.request.method == "HEAD":
        return None
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return f"a {response.status_code} that is not a JSON object: {response.text[:200]}"
    if not isinstance(error, str):
        return f'a {response.status_code} that is not {{"error": "..."}}: {response.text[:200]}'
    counted = re.match(r"(\d+) of (\d+) input rows? invalid", error)
    if counted is not None and int(counted[1]) > int(counted[2]):
        return f"more bad rows than rows: {error[:200]}"
    return None


@st.composite
def churn_requests(draw: st.DrawFn, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Valid rows for churn's signature (`inputs`, from its metadata) but for up to two hostile cells: each
    request gets as far as it can."""
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


@st.composite
def lookups(draw: st.DrawFn) -> HostileRequest:
    """A lookup (GET or HEAD) or a batchGet of real, unknown and hostile keys, with hostile `k` and `fresh`."""
    model = draw(st.sampled_from(["churn", "movies"]))
    key = draw(KEYS)
    k = draw(st.one_of(st.none(), st.integers(-3, 2000), EDGE_INTS, st.text(max_size=3)))
    fresh = draw(st.sampled_from([None, True, False, "true", "1", "maybe"]))
    if draw(st.booleans()):
        query = {name: str(value) for name, value in (("k", k), ("fresh", fresh)) if value is not None}
        method = draw(st.sampled_from(["GET", "HEAD"]))
        return method, f"/v1/models/{model}/predictions/{quote(key, safe='')}", query, None
    keys = draw(st.lists(st.one_of(KEYS, EDGE_INTS, st.integers(0, 150)), min_size=1, max_size=4))
    return "POST", f"/v1/models/{model}/predictions:batchGet", {}, {"keys": keys, "k": k, "fresh": fresh}


def events() -> st.SearchStrategy[dict[str, Any]]:
    """Features events for customers and rating events for users, with hostile keys and values."""
    features = st.fixed_dictionaries(
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
    )
    ratings = st.fixed_dictionaries(
        {"type": st.just("rating"), "user_id": USER_IDS, "movie_id": USER_IDS, "rating": st.one_of(FLOATS, TEXTS)},
        optional={"event_id": st.text(max_size=8)},
    )
    return st.one_of(features, ratings)
