"""What the OpenAPI fuzz test and `benchmarks/fuzz.py` share (imported by name): the home they serve and the checks.

The home is the demo's (churn and the movie recommender, both @production) with their entity tables
loaded and last night's churn predictions in the store, so that a fuzzed lookup, batchGet or event
reaches the store, the entity tables and the models rather than stopping at "no such model".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
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
    done = subprocess.run(
        [sys.executable, "-m", "foretell", *args],
        env={**os.environ, "FORETELL_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
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
