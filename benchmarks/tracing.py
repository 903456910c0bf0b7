"""What OpenTelemetry tracing costs the server (issue 19): tracing on, tracing off, and the code before tracing.

Four servers on core 0 over one FORETELL_HOME (the demo churn model, compiled; the ledger
on, as by default): `on`, this tree with tracing on and the SDK's batching span processor
in front of an exporter that drops every span (foretell's export queue takes the processor's
place and settings, as for `OTEL_TRACES_EXPORTER=otlp`: what a server pays to make, end, queue
and convert its spans, without the cost of a collector on the same core); `off`, this tree as `foretell
serve` runs by default; `base`, the code before tracing (`--base`, default /work/main/src at
the base commit); and `on10`, as `on` with one trace in ten sampled (`OTEL_TRACES_SAMPLER=
parentbased_traceidratio`, `OTEL_TRACES_SAMPLER_ARG=0.1`). wrk on core 1 alternates between
them, point by point, for a few rounds: one `[1, 31]` tensor to infer at c=64 and c=1. The
median round of each is compared, and the per-round ratios are printed.

Targets: on ≥ 0.90× off req/s at c=64; off within noise of base (≥ 0.95× req/s at c=64, c=1 p50
≤ 1.05×). Needs wrk and taskset.

    python benchmarks/tracing.py [--seconds 5] [--rounds 3] [--base /work/main/src]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "integration" / "serving"))
from servekit import free_port

from hybrid import INFER_LUA, wrk_with_max
from serve import wait_ready

HERE = Path(__file__).parent.parent / "src"

#: `foretell serve` with tracing on and every span dropped by its exporter, behind the SDK's batching processor.
TRACED_SERVE = """
import sys
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from foretell import tracing

class Dropped(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS

tracing.enable(BatchSpanProcessor(Dropped()))
from foretell.cli import main
sys.argv = ["foretell", *sys.argv[1:]]
sys.exit(main())
"""


#: Tracing on with one trace in ten recorded (`OTEL_TRACES_SAMPLER`), as a busy server would run it.
SAMPLED_10 = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}


def start(home: Path, side: str, base: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    serve = ["serve", "churn@production", "--port", str(port), "--reload-seconds", "0"]
    runner = ["-c", TRACED_SERVE] if side.startswith("on") else ["-m", "foretell"]
    command = ["taskset", "-c", "0", sys.executable, *runner, *serve]
    source = base if side == "base" else HERE
    env = {
        **os.environ,
        "FORETELL_HOME": str(home),
        "PYTHONPATH": str(source),
        **(SAMPLED_10 if side == "on10" else {}),
    }
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url)
    return server, url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", type=Path, default=Path("/work/main/src"))
    args = parser.parse_args()

    import httpx
    import joblib
    import numpy as np

    import foretell
    from foretell.demo.churn import CHURN_SIGNATURE, features_matrix, generate_customers, train_churn

    sides = ("on", "on10", "off", "base")
    with tempfile.TemporaryDirectory(prefix="foretell-tracing-bench-") as scratch:
        home = Path(scratch) / "home"
        path = Path(scratch) / "churn.joblib"
        joblib.dump(train_churn(generate_customers(20_000, seed=1), seed=7), path)
        info = foretell.register(
            "churn", path, flavor="sklearn", signature=CHURN_SIGNATURE, aliases=["production"], home=home
        )
        assert info.compiled is not None, "registration did not compile"
        assert info.compiled["status"] == "passed", info.compiled
        table = generate_customers(1000, seed=9).select(CHURN_SIGNATURE.input_names)
        row = next(r for r in features_matrix(table) if not np.isnan(r).any())  # JSON has no NaN
        body = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, len(row)], "data": row.tolist()}]}
        lua = Path(scratch) / "infer.lua"
        lua.write_text(INFER_LUA.replace("{body}", json.dumps(body)))

        servers, urls = [], {}
        measured: dict[tuple[int, str], list[dict[str, float]]] = {}
        try:
            for side in sides:
                server, urls[side] = start(home, side, args.base)
                servers.append(server)
            for side, url in urls.items():
                answer = httpx.post(url + "/v2/models/churn/infer", json=body)
                assert answer.status_code == 200, answer.text
                assert ("traceparent" in answer.headers) == side.startswith("on"), (side, answer.headers)
                wrk_with_max(url + "/v2/models/churn/infer", lua, 64, 2)  # warm up
            for _ in range(args.rounds):  # alternating, so drift on a shared machine falls on every side
                for c in (64, 1):
                    for side in sides:
                        result = wrk_with_max(urls[side] + "/v2/models/churn/infer", lua, c, args.seconds)
                        measured.setdefault((c, side), []).append(result)
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=60)

    print(f"# tracing: demo churn (compiled), one [1, 31] tensor; servers on core 0, wrk on core 1, "
          f"{args.rounds} alternating rounds of {args.seconds} s; median round")  # fmt: skip
    print(f"{'point':<6} {'side':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for c in (64, 1):
        for side in sides:
            runs = measured[(c, side)]
            r = sorted(runs, key=lambda run: run["rps"])[len(runs) // 2]
            print(f"c={c:<4} {side:>5} {r['rps']:>9,.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.2f} {r['errors']:>7.0f}")

    def ratios(c: int, key: str, top: str, bottom: str) -> list[float]:
        pairs = zip(measured[(c, top)], measured[(c, bottom)], strict=True)
        return [a[key] / b[key] for a, b in pairs]

    on_off = ratios(64, "rps", "on", "off")
    on10_off = ratios(64, "rps", "on10", "off")
    off_base = ratios(64, "rps", "off", "base")
    on_off_p50 = ratios(1, "p50_ms", "on", "off")
    off_base_p50 = ratios(1, "p50_ms", "off", "base")
    for name, values in (
        ("on/off req/s at c=64", on_off),
        ("on10/off req/s at c=64", on10_off),
        ("off/base req/s at c=64", off_base),
        ("on/off p50 at c=1", on_off_p50),
        ("off/base p50 at c=1", off_base_p50),
    ):
        print(f"{name}, per round: {', '.join(f'{v:.3f}' for v in values)}")
    errors = sum(r["errors"] for runs in measured.values() for r in runs)
    verdicts = [
        (f"on ≥ 0.90× off req/s at c=64: {statistics.median(on_off):.3f}×", statistics.median(on_off) >= 0.90),
        (f"off ≥ 0.95× base req/s at c=64: {statistics.median(off_base):.3f}×", statistics.median(off_base) >= 0.95),
        (
            f"off c=1 p50 ≤ 1.05× base: {statistics.median(off_base_p50):.3f}×",
            statistics.median(off_base_p50) <= 1.05,
        ),
        (f"no errors: {errors:.0f}", errors == 0),
    ]
    for text, ok in verdicts:
        print(f"target {text} -> {'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
