"""Load generators and floor servers for benchmarks/grpc_infer.py.

`h2load` (nghttp2's C load generator) speaks gRPC's framing for unary calls: a POST whose body is the
5-byte message prefix (0, then the length as a big-endian uint32) and the serialized request, with
`content-type: application/grpc` and `te: trailers`. It does not read the grpc-status trailer, so the
caller checks one answer by itself first. Its per-request log gives the latency percentiles.

The floor servers answer as little as their stack allows, to say what the stack costs by itself:
grpc.aio and grpc's thread-pool server with a generic handler (bytes in, the same bytes out), a bare
ASGI app under uvicorn + httptools answering a small JSON, and, where pyvoy is installed (it is not a
dependency of foretell), the same gRPC echo as an ASGI app under pyvoy: Envoy's HTTP/2, which carries
the trailers gRPC needs (the ASGI `http.response.trailers` extension), with the app in Python.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

H2LOAD = shutil.which("h2load")
PYVOY = shutil.which("pyvoy") or os.environ.get("FORETELL_BENCH_PYVOY")
"""pyvoy's command, for its floor: on PATH, or named by FORETELL_BENCH_PYVOY (a venv of its own)."""


def grpc_frame(message: bytes) -> bytes:
    """One gRPC length-prefixed message, uncompressed."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def h2load(url: str, body: bytes | None, concurrency: int, seconds: int, *, h1: bool = False) -> dict[str, float]:
    """h2load on core 1 for `seconds` (after 1 s of warm-up): req/s, p50, p99, max (ms) and errors.

    Over HTTP/2 (gRPC) `concurrency` is up to 8 connections with streams spread over them; over HTTP/1.1 (`h1`)
    one request in flight per connection, as wrk does.
    """
    if H2LOAD is None:
        raise RuntimeError("h2load is not installed")
    connections = concurrency if h1 else min(8, concurrency)
    streams = 1 if h1 else concurrency // connections
    with tempfile.TemporaryDirectory(prefix="foretell-h2load-") as scratch:
        log = Path(scratch) / "requests.log"
        command = ["taskset", "-c", "1", H2LOAD, "-t1", f"-c{connections}", f"-m{streams}", f"-D{seconds}",
                   "--warm-up-time=1", f"--log-file={log}"]  # fmt: skip
        if body is not None:
            data = Path(scratch) / "body.bin"
            data.write_bytes(body)
            command += ["-d", str(data)]
        if h1:
            command.append("--h1")
        else:
            command += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
        out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
        rows = [line.split("\t") for line in log.read_text().splitlines() if line]
    latencies = sorted(int(row[2]) / 1e3 for row in rows)
    errors = sum(1 for row in rows if row[1] != "200")
    if not latencies:
        raise RuntimeError(f"h2load logged no request:\n{out}")
    return {
        "rps": len(latencies) / seconds,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "max_ms": latencies[-1],
        "errors": errors,
    }


def aio_floor(port: int, *, uvloop: bool = False) -> None:
    """grpc.aio with one generic unary handler that echoes its request: grpcio's asyncio server alone
    (on uvloop when `uvloop`, as under `foretell serve`, whose uvicorn picks uvloop when installed)."""
    import asyncio

    import grpc

    async def echo(request: bytes, context: object) -> bytes:
        return request

    async def serve() -> None:
        server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(echo)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("floor.Floor", {"Echo": handler})])
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    if uvloop:
        import uvloop as loops

        loops.run(serve())
    else:
        asyncio.run(serve())


def sync_floor(port: int, threads: int = 4) -> None:
    """grpc's thread-pool server with the same echo handler."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    def echo(request: bytes, context: object) -> bytes:
        return request

    server = grpc.server(ThreadPoolExecutor(threads))
    handler = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("floor.Floor", {"Echo": handler})])
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


async def _asgi_floor(scope: dict[str, object], receive: object, send: object) -> None:
    """A bare ASGI app: reads nothing, answers a constant JSON."""
    if scope["type"] != "http":
        return
    await send(  # type: ignore[operator]
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": b'{"live":true}'})  # type: ignore[operator]


def asgi_floor(port: int) -> None:
    """`_asgi_floor` under uvicorn with httptools and uvloop, as `foretell serve` runs."""
    import uvicorn

    uvicorn.run(_asgi_floor, host="127.0.0.1", port=port, http="httptools", loop="uvloop", log_level="error")


_GRPC_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/grpc")],
    "trailers": True,
}
_GRPC_OK = {"type": "http.response.trailers", "headers": [(b"grpc-status", b"0")], "more_trailers": False}


async def grpc_echo_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A gRPC unary echo as plain ASGI: the request's framed message back, then `grpc-status: 0` as a trailer."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await send(_GRPC_START)
    await send({"type": "http.response.body", "body": body, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    await send(_GRPC_OK)


def pyvoy_floor(port: int) -> None:
    """`grpc_echo_asgi` under pyvoy (Envoy with the app in an embedded Python), in the foreground."""
    if PYVOY is None:
        raise RuntimeError("pyvoy is not installed (pip install pyvoy, or FORETELL_BENCH_PYVOY=/path/to/pyvoy)")
    here = str(Path(__file__).parent)
    command = [PYVOY, "--port", str(port), "--log-level", "error", "--loop", "uvloop", "grpcload:grpc_echo_asgi"]
    os.execve(PYVOY, command, {**os.environ, "PYTHONPATH": here})


class OneRow(NamedTuple):
    home: Path
    body: str  # the OIP JSON request
    lua: Path  # a wrk script posting `body`
    request: Any  # the ModelInferRequest, raw contents
    request_file: Path  # `request` serialized


def churn_one_row(scratch: Path, lua_template: str) -> OneRow:
    """The demo churn model registered in `scratch`/home, and one row to infer over REST and gRPC."""
    import json

    import joblib
    import numpy as np

    import foretell
    from foretell.demo.churn import CHURN_SIGNATURE, features_matrix, generate_customers, train_churn
    from foretell.grpc.stubs.grpc_predict_v2_pb2 import ModelInferRequest

    home = scratch / "home"
    customers = generate_customers(20_000, seed=1)
    path = scratch / "churn.joblib"
    joblib.dump(train_churn(customers, seed=7), path)
    foretell.register("churn", path, flavor="sklearn", signature=CHURN_SIGNATURE, home=home)
    row = features_matrix(customers.select(CHURN_SIGNATURE.input_names).slice(0, 1))
    body = json.dumps({"inputs": [{"name": "input", "datatype": "FP64", "shape": list(row.shape),
                                   "data": row.reshape(-1).tolist()}]})  # fmt: skip
    lua = scratch / "post.lua"
    lua.write_text(lua_template.replace("{body}", body))
    request = ModelInferRequest(model_name="churn")
    request.inputs.add(name="input", datatype="FP64", shape=list(row.shape))
    request.raw_input_contents.append(np.ascontiguousarray(row, dtype="<f8").tobytes())
    request_file = scratch / "infer.pb"
    request_file.write_bytes(request.SerializeToString())
    return OneRow(home, body, lua, request, request_file)


def python_load(address: str, method: str, request: bytes, concurrency: int, seconds: float) -> dict[str, float]:
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
