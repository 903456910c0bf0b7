"""A traced gRPC server: each RPC is a server span continuing the caller's `traceparent`, with the same
children as a REST request, and its `traceparent` comes back in the trailing metadata.

The server runs as a real `foretell serve --grpc-port --tracing` process writing its spans with the
SDK's console exporter (the OTEL_* variables), so the test reads the spans it made from its output.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from servekit import free_port, rows, server
from tritonclient.grpc import service_pb2, service_pb2_grpc

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def spans_in(log: Path) -> list[dict[str, Any]]:
    """The spans the console exporter wrote: JSON objects, each from a line `{` to a line `}`."""
    found, lines = [], None
    for line in log.read_text().splitlines():
        if line == "{":
            lines = [line]
        elif lines is not None:
            lines.append(line)
            if line == "}":
                found.append(json.loads("\n".join(lines)))
                lines = None
    return found


def infer_request(model: str, n: int) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=model)
    request.inputs.add(name="input", datatype="FP64", shape=[n, 4])
    request.raw_input_contents.append(np.ascontiguousarray(rows(n, 5), dtype="<f8").tobytes())
    return request


def test_a_traced_rpc_continues_the_callers_trace_and_answers_its_traceparent(home, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_SERVICE_NAME": "grpc-test"}
    with server(home, "clf", "--grpc-port", str(port), "--tracing", env=env, log=log):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            caller = [("traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01")]
            answer, call = stub.ModelInfer.with_call(infer_request("clf", 3), metadata=caller, timeout=30)
            assert len(answer.raw_output_contents) >= 1
            trailing = dict(call.trailing_metadata() or ())
            with pytest.raises(grpc.RpcError) as refused:
                stub.ModelInfer(infer_request("nope", 1), timeout=30)
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
            refused_trailing = dict(refused.value.trailing_metadata() or ())
        deadline = time.monotonic() + 20
        while len([s for s in spans_in(log) if s["kind"] == "SpanKind.SERVER"]) < 2:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
    found = spans_in(log)
    served = [s for s in found if s["kind"] == "SpanKind.SERVER"]
    ok = next(s for s in served if s["attributes"].get("foretell.model") == "clf")
    assert ok["name"] == "infer"  # renamed after the endpoint, as REST's are
    assert ok["context"]["trace_id"] == f"0x{CALLER_TRACE}" and ok["parent_id"] == f"0x{CALLER_SPAN}"
    assert ok["attributes"]["rpc.system"] == "grpc"
    assert ok["attributes"]["rpc.method"] == "ModelInfer"
    assert ok["attributes"]["rpc.grpc.status_code"] == 0
    assert ok["resource"]["attributes"]["service.name"] == "grpc-test"
    assert trailing["traceparent"] == f"00-{CALLER_TRACE}-{ok['context']['span_id'][2:]}-01"
    under = {s["name"] for s in found if s["parent_id"] == ok["context"]["span_id"]}
    assert {"decode", "queue wait", "ledger enqueue"} <= under, under
    batch = next(s for s in found if s["name"] == "batch" and s["links"])
    assert ok["context"]["span_id"] in {link["context"]["span_id"] for link in batch["links"]}
    missing = next(s for s in served if s is not ok)
    assert missing["attributes"]["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert refused_trailing["traceparent"].split("-")[2] == missing["context"]["span_id"][2:]
