"""The stores side by side: entity loads into SQLite and Redis, and lookups by key from each.

    .venv/bin/python benchmarks/stores.py [--rows 1000000] [--seconds 8]

In one run, on this machine (one server worker pinned to core 0, wrk on core 1, redis-server
started here on 127.0.0.1, unpinned):

- entity load: `load_features` of `--rows` demo customers (33 columns: 6 text, 26 float, 1
  integer) into a fresh SQLite entity store and into Redis, then again (a reload replaces the
  table), in rows/s; the Parquet read is not counted;
- prediction lookups: a published generation of `--rows` churn predictions in each store, then
  `GET /v1/models/churn/predictions/{key}` over random keys at 64 connections through a real
  `foretell serve`, one per store: req/s, p50, p99 and the Redis/SQLite ratio;
- the store calls alone, in this process: `get` of one random key and `get_many` of 100, per
  second, one thread.

Targets (issue 15): Redis lookups ≥ 0.8× SQLite's req/s at c=64 with p99 < 20 ms; entity load
≥ 250,000 rows/s into SQLite and into Redis. Needs wrk, taskset and redis-server.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "integration" / "serving"))
from servekit import free_port

from hybrid import start_redis
from serve import wait_ready, wrk

LOOKUP_LUA = """
math.randomseed(7)
request = function()
  return wrk.format("GET", "/v1/models/churn/predictions/C-" .. string.format("%07d", math.random(1, {n})))
end
"""


def timed(call: Any) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def entity_loads(home: Path, redis_url: str, rows: Any) -> dict[str, tuple[float, float]]:
    """(first load, reload) rows/s per store."""
    from foretell.store import open_entity_store

    at = datetime.now(UTC).isoformat()
    found = {}
    for name, url in (("sqlite", None), ("redis", redis_url)):
        store = open_entity_store(home, url)

        def load(store: Any = store) -> None:
            store.load_features("customers", "customer_id", rows, models=["churn"], at=at)

        found[name] = (rows.num_rows / timed(load), rows.num_rows / timed(load))
        store.close()
    return found


def publish_predictions(home: Path, redis_url: str, n: int, churn_outputs: list[dict[str, Any]]) -> None:
    """A published generation of `n` churn predictions (the demo job's own outputs, cycled) in each store."""
    from foretell.store import open_store

    stamp = datetime.now(UTC).isoformat()
    rows = [(f"C-{i:07d}", churn_outputs[i % len(churn_outputs)], 1, stamp) for i in range(1, n + 1)]
    for url in (None, redis_url):
        store = open_store(home, url)
        generation = store.begin_generation("churn")
        for at in range(0, n, 65_536):
            store.write_batch("churn", generation, rows[at : at + 65_536])
        store.publish("churn", generation)
        store.close()


def store_calls(home: Path, redis_url: str, n: int, seconds: float) -> dict[str, tuple[float, float]]:
    """(get/s, get_many of 100 /s) per store, one thread."""
    from foretell.store import open_store

    rng = random.Random(7)
    found = {}
    for name, url in (("sqlite", None), ("redis", redis_url)):
        store = open_store(home, url)
        rates = []
        for size in (1, 100):
            calls, deadline = 0, time.perf_counter() + seconds
            started = time.perf_counter()
            while time.perf_counter() < deadline:
                keys = [f"C-{rng.randint(1, n):07d}" for _ in range(size)]
                if size == 1:
                    assert store.get("churn", keys[0]) is not None
                else:
                    assert len(store.get_many("churn", keys)) == len(set(keys))
                calls += 1
            rates.append(calls / (time.perf_counter() - started))
        found[name] = (rates[0], rates[1])
        store.close()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    for tool in ("wrk", "taskset", "redis-server"):
        if not shutil.which(tool):
            sys.exit(f"benchmarks/stores.py needs {tool} (apt-get install wrk util-linux redis-server)")

    import pyarrow.parquet as pq

    import foretell
    from foretell.demo.churn import generate_customers

    try:
        import redis.utils

        hiredis = redis.utils.HIREDIS_AVAILABLE
    except ImportError:
        hiredis = False

    with tempfile.TemporaryDirectory(prefix="foretell-stores-bench-") as scratch:
        home = Path(scratch) / "home"
        redis_process, redis_url = start_redis(Path(scratch))
        servers: list[subprocess.Popen[bytes]] = []
        try:
            foretell.api.demo_init(customers=20_000, seed=7, home=home)
            scored = Path(scratch) / "scored"
            foretell.api.run_batch(
                "churn@production", home / "demo" / "customers.parquet", scored, home=home, id_column="customer_id"
            )
            table = pq.read_table(scored)
            outputs = [
                {"score": s, "label": lab, "proba": p}
                for s, lab, p in zip(
                    table.column("score").to_pylist(), table.column("label").to_pylist(),
                    table.column("proba").to_pylist(), strict=True,
                )
            ]  # fmt: skip

            customers = generate_customers(args.rows, seed=7)
            loads = entity_loads(home, redis_url, customers)
            del customers
            publish_predictions(home, redis_url, args.rows, outputs)
            calls = store_calls(home, redis_url, args.rows, 2.0)

            env = {**os.environ, "FORETELL_HOME": str(home)}
            urls = {}
            for name, store_url in (("sqlite", None), ("redis", redis_url)):
                port = free_port()
                server_env = {**env, **({"FORETELL_STORE_URL": store_url} if store_url else {})}
                command = ["taskset", "-c", "0", sys.executable, "-m", "foretell", "serve", "churn@production",
                           "--port", str(port), "--reload-seconds", "0"]  # fmt: skip
                servers.append(
                    subprocess.Popen(command, env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                )
                urls[name] = f"http://127.0.0.1:{port}"
            for url in urls.values():
                wait_ready(url)
            lua = Path(scratch) / "lookup.lua"
            lua.write_text(LOOKUP_LUA.replace("{n}", str(args.rows)))
            lookups = {}
            for name, url in urls.items():
                wrk(f"{url}/v1/models/churn/predictions/", lua, 64, 2)  # warm up
                lookups[name] = wrk(f"{url}/v1/models/churn/predictions/", lua, 64, args.seconds)
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
            redis_process.terminate()
            redis_process.wait(timeout=10)

    print(f"# stores: {args.rows:,} rows, 1 server worker on core 0, wrk on core 1, {args.seconds} s per point, "
          f"redis-server unpinned, hiredis {'on' if hiredis else 'off'}")  # fmt: skip
    print(f"{'entity load (33 columns)':<28} {'first rows/s':>13} {'reload rows/s':>14}")
    for name, (first, again) in loads.items():
        print(f"{name:<28} {first:>13,.0f} {again:>14,.0f}")
    print(f"{'store calls (one thread)':<28} {'get/s':>13} {'get_many(100)/s':>16}")
    for name, (one, many) in calls.items():
        print(f"{name:<28} {one:>13,.0f} {many:>16,.0f}")
    print(f"{'lookups, c=64':<28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, r in lookups.items():
        print(f"{name:<28} {r['rps']:>9,.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>7.0f}")
    ratio = lookups["redis"]["rps"] / lookups["sqlite"]["rps"]
    p99 = lookups["redis"]["p99_ms"]
    verdicts = [
        (f"Redis lookups ≥ 0.8× SQLite's req/s: {ratio:.2f}×", ratio >= 0.8),
        (f"Redis lookup p99 < 20 ms: {p99:.1f} ms", p99 < 20),
        (f"entity load ≥ 250,000 rows/s into SQLite: {loads['sqlite'][0]:,.0f}", loads["sqlite"][0] >= 250_000),
        (f"entity load ≥ 250,000 rows/s into Redis: {loads['redis'][0]:,.0f}", loads["redis"][0] >= 250_000),
    ]
    for text, ok in verdicts:
        print(f"target {text} -> {'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
