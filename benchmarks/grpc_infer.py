"""The Open Inference Protocol over gRPC against REST, on the same server: one server worker on core 0,
the load on core 1.

    .venv/bin/python benchmarks/grpc_infer.py [--seconds 10] [--rounds 3]
    .venv/bin/python benchmarks/grpc_infer.py --floors [--seconds 10] [--rounds 3]

One `foretell serve churn/1 --grpc-port` process (the demo churn model, compiled at registration as a
user's is) answers one-row infer requests (a [1, 31] FP64 tensor): over REST from wrk (as
benchmarks/serve.py), and over gRPC from h2load (nghttp2's C load generator, speaking gRPC's framing:
`grpcload.h2load`; up to 8 connections with streams spread over them). Without h2load the script says so
and falls back to a small asyncio grpcio load generator in this file (`--load`: raw tensor contents as
tritonclient sends them, requests serialized once), which is itself part of the limit at c=64. h2load does
not read grpc-status: one call is checked against REST's answer first, and the server's /metrics count the
failures after the run. "gRPC floor" is `ServerLive` under the same load (no model, no decoding): what the
gRPC transport costs by itself, as benchmarks/serve.py's HTTP floor is for REST.
At c=1 and c=64, REST and gRPC alternate within each round, so drift on this shared machine falls on
both; the figures are each point's median over the rounds, and the ratios are gRPC over REST.

`--floors` measures the stacks alone, each a bare server on core 0 under C load on core 1: grpc.aio (on
asyncio's loop and on uvloop's) and grpc's thread-pool server, each with an empty generic handler, and
uvicorn + httptools answering a small JSON (wrk, and h2load --h1); where pyvoy is installed (on PATH or
FORETELL_BENCH_PYVOY; not a foretell dependency), the same gRPC echo as an ASGI app under pyvoy, whose
Envoy speaks HTTP/2 with trailers: another gRPC stack's floor. Needs h2load.

`--rest-stacks` (needs pyvoy) measures what serving foretell's whole app on that stack would cost REST: the
same one-row infer over REST from wrk, the app (`benchapp.py`) under uvicorn + httptools as `foretell serve`
runs it, and under pyvoy, alternating, each on core 0.
Needs wrk and taskset. (Not named grpc.py: a script's folder comes first on sys.path, and
`import grpc` would import the script itself.)
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

import grpcload
from hybrid import wrk_with_max
from serve import LUA, wait_ready

SERVICE = "/inference.GRPCInferenceService"


def grpc_load(address: str, rpc: str, request_file: Path, concurrency: int, seconds: int) -> dict[str, float]:
    """`rpc` under load from core 1: h2load when installed (C, as wrk is for REST), else `load` in a process of
    its own. h2load sees HTTP statuses only, not grpc-status: the caller counts gRPC failures on the server."""
    if grpcload.H2LOAD is not None:
        url = f"http://{address}{SERVICE}/{rpc}"
        return grpcload.h2load(url, grpcload.grpc_frame(request_file.read_bytes()), concurrency, seconds)
    command = ["taskset", "-c", "1", sys.executable, __file__, "--load", address, f"{SERVICE}/{rpc}",
               str(request_file), str(concurrency), str(seconds)]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def grpc_failures(base_url: str) -> int:
    """gRPC requests the server answered with a status other than OK, from its /metrics."""
    import httpx

    text = httpx.get(f"{base_url}/metrics").text
    failed = 0.0
    for line in text.splitlines():
        if line.startswith("foretell_requests_total{") and 'transport="grpc"' in line:
            status = line.split('status="', 1)[1].split('"', 1)[0]
            if status != "0":
                failed += float(line.rsplit(" ", 1)[1])
    return int(failed)


FLOOR_SERVERS = {
    "grpc.aio (asyncio)": lambda port: grpcload.aio_floor(port),
    "grpc.aio (uvloop)": lambda port: grpcload.aio_floor(port, uvloop=True),
    "grpc sync (4 threads)": lambda port: grpcload.sync_floor(port),
    "uvicorn ASGI": grpcload.asgi_floor,
}
if grpcload.PYVOY is not None:
    FLOOR_SERVERS["pyvoy ASGI gRPC"] = grpcload.pyvoy_floor


def wait_listening(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def floors(seconds: int, rounds: int) -> int:
    """The stacks alone, each server on core 0 and a C load generator on core 1: what grpcio can reach at all."""
    if grpcload.H2LOAD is None:
        print("# h2load is not installed: the floors need it (apt-get install nghttp2-client)")
        return 1
    body = grpcload.grpc_frame(bytes(256))  # about the size of a one-row ModelInferRequest
    points: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    for _ in range(rounds):
        for name in FLOOR_SERVERS:
            port = free_port()
            command = ["taskset", "-c", "0", sys.executable, __file__, "--floor-server", name, str(port)]
            server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_listening(port)
                for c in (1, 64):
                    if name.startswith("uvicorn"):
                        url = f"http://127.0.0.1:{port}/"
                        lua = Path(tempfile.gettempdir()) / "foretell-floor-get.lua"
                        lua.write_text('wrk.method = "GET"\n')
                        points.setdefault((name, "wrk", c), []).append(wrk_with_max(url, lua, c, seconds))
                        points.setdefault((name, "h2load --h1", c), []).append(
                            grpcload.h2load(url, None, c, seconds, h1=True)
                        )
                    else:
                        url = f"http://127.0.0.1:{port}/floor.Floor/Echo"
                        points.setdefault((name, "h2load", c), []).append(grpcload.h2load(url, body, c, seconds))
            finally:
                server.terminate()
                server.wait(timeout=30)
    print(f"# grpc_infer --floors: bare servers on core 0, C load on core 1, {rounds} rounds x {seconds} s (medians)")
    print(f"{'server':<22} {'load':<12} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for (name, loader, c), runs in sorted(points.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])):
        rps, p50, p99 = (statistics.median(p[k] for p in runs) for k in ("rps", "p50_ms", "p99_ms"))
        errors = sum(p["errors"] for p in runs)
        print(f"{name:<22} {loader:<12} {c:>4} {rps:>9,.0f} {p50:>8.3f} {p99:>8.3f} {errors:>7.0f}")
    return 0


def rest_stacks(seconds: int, rounds: int) -> int:
    """foretell's REST infer with the app under uvicorn and under pyvoy: what moving to Envoy would cost REST."""
    if grpcload.PYVOY is None:
        print("# pyvoy is not installed: --rest-stacks needs it (pip install pyvoy in a venv; FORETELL_BENCH_PYVOY)")
        return 1
    here = Path(__file__).parent
    src = here.parent / "src"
    # pyvoy's embedded Python sees its own venv; foretell and its dependencies come from this one's.
    site = next(p for p in sys.path if p.endswith("site-packages"))
    with tempfile.TemporaryDirectory(prefix="foretell-rest-stacks-") as scratch:
        home, _, lua, _, _ = grpcload.churn_one_row(Path(scratch), LUA)
        env = {**os.environ, "FORETELL_HOME": str(home), "FORETELL_BENCH_MODELS": "churn/1"}
        stacks = {
            "uvicorn": ([sys.executable, "-m", "uvicorn", "benchapp:app", "--loop", "uvloop", "--http", "httptools",
                         "--log-level", "warning", "--no-access-log", "--port"], f"{here}:{src}"),
            "pyvoy": ([grpcload.PYVOY, "benchapp:app", "--loop", "uvloop", "--log-level", "error", "--port"],
                      f"{here}:{src}:{site}"),
        }  # fmt: skip
        points: dict[tuple[str, int], list[dict[str, float]]] = {}
        for _ in range(rounds):
            for name, (command, path) in stacks.items():
                port = free_port()
                server = subprocess.Popen(["taskset", "-c", "0", *command, str(port)], env={**env, "PYTHONPATH": path},
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
                try:
                    wait_ready(f"http://127.0.0.1:{port}")
                    for c in (1, 64):
                        url = f"http://127.0.0.1:{port}/v2/models/churn/infer"
                        points.setdefault((name, c), []).append(wrk_with_max(url, lua, c, seconds))
                finally:
                    server.terminate()
                    server.wait(timeout=30)
    print(f"# grpc_infer --rest-stacks: foretell's REST infer, app on core 0, wrk on core 1, {rounds} x {seconds} s")
    print(f"{'stack':<8} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  rounds (req/s)")
    for (name, c), runs in sorted(points.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rps, p50, p99 = (statistics.median(p[k] for p in runs) for k in ("rps", "p50_ms", "p99_ms"))
        each = ", ".join(f"{p['rps']:,.0f}" for p in runs)
        errors = sum(p["errors"] for p in runs)
        print(f"{name:<8} {c:>4} {rps:>9,.0f} {p50:>8.3f} {p99:>8.3f} {errors:>7.0f}  {each}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--floors", action="store_true", help="measure the bare servers only (needs h2load)")
    parser.add_argument("--rest-stacks", action="store_true", help="REST under uvicorn and pyvoy (needs pyvoy)")
    parser.add_argument("--load", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--floor-server", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        FLOOR_SERVERS[args.floor_server[0]](int(args.floor_server[1]))
        return 0
    if args.floors:
        return floors(args.seconds, args.rounds)
    if args.rest_stacks:
        return rest_stacks(args.seconds, args.rounds)
    if args.load:
        address, method, request_file, concurrency, seconds = args.load
        print(
            json.dumps(
                grpcload.python_load(address, method, Path(request_file).read_bytes(), int(concurrency), float(seconds))
            )
        )
        return 0

    import numpy as np

    from foretell.grpc.stubs.grpc_predict_v2_pb2 import ModelInferResponse, ServerLiveRequest

    with tempfile.TemporaryDirectory(prefix="foretell-grpc-bench-") as scratch:
        home, body, lua, request, request_file = grpcload.churn_one_row(Path(scratch), LUA)
        live_file = Path(scratch) / "live.pb"
        live_file.write_bytes(ServerLiveRequest().SerializeToString())

        port, grpc_port = free_port(), free_port()
        env = {**os.environ, "FORETELL_HOME": str(home)}
        command = ["taskset", "-c", "0", sys.executable, "-m", "foretell", "serve", "churn/1", "--port", str(port),
                   "--grpc-port", str(grpc_port), "--reload-seconds", "0", "--no-ledger"]  # fmt: skip
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url, address = f"http://127.0.0.1:{port}/v2/models/churn/infer", f"127.0.0.1:{grpc_port}"
        points: dict[tuple[str, int], list[dict[str, float]]] = {}
        try:
            wait_ready(f"http://127.0.0.1:{port}")
            import grpc
            import httpx

            rest = httpx.post(url, content=body).json()
            rest_score = next(o["data"][0] for o in rest["outputs"] if o["name"] == "score")
            with grpc.insecure_channel(address) as channel:
                answer = channel.unary_unary(f"{SERVICE}/ModelInfer")(request.SerializeToString())
            response = ModelInferResponse.FromString(answer)
            at = [o.name for o in response.outputs].index("score")
            grpc_score = float(np.frombuffer(response.raw_output_contents[at], dtype="<f8")[0])
            assert abs(rest_score - grpc_score) <= 1e-9, (rest_score, grpc_score)
            for _ in range(args.rounds):
                for c in (1, 64):
                    points.setdefault(("REST", c), []).append(wrk_with_max(url, lua, c, args.seconds))
                    points.setdefault(("gRPC", c), []).append(
                        grpc_load(address, "ModelInfer", request_file, c, args.seconds)
                    )
                    points.setdefault(("gRPC floor", c), []).append(
                        grpc_load(address, "ServerLive", live_file, c, args.seconds)
                    )
            failures = grpc_failures(f"http://127.0.0.1:{port}")
        finally:
            server.terminate()
            server.wait(timeout=60)

    def median(name: str, c: int, key: str) -> float:
        return statistics.median(p[key] for p in points[(name, c)])

    loader = "h2load" if grpcload.H2LOAD else "the Python grpcio client (h2load is not installed)"
    print(f"# grpc_infer: demo churn model, one row, 1 server worker on core 0, load on core 1 (REST: wrk, gRPC: "
          f"{loader}), {args.rounds} rounds x {args.seconds} s per point (medians)")  # fmt: skip
    print(f"{'transport':<10} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for c in (1, 64):
        for name in ("REST", "gRPC", "gRPC floor"):
            print(f"{name:<10} {c:>4} {median(name, c, 'rps'):>9,.0f} {median(name, c, 'p50_ms'):>8.2f} "
                  f"{median(name, c, 'p99_ms'):>8.2f} {sum(p['errors'] for p in points[(name, c)]):>7.0f}")  # fmt: skip
    rps64 = median("gRPC", 64, "rps") / median("REST", 64, "rps")
    p99_64 = median("gRPC", 64, "p99_ms") / median("REST", 64, "p99_ms")
    p50_1 = median("gRPC", 1, "p50_ms") / median("REST", 1, "p50_ms")
    print(f"gRPC/REST: c=64 req/s {rps64:.2f}x (target >= 1.0), c=64 p99 {p99_64:.2f}x (target <= 1.0), "
          f"c=1 p50 {p50_1:.2f}x (target <= 1.0)")  # fmt: skip
    print(f"gRPC requests the server answered with a status other than OK (its /metrics): {failures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
