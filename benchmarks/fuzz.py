"""Every route fuzzed from the server's own OpenAPI document, for 10,000 cases and more (issue 20).

    PYTHONPATH=src .venv/bin/python benchmarks/fuzz.py [--cases 12000] [--seed 20]

Builds a home (the demo's churn and movie models, their entity tables, a published churn
generation), starts a real `foretell serve` for both models (every route) and one for churn
alone (`/invocations` answers on one-model servers only), and sends `--cases` requests that
schemathesis generates from each server's `/openapi.json`: each route gets its share, half
valid by the document and half invalid (negative mode). Each response is held to the same
checks as the fast tier (tests/integration/serving/test_fuzz_openapi.py): no 5xx, every error
JSON, statuses, content types, headers and bodies as documented, invalid requests refused.

Prints the cases run, the failures by check and by route, each server's RSS before and after
(memory growth under hostile input) and the wall time. Target: 0 failures, and RSS settled.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from hypothesis import HealthCheck, given, seed, settings
from hypothesis.errors import Unsatisfiable

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "integration" / "serving"))
from fuzzkit import CHECKS, ONE_MODEL, SERVED, build_home
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
            case.validate_response(response, checks=CHECKS)
        except Exception:  # name each check that failed, one by one
            for check in CHECKS:
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


def rss_of(url: str) -> int:
    return sum(rss_bytes(pid) for pid in listening_pids(url))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=12_000, help="requests in all (both servers)")
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()
    started = time.perf_counter()
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="foretell-fuzz-") as scratch:
        home = build_home(Path(scratch) / "home")
        built = time.perf_counter()
        rss: dict[str, tuple[int, int]] = {}
        with server(home, *SERVED) as url:
            before = rss_of(url)
            run(url, args.cases * 18 // 19, args.seed, tally, lambda path: path != "/invocations")
            rss[" ".join(SERVED)] = (before, rss_of(url))
        with server(home, *ONE_MODEL) as url:
            before = rss_of(url)
            run(url, args.cases // 19, args.seed, tally, lambda path: path == "/invocations")
            rss[" ".join(ONE_MODEL)] = (before, rss_of(url))
    wall = time.perf_counter() - started
    total = sum(tally.cases.values())
    print(f"fuzz: {total:,} cases over {len(tally.cases)} routes, seed {args.seed}")
    fuzzing = wall - (built - started)
    print(f"  wall time {wall:.1f} s (home built in {built - started:.1f} s), {total / fuzzing:.0f} cases/s")
    print("  statuses: " + ", ".join(f"{status}: {n:,}" for status, n in sorted(tally.statuses.items())))
    for route, n in sorted(tally.cases.items()):
        print(f"  {route:<55} {n:>6,} cases  {tally.by_route.get(route, 0):>4} failures")
    for served, (before, after) in rss.items():
        growth = (after - before) / before * 100
        start, end = before / 2**20, after / 2**20
        print(f"  RSS serving {served}: {start:.1f} MiB at start, {end:.1f} MiB at end ({growth:+.1f}%)")
    failures = sum(tally.by_check.values())
    print(f"  failures: {failures}" + "".join(f"\n    {check}: {n}" for check, n in tally.by_check.most_common()))
    for what, detail in tally.examples.items():
        print(f"\n--- {what}\n{detail}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
