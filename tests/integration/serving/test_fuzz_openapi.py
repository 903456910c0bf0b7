"""Every route fuzzed from the server's own OpenAPI document (schemathesis), against a real `foretell serve`.

The fast tier of issue 20's fuzzing: schemathesis's coverage phase (boundary and invalid values of
every parameter and body field) and its fuzzing phase, a bounded number of examples per route,
derandomized so that CI sees the same cases every run. A 5xx, an error that is not JSON, a status,
content type, header or body the document does not describe, or an invalid request accepted, fails.
`benchmarks/fuzz.py` runs the same checks for 10,000 cases and more.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fuzzkit import CHECKS, ONE_MODEL, SERVED, build_home
from hypothesis import HealthCheck, settings
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
