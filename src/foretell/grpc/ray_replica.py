"""The OIP's `inference.GRPCInferenceService` on Ray Serve: the six RPCs as methods of a replica.

Ray Serve's gRPC proxy decodes each request with foretell's generated stubs (registered by
`SERVICER_FUNCTION`), picks the application (the `application` metadata key, or the only one
running), and calls the replica's method named like the RPC with the request message and a
`RayServegRPCContext`; what the method returns is the response. With direct ingress each
replica also answers the same methods on its own gRPC port.

A replica answers through the same `InferenceServicer` as `foretell serve --grpc-port`, over
the `InferenceService` its HTTP app built, so REST and gRPC requests share one micro-batcher.
The servicer speaks to grpc.aio's context; `RayContext` gives it that shape over Ray's. A
failure cannot be raised out of the replica (Ray's proxy would log a traceback per refused
request): its code and details are set on Ray's context, and the RPC returns an empty
response, which the proxy sends with that status.

What grpc.aio's server does itself and Ray's proxy does not, the replica does: the API key
(Ray's proxy has no interceptors), and the message size limit (Ray's proxy takes messages up
to 2 GiB). What Ray keeps to itself: the client's own deadline (`grpc-timeout`) is not passed
on, so only the OIP `timeout` parameter and `x-request-timeout` drop a late request before
inference; health and reflection are Ray's proxy's, not foretell's.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn, TypeVar

import grpc

from foretell.grpc.inference import InferenceServicer
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
from foretell.http.ray_serve import ForetellReplica, RayGrpcOptions
from foretell.serving.service import InferenceService

__all__ = ["SERVICER_FUNCTION", "GrpcReplica", "RayContext", "key_given"]

SERVICER_FUNCTION = "foretell.grpc.stubs.grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server"
"""What Ray Serve's gRPC proxy registers (`grpc_servicer_functions`): it decodes requests with these stubs."""

UNAUTHENTICATED = "missing or wrong API key"

Response = TypeVar("Response")


class Aborted(Exception):
    """The servicer ended its RPC with a status; the code and details are on Ray's context."""


class RayContext:
    """grpc.aio's `ServicerContext`, as far as `InferenceServicer` uses it, over Ray's `RayServegRPCContext`."""

    def __init__(self, context: Any) -> None:
        self._context = context

    def invocation_metadata(self) -> list[tuple[str, str]]:
        metadata: list[tuple[str, str]] = self._context.invocation_metadata()
        return metadata

    def time_remaining(self) -> float | None:
        return None  # Ray's proxy keeps the client's grpc-timeout to itself

    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        self._context.set_code(code)
        self._context.set_details(details)
        raise Aborted(details)


class GrpcReplica(ForetellReplica):
    """A foretell replica that also answers `inference.GRPCInferenceService` for Ray Serve's gRPC proxy."""

    def __init__(self, build: Callable[..., Any], build_kwargs: Mapping[str, Any], limits: RayGrpcOptions) -> None:
        super().__init__(build, build_kwargs)
        self._limits = limits
        self._servicer: InferenceServicer | None = None

    def __serve_build_asgi_app__(self) -> Any:
        return self._build(**self._build_kwargs, served=self._answer_through)

    def _answer_through(self, service: InferenceService) -> None:
        self._servicer = InferenceServicer(service)

    # The probes answer without a key, as REST's /v2/health/* and the local gRPC server's do.

    async def ServerLive(self, request: ServerLiveRequest, grpc_context: Any) -> ServerLiveResponse:  # noqa: N802
        return await self._rpc(self.servicer.ServerLive, request, grpc_context, ServerLiveResponse, keyed=False)

    async def ServerReady(self, request: ServerReadyRequest, grpc_context: Any) -> ServerReadyResponse:  # noqa: N802
        return await self._rpc(self.servicer.ServerReady, request, grpc_context, ServerReadyResponse, keyed=False)

    async def ServerMetadata(  # noqa: N802
        self, request: ServerMetadataRequest, grpc_context: Any
    ) -> ServerMetadataResponse:
        return await self._rpc(self.servicer.ServerMetadata, request, grpc_context, ServerMetadataResponse)

    async def ModelReady(self, request: ModelReadyRequest, grpc_context: Any) -> ModelReadyResponse:  # noqa: N802
        return await self._rpc(self.servicer.ModelReady, request, grpc_context, ModelReadyResponse)

    async def ModelMetadata(  # noqa: N802
        self, request: ModelMetadataRequest, grpc_context: Any
    ) -> ModelMetadataResponse:
        return await self._rpc(self.servicer.ModelMetadata, request, grpc_context, ModelMetadataResponse)

    async def ModelInfer(self, request: ModelInferRequest, grpc_context: Any) -> ModelInferResponse:  # noqa: N802
        size = request.ByteSize()
        if size > self._limits.max_message_bytes:
            # grpc.aio's own words for the local server's limit, so a client reads the same either way.
            details = f"Received message larger than max ({size} vs. {self._limits.max_message_bytes})"
            return _refused(grpc_context, grpc.StatusCode.RESOURCE_EXHAUSTED, details, ModelInferResponse)
        return await self._rpc(self.servicer.ModelInfer, request, grpc_context, ModelInferResponse)

    @property
    def servicer(self) -> InferenceServicer:
        if self._servicer is None:  # Ray calls methods only once the app (and so the service) is built
            raise RuntimeError("the replica's app is not built yet")
        return self._servicer

    async def _rpc(
        self,
        method: Callable[[Any, RayContext], Awaitable[Response]],
        request: Any,
        grpc_context: Any,
        empty: type[Response],
        *,
        keyed: bool = True,
    ) -> Response:
        if keyed and not key_given(self._limits.api_key, grpc_context.invocation_metadata()):
            return _refused(grpc_context, grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED, empty)
        try:
            return await method(request, RayContext(grpc_context))
        except Aborted:
            return empty()


def key_given(expected: str | None, metadata: list[tuple[str, str]]) -> bool:
    """No key needed, or `authorization: Bearer KEY` / `x-api-key: KEY` metadata holds it (constant-time)."""
    if expected is None:
        return True
    given = dict(metadata)
    key = given.get("x-api-key") or str(given.get("authorization", "")).removeprefix("Bearer ")
    return hmac.compare_digest(str(key).encode(), expected.encode())


def _refused(grpc_context: Any, code: grpc.StatusCode, details: str, empty: type[Response]) -> Response:
    grpc_context.set_code(code)
    grpc_context.set_details(details)
    return empty()
