"""What a server's settled allocators cost: the same server with them and without, side by side.

    .venv/bin/python benchmarks/allocators.py [--seconds 5] [--rounds 3]

A server settles its allocators at start (`foretell.memory.settle_serving_allocators`): Arrow allocates
through malloc, and glibc maps every block of 128 KiB or more on its own, so that freed buffers go back
to the system (the soak's RSS, docs/benchmarks.md). The price is a fresh mapping, and its page faults,
for each big buffer a request needs. This serves the demo churn model twice from one home, both on
core 0: `settled` as `foretell serve` starts, `default` with `FORETELL_ALLOCATORS=default` (Arrow's
mimalloc pool and glibc's moving threshold). wrk on core 1 posts one `[N, 31]` FP64 tensor as JSON,
N = 1, 500 and 2,500 rows without missing values (0.2, 85 and 425 KiB), at 4 connections, to one server and then
the other, for `--rounds` rounds (the order alternating; the best round of each kept, as the machine is
shared). Prints req/s, p50 and p99 of each, the settled / default ratio of req/s, and each server's RSS
at the end. Needs wrk (Debian package `wrk`) and taskset.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "integration" / "serving"))
sys.path.insert(0, str(Path(__file__).parent))
from servekit import free_port, rss_bytes

from serve import registered_churn, wait_ready, wrk

ROWS = (1, 500, 2500)
CONNECTIONS = 4
LUA = """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("benchmarks/allocators.py needs wrk: apt-get install wrk")

    import numpy as np

    from foretell.demo.churn import CHURN_SIGNATURE, features_matrix

    with tempfile.TemporaryDirectory(prefix="foretell-allocators-bench-") as scratch:
        home, customers, _ = registered_churn(Path(scratch))
        matrix = features_matrix(customers.select(CHURN_SIGNATURE.input_names))
        matrix = matrix[~np.isnan(matrix).any(axis=1)][: max(ROWS)]  # JSON has no NaN; OIP's data, no nulls
        scripts = {}
        for rows in ROWS:
            tensor = {"name": "input", "datatype": "FP64", "shape": [rows, matrix.shape[1]]}
            body = json.dumps({"inputs": [tensor | {"data": matrix[:rows].ravel().tolist()}]})
            scripts[rows] = Path(scratch) / f"post-{rows}.lua"
            scripts[rows].write_text(LUA.replace("{body}", body))
            print(f"# {rows:,} rows: a {len(body) / 1024:,.1f} KiB body", flush=True)

        base = {**os.environ, "FORETELL_HOME": str(home)}
        for name in ("ARROW_DEFAULT_MEMORY_POOL", "MALLOC_MMAP_THRESHOLD_", "FORETELL_ALLOCATORS"):
            base.pop(name, None)
        envs = {"settled": base, "default": {**base, "FORETELL_ALLOCATORS": "default"}}
        servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        try:
            for how, env in envs.items():
                port = free_port()
                command = ["taskset", "-c", "0", sys.executable, "-m", "foretell", "serve", "churn/1"]
                process = subprocess.Popen(
                    # Four 2,500-row requests would pass the default queue of 1,024 rows and some be refused (503).
                    [*command, "--port", str(port), "--reload-seconds", "0", "--max-queue", "16384"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                servers[how] = (process, f"http://127.0.0.1:{port}")
            for _, url in servers.values():
                wait_ready(url)
            best: dict[tuple[int, str], dict[str, float]] = {}
            for rows in ROWS:
                for round_ in range(args.rounds):
                    order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
                    for how in order:
                        url = f"{servers[how][1]}/v2/models/churn/infer"
                        got = wrk(url, scripts[rows], CONNECTIONS, args.seconds)
                        if got["rps"] > best.get((rows, how), {"rps": -1.0})["rps"]:
                            best[rows, how] = got
            rss = {how: rss_bytes(process.pid) / 2**20 for how, (process, _) in servers.items()}
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(timeout=60)
    report(best, rss, args)
    return 0


def report(best: dict[tuple[int, str], dict[str, float]], rss: dict[str, float], args: argparse.Namespace) -> None:
    print(f"# churn, one [N, 31] FP64 tensor as JSON, c={CONNECTIONS}, best of {args.rounds} x {args.seconds} s")
    print(f"{'rows':>6}  {'allocators':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}  settled/default")
    for rows in ROWS:
        for how in ("settled", "default"):
            got = best[rows, how]
            ratio = f"{got['rps'] / best[rows, 'default']['rps']:.3f}" if how == "settled" else ""
            figures = f"{got['rps']:>8,.0f} {got['p50_ms']:>8.2f} {got['p99_ms']:>8.2f} {got['errors']:>6.0f}"
            print(f"{rows:>6,}  {how:<10} {figures}  {ratio}")
    print("RSS at the end: " + ", ".join(f"{how} {mib:,.1f} MiB" for how, mib in rss.items()))


if __name__ == "__main__":
    raise SystemExit(main())
