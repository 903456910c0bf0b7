"""The Open Inference Protocol over gRPC on Ray Serve, against REST on the same replica: both ways in.

    .venv/bin/python benchmarks/ray_grpc_infer.py [--seconds 5] [--rounds 2]

One `foretell serve churn/1 --engine ray --replicas 1 --grpc-port` (the demo churn model, compiled at
registration as a user's is) on a local Ray instance of 2 CPUs answers one-row infer requests (a [1, 31]
FP64 tensor) four ways: through Ray Serve's proxies (its gRPC proxy; its HTTP proxy) and, with direct
ingress, on the replica's own ports (gRPC; HTTP), both read from the server's log. REST load comes from
wrk, gRPC load from a small asyncio grpcio generator in this file (requests serialized once, raw tensor
contents as tritonclient sends them, up to 8 connections), each on core 1; Ray places its own processes.
Within each round the four ways alternate at c=1 and c=64, so drift on this shared machine falls on all;
the figures are each point's median over the rounds, the ratios gRPC over REST on the same way in.
Needs the ray extra, wrk and taskset.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
from serve import LUA, wait_ready, wrk

METHOD = "/inference.GRPCInferenceService/ModelInfer"
WAYS = ("REST proxy", "gRPC proxy", "REST direct", "gRPC direct")


def grpc_load(address: str, request_file: Path, concurrency: int, seconds: int) -> dict[str, float]:
    """`load` in a process of its own on core 1, as wrk runs."""
    command = ["taskset", "-c", "1", sys.executable, __file__, "--load", address, str(request_file),
               str(concurrency), str(seconds)]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def said(log: Path, server: subprocess.Popen[bytes], pattern: str, timeout: float = 180) -> str:
    """The first address the server's log gives after `pattern`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        if found := re.search(pattern + r"(\S+)", log.read_text()):
            return found.group(1)
        time.sleep(0.2)
    raise RuntimeError(f"the server never logged {pattern!r}: {log.read_text()[-3000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--load", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        address, request_file, concurrency, seconds = args.load
        print(
            json.dumps(
                grpcload.python_load(address, METHOD, Path(request_file).read_bytes(), int(concurrency), float(seconds))
            )
        )
        return 0

    import grpc
    import httpx
    import numpy as np
    import ray

    from foretell.grpc.stubs.grpc_predict_v2_pb2 import ModelInferResponse

    with tempfile.TemporaryDirectory(prefix="foretell-ray-grpc-bench-") as scratch:
        home, body, lua, request, request_file = grpcload.churn_one_row(Path(scratch), LUA)

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        # With what ray.init set (its auth token); replicas stop after 1 s of draining, not Ray's 30.
        env = {**os.environ, "FORETELL_HOME": str(home), "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1"}
        port, grpc_port = free_port(), free_port()
        command = [sys.executable, "-m", "foretell", "serve", "churn/1", "--engine", "ray", "--replicas", "1",
                   "--ray-address", ray.get_runtime_context().gcs_address, "--port", str(port),
                   "--grpc-port", str(grpc_port), "--reload-seconds", "0", "--no-ledger"]  # fmt: skip
        log = Path(scratch) / "serve.log"
        server = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        points: dict[tuple[str, int], list[dict[str, float]]] = {}
        try:
            replica_http = said(log, server, r"replicas at ")
            replica_grpc = said(log, server, r"replicas answer gRPC on their own ports too, at ")
            wait_ready(replica_http)
            addresses = {
                "REST proxy": f"http://127.0.0.1:{port}/v2/models/churn/infer",
                "gRPC proxy": f"127.0.0.1:{grpc_port}",
                "REST direct": f"{replica_http}/v2/models/churn/infer",
                "gRPC direct": replica_grpc,
            }
            rest = httpx.post(addresses["REST proxy"], content=body, timeout=60).json()
            rest_score = next(o["data"][0] for o in rest["outputs"] if o["name"] == "score")
            for way in ("gRPC proxy", "gRPC direct"):
                with grpc.insecure_channel(addresses[way]) as channel:
                    response = ModelInferResponse.FromString(channel.unary_unary(METHOD)(request.SerializeToString()))
                at = [o.name for o in response.outputs].index("score")
                score = float(np.frombuffer(response.raw_output_contents[at], dtype="<f8")[0])
                assert abs(rest_score - score) <= 1e-9, (way, rest_score, score)
            for _ in range(args.rounds):
                for c in (1, 64):
                    for way in WAYS:
                        point = (
                            wrk(addresses[way], lua, c, args.seconds)
                            if way.startswith("REST")
                            else grpc_load(addresses[way], request_file, c, args.seconds)
                        )
                        points.setdefault((way, c), []).append(point)
        finally:
            server.terminate()
            server.wait(timeout=120)
            ray.shutdown()

    def median(way: str, c: int, key: str) -> float:
        return statistics.median(p[key] for p in points[(way, c)])

    print(f"# ray_grpc_infer: demo churn model, one row, 1 Ray Serve replica on a local Ray of 2 CPUs, load on "
          f"core 1, {args.rounds} rounds x {args.seconds} s per point (medians)")  # fmt: skip
    print(f"{'way in':<12} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for c in (1, 64):
        for way in WAYS:
            print(f"{way:<12} {c:>4} {median(way, c, 'rps'):>9,.0f} {median(way, c, 'p50_ms'):>8.2f} "
                  f"{median(way, c, 'p99_ms'):>8.2f} {sum(p['errors'] for p in points[(way, c)]):>7.0f}")  # fmt: skip
    for path in ("proxy", "direct"):
        for c in (1, 64):
            rps = median(f"gRPC {path}", c, "rps") / median(f"REST {path}", c, "rps")
            p50 = median(f"gRPC {path}", c, "p50_ms") / median(f"REST {path}", c, "p50_ms")
            print(f"gRPC/REST {path} c={c}: req/s {rps:.2f}x, p50 {p50:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
