"""Every route fuzzed from the server's own OpenAPI document, for 10,000 cases and more (issue 20).

    PYTHONPATH=src .venv/bin/python benchmarks/fuzz.py [--cases 12000] [--seed 20]

Builds a home (the demo's churn and movie models, their entity tables, a published churn
generation), starts a real `foretell serve` for both models (every route) and one for churn
alone (`/invocations` answers on one-model servers only), and sends `--cases` requests that
schemathesis generates from each server's `/openapi.json`: each route gets its share, half
valid by the document and half invalid (negative mode). Each response is held to the same
checks as the fast tier (tests/integration/serving/test_fuzz_openapi.py): no 5xx, every error
JSON, statuses, content types, headers and bodies as documented, invalid requests refused.
Then `--hostile` more requests in the shape the models themselves take (churn's signature,
the recommender's users and ratings, lookups of real keys, events for real entities) with
hostile values in them, as the fast tier's hypothesis tests send: no 5xx, every error JSON.

Prints the cases run, the failures by check and by route, each server's RSS before and after
(memory growth under hostile input) and the wall time. Target: 0 failures, and RSS settled.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import requests
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "integration" / "serving"))
import fuzzkit
from schemathesis import Case
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.openapi import from_url
from servekit import listening_pids, rss_bytes, server

TIMEOUT = 10.0


class Tally:
    """Cases sent and failures seen, by route and by check."""

    def __init__(self) -> None:
        self.cases: collections.Counter[str] = collections.Counter()
        self.statuses: collections.Counter[int] = collections.Counter()
        self.by_check: collections.Counter[str] = collections.Counter()
        self.by_route: collections.Counter[str] = collections.Counter()
        self.examples: dict[str, str] = {}

    def failed(self, route: str, check: str, detail: str) -> None:
        self.by_check[check] += 1
        self.by_route[route] += 1
        self.examples.setdefault(f"{check} {route}", detail[:600])


def fuzz_operation(
    base_url: str, session: requests.Session, operation: Any, mode: GenerationMode, cases: int, at: int, tally: Tally
) -> int:
    """Up to `cases` cases of `operation` from seed `at`; returns how many ran (fewer once its inputs run out)."""
    route = operation.label
    ran = 0

    @seed(at)
    @settings(max_examples=cases, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy(generation_mode=mode))
    def one(case: Case) -> None:
        nonlocal ran
        ran += 1
        tally.cases[route] += 1
        try:
            response = case.call(base_url=base_url, session=session, timeout=TIMEOUT)
        except Exception as exc:  # a hang (timeout) or a dropped connection: the server's fault
            tally.failed(route, "no_response", f"{type(exc).__name__}: {exc}\n{case.as_curl_command()}")
            return
        tally.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=fuzzkit.CHECKS)
        except Exception:  # name each check that failed, one by one
            for check in fuzzkit.CHECKS:
                try:
                    case.validate_response(response, checks=[check])
                except Exception as exc:
                    name = getattr(check, "__name__", type(check).__name__)
                    tally.failed(route, name, f"{exc}\n{case.as_curl_command()}")

    with contextlib.suppress(Unsatisfiable):  # a route with nothing to negate has no negative cases
        one()
    return ran


def run(base_url: str, cases: int, at: int, tally: Tally, keep: Callable[[str], bool]) -> None:
    """`cases` cases over the routes `keep` takes, half valid and half invalid, in passes of a new seed each:
    a route whose inputs ran out (a probe takes none) leaves its share to the others."""
    schema = from_url(f"{base_url}/openapi.json")
    operations = [
        result.ok() for result in schema.get_all_operations() if isinstance(result, Ok) and keep(result.ok().path)
    ]
    plans = [(operation, mode) for operation in operations for mode in GenerationMode]
    total, attempt = 0, 0
    with requests.Session() as session:
        while plans and total < cases:
            share = max(1, (cases - total) // len(plans))
            more = []
            for operation, mode in plans:
                ran = fuzz_operation(base_url, session, operation, mode, share, at + attempt, tally)
                attempt += 1
                total += ran
                if ran >= share:  # more inputs to draw from
                    more.append((operation, mode))
            plans = more


def run_hostile(base_url: str, cases: int, at: int, tally: Tally) -> None:
    """`cases` requests in the shape the served models take, with hostile values (fuzzkit's strategies)."""
    churn_inputs = requests.get(f"{base_url}/v2/models/churn", timeout=TIMEOUT).json()["inputs"]
    kinds: list[tuple[str, st.SearchStrategy[fuzzkit.HostileRequest]]] = [
        (
            "hostile infer churn",
            fuzzkit.churn_requests(churn_inputs).map(lambda b: ("POST", "/v2/models/churn/infer", {}, b)),
        ),
        ("hostile infer movies", fuzzkit.movie_requests().map(lambda b: ("POST", "/v2/models/movies/infer", {}, b))),
        ("hostile lookups, batchGet", fuzzkit.lookups()),
        ("hostile events", fuzzkit.events().map(lambda e: ("POST", "/v1/events", {}, e))),
    ]
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        for index, (route, strategy) in enumerate(kinds):
            hostile_kind(client, route, strategy, cases // len(kinds), at + index, tally)


def hostile_kind(
    client: httpx.Client,
    route: str,
    strategy: st.SearchStrategy[fuzzkit.HostileRequest],
    cases: int,
    at: int,
    tally: Tally,
) -> None:
    @seed(at)
    @settings(max_examples=cases, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(request: fuzzkit.HostileRequest) -> None:
        method, path, query, body = request
        tally.cases[route] += 1
        content = None if body is None else json.dumps(body, allow_nan=True)
        try:
            response = client.request(method, path, params=query, content=content)
        except httpx.HTTPError as exc:
            tally.failed(route, "no_response", f"{type(exc).__name__}: {exc}\n{request!r:.400}")
            return
        tally.statuses[response.status_code] += 1
        wrong = fuzzkit.problem(response)
        if wrong is not None:
            tally.failed(route, "hostile_answer", f"{wrong}\n{request!r:.400}")

    one()


def rss_of(url: str) -> int:
    return sum(rss_bytes(pid) for pid in listening_pids(url))


class RssSampler:
    """The server's RSS every half second while it is fuzzed, to tell warm-up from growth."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[int] = [rss_of(url)]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.done.wait(0.5):
            self.samples.append(rss_of(self.url))

    def __enter__(self) -> RssSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        self.samples.append(rss_of(self.url))

    def describe(self) -> str:
        start, warm, end = self.samples[0], self.samples[len(self.samples) // 4], self.samples[-1]
        mib = 2**20
        tenths = " ".join(f"{self.samples[len(self.samples) * i // 10] / mib:.0f}" for i in range(10))
        return (
            f"{start / mib:.1f} MiB at start, {warm / mib:.1f} after a quarter of the run, {end / mib:.1f} at end "
            f"(peak {max(self.samples) / mib:.1f}); growth after warm-up {(end - warm) / warm * 100:+.1f}%; "
            f"by tenths of the run: {tenths} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=12_000, help="requests in all (both servers)")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument(
        "--hostile", type=int, default=4_000, help="more requests in the served models' own shape, hostile values"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="foretell-fuzz-") as scratch:
        home = fuzzkit.build_home(Path(scratch) / "home")
        built = time.perf_counter()
        rss: dict[str, str] = {}
        with server(home, *fuzzkit.SERVED) as url, RssSampler(url) as sampler:
            run(url, args.cases * 18 // 19, args.seed, tally, lambda path: path != "/invocations")
            run_hostile(url, args.hostile, args.seed, tally)
        rss[" ".join(fuzzkit.SERVED)] = sampler.describe()
        with server(home, *fuzzkit.ONE_MODEL) as url, RssSampler(url) as sampler:
            run(url, args.cases // 19, args.seed, tally, lambda path: path == "/invocations")
        rss[" ".join(fuzzkit.ONE_MODEL)] = sampler.describe()
    wall = time.perf_counter() - started
    total = sum(tally.cases.values())
    print(f"fuzz: {total:,} cases over {len(tally.cases)} routes, seed {args.seed}")
    fuzzing = wall - (built - started)
    print(f"  wall time {wall:.1f} s (home built in {built - started:.1f} s), {total / fuzzing:.0f} cases/s")
    print("  statuses: " + ", ".join(f"{status}: {n:,}" for status, n in sorted(tally.statuses.items())))
    for route, n in sorted(tally.cases.items()):
        print(f"  {route:<55} {n:>6,} cases  {tally.by_route.get(route, 0):>4} failures")
    for served, described in rss.items():
        print(f"  RSS serving {served}: {described}")
    failures = sum(tally.by_check.values())
    print(f"  failures: {failures}" + "".join(f"\n    {check}: {n}" for check, n in tally.by_check.most_common()))
    for what, detail in tally.examples.items():
        print(f"\n--- {what}\n{detail}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
