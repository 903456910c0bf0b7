"""`inference.GRPCInferenceService`: the OIP's six RPCs, answered through the same `InferenceService` as REST.

Each RPC decodes its message, runs through `InferenceService.observed` (metrics, failures, the
ledger with transport "grpc") and `InferenceService.infer` (validation, deadline, the model's
micro-batcher, rollouts), and encodes the outcome. A failure ends the RPC with its status code
(`answers`) and REST's message as details.

The RPCs are coroutines on the server's event loop, where the service lives; grpc's thread-pool
server receives them (`server`), and `method_handlers` hands each one to the loop and waits for
its `Outcome` in the receiving thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import CancelledError
from importlib.metadata import version as package_version
from typing import Any, TypeVar

import grpc

from foretell import tracing
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
from foretell.grpc.traced import TRACEPARENT, traced
from foretell.protocols.oip import SERVER_NAME, model_metadata, server_metadata
from foretell.protocols.oip.rows import inputs_from_request, tensors_from_predictions
from foretell.serving.service import Call, InferenceService, deadline_after, request_deadline

__all__ = ["RPCS", "SERVICE_NAME", "InferenceServicer", "method_handlers", "unary_handlers"]

SERVICE_NAME = "inference.GRPCInferenceService"
EXTENSIONS = ["model_repository"]  # REST adds binary_tensor_data, an HTTP extension

Message = TypeVar("Message")


class InferenceServicer:
    """The six RPCs, each a coroutine answering an `Outcome`; `context` is grpc's `ServicerContext`, read only
    for its metadata and time remaining (both safe from the loop's thread)."""

    def __init__(self, service: InferenceService) -> None:
        self.service = service
        self.version = package_version("foretell")

    async def ServerLive(self, request: ServerLiveRequest, context: Any) -> Outcome[ServerLiveResponse]:  # noqa: N802
        return Outcome(ServerLiveResponse(live=True))

    async def ServerReady(self, request: ServerReadyRequest, context: Any) -> Outcome[ServerReadyResponse]:  # noqa: N802
        return Outcome(ServerReadyResponse(ready=self.service.ready))

    async def ServerMetadata(  # noqa: N802
        self, request: ServerMetadataRequest, context: Any
    ) -> Outcome[ServerMetadataResponse]:
        return Outcome(ServerMetadataResponse(**server_metadata(SERVER_NAME, self.version, EXTENSIONS)))

    async def ModelReady(self, request: ModelReadyRequest, context: Any) -> Outcome[ModelReadyResponse]:  # noqa: N802
        async def work(call: Call) -> Outcome[ModelReadyResponse]:
            self.service.resolve(call, request.name, request.version or None)
            return Outcome(ModelReadyResponse(ready=self.service.ready))

        return await self._answer("ready", work, context)

    async def ModelMetadata(  # noqa: N802
        self, request: ModelMetadataRequest, context: Any
    ) -> Outcome[ModelMetadataResponse]:
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

    async def ModelInfer(self, request: ModelInferRequest, context: Any) -> Outcome[ModelInferResponse]:  # noqa: N802
        async def work(call: Call) -> Outcome[ModelInferResponse]:
            slot = self.service.resolve(call, request.model_name, request.model_version or None)
            with tracing.leaf("decode"):
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
    ) -> Outcome[Message]:
        return await self.service.observed(endpoint, work, GrpcAnswers[Message](), over="grpc")


def _rpc_deadline(remaining: float | None) -> float | None:
    """The RPC's own deadline (grpc-timeout) on the monotonic clock; one already past stays past."""
    if remaining is None:
        return None
    return deadline_after(remaining) if remaining > 0 else time.monotonic()


def _earliest(*deadlines: float | None) -> float | None:
    given = [d for d in deadlines if d is not None]
    return min(given) if given else None


RPCS: dict[str, tuple[Any, Any]] = {
    "ServerLive": (ServerLiveRequest, ServerLiveResponse),
    "ServerReady": (ServerReadyRequest, ServerReadyResponse),
    "ModelReady": (ModelReadyRequest, ModelReadyResponse),
    "ServerMetadata": (ServerMetadataRequest, ServerMetadataResponse),
    "ModelMetadata": (ModelMetadataRequest, ModelMetadataResponse),
    "ModelInfer": (ModelInferRequest, ModelInferResponse),
}
"""The service's RPCs, each with its request and response message."""


def unary_handlers(
    service: str, rpcs: Mapping[str, tuple[Any, Any]], behaviour: Callable[[str], Callable[[Any, Any], Any]]
) -> grpc.GenericRpcHandler:
    """`service`'s handlers: each RPC of `rpcs` (de)serialises its messages and runs `behaviour(name)`. (The
    generated `_pb2_grpc` module would do this too, with a servicer base class foretell has no use for.)"""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            behaviour(name), request_deserializer=request.FromString, response_serializer=response.SerializeToString
        )
        for name, (request, response) in rpcs.items()
    }
    return grpc.method_handlers_generic_handler(service, handlers)


def method_handlers(servicer: InferenceServicer, loop: asyncio.AbstractEventLoop) -> grpc.GenericRpcHandler:
    """The service's handlers for grpc's thread-pool server: each (de)serialises its own messages in the
    receiving thread and runs its RPC on `loop`."""

    def behaviour(name: str) -> Callable[[Any, Any], Any]:
        method = getattr(servicer, name)
        return _on_loop(method if tracing.tracer is None else traced(method, SERVICE_NAME, name), loop)

    return unary_handlers(SERVICE_NAME, RPCS, behaviour)


def _on_loop(
    rpc: Callable[[Any, Any], Coroutine[Any, Any, Outcome[Any]]], loop: asyncio.AbstractEventLoop
) -> Callable[[Any, Any], Any]:
    """A handler for a grpc thread: runs `rpc` on the loop, waits, and answers its outcome.

    A client that cancels (or whose deadline passes) ends the RPC in grpc at once; the callback
    then cancels the coroutine too, as grpc.aio cancels its handler's task.
    """

    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        answer = asyncio.run_coroutine_threadsafe(rpc(request, context), loop)
        if not context.add_callback(answer.cancel):  # the RPC ended before the callback could be added
            answer.cancel()
        try:
            outcome = answer.result()
        except CancelledError:
            return None  # the RPC has already ended; grpc sends nothing more
        if outcome.traceparent is not None:
            context.set_trailing_metadata(((TRACEPARENT, outcome.traceparent),))
        if outcome.message is None:
            context.abort(outcome.code, outcome.details)
        return outcome.message

    return handle
