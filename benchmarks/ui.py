"""The dashboard against issue 21's targets, on the demo: pages, their JSON documents, and what a browser
polling the Live page costs the server.

A home with the demo (`--customers`, 1,000,000 by default; churn and movies), `--jobs` batch jobs (the
first scores every customer into the store, the others a 100,000-row slice) and a schedule. One
`foretell serve` of both models on core 0. Then:

1. each `/ui/api/PAGE` document: its first answer (cold: what reads the ledger is computed then) and
   the median and slowest of 20 answers after it, timed by this process over HTTP;
2. each page in the system's Chromium (Playwright): from navigation to the page drawn from its
   document (`body[data-loaded=true]`), 5 loads each, median and slowest;
3. the Monitor right after a start: its first answer, whether it was "pending", and the seconds
   until its figures are there; once on this run's first start (a new home has no kept reading),
   then again after a restart (the last reading, kept in the home, is shown at once);
4. serving throughput: wrk on core 1 (one `[1, 31]` churn infer, c=64) with no browser, and with a
   Chromium (also on core 1) polling the Live page every second, alternating for `--rounds` rounds;
   the median of the per-round ratios.

    python benchmarks/ui.py [--customers 1000000] [--jobs 20] [--seconds 5] [--rounds 5] [--home DIR]

Targets: each page loads in < 1 s and its document answers in < 100 ms; throughput with the browser
within noise of without (the spread of the ratios says what noise is).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "integration" / "serving"))
from servekit import free_port

from hybrid import INFER_LUA, wrk_with_max
from serve import wait_ready

PAGES = {"models": "", "jobs": "jobs", "live": "live", "store": "store", "rollout": "rollout", "monitor": "monitor"}


def foretell(home: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "foretell", *args], env={**os.environ, "FORETELL_HOME": str(home)},
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"foretell {' '.join(args)}: {done.stderr}")
    return done.stdout


def make_home(home: Path, customers: int, jobs: int) -> None:
    import pyarrow.parquet as pq

    started = time.perf_counter()
    foretell(home, "demo", "init", "--customers", str(customers))
    demo = home / "demo"
    pq.write_table(pq.read_table(demo / "customers.parquet").slice(0, 100_000), demo / "slice.parquet")
    for n in range(jobs):
        source = demo / ("customers.parquet" if n == 0 else "slice.parquet")
        extra = ["--to-store"] if n == 0 else []
        foretell(home, "batch", "run", "churn@production", "--input", str(source), "--output",
                 str(home / "outputs" / f"job-{n}"), "--id-column", "customer_id", *extra)  # fmt: skip
    foretell(home, "schedule", "add", "nightly", "--cron", "@daily", "--", "models", "list", "--json")
    print(f"# home made in {time.perf_counter() - started:.0f} s: {customers:,} customers, {jobs} jobs")


def documents(url: str) -> dict[str, tuple[float, float, float]]:
    """Per page: the first answer's ms, then the median and slowest of 20."""
    timed = {}
    with httpx.Client(timeout=300) as client:
        for name in PAGES:
            took = []
            for _ in range(21):
                start = time.perf_counter()
                answer = client.get(f"{url}/ui/api/{name}")
                took.append((time.perf_counter() - start) * 1000)
                answer.raise_for_status()
            timed[name] = (took[0], statistics.median(took[1:]), max(took[1:]))
    return timed


def monitor_at_start(url: str) -> tuple[float, bool, float]:
    """The Monitor document's first answer (ms), whether it was pending, and the seconds until no model is."""
    started = time.perf_counter()
    with httpx.Client(timeout=300) as client:
        first = client.get(f"{url}/ui/api/monitor")
        first_ms = (time.perf_counter() - started) * 1000
        pending = bool(first.json()["pending"])
        while client.get(f"{url}/ui/api/monitor").json()["pending"]:
            time.sleep(0.1)
    return first_ms, pending, time.perf_counter() - started


@contextmanager
def served(home: Path) -> Iterator[str]:
    """`foretell serve` of every production model on core 0, until the block ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "foretell", "serve", "--port", str(port)],
        env={**os.environ, "FORETELL_HOME": str(home)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_ready(url, timeout=300)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)


def chromium_on_core_1(scratch: Path) -> str:
    found = shutil.which("chromium")
    if found is None:
        raise SystemExit("no chromium on PATH (apt-get install chromium)")
    wrapper = scratch / "chromium-core-1"
    wrapper.write_text(f'#!/bin/sh\nexec taskset -c 1 {found} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def page_loads(browser: object, url: str) -> dict[str, tuple[float, float]]:
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    timed = {}
    for name, path in PAGES.items():
        took = []
        for _ in range(5):
            start = time.perf_counter()
            page.goto(f"{url}/ui/{path}")
            page.wait_for_selector("body[data-loaded=true]", timeout=60_000)
            took.append((time.perf_counter() - start) * 1000)
        timed[name] = (statistics.median(took), max(took))
    context.close()
    return timed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--home", type=Path, help="a home made by an earlier run (kept), instead of a new one")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from foretell.demo.churn import CHURN_SIGNATURE, features_matrix, generate_customers

    with tempfile.TemporaryDirectory(prefix="foretell-ui-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        home = args.home or scratch / "home"
        if not (home / "registry.db").exists():
            make_home(home, args.customers, args.jobs)
        table = generate_customers(1000, seed=7).select(CHURN_SIGNATURE.input_names)
        row = next(r for r in features_matrix(table) if not any(v != v for v in r))  # JSON has no NaN
        tensor = {"name": "input", "datatype": "FP64", "shape": [1, len(row)], "data": row.tolist()}
        lua = scratch / "infer.lua"
        lua.write_text(INFER_LUA.replace("{body}", json.dumps({"inputs": [tensor]})))
        for kept in (home / "dashboard").glob("monitor-*.json"):  # a first start, as on a new home
            kept.unlink()
        with served(home) as url:
            at_start = [monitor_at_start(url)]
            timed = documents(url)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium_on_core_1(scratch), args=["--no-sandbox"])
                loads = page_loads(browser, url)
                wrk_with_max(f"{url}/v2/models/churn/infer", lua, 64, 2)  # warm
                without, polled = [], []
                for _ in range(args.rounds):
                    without.append(wrk_with_max(f"{url}/v2/models/churn/infer", lua, 64, args.seconds))
                    context = browser.new_context()
                    page = context.new_page()
                    page.goto(f"{url}/ui/live")
                    page.wait_for_selector("body[data-loaded=true]")
                    polled.append(wrk_with_max(f"{url}/v2/models/churn/infer", lua, 64, args.seconds))
                    context.close()
                browser.close()
        with served(home) as url:  # a restart: the reading kept by the first is shown at once
            at_start.append(monitor_at_start(url))

    print(f"# documents: GET /ui/api/PAGE from this process, 1 cold then 20 (server on core 0); {args.customers:,} "
          f"customers, {args.jobs} jobs")  # fmt: skip
    print(f"{'page':<8} {'cold ms':>9} {'median ms':>10} {'max ms':>8}   {'page load median ms':>20} {'max ms':>8}")
    for name in PAGES:
        cold, median, slowest = timed[name]
        load, load_max = loads[name]
        print(f"{name:<8} {cold:>9.1f} {median:>10.1f} {slowest:>8.1f}   {load:>20.1f} {load_max:>8.1f}")
    print("# the Monitor right after a start (GET /ui/api/monitor from this process)")
    for label, (first_ms, pending, ready_s) in zip(("first start", "restart"), at_start, strict=True):
        said = "pending" if pending else "figures"
        print(f"{label:<12} first answer {first_ms:7.1f} ms ({said}); figures on show after {ready_s:5.1f} s")
    ratios = [p["rps"] / w["rps"] for p, w in zip(polled, without, strict=True)]
    print(f"# infer c=64 on core 0, wrk on core 1, {args.rounds} alternating rounds of {args.seconds} s")
    print("without a browser req/s:", ", ".join(f"{w['rps']:,.0f}" for w in without))
    print("with Live polled   req/s:", ", ".join(f"{p['rps']:,.0f}" for p in polled))
    print(f"with / without per round: {', '.join(f'{r:.3f}' for r in ratios)}; median {statistics.median(ratios):.3f}")
    starts = zip(("first start", "restart"), at_start, strict=True)
    slow_docs = [n for n in PAGES if timed[n][1] >= 100] + [f"monitor at {n}" for n, f in starts if f[0] >= 100]
    slow_pages = [n for n in PAGES if loads[n][0] >= 1000]
    said = "met" if not slow_docs else f"MISSED: {slow_docs}"
    print(f"target documents < 100 ms (median, and the Monitor's first answer after each start): {said}")
    print(f"target pages < 1 s (median): {'met' if not slow_pages else f'MISSED: {slow_pages}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
