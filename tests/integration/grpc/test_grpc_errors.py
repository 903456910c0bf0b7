"""Every gRPC error code a client can meet, from a real `foretell serve --grpc-port`, with REST's message."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from grpckit import Served, tensor
from servekit import free_port, rows, server
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException


def refusal(call: object) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_unknown_model_and_version_are_not_found(served: Served) -> None:
    client = grpcclient.InferenceServerClient(served.grpc)
    x = rows(2)
    unknown = refusal(lambda: client.infer("nope", [tensor("input", x, "FP64")]))
    assert unknown.status() == "StatusCode.NOT_FOUND"
    rest = httpx.post(f"{served.url}/v2/models/nope/infer", json={"inputs": []}, timeout=10)
    assert rest.status_code == 404
    assert unknown.message() == rest.json()["error"]
    version = refusal(lambda: client.infer("clf", [tensor("input", x, "FP64")], model_version="9"))
    assert version.status() == "StatusCode.NOT_FOUND"
    assert refusal(lambda: client.get_model_metadata("nope")).status() == "StatusCode.NOT_FOUND"
    # Counted apart from REST's 404s: the transport is a label, the status gRPC's code number (5: NOT_FOUND).
    counted = httpx.get(f"{served.url}/metrics", timeout=10).text.splitlines()
    assert any(line.startswith('foretell_requests_total{endpoint="infer",model="-",status="5",transport="grpc"}')
               for line in counted)  # fmt: skip
    assert any(line.startswith('foretell_requests_total{endpoint="infer",model="-",status="404",transport="http"}')
               for line in counted)  # fmt: skip


def test_bad_input_is_invalid_argument_with_the_rest_message(served: Served) -> None:
    client = grpcclient.InferenceServerClient(served.grpc)
    x = rows(3)
    bad = refusal(
        lambda: client.infer("clf", [tensor("a", x[:, 0].copy(), "FP64"), tensor("zz", x[:, 1].copy(), "FP64")])
    )
    assert bad.status() == "StatusCode.INVALID_ARGUMENT"
    body = {
        "inputs": [
            {"name": "a", "shape": [3], "datatype": "FP64", "data": x[:, 0].tolist()},
            {"name": "zz", "shape": [3], "datatype": "FP64", "data": x[:, 1].tolist()},
        ]
    }
    rest = httpx.post(f"{served.url}/v2/models/clf/infer", json=body, timeout=10)
    assert rest.status_code == 400
    assert bad.message() == rest.json()["error"]
    assert "missing" in bad.message() and "'zz'" in bad.message()


def test_an_unknown_category_is_invalid_argument_naming_it(served: Served) -> None:
    client = grpcclient.InferenceServerClient(served.grpc)
    inputs = [tensor("a", np.array([1.0]), "FP64"), tensor("tier", np.array([b"gold"], dtype=object), "BYTES")]
    bad = refusal(lambda: client.infer("tiers", inputs))
    assert bad.status() == "StatusCode.INVALID_ARGUMENT"
    assert "gold" in bad.message()


def test_typed_contents_are_read_as_raw_ones_are(served: Served) -> None:
    """`contents.fp64_contents` instead of raw bytes: tritonclient's own messages, sent by its own stub."""
    x = rows(4, seed=5)
    request = service_pb2.ModelInferRequest(model_name="clf")
    given = request.inputs.add(name="input", datatype="FP64", shape=[4, 4])
    given.contents.fp64_contents.extend(x.reshape(-1).tolist())
    with grpc.insecure_channel(served.grpc) as channel:
        typed = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
        short = service_pb2.ModelInferRequest(model_name="clf")
        short.inputs.add(name="input", datatype="FP64", shape=[4, 4]).contents.fp64_contents.extend([1.0])
        with pytest.raises(grpc.RpcError) as caught:
            service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(short)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "needs 16 values in contents.fp64_contents, got 1" in caught.value.details()
    raw = grpcclient.InferenceServerClient(served.grpc).infer("clf", [tensor("input", x, "FP64")])
    assert [o.name for o in typed.outputs] == [o.name for o in raw.get_response().outputs]
    assert list(typed.raw_output_contents) == list(raw.get_response().raw_output_contents)


def test_a_shape_numpy_cannot_hold_is_invalid_argument_not_internal(served: Served) -> None:
    """Zero values in all, so the count check passes, but no array has dimensions this large."""
    request = service_pb2.ModelInferRequest(model_name="clf")
    request.inputs.add(name="input", datatype="FP64", shape=[2**62, 2**62, 0])
    request.raw_input_contents.append(b"")
    with grpc.insecure_channel(served.grpc) as channel, pytest.raises(grpc.RpcError) as caught:
        service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input 'input': shape [4611686018427387904, 4611686018427387904, 0] cannot be held" in caught.value.details()


def test_a_passed_deadline_is_deadline_exceeded_before_inference(served: Served) -> None:
    client = grpcclient.InferenceServerClient(served.grpc)
    x = rows(2)
    late = refusal(lambda: client.infer("clf", [tensor("input", x, "FP64")], timeout=1))  # 1 µs: Triton's unit
    assert late.status() == "StatusCode.DEADLINE_EXCEEDED"
    assert "it was not run" in late.message()
    header = refusal(lambda: client.infer("clf", [tensor("input", x, "FP64")], headers={"x-request-timeout": "1e-9"}))
    assert header.status() == "StatusCode.DEADLINE_EXCEEDED"
    assert "it was not run" in header.message()


def test_full_queue_is_resource_exhausted(home: Path) -> None:
    port = free_port()
    with server(home, "slow", "--grpc-port", str(port), "--max-queue", "1", "--max-batch-size", "1"):

        async def burst() -> list[BaseException | object]:
            async with aioclient.InferenceServerClient(f"127.0.0.1:{port}") as client:
                calls = [client.infer("slow", [tensor("a", np.array([float(i)]), "FP64")]) for i in range(4)]
                return await asyncio.gather(*calls, return_exceptions=True)

        outcomes = asyncio.run(burst())
    refused = [o for o in outcomes if isinstance(o, InferenceServerException)]
    assert refused, outcomes
    assert {o.status() for o in refused} == {"StatusCode.RESOURCE_EXHAUSTED"}
    assert any(not isinstance(o, BaseException) for o in outcomes)


def test_a_message_over_the_body_limit_is_resource_exhausted(home: Path) -> None:
    port = free_port()
    with server(home, "clf", "--grpc-port", str(port), "--max-body-bytes", "4096"):
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        big = refusal(lambda: client.infer("clf", [tensor("input", rows(1000), "FP64")]))
        assert big.status() == "StatusCode.RESOURCE_EXHAUSTED"
        small = client.infer("clf", [tensor("input", rows(2), "FP64")])
        assert small.as_numpy("label") is not None


def test_the_api_key_guards_every_rpc_but_the_probes(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text('api_key = "s3cret"\n')
    port = free_port()
    with server(home, "clf", "--grpc-port", str(port), "--config", str(config)):
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        assert client.is_server_live() and client.is_server_ready()
        x = [tensor("input", rows(2), "FP64")]
        assert refusal(lambda: client.infer("clf", x)).status() == "StatusCode.UNAUTHENTICATED"
        wrong = refusal(lambda: client.infer("clf", x, headers={"x-api-key": "nope"}))
        assert wrong.status() == "StatusCode.UNAUTHENTICATED"
        assert wrong.message() == "missing or wrong API key"
        assert refusal(lambda: client.get_model_metadata("clf")).status() == "StatusCode.UNAUTHENTICATED"
        assert client.infer("clf", x, headers={"authorization": "Bearer s3cret"}).as_numpy("label") is not None
        assert client.infer("clf", x, headers={"x-api-key": "s3cret"}).as_numpy("label") is not None
