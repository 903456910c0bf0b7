"""`inference.GRPCInferenceService`: the OIP's six RPCs, answered through the same `InferenceService` as REST.

Each RPC decodes its message, runs through `InferenceService.observed` (metrics, failures, the
ledger with transport "grpc") and `InferenceService.infer` (validation, deadline, the model's
micro-batcher, rollouts), and encodes the outcome. A failure ends the RPC with its status code
(`answers`) and REST's message as details.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version as package_version
from typing import Any, TypeVar

import grpc

from foretell.grpc.answers import GrpcAnswers, Outcome
from foretell.grpc.messages import decode_model_infer, encode_model_infer
from foretell.grpc.stubs.grpc_predict_v2_pb2 import (
    ModelInferRequest,
    ModelInferResponse,
    ModelMetadataRequest,
    ModelMetadataResponse,
    ModelReadyRequest,
    ModelReadyResponse,
    ServerLiveRequest,
    ServerLiveResponse,
    ServerMetadataRequest,
    ServerMetadataResponse,
    ServerReadyRequest,
    ServerReadyResponse,
)
from foretell.http.inference import request_deadline
from foretell.http.tensors import inputs_from_request, tensors_from_predictions
from foretell.protocols.oip import model_metadata
from foretell.serving.service import Call, InferenceService, deadline_after

__all__ = ["SERVICE_NAME", "InferenceServicer", "method_handlers"]

SERVICE_NAME = "inference.GRPCInferenceService"
SERVER_NAME = "foretell"
EXTENSIONS = ["model_repository"]

Message = TypeVar("Message")


class InferenceServicer:
    """The six RPCs; `context` is grpc.aio's `ServicerContext`."""

    def __init__(self, service: InferenceService) -> None:
        self.service = service
        self.version = package_version("foretell")

    async def ServerLive(self, request: ServerLiveRequest, context: Any) -> ServerLiveResponse:  # noqa: N802
        return ServerLiveResponse(live=True)

    async def ServerReady(self, request: ServerReadyRequest, context: Any) -> ServerReadyResponse:  # noqa: N802
        return ServerReadyResponse(ready=self.service.ready)

    async def ServerMetadata(  # noqa: N802
        self, request: ServerMetadataRequest, context: Any
    ) -> ServerMetadataResponse:
        return ServerMetadataResponse(name=SERVER_NAME, version=self.version, extensions=EXTENSIONS)

    async def ModelReady(self, request: ModelReadyRequest, context: Any) -> ModelReadyResponse:  # noqa: N802
        async def work(call: Call) -> Outcome[ModelReadyResponse]:
            self.service.resolve(call, request.name, request.version or None)
            return Outcome(ModelReadyResponse(ready=self.service.ready))

        return await self._answer("ready", work, context)

    async def ModelMetadata(  # noqa: N802
        self, request: ModelMetadataRequest, context: Any
    ) -> ModelMetadataResponse:
        async def work(call: Call) -> Outcome[ModelMetadataResponse]:
            slot = self.service.resolve(call, request.name, request.version or None)
            model = slot.model
            document = model_metadata(
                slot.name, [str(model.info.version)], f"foretell_{model.info.flavor}", model.signature
            )
            response = ModelMetadataResponse(
                name=document["name"], versions=document["versions"], platform=document["platform"]
            )
            for tensor in document["inputs"]:
                response.inputs.add(name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"])
            for tensor in document["outputs"]:
                response.outputs.add(name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"])
            return Outcome(response)

        return await self._answer("metadata", work, context)

    async def ModelInfer(self, request: ModelInferRequest, context: Any) -> ModelInferResponse:  # noqa: N802
        async def work(call: Call) -> Outcome[ModelInferResponse]:
            slot = self.service.resolve(call, request.model_name, request.model_version or None)
            decoded = decode_model_infer(request)
            metadata = dict(context.invocation_metadata() or ())
            call.request_id = decoded.id or metadata.get("x-request-id")
            deadline = _earliest(
                request_deadline(metadata.get("x-request-timeout"), decoded.timeout_seconds),
                _rpc_deadline(context.time_remaining()),
            )
            rows = inputs_from_request(slot.model.signature, decoded)
            inference = await self.service.infer(slot, rows, deadline=deadline, call=call, keys=decoded.keys)
            names, _ = decoded.select_outputs(o.name for o in inference.predictions.outputs)
            tensors = tensors_from_predictions(inference.predictions, names)
            return Outcome(
                encode_model_infer(slot.name, str(inference.version), decoded.id, tensors, call.prediction_id)
            )

        return await self._answer("infer", work, context)

    async def _answer(
        self, endpoint: str, work: Callable[[Call], Awaitable[Outcome[Message]]], context: Any
    ) -> Message:
        outcome = await self.service.observed(endpoint, work, GrpcAnswers[Message](), over="grpc")
        if outcome.message is None:
            await context.abort(outcome.code, outcome.details)
        assert outcome.message is not None  # abort raises
        return outcome.message


def _rpc_deadline(remaining: float | None) -> float | None:
    """The RPC's own deadline (grpc-timeout) on the monotonic clock; one already past stays past."""
    if remaining is None:
        return None
    return deadline_after(remaining) if remaining > 0 else time.monotonic()


def _earliest(*deadlines: float | None) -> float | None:
    given = [d for d in deadlines if d is not None]
    return min(given) if given else None


def method_handlers(servicer: InferenceServicer) -> grpc.GenericRpcHandler:
    """The service's handlers for a grpc.aio server, each (de)serialising its own messages."""
    rpcs: dict[str, tuple[Any, Any, Any]] = {
        "ServerLive": (servicer.ServerLive, ServerLiveRequest, ServerLiveResponse),
        "ServerReady": (servicer.ServerReady, ServerReadyRequest, ServerReadyResponse),
        "ModelReady": (servicer.ModelReady, ModelReadyRequest, ModelReadyResponse),
        "ServerMetadata": (servicer.ServerMetadata, ServerMetadataRequest, ServerMetadataResponse),
        "ModelMetadata": (servicer.ModelMetadata, ModelMetadataRequest, ModelMetadataResponse),
        "ModelInfer": (servicer.ModelInfer, ModelInferRequest, ModelInferResponse),
    }
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            method, request_deserializer=request.FromString, response_serializer=response.SerializeToString
        )
        for name, (method, request, response) in rpcs.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)
