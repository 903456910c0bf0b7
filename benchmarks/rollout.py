"""What a rollout costs the server, and whether a canary's assignment holds: issue 18's serving targets.

Shadow at 100 %: two FORETELL_HOMEs with the same two demo churn versions (the champion,
and a challenger retrained on other customers), one with a shadow rollout of the
challenger at 100 %, one without. One server on each, both on core 0; wrk on core 1
alternates between them, point by point, for a few rounds: one `[1, 31]` tensor to infer
at c=1 and c=64. The median round of each is compared. The challenger's work is real
work on the same core, so at c=64 the target is half the req/s, with no champion error.

Canary at 10 %: N keys, each sent once to a server with `--workers 2`, then again after a
restart with one worker: the share of keys the challenger answered (`X-Model-Version`),
and whether any key changed arm.

    python benchmarks/rollout.py [--seconds 5] [--rounds 3] [--keys 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "integration" / "serving"))
from servekit import free_port

from hybrid import INFER_LUA, wrk_with_max
from serve import wait_ready


def start_server(home: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = ["taskset", "-c", "0", sys.executable, "-m", "foretell", "serve", "churn@production", "--port", str(port),
               "--no-ledger", *extra]  # fmt: skip
    env = {**os.environ, "FORETELL_HOME": str(home)}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url)
    return server, url


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(timeout=60)


async def arms(url: str, body: dict, keys: list[str], connections: int = 32) -> dict[str, str]:
    """Each key's answering version, sending every key once with `connections` in flight."""
    seen: dict[str, str] = {}
    queue: asyncio.Queue[str] = asyncio.Queue()
    for key in keys:
        queue.put_nowait(key)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                key = queue.get_nowait()
                response = await client.post("/v2/models/churn/infer", json={**body, "parameters": {"key": [key]}})
                response.raise_for_status()
                seen[key] = response.headers["x-model-version"]

        await asyncio.gather(*(worker() for _ in range(connections)))
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keys", type=int, default=100_000)
    args = parser.parse_args()

    import joblib
    import numpy as np

    import foretell
    from foretell.demo.churn import CHURN_SIGNATURE, features_matrix, generate_customers, train_churn
    from foretell.registry import open_registry
    from foretell.rollout import Guards, new_rollout

    with tempfile.TemporaryDirectory(prefix="foretell-rollout-bench-") as scratch:
        paths = []
        for seed in (1, 2):
            path = Path(scratch) / f"churn-{seed}.joblib"
            joblib.dump(train_churn(generate_customers(20_000, seed=seed), seed=7), path)
            paths.append(path)
        homes = {"shadow": Path(scratch) / "with", "none": Path(scratch) / "without"}
        for home in homes.values():
            for version, path in enumerate(paths, start=1):
                info = foretell.register(
                    "churn",
                    path,
                    flavor="sklearn",
                    signature=CHURN_SIGNATURE,
                    aliases=["production"] if version == 1 else [],
                    home=home,
                )
                assert info.compiled is not None, "registration did not compile"
                assert info.compiled["status"] == "passed", info.compiled
        never = Guards(max_error_rate=None, max_p99_ratio=None, min_requests=10**9)  # measure, never decide
        registry = open_registry(homes["shadow"])
        shadow = registry.rollouts.start(new_rollout("churn", 1, 2, "shadow", 100, guards=never))

        table = generate_customers(1000, seed=9).select(CHURN_SIGNATURE.input_names)
        row = next(r for r in features_matrix(table) if not np.isnan(r).any())  # JSON has no NaN
        body = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, len(row)], "data": row.tolist()}]}
        lua = Path(scratch) / "infer.lua"
        lua.write_text(INFER_LUA.replace("{body}", json.dumps(body)))

        servers, urls = [], {}
        measured: dict[tuple[int, str], list[dict[str, float]]] = {}
        try:
            for side, home in homes.items():
                server, urls[side] = start_server(home)
                servers.append(server)
            for url in urls.values():
                wrk_with_max(url + "/v2/models/churn/infer", lua, 64, 2)
            for _ in range(args.rounds):
                for c in (64, 1):
                    for side in ("shadow", "none"):
                        result = wrk_with_max(urls[side] + "/v2/models/churn/infer", lua, c, args.seconds)
                        measured.setdefault((c, side), []).append(result)
        finally:
            for server in servers:
                stop(server)
        figures = registry.rollouts.stats(shadow.id)
        registry.rollouts.end(shadow, "aborted", "benchmark over")

        canary = registry.rollouts.start(new_rollout("churn", 1, 2, "canary", 10, guards=never))
        keys = [f"CUST-{i:07d}" for i in range(args.keys)]
        server, url = start_server(homes["shadow"], "--workers", "2")
        try:
            first = asyncio.run(arms(url, body, keys))
            workers = registry.rollouts.workers(canary.id)
        finally:
            stop(server)
        server, url = start_server(homes["shadow"])
        try:
            second = asyncio.run(arms(url, body, keys))
        finally:
            stop(server)

    print(f"# rollout: demo churn (compiled) v1 champion, v2 challenger; servers on core 0, wrk on core 1, "
          f"{args.rounds} alternating rounds of {args.seconds} s; median round")  # fmt: skip
    print(f"{'point':<8} {'rollout':>8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for (c, side), runs in sorted(measured.items()):
        r = sorted(runs, key=lambda run: run["rps"])[len(runs) // 2]
        print(f"c={c:<6} {side:>8} {r['rps']:>9,.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.2f} {r['errors']:>7.0f}")
    p50_ratios = [
        s["p50_ms"] / n["p50_ms"] for s, n in zip(measured[(1, "shadow")], measured[(1, "none")], strict=True)
    ]
    rps_ratios = [s["rps"] / n["rps"] for s, n in zip(measured[(64, "shadow")], measured[(64, "none")], strict=True)]
    errors = sum(r["errors"] for r in measured[(64, "shadow")] + measured[(1, "shadow")])
    summary = figures.summary()
    print(f"shadow c=1 p50 ratio per round: {', '.join(f'{r:.3f}' for r in p50_ratios)}")
    print(f"shadow c=64 req/s ratio per round: {', '.join(f'{r:.3f}' for r in rps_ratios)}")
    print(f"shadow comparisons: {summary['compared']:,} rows compared, {summary['dropped']:,} dropped, "
          f"challenger errors {summary['challenger']['errors']}")  # fmt: skip
    share = sum(v == "2" for v in first.values()) / len(keys)
    moved = sum(first[k] != second[k] for k in keys)
    print(f"canary 10%: {len(keys):,} keys, challenger share {share:.4%} (workers reporting: {len(workers)}); "
          f"keys whose arm changed after a restart: {moved}")  # fmt: skip
    verdicts = [
        (f"shadow c=1 p50 ≤ 1.1x without: {statistics.median(p50_ratios):.3f}x", statistics.median(p50_ratios) <= 1.1),
        (
            f"shadow c=64 req/s ≥ 0.5x without: {statistics.median(rps_ratios):.3f}x",
            statistics.median(rps_ratios) >= 0.5,
        ),
        (f"zero champion errors under shadow: {errors:.0f}", errors == 0),
        (f"canary share 10% ± 0.5%: {share:.3%}", abs(share - 0.10) <= 0.005),
        (f"the same key gets the same arm across 2 workers and a restart: {moved} moved", moved == 0),
    ]
    for text, ok in verdicts:
        print(f"target {text} -> {'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
