"""What the prediction ledger costs the server: the same server with the ledger on and off, side by side.

Two servers over one FORETELL_HOME (the demo churn model, compiled; N customers' predictions
in the SQLite store), each on core 0: one records every prediction (the default), one runs
with `--no-ledger`. wrk on core 1 alternates between them, point by point, for a few
rounds: one `[1, 31]` tensor to infer, and lookups of random keys, at c=1 and c=64. The
median round of each is compared (the machine is shared and drifts; alternating puts the
drift on both sides).

Then how soon a record is visible to a query: one infer, then `LedgerReader.history` of
its key polled until the record is there.

    python benchmarks/ledger_serve.py [--seconds 5] [--rounds 3] [--customers 200000]

Issue 16's targets: ledger on ≥ 0.95x the req/s of ledger off at c=64 (infer and lookups);
c=1 p50 within +0.05 ms; records visible within 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
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

from hybrid import INFER_LUA, LOOKUP_LUA, wrk_with_max
from serve import wait_ready


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--customers", type=int, default=200_000)
    args = parser.parse_args()

    import joblib
    import numpy as np

    import foretell
    from foretell.demo.churn import CHURN_SIGNATURE, features_matrix, generate_customers, train_churn
    from foretell.ledger.query import LedgerReader
    from foretell.ledger.segments import LedgerLocation
    from foretell.store import open_store

    with tempfile.TemporaryDirectory(prefix="foretell-ledger-bench-") as scratch:
        home = Path(scratch) / "home"
        model_path = Path(scratch) / "churn.joblib"
        joblib.dump(train_churn(generate_customers(20_000, seed=1), seed=7), model_path)
        info = foretell.register("churn", model_path, flavor="sklearn", signature=CHURN_SIGNATURE, home=home)
        assert info.compiled is not None, "registration did not compile"
        assert info.compiled["status"] == "passed", info.compiled
        model = foretell.load("churn/1", home=home)
        table = generate_customers(args.customers, seed=7)
        predictions = model.predict_batch(table.select(CHURN_SIGNATURE.input_names))
        keys = table.column("customer_id").to_pylist()
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        store = open_store(home)
        generation = store.begin_generation("churn")
        rows = [(k, r, 1, stamp) for k, r in zip(keys, predictions.to_records(), strict=True)]
        for at in range(0, len(rows), 65_536):
            store.write_batch("churn", generation, rows[at : at + 65_536])
        store.publish("churn", generation)
        store.close()
        del rows, predictions

        matrix = features_matrix(table.slice(0, 1000).select(CHURN_SIGNATURE.input_names))
        row = next(row for row in matrix if not np.isnan(row).any())  # JSON has no NaN
        tensor = {"name": "input", "datatype": "FP64", "shape": [1, len(row)], "data": row.tolist()}
        infer_lua = Path(scratch) / "infer.lua"
        infer_lua.write_text(INFER_LUA.replace("{body}", json.dumps({"inputs": [tensor]})))
        lookup_lua = Path(scratch) / "lookup.lua"
        lookup_lua.write_text(
            LOOKUP_LUA.replace("{path}", "/v1/models/churn/predictions/")
            .replace("{width}", str(len(keys[0]) - 2))
            .replace("{n}", str(args.customers))
            .replace("{query}", "")
        )
        env = {**os.environ, "FORETELL_HOME": str(home)}
        servers, urls = [], {}
        for name, extra in (("on", []), ("off", ["--no-ledger"])):
            port = free_port()
            command = ["taskset", "-c", "0", sys.executable, "-m", "foretell", "serve", "churn/1", "--port", str(port),
                       "--reload-seconds", "0", *extra]  # fmt: skip
            servers.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            urls[name] = f"http://127.0.0.1:{port}"
        points = [("infer", 64), ("lookup", 64), ("infer", 1), ("lookup", 1)]
        measured: dict[tuple[str, int, str], list[dict[str, float]]] = {}
        try:
            for url in urls.values():
                wait_ready(url)
            paths = {
                "infer": ("/v2/models/churn/infer", infer_lua),
                "lookup": ("/v1/models/churn/predictions/", lookup_lua),
            }
            for url in urls.values():  # warm both paths on both servers
                for path, lua in paths.values():
                    wrk_with_max(url + path, lua, 64, 2)
            for _ in range(args.rounds):
                for endpoint, c in points:
                    path, lua = paths[endpoint]
                    for side in ("on", "off"):
                        result = wrk_with_max(urls[side] + path, lua, c, args.seconds)
                        measured.setdefault((endpoint, c, side), []).append(result)
            # How soon a record can be read: one request with a key of its own, then poll the ledger.
            key = f"visibility-{time.time_ns()}"
            answered = httpx.post(
                f"{urls['on']}/v2/models/churn/infer", json={"inputs": [tensor], "parameters": {"key": key}}
            )
            answered.raise_for_status()
            sent = time.perf_counter()
            reader = LedgerReader(LedgerLocation(home / "ledger"))
            while not reader.history("churn", key=key, limit=1):
                time.sleep(0.02)
            visible_after = time.perf_counter() - sent
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=60)

    print(f"# ledger on vs off: demo churn (compiled), {args.customers:,} customers in SQLite, each server on core 0, "
          f"wrk on core 1, {args.rounds} alternating rounds of {args.seconds} s; median round")  # fmt: skip
    print(f"{'point':<12} {'ledger':>6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7}")
    median: dict[tuple[str, int, str], dict[str, float]] = {}
    for (endpoint, c, side), runs in measured.items():
        r = median[(endpoint, c, side)] = sorted(runs, key=lambda run: run["rps"])[len(runs) // 2]
        print(f"{endpoint} c={c:<3} {side:>6} {r['rps']:>9,.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.2f} "
              f"{r['max_ms']:>8.1f} {r['errors']:>7.0f}")  # fmt: skip
    verdicts = []
    for endpoint in ("infer", "lookup"):
        ratios = [
            on["rps"] / off["rps"]
            for on, off in zip(measured[(endpoint, 64, "on")], measured[(endpoint, 64, "off")], strict=True)
        ]
        ratio = statistics.median(ratios)
        print(f"{endpoint} c=64, on / off req/s per round: {', '.join(f'{r:.3f}' for r in ratios)}")
        verdicts.append((f"{endpoint} c=64: ledger on ≥ 0.95x off: {ratio:.3f}x", ratio >= 0.95))
        p50 = statistics.median(
            on["p50_ms"] - off["p50_ms"]
            for on, off in zip(measured[(endpoint, 1, "on")], measured[(endpoint, 1, "off")], strict=True)
        )
        verdicts.append((f"{endpoint} c=1: p50 on - off ≤ +0.05 ms: {p50:+.3f} ms", p50 <= 0.05))
    verdicts.append((f"a record is visible to queries within 2 s: {visible_after:.2f} s", visible_after < 2))
    for text, ok in verdicts:
        print(f"target {text} -> {'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
