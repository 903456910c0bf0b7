"""Where tracing's cost goes: CPU per request of four servers at c=64 (issue 19, docs/tracing.md "What it costs").

`off`: tracing off; `unsampled`: tracing on, no trace sampled (`OTEL_TRACES_SAMPLER=always_off`:
the fixed cost every traced request pays); `recorded`: every span recorded, no span processor
(`OTEL_TRACES_EXPORTER=none`: recording without the SDK); `on`: every span exported through the SDK's
`BatchSpanProcessor` (foretell's export queue in its place, with its settings) to a no-op exporter,
as benchmarks/tracing.py runs it. Each server on
core 0 over one FORETELL_HOME (demo churn, compiled); wrk on core 1 alternates between them; the
CPU each server process used (all its threads, from /proc) over each run, divided by the requests
it answered. Differences between sides are what each part costs. Needs wrk and taskset.

    python benchmarks/tracing_cpu.py [--seconds 4] [--rounds 2]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "integration" / "serving"))
from servekit import free_port

from hybrid import INFER_LUA, wrk_with_max
from serve import wait_ready
from tracing import TRACED_SERVE

HERE = Path(__file__).parent.parent / "src"
SIDES = {
    "off": None,
    "unsampled": {"OTEL_TRACES_SAMPLER": "always_off"},
    "recorded": {"OTEL_TRACES_EXPORTER": "none"},
    "on": {},
}
#: As benchmarks/tracing.py's `on`, but with no span processor when OTEL_TRACES_EXPORTER says none.
SERVE = TRACED_SERVE.replace(
    "tracing.enable(BatchSpanProcessor(Dropped()))",
    "import os\nnone = os.environ.get('OTEL_TRACES_EXPORTER') == 'none'\n"
    "tracing.enable(None if none else BatchSpanProcessor(Dropped()))",
)
assert SERVE != TRACED_SERVE, "benchmarks/tracing.py's TRACED_SERVE changed: update SERVE"


def cpu_seconds(pid: int) -> float:
    """User and system CPU of every thread of `pid` so far."""
    ticks = 0
    for thread in os.listdir(f"/proc/{pid}/task"):
        fields = Path(f"/proc/{pid}/task/{thread}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import joblib
    import numpy as np

    import foretell
    from foretell.demo.churn import CHURN_SIGNATURE, features_matrix, generate_customers, train_churn

    with tempfile.TemporaryDirectory(prefix="foretell-tracing-cpu-") as scratch:
        home = Path(scratch) / "home"
        path = Path(scratch) / "churn.joblib"
        joblib.dump(train_churn(generate_customers(20_000, seed=1), seed=7), path)
        foretell.register("churn", path, flavor="sklearn", signature=CHURN_SIGNATURE, aliases=["production"], home=home)
        table = generate_customers(1000, seed=9).select(CHURN_SIGNATURE.input_names)
        row = next(r for r in features_matrix(table) if not np.isnan(r).any())  # JSON has no NaN
        body = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, len(row)], "data": row.tolist()}]}
        lua = Path(scratch) / "infer.lua"
        lua.write_text(INFER_LUA.replace("{body}", json.dumps(body)))
        servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        measured: dict[str, list[float]] = {side: [] for side in SIDES}
        try:
            for side, extra in SIDES.items():
                port = free_port()
                runner = ["-m", "foretell"] if extra is None else ["-c", SERVE]
                command = ["taskset", "-c", "0", sys.executable, *runner, "serve", "churn@production", "--port",
                           str(port), "--reload-seconds", "0"]  # fmt: skip
                env = {**os.environ, "FORETELL_HOME": str(home), "PYTHONPATH": str(HERE), **(extra or {})}
                server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                url = f"http://127.0.0.1:{port}"
                servers[side] = server, url
                wait_ready(url)
                wrk_with_max(url + "/v2/models/churn/infer", lua, 64, 2)  # warm up
            for _ in range(args.rounds):
                for side, (server, url) in servers.items():
                    before = cpu_seconds(server.pid)
                    result = wrk_with_max(url + "/v2/models/churn/infer", lua, 64, args.seconds)
                    used = cpu_seconds(server.pid) - before
                    measured[side].append(1e6 * used / (result["rps"] * args.seconds))
                    time.sleep(0.2)
        finally:
            for server, _ in servers.values():
                server.terminate()
                server.wait(timeout=60)

    print(
        f"# tracing's CPU per request at c=64: demo churn, one [1, 31] tensor; {args.rounds} rounds of {args.seconds} s"
    )
    base = statistics.median(measured["off"])
    for side, values in measured.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{v:.1f}" for v in values)
        print(f"{side:<10} {median:6.1f} µs/request  (+{median - base:4.1f} over off; rounds {rounds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
