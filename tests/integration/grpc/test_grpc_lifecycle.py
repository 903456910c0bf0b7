"""The gRPC server's life beside REST: the asyncio client, health and reflection, the ledger, SIGTERM's drain,
and `--workers` sharing the port."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from grpckit import Served, tensor
from servekit import free_port, listening_pids, rows, server
from tritonclient.utils import InferenceServerException

from foretell.ledger.segments import LedgerLocation


def test_the_asyncio_client_speaks_every_rpc(served: Served) -> None:
    async def session() -> None:
        async with aioclient.InferenceServerClient(served.grpc) as client:
            assert await client.is_server_live()
            assert await client.is_server_ready()
            assert await client.is_model_ready("topk")
            assert (await client.get_server_metadata(as_json=True))["name"] == "foretell"
            assert (await client.get_model_metadata("topk", as_json=True))["outputs"][0]["name"] == "items"
            x = rows(20, seed=2)
            results = await asyncio.gather(*(client.infer("clf", [tensor("input", x, "FP64")]) for _ in range(8)))
            first = results[0].as_numpy("proba_1")
            for result in results:
                np.testing.assert_array_equal(result.as_numpy("proba_1"), first)
            tiers = await client.infer(
                "tiers",
                [tensor("a", np.array([2.0]), "FP64"), tensor("tier", np.array([b"pro"], dtype=object), "BYTES")],
            )
            np.testing.assert_array_equal(tiers.as_numpy("score"), [20.0])

    asyncio.run(session())


def test_health_and_reflection(served: Served) -> None:
    with grpc.insecure_channel(served.grpc) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= services
        described = database.FindFileContainingSymbol("inference.GRPCInferenceService")
        assert {m.name for m in described.service[0].method} == {
            "ServerLive",
            "ServerReady",
            "ModelReady",
            "ServerMetadata",
            "ModelMetadata",
            "ModelInfer",
        }


def ledger_rows(home: Path, model: str) -> list[dict[str, Any]]:
    files = LedgerLocation(home / "ledger").segment_files(model)
    if not files:
        return []
    relation = duckdb.sql(f"SELECT * FROM read_parquet({files!r}, union_by_name=true)")
    assert relation is not None
    return relation.to_arrow_table().to_pylist()


def test_a_grpc_prediction_is_in_the_ledger_as_grpc(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(f'[ledger]\nflush_seconds = 0.2\nlocation = "{tmp_path / "ledger"}"\n')
    port = free_port()
    with server(home, "clf", "--grpc-port", str(port), "--config", str(config)):
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        result = client.infer("clf", [tensor("input", rows(3), "FP64")], request_id="grpc-req-1")
        prediction_id = result.get_response().parameters["prediction_id"].string_param
        assert prediction_id
        deadline = time.monotonic() + 10
        while not (found := [r for r in ledger_rows(tmp_path, "clf") if r["prediction_id"] == prediction_id]):
            assert time.monotonic() < deadline, "the gRPC prediction never reached the ledger"
            time.sleep(0.05)
    assert found[0]["transport"] == "grpc"
    assert found[0]["endpoint"] == "infer"
    assert found[0]["request_id"] == "grpc-req-1"


def test_sigterm_lets_an_in_flight_request_finish(home: Path) -> None:
    port = free_port()
    with server(home, "slow", "--grpc-port", str(port)) as url:
        (pid,) = listening_pids(url)

        async def during_sigterm() -> tuple[np.ndarray, BaseException | None]:
            async with aioclient.InferenceServerClient(f"127.0.0.1:{port}") as client:
                pending = asyncio.ensure_future(client.infer("slow", [tensor("a", np.array([21.0]), "FP64")]))
                await asyncio.sleep(0.3)  # the model takes a second: the request is in flight
                os.kill(pid, signal.SIGTERM)
                await asyncio.sleep(0.2)
                late: BaseException | None = None
                try:
                    await client.infer("slow", [tensor("a", np.array([1.0]), "FP64")], client_timeout=5)
                except Exception as refused:
                    late = refused
                return (await pending).as_numpy("score"), late

        score, late = asyncio.run(during_sigterm())
    np.testing.assert_array_equal(score, [42.0])
    assert late is not None, "a request sent during the drain was answered"


def test_sigterm_stops_new_rpcs_at_once_while_http_still_drains(home: Path) -> None:
    """gRPC drains alongside HTTP, not after it: an HTTP request in flight holds the HTTP drain, yet a new RPC sent
    after the signal is already refused, and health said NOT_SERVING or stopped answering."""
    port = free_port()
    with server(home, "slow", "--grpc-port", str(port)) as url:
        (pid,) = listening_pids(url)
        body = {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [21.0]}]}
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(httpx.post, f"{url}/v2/models/slow/infer", json=body, timeout=30)
            time.sleep(0.3)  # the model takes a second: the HTTP request is in it
            os.kill(pid, signal.SIGTERM)
            time.sleep(0.2)
            late = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
            with late, pytest.raises(InferenceServerException):
                late.infer("slow", [tensor("a", np.array([1.0]), "FP64")], client_timeout=5)
            assert not in_flight.done(), "the HTTP request ended before the RPC was tried: nothing was tested"
            answer = in_flight.result()
    assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [42.0]


def _model_calls(url: str, model: str) -> float:
    line = f'foretell_batch_size_count{{model="{model}"}} '
    text = httpx.get(f"{url}/metrics").text
    return next((float(row.removeprefix(line)) for row in text.splitlines() if row.startswith(line)), 0.0)


def test_a_cancelled_rpc_leaves_the_queue_without_running(home: Path) -> None:
    """A client that gives up on a queued request frees its place: the model never runs it. The RPC waits for
    its answer in one of grpc's threads while it runs on the event loop; grpc's end of the RPC cancels it there."""
    port = free_port()
    with server(home, "slow", "--grpc-port", str(port), "--max-batch-size", "1") as url:
        before = _model_calls(url, "slow")

        async def give_up_on_the_second() -> np.ndarray:
            async with aioclient.InferenceServerClient(f"127.0.0.1:{port}") as client:
                first = asyncio.ensure_future(client.infer("slow", [tensor("a", np.array([21.0]), "FP64")]))
                await asyncio.sleep(0.3)  # the model takes a second: the first request is in it
                second = asyncio.ensure_future(client.infer("slow", [tensor("a", np.array([1.0]), "FP64")]))
                await asyncio.sleep(0.3)  # queued behind the first
                second.cancel()
                answered = (await first).as_numpy("score")
                await asyncio.sleep(1.5)  # long enough for the model to have run the second, had it stayed
                return answered

        score = asyncio.run(give_up_on_the_second())
        np.testing.assert_array_equal(score, [42.0])
        assert _model_calls(url, "slow") - before == 1


def test_workers_share_the_grpc_port(home: Path) -> None:
    """Each worker process binds the gRPC port too (grpc sets SO_REUSEPORT): both listen, every call is answered."""
    port = free_port()
    with server(home, "clf", "--grpc-port", str(port), "--workers", "2"):
        deadline = time.monotonic() + 30  # ready means one worker is: the other may still be loading its models
        while len(listening_pids(f"http://127.0.0.1:{port}")) < 2:
            assert time.monotonic() < deadline, "the second worker never listened on the gRPC port"
            time.sleep(0.1)
        for _ in range(20):  # a new connection each time, to whichever worker the kernel picks
            with grpcclient.InferenceServerClient(f"127.0.0.1:{port}") as client:
                assert client.infer("clf", [tensor("input", rows(1), "FP64")]).as_numpy("label") is not None
