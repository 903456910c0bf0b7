"""`foretell serve --engine ray --grpc-port`: the OIP's gRPC service through Ray Serve's gRPC proxy.

One server for the module (Ray on two shared cores is slow to start), with an API key, so
every call but the probes carries it. What is particular to Ray is checked here: every RPC
through the proxy, parity with REST on the same replicas, the status codes and REST's
messages a replica sets on Ray's context, and the key and size limit a replica enforces
itself. The contract in depth (every tensor form, typed contents, ...) is the local server's,
in the other modules of this folder: both answer through the same `InferenceServicer`.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
from servekit import free_port, rows, server
from tritonclient.utils import InferenceServerException

from foretell.ledger.segments import LedgerLocation

pytest.importorskip("ray")

pytestmark = pytest.mark.ray

KEY = {"x-api-key": "s3cret"}
MAX_BODY_BYTES = 65536


@dataclass(frozen=True)
class OnRay(Served):
    log: Path
    """The server's output: where it says which ports the replicas answer on."""
    ledger: Path


@pytest.fixture(scope="module")
def on_ray(home: Path, ray_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnRay]:
    folder = tmp_path_factory.mktemp("ray-grpc")
    ledger = f'[ledger]\nflush_seconds = 0.2\nlocation = "{folder / "ledger"}"\n'
    (folder / "serve.toml").write_text('api_key = "s3cret"\n' + ledger)
    port = free_port()
    flags = ("--engine", "ray", "--ray-address", ray_address, "--reload-seconds", "0", "--grpc-port", str(port))
    limits = ("--config", str(folder / "serve.toml"), "--max-body-bytes", str(MAX_BODY_BYTES))
    log = folder / "serve.log"
    with server(home, "clf", "tiers", "topk", *flags, *limits, timeout=180, log=log) as url:
        yield OnRay(url, f"127.0.0.1:{port}", log, folder / "ledger")


def refusal(call: object) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_every_rpc_answers_through_rays_grpc_proxy(on_ray: Served) -> None:
    client = grpcclient.InferenceServerClient(on_ray.grpc)
    assert client.is_server_live() and client.is_server_ready()  # the probes need no key
    assert client.is_model_ready("clf", headers=KEY)
    assert client.get_server_metadata(headers=KEY, as_json=True)["name"] == "foretell"
    metadata = client.get_model_metadata("topk", headers=KEY, as_json=True)
    assert [o["name"] for o in metadata["outputs"]] == ["items", "scores"]
    x = rows(1000, seed=4)
    answer = client.infer("clf", [tensor("input", x, "FP64")], headers=KEY)
    body = {"inputs": [{"name": "input", "datatype": "FP64", "shape": list(x.shape), "data": x.ravel().tolist()}]}
    rest = httpx.post(f"{on_ray.url}/v2/models/clf/infer", json=body, headers=KEY, timeout=60).json()
    for output in rest["outputs"]:
        np.testing.assert_array_equal(answer.as_numpy(output["name"]).ravel(), output["data"])
    per_feature = client.infer(
        "clf", [tensor(name, x[:, i].copy(), "FP64") for i, name in enumerate("abcd")], headers=KEY
    )
    np.testing.assert_array_equal(per_feature.as_numpy("proba_1"), answer.as_numpy("proba_1"))
    categories = tensor("tier", np.array([b"pro", b"basic"], dtype=object), "BYTES")
    tiers = client.infer("tiers", [tensor("a", np.array([2.0, 3.0]), "FP64"), categories], headers=KEY)
    np.testing.assert_array_equal(tiers.as_numpy("score"), [20.0, 3.0])
    topk = client.infer("topk", [tensor("user_id", np.array([7], dtype=np.int64), "INT64")], headers=KEY)
    np.testing.assert_array_equal(topk.as_numpy("items"), [[70, 71, 72]])


def test_the_asyncio_client_shares_the_replicas(on_ray: Served) -> None:
    async def session() -> list[np.ndarray]:
        async with aioclient.InferenceServerClient(on_ray.grpc) as client:
            x = [tensor("input", rows(5, seed=6), "FP64")]
            results = await asyncio.gather(*(client.infer("clf", x, headers=KEY) for _ in range(8)))
            return [result.as_numpy("proba_1") for result in results]

    answers = asyncio.run(session())
    for answer in answers:
        np.testing.assert_array_equal(answer, answers[0])


def test_errors_keep_their_codes_and_rest_messages(on_ray: Served) -> None:
    client = grpcclient.InferenceServerClient(on_ray.grpc)
    x = rows(3)
    unknown = refusal(lambda: client.infer("nope", [tensor("input", x, "FP64")], headers=KEY))
    assert unknown.status() == "StatusCode.NOT_FOUND"
    rest = httpx.post(f"{on_ray.url}/v2/models/nope/infer", json={"inputs": []}, headers=KEY, timeout=30)
    assert rest.status_code == 404 and unknown.message() == rest.json()["error"]
    assert refusal(lambda: client.get_model_metadata("nope", headers=KEY)).status() == "StatusCode.NOT_FOUND"
    misnamed = [tensor("a", x[:, 0].copy(), "FP64"), tensor("zz", x[:, 1].copy(), "FP64")]
    bad = refusal(lambda: client.infer("clf", misnamed, headers=KEY))
    assert bad.status() == "StatusCode.INVALID_ARGUMENT"
    body = {
        "inputs": [
            {"name": "a", "shape": [3], "datatype": "FP64", "data": x[:, 0].tolist()},
            {"name": "zz", "shape": [3], "datatype": "FP64", "data": x[:, 1].tolist()},
        ]
    }
    rest = httpx.post(f"{on_ray.url}/v2/models/clf/infer", json=body, headers=KEY, timeout=30)
    assert rest.status_code == 400 and bad.message() == rest.json()["error"]
    late = refusal(lambda: client.infer("clf", [tensor("input", x, "FP64")], timeout=1, headers=KEY))  # 1 µs
    assert late.status() == "StatusCode.DEADLINE_EXCEEDED" and "it was not run" in late.message()
    big = refusal(lambda: client.infer("clf", [tensor("input", rows(5000), "FP64")], headers=KEY))
    assert big.status() == "StatusCode.RESOURCE_EXHAUSTED"
    assert big.message().startswith("Received message larger than max"), big.message()


def test_the_api_key_guards_every_rpc_but_the_probes(on_ray: Served) -> None:
    client = grpcclient.InferenceServerClient(on_ray.grpc)
    x = [tensor("input", rows(2), "FP64")]
    for call in (
        lambda: client.infer("clf", x),
        lambda: client.infer("clf", x, headers={"x-api-key": "nope"}),
        lambda: client.get_model_metadata("clf"),
        lambda: client.is_model_ready("clf"),
    ):
        refused = refusal(call)
        assert refused.status() == "StatusCode.UNAUTHENTICATED"
        assert refused.message() == "missing or wrong API key"
    assert client.infer("clf", x, headers={"authorization": "Bearer s3cret"}).as_numpy("label") is not None


def test_with_direct_ingress_a_replica_answers_grpc_on_its_own_port(on_ray: OnRay) -> None:
    deadline = time.monotonic() + 60
    while not (found := re.search(r"replicas answer gRPC on their own ports too, at (\S+)", on_ray.log.read_text())):
        assert time.monotonic() < deadline, on_ray.log.read_text()
        time.sleep(0.1)
    replica = found.group(1)
    assert re.fullmatch(r"127\.0\.0\.1:\d+", replica) and replica != on_ray.grpc, replica
    direct = grpcclient.InferenceServerClient(replica)
    x = [tensor("input", rows(4, seed=8), "FP64")]
    through_proxy = grpcclient.InferenceServerClient(on_ray.grpc).infer("clf", x, headers=KEY)
    np.testing.assert_array_equal(
        direct.infer("clf", x, headers=KEY).as_numpy("proba_1"), through_proxy.as_numpy("proba_1")
    )
    assert refusal(lambda: direct.infer("clf", x)).status() == "StatusCode.UNAUTHENTICATED"


def test_health_from_the_replicas_and_reflection_from_rays_proxy(on_ray: OnRay) -> None:
    with grpc.insecure_channel(on_ray.grpc) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        serving = health_pb2.HealthCheckResponse.SERVING
        for service in ("", "inference.GRPCInferenceService"):  # no key: probes are open
            assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == serving
        with pytest.raises(grpc.RpcError) as caught:
            health.Check(health_pb2.HealthCheckRequest(service="nope"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND and "'nope'" in (caught.value.details() or "")
        listed = health.List(health_pb2.HealthListRequest())
        assert {name: status.status for name, status in listed.statuses.items()} == {
            "": serving,
            "inference.GRPCInferenceService": serving,
        }
        with pytest.raises(grpc.RpcError) as caught:  # an endless stream would hold a stopping replica
            next(health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30))
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        database = ProtoReflectionDescriptorDatabase(channel)
        assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= set(database.get_services())
        described = database.FindFileContainingSymbol("inference.GRPCInferenceService")
        assert "ModelInfer" in {m.name for m in described.service[0].method}


def test_a_running_serve_whose_grpc_proxy_is_elsewhere_is_refused(on_ray: OnRay, home: Path, ray_address: str) -> None:
    """The module's server runs Serve, its gRPC proxy fixed on its port: a second server cannot move it, and says so."""
    elsewhere = str(free_port())
    on_ray_too = ("--engine", "ray", "--ray-address", ray_address, "--port", str(free_port()))
    refused = subprocess.run(
        [sys.executable, "-m", "foretell", "serve", "clf", *on_ray_too, "--grpc-port", elsewhere],
        env={**os.environ, "FORETELL_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    said = " ".join(refused.stderr.replace("│", " ").split())
    assert "Ray Serve is already running" in said and f"grpc_options port {elsewhere}" in said, refused.stderr
    assert grpcclient.InferenceServerClient(on_ray.grpc).is_model_ready("clf", headers=KEY)  # untouched


def test_a_prediction_over_grpc_on_ray_is_in_the_ledger_as_grpc(on_ray: OnRay) -> None:
    client = grpcclient.InferenceServerClient(on_ray.grpc)
    result = client.infer("clf", [tensor("input", rows(3), "FP64")], request_id="ray-grpc-1", headers=KEY)
    prediction_id = result.get_response().parameters["prediction_id"].string_param
    assert prediction_id
    deadline = time.monotonic() + 30
    while not (found := [r for r in ledger_rows(on_ray.ledger, "clf") if r["prediction_id"] == prediction_id]):
        assert time.monotonic() < deadline, "the gRPC prediction never reached the ledger"
        time.sleep(0.1)
    assert (found[0]["transport"], found[0]["endpoint"], found[0]["request_id"]) == ("grpc", "infer", "ray-grpc-1")


def ledger_rows(ledger: Path, model: str) -> list[dict[str, object]]:
    files = LedgerLocation(ledger).segment_files(model)
    if not files:
        return []
    relation = duckdb.sql(f"SELECT * FROM read_parquet({files!r}, union_by_name=true)")
    assert relation is not None
    return relation.to_arrow_table().to_pylist()
