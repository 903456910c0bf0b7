"""Hybrid serving speed: lookups by key, the live fallback, events, and the store's bulk load.

    .venv/bin/python benchmarks/hybrid.py [--seconds 8] [--customers 100000]

In one run, on this machine (one server worker pinned to core 0, wrk on core 1):

- precomputed lookups, `GET /v1/models/churn/predictions/{key}` over random keys of last
  night's generation, at 64 connections, with the prediction store in SQLite and in Redis;
- the live path: the same lookups with `?fresh=true` (entity row → model → write-back);
- event to updated lookup: a rating event for a demo user, then the lookup that must show it,
  one after the other, timed together (p50, p99);
- the store's bulk load: a churn batch job's predictions (`write_batch` in the job's chunks,
  then `publish`) into SQLite and into Redis, in rows/s.

Targets (issue 5): precomputed ≥ 2× live requests/s; event → updated lookup p99 < 20 ms for
the demo recommender; bulk load ≥ 200,000 rows/s into SQLite. Needs wrk, taskset and
redis-server (Debian packages wrk, util-linux, redis-server).

    .venv/bin/python benchmarks/hybrid.py --by-key [--seconds 8] [--customers 1000000]

Lookups by key against infer, on one server (issue 15): the demo churn model's predictions
for `--customers` customers written into the SQLite store (`write_batch` in 65,536-row
chunks, then `publish`), then, in alternating rounds, `GET /v1/models/churn/predictions/{key}`
over random keys at c=1 and c=64 and one `[1, n]` tensor's infer at c=64. Target: lookups
≥ 1.0× infer req/s at c=64, p99 < 15 ms, max < 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "integration" / "serving"))
from servekit import free_port

from serve import wait_ready, wrk

LOOKUP_LUA = """
math.randomseed(7)
request = function()
  return wrk.format("GET", "{path}" .. "C-" .. string.format("%0{width}d", math.random(1, {n})) .. "{query}")
end
"""


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
         str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    client = redis.Redis.from_url(url)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return process, url


def bulk_load(store: object, rows: list[tuple[str, dict[str, object], int, str]], chunk: int) -> float:
    """Rows/s for one whole generation: `write_batch` per chunk, as a batch job's workers do, then publish."""
    started = time.perf_counter()
    generation = store.begin_generation("bulk")  # type: ignore[attr-defined]
    for at in range(0, len(rows), chunk):
        store.write_batch("bulk", generation, rows[at : at + chunk])  # type: ignore[attr-defined]
    store.publish("bulk", generation)  # type: ignore[attr-defined]
    return len(rows) / (time.perf_counter() - started)


INFER_LUA = """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
"""


def wrk_with_max(url: str, lua: Path, connections: int, seconds: int) -> dict[str, float]:
    """wrk on core 1, as `serve.wrk`, plus the slowest request (wrk's latency `Max`), in ms."""
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(lua),
               url]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    ms = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def latency(pattern: str) -> float:
        found = re.search(pattern, out, re.M)
        return float(found.group(1)) * ms[found.group(2)] if found else float("nan")

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None:
        raise RuntimeError(f"wrk printed no request rate:\n{out}")
    errors = sum(
        int(g)
        for pattern in (
            r"Non-2xx or 3xx responses: (\d+)",
            r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
        )
        if (found := re.search(pattern, out))
        for g in found.groups()
    )  # fmt: skip
    return {
        "rps": float(rate.group(1)),
        "p50_ms": latency(r"^\s*50%\s+([\d.]+)(us|ms|s)\s*$"),
        "p99_ms": latency(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$"),
        "max_ms": latency(r"^\s*Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)"),
        "errors": errors,
    }


def by_key(seconds: int, customers: int, rounds: int) -> int:
    """Lookups by key beside infer, on one server: see the module docstring."""
    import joblib
    import numpy as np

    import foretell
    from foretell.demo.churn import CHURN_SIGNATURE, features_matrix, generate_customers, train_churn
    from foretell.store import open_store

    with tempfile.TemporaryDirectory(prefix="foretell-bykey-bench-") as scratch:
        home = Path(scratch) / "home"
        model_path = Path(scratch) / "churn.joblib"
        joblib.dump(train_churn(generate_customers(20_000, seed=1), seed=7), model_path)
        info = foretell.register("churn", model_path, flavor="sklearn", signature=CHURN_SIGNATURE, home=home)
        assert info.compiled is not None, "registration did not compile"
        assert info.compiled["status"] == "passed", info.compiled
        model = foretell.load("churn/1", home=home)

        started = time.perf_counter()
        table = generate_customers(customers, seed=7)
        predictions = model.predict_batch(table.select(CHURN_SIGNATURE.input_names))
        keys = table.column("customer_id").to_pylist()
        records = predictions.to_records()
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        rows = [(key, record, 1, stamp) for key, record in zip(keys, records, strict=True)]
        prepared = time.perf_counter() - started
        store = open_store(home)
        started = time.perf_counter()
        generation = store.begin_generation("churn")
        for at in range(0, len(rows), 65_536):
            store.write_batch("churn", generation, rows[at : at + 65_536])
        store.publish("churn", generation)
        loaded = time.perf_counter() - started
        del rows, records, predictions

        matrix = features_matrix(table.slice(0, 1000).select(CHURN_SIGNATURE.input_names))
        row = next(row for row in matrix if not np.isnan(row).any())  # JSON has no NaN
        tensor = {"name": "input", "datatype": "FP64", "shape": [1, len(row)], "data": row.tolist()}
        infer_lua = Path(scratch) / "infer.lua"
        infer_lua.write_text(INFER_LUA.replace("{body}", json.dumps({"inputs": [tensor]})))
        lookup_lua = Path(scratch) / "lookup.lua"
        lookup_lua.write_text(
            LOOKUP_LUA.replace("{path}", "/v1/models/churn/predictions/")
            .replace("{width}", str(len(keys[0]) - 2))
            .replace("{n}", str(customers))
            .replace("{query}", "")
        )
        port = free_port()
        command = ["taskset", "-c", "0", sys.executable, "-m", "foretell", "serve", "churn/1", "--port", str(port),
                   "--reload-seconds", "0"]  # fmt: skip
        env = {**os.environ, "FORETELL_HOME": str(home)}
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url)
            answer = httpx.get(f"{url}/v1/models/churn/predictions/{keys[-1]}").json()
            assert answer["source"] == "precomputed", answer
            infer_url, lookup_url = f"{url}/v2/models/churn/infer", f"{url}/v1/models/churn/predictions/"
            inferred = httpx.post(infer_url, json={"inputs": [tensor]})
            assert inferred.status_code == 200, inferred.text
            wrk_with_max(infer_url, infer_lua, 64, 2)  # warm up both paths
            wrk_with_max(lookup_url, lookup_lua, 64, 2)
            measured: dict[str, list[dict[str, float]]] = {"infer c=64": [], "lookup c=64": [], "lookup c=1": []}
            for _ in range(rounds):  # alternating, so drift on a shared machine falls on both sides
                measured["infer c=64"].append(wrk_with_max(infer_url, infer_lua, 64, seconds))
                measured["lookup c=64"].append(wrk_with_max(lookup_url, lookup_lua, 64, seconds))
                measured["lookup c=1"].append(wrk_with_max(lookup_url, lookup_lua, 1, seconds))
        finally:
            server.terminate()
            server.wait(timeout=30)

    print(f"# lookups by key: demo churn, {customers:,} customers in SQLite, 1 server worker on core 0, wrk on "
          f"core 1, {rounds} alternating rounds of {seconds} s; median round")  # fmt: skip
    print(f"predictions prepared in {prepared:.1f} s; store load (write_batch x 65,536, publish) {loaded:.1f} s "
          f"({customers / loaded:,.0f} rows/s)")  # fmt: skip
    print(f"{'path':<13} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7}")
    median = {}
    for name, runs in measured.items():
        r = median[name] = sorted(runs, key=lambda run: run["rps"])[len(runs) // 2]
        print(f"{name:<13} {r['rps']:>9,.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['max_ms']:>8.1f} "
              f"{r['errors']:>7.0f}")  # fmt: skip
    ratios = [
        run["rps"] / infer["rps"] for run, infer in zip(measured["lookup c=64"], measured["infer c=64"], strict=True)
    ]
    ratio = statistics.median(ratios)
    lookup = median["lookup c=64"]
    worst_max = max(run["max_ms"] for run in measured["lookup c=64"])
    print(f"lookup / infer req/s at c=64, per round: {', '.join(f'{r:.2f}' for r in ratios)}")
    verdicts = [
        (f"lookups ≥ 1.0× infer req/s at c=64: {ratio:.2f}×", ratio >= 1.0),
        (f"lookup p99 < 15 ms at c=64: {lookup['p99_ms']:.1f} ms", lookup["p99_ms"] < 15),
        (f"lookup max < 50 ms at c=64 (worst round): {worst_max:.1f} ms", worst_max < 50),
    ]
    for text, ok in verdicts:
        print(f"target {text} -> {'met' if ok else 'MISSED'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--customers", type=int, default=None, help="default 100,000; 1,000,000 with --by-key")
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--by-key", action="store_true", help="only lookups by key beside infer (issue 15)")
    parser.add_argument("--rounds", type=int, default=3, help="with --by-key: alternating rounds")
    args = parser.parse_args()
    if args.by_key:
        return by_key(args.seconds, args.customers or 1_000_000, args.rounds)
    args.customers = args.customers or 100_000
    for tool in ("wrk", "taskset", "redis-server"):
        if not shutil.which(tool):
            sys.exit(f"benchmarks/hybrid.py needs {tool} (apt-get install wrk util-linux redis-server)")

    import pyarrow.parquet as pq

    import foretell
    from foretell.store import open_store

    with tempfile.TemporaryDirectory(prefix="foretell-hybrid-bench-") as scratch:
        home = Path(scratch) / "home"
        redis_process, redis_url = start_redis(Path(scratch))
        servers: list[subprocess.Popen[bytes]] = []
        try:
            foretell.api.demo_init(customers=args.customers, seed=7, home=home)
            demo = home / "demo"
            foretell.api.load_entities(
                "customers", demo / "customers.parquet", key="customer_id", models=["churn"], home=home
            )
            foretell.api.load_entities(
                "users", demo / "ratings.parquet", key="user_id", models=["movies"],
                interactions=("ratings", "movie_id", "rating"), home=home,
            )  # fmt: skip
            timings = {}
            for name, url in (("sqlite", None), ("redis", redis_url)):
                started = time.perf_counter()
                foretell.api.run_batch(
                    "churn@production", demo / "customers.parquet", Path(scratch) / f"out-{name}", home=home,
                    id_column="customer_id", to_store=True, store_url=url,
                )  # fmt: skip
                timings[name] = time.perf_counter() - started
            foretell.api.run_batch(
                "movies@production", demo / "users.parquet", Path(scratch) / "movies", home=home,
                id_column="user_id", to_store=True,
            )  # fmt: skip

            # The store's bulk load, on the churn job's own predictions, in the job's chunk size.
            table = pq.read_table(Path(scratch) / "out-sqlite")
            records = [
                {"score": s, "label": lab, "proba": p}
                for s, lab, p in zip(
                    table.column("score").to_pylist(), table.column("label").to_pylist(),
                    table.column("proba").to_pylist(), strict=True,
                )
            ]  # fmt: skip
            stamp = datetime.now(UTC).isoformat()
            rows = [(k, r, 1, stamp) for k, r in zip(table.column("customer_id").to_pylist(), records, strict=True)]
            bulk = {
                "sqlite": bulk_load(open_store(home), rows, 65_536),
                "redis": bulk_load(open_store(home, redis_url), rows, 65_536),
            }

            env = {**os.environ, "FORETELL_HOME": str(home)}  # the server sets its own thread limits
            urls = {}
            for name, store_url in (("sqlite", None), ("redis", redis_url)):
                port = free_port()
                server_env = {**env, **({"FORETELL_STORE_URL": store_url} if store_url else {})}
                command = ["taskset", "-c", "0", sys.executable, "-m", "foretell", "serve", "churn@production",
                           "movies@production", "--port", str(port), "--reload-seconds", "0"]  # fmt: skip
                servers.append(
                    subprocess.Popen(command, env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                )
                urls[name] = f"http://127.0.0.1:{port}"
            for url in urls.values():
                wait_ready(url)

            width = len(table.column("customer_id")[0].as_py()) - 2
            lua = Path(scratch) / "lookup.lua"
            fresh_lua = Path(scratch) / "fresh.lua"
            for path, query in ((lua, ""), (fresh_lua, "?fresh=true")):
                path.write_text(
                    LOOKUP_LUA.replace("{path}", "/v1/models/churn/predictions/")
                    .replace("{width}", str(width))
                    .replace("{n}", str(args.customers))
                    .replace("{query}", query)
                )
            results = []
            for name, url in urls.items():
                wrk(f"{url}/v1/models/churn/predictions/", lua, 64, 2)  # warm up
                results.append((f"precomputed ({name})", wrk(f"{url}/v1/models/churn/predictions/", lua, 64,
                                                                args.seconds)))  # fmt: skip
            results.append(("live (?fresh=true)", wrk(f"{urls['sqlite']}/v1/models/churn/predictions/",
                                                          fresh_lua, 64, args.seconds)))  # fmt: skip

            # Event → updated lookup, one after the other, for the recommender.
            rng = random.Random(7)
            took = []
            with httpx.Client(base_url=urls["sqlite"], timeout=30) as client:
                for i in range(args.events):
                    user, movie = rng.randint(1, 5000), rng.randint(1, 1500)
                    started = time.perf_counter()
                    applied = client.post(
                        "/v1/events",
                        json={
                            "type": "rating",
                            "user_id": user,
                            "movie_id": movie,
                            "rating": 5,
                            "event_id": f"bench-{i}",
                        },
                    ).json()
                    after = client.get(f"/v1/models/movies/predictions/{user}").json()
                    took.append((time.perf_counter() - started) * 1000)
                    if not applied["applied"] or after["source"] != "live":
                        raise RuntimeError(f"the event did not reach the lookup: {applied} then {after}")
                    if after["computed_at"] != applied["refreshed"][0]["computed_at"]:
                        raise RuntimeError(f"the lookup missed the event's refresh: {applied} then {after}")
            took.sort()
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
            redis_process.terminate()
            redis_process.wait(timeout=10)

    print(f"# hybrid: demo models, {args.customers:,} customers, 1 server worker on core 0, wrk on core 1, "
          f"{args.seconds} s per point")  # fmt: skip
    print(f"{'lookup':<22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, r in results:
        print(f"{name:<22} {r['rps']:>9,.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>7.0f}")
    p50, p99 = statistics.median(took), took[int(0.99 * (len(took) - 1))]
    print(f"event → updated lookup (recommender, {len(took)} events): p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    print(f"store bulk load ({len(rows):,} rows, 65,536 per write, then publish): "
          f"SQLite {bulk['sqlite']:,.0f} rows/s, Redis {bulk['redis']:,.0f} rows/s")  # fmt: skip
    print(
        f"churn batch job with --to-store: {timings['sqlite']:.1f} s into SQLite, {timings['redis']:.1f} s into Redis"
    )
    precomputed = results[0][1]["rps"]
    live = results[2][1]["rps"]
    verdicts = [
        (f"precomputed ≥ 2× live: {precomputed / live:.1f}×", precomputed >= 2 * live),
        (f"event → updated lookup p99 < 20 ms: {p99:.1f} ms", p99 < 20),
        (f"bulk load ≥ 200,000 rows/s into SQLite: {bulk['sqlite']:,.0f}", bulk["sqlite"] >= 200_000),
    ]
    for text, ok in verdicts:
        print(f"target {text} -> {'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
