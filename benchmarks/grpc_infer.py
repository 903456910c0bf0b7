"""The Open Inference Protocol over gRPC against REST, on the same server: one server worker on core 0,
the load on core 1.

    .venv/bin/python benchmarks/grpc_infer.py [--seconds 10] [--rounds 3]

One `foretell serve churn/1 --grpc-port` process (the demo churn model, compiled at registration as a
user's is) answers one-row infer requests (a [1, 31] FP64 tensor): over REST from wrk (as
benchmarks/serve.py), and over gRPC from a small asyncio grpcio load generator in this file (`--load`,
requests serialized once, raw tensor contents as tritonclient sends them, 8 connections at c=64).
"gRPC floor" is the same load generator calling `ServerLive` (no model, no decoding): what grpcio's
server and this Python client cost by themselves, as benchmarks/serve.py's HTTP floor is for REST.
At c=1 and c=64, REST and gRPC alternate within each round, so drift on this shared machine falls on
both; the figures are each point's median over the rounds, and the ratios are gRPC over REST.
Needs wrk and taskset. (Not named grpc.py: a script's folder comes first on sys.path, and
`import grpc` would import the script itself.)
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
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "integration" / "serving"))
from servekit import free_port

from hybrid import wrk_with_max
from serve import LUA, wait_ready

SERVICE = "/inference.GRPCInferenceService"


def load(address: str, method: str, request: bytes, concurrency: int, seconds: float) -> dict[str, float]:
    """`concurrency` loops each sending `method` back to back for `seconds`: req/s, p50, p99, errors."""
    import grpc

    async def run() -> tuple[list[float], int, float]:
        channels = [
            # A channel of its own per connection: grpc would otherwise share one subchannel between them.
            grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(min(8, concurrency))
        ]
        calls = [channel.unary_unary(method) for channel in channels]  # bytes in, bytes out: no client codec
        latencies: list[float] = []
        errors = 0
        for call in calls:  # connected before the clock starts, as wrk's connections are
            await call(request)
        stop = time.perf_counter() + seconds

        async def loop(call: grpc.aio.UnaryUnaryMultiCallable) -> None:
            nonlocal errors
            while (started := time.perf_counter()) < stop:
                try:
                    await call(request)
                except grpc.aio.AioRpcError:
                    errors += 1
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(loop(calls[i % len(calls)]) for i in range(concurrency)))
        elapsed = time.perf_counter() - began
        for channel in channels:
            await channel.close()
        return latencies, errors, elapsed

    latencies, errors, elapsed = asyncio.run(run())
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
        "max_ms": latencies[-1] * 1e3,
        "errors": errors,
    }


def grpc_load(address: str, rpc: str, request_file: Path, concurrency: int, seconds: int) -> dict[str, float]:
    """`load` of `rpc` in a process of its own on core 1, as wrk runs."""
    command = ["taskset", "-c", "1", sys.executable, __file__, "--load", address, f"{SERVICE}/{rpc}",
               str(request_file), str(concurrency), str(seconds)]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        address, method, request_file, concurrency, seconds = args.load
        print(json.dumps(load(address, method, Path(request_file).read_bytes(), int(concurrency), float(seconds))))
        return 0

    import joblib
    import numpy as np

    import foretell
    from foretell.demo.churn import CHURN_SIGNATURE, features_matrix, generate_customers, train_churn
    from foretell.grpc.stubs.grpc_predict_v2_pb2 import ModelInferRequest, ModelInferResponse, ServerLiveRequest

    with tempfile.TemporaryDirectory(prefix="foretell-grpc-bench-") as scratch:
        home = Path(scratch) / "home"
        customers = generate_customers(20_000, seed=1)
        path = Path(scratch) / "churn.joblib"
        joblib.dump(train_churn(customers, seed=7), path)
        foretell.register("churn", path, flavor="sklearn", signature=CHURN_SIGNATURE, home=home)
        row = features_matrix(customers.select(CHURN_SIGNATURE.input_names).slice(0, 1))
        body = json.dumps({"inputs": [{"name": "input", "datatype": "FP64", "shape": list(row.shape),
                                       "data": row.reshape(-1).tolist()}]})  # fmt: skip
        lua = Path(scratch) / "post.lua"
        lua.write_text(LUA.replace("{body}", body))
        request = ModelInferRequest(model_name="churn")
        request.inputs.add(name="input", datatype="FP64", shape=list(row.shape))
        request.raw_input_contents.append(np.ascontiguousarray(row, dtype="<f8").tobytes())
        request_file = Path(scratch) / "infer.pb"
        request_file.write_bytes(request.SerializeToString())
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
        finally:
            server.terminate()
            server.wait(timeout=60)

    def median(name: str, c: int, key: str) -> float:
        return statistics.median(p[key] for p in points[(name, c)])

    print(f"# grpc_infer: demo churn model, one row, 1 server worker on core 0, load on core 1, "
          f"{args.rounds} rounds x {args.seconds} s per point (medians)")  # fmt: skip
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
