"""The OIP's `inference.GRPCInferenceService` on Ray Serve: the six RPCs as methods of a replica.

Ray Serve's gRPC proxy decodes each request with foretell's generated stubs (registered by
`SERVICER_FUNCTIONS`), picks the application (the `application` metadata key, or the only one
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
inference. Reflection is Ray's proxy's own (it lists the services it was given). The standard
health service (`grpc.health.v1.Health`) is registered with the proxy too, and its Check and
List are answered by the replicas from their readiness, as the local server answers them. Not
its Watch: Ray does not pass a client's cancel on to the replica, so an endless stream would
hold a stopping replica until Ray's graceful_shutdown_timeout_s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse

from foretell.grpc.answers import Outcome, refusal
from foretell.grpc.inference import RPCS, SERVICE_NAME, InferenceServicer, unary_handlers
from foretell.grpc.stubs.grpc_predict_v2_pb2 import (
    DESCRIPTOR,
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
from foretell.serving.access import Access
from foretell.serving.service import InferenceService

__all__ = [
    "SERVICER_FUNCTIONS",
    "RayContext",
    "RayGrpcAnswers",
    "add_health_to_ray_proxy",
    "add_inference_to_ray_proxy",
]

SERVICER_FUNCTIONS = (
    "foretell.grpc.ray_replica.add_inference_to_ray_proxy",
    "foretell.grpc.ray_replica.add_health_to_ray_proxy",
)
"""What Ray Serve's gRPC proxy registers (`grpc_servicer_functions`): it decodes requests with these stubs."""

HEALTH_SERVICE = "grpc.health.v1.Health"
HEALTH_SERVICES = ("", SERVICE_NAME)
"""The services the health service knows: the server as a whole, and the OIP's (as the local server's does)."""

Response = TypeVar("Response")


class RayContext:
    """grpc.aio's `ServicerContext`, as far as `InferenceServicer` uses it, over Ray's `RayServegRPCContext`."""

    def __init__(self, context: Any) -> None:
        self._context = context

    def invocation_metadata(self) -> list[tuple[str, str]]:
        metadata: list[tuple[str, str]] = self._context.invocation_metadata()
        return metadata

    def time_remaining(self) -> float | None:
        return None  # Ray's proxy keeps the client's grpc-timeout to itself


class RayGrpcAnswers:
    """The RPCs of `inference.GRPCInferenceService` and `grpc.health.v1.Health` as methods of a Ray Serve replica.

    A mixin: the replica class that Ray deploys (`foretell.server.ray_grpc.GrpcReplica`) is
    also the one that builds the HTTP app, and hands this the app's inference service
    through `answer_through`.
    """

    def __init__(self, *, access: Access | None, max_message_bytes: int) -> None:
        self._access = access
        self._max_message_bytes = max_message_bytes
        self._servicer: InferenceServicer | None = None

    def answer_through(self, service: InferenceService) -> None:
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
        if size > self._max_message_bytes:
            # grpc.aio's own words for the local server's limit, so a client reads the same either way.
            details = f"Received message larger than max ({size} vs. {self._max_message_bytes})"
            return _refused(grpc_context, grpc.StatusCode.RESOURCE_EXHAUSTED, details, ModelInferResponse)
        return await self._rpc(self.servicer.ModelInfer, request, grpc_context, ModelInferResponse)

    # -- grpc.health.v1.Health: open, as the probes are -----------------------------------------------

    async def Check(self, request: HealthCheckRequest, grpc_context: Any) -> HealthCheckResponse:  # noqa: N802
        if request.service not in HEALTH_SERVICES:
            unknown = f"service: no health status for {request.service!r} (known: '' and {SERVICE_NAME!r})"
            return _refused(grpc_context, grpc.StatusCode.NOT_FOUND, unknown, HealthCheckResponse)
        return HealthCheckResponse(status=self._health())

    async def List(self, request: HealthListRequest, grpc_context: Any) -> HealthListResponse:  # noqa: N802
        status = self._health()
        return HealthListResponse(statuses={name: HealthCheckResponse(status=status) for name in HEALTH_SERVICES})

    def _health(self) -> HealthCheckResponse.ServingStatus:
        return HealthCheckResponse.SERVING if self.servicer.service.ready else HealthCheckResponse.NOT_SERVING

    @property
    def servicer(self) -> InferenceServicer:
        if self._servicer is None:  # Ray calls methods only once the app (and so the service) is built
            raise RuntimeError("the replica's app is not built yet")
        return self._servicer

    async def _rpc(
        self,
        method: Callable[[Any, RayContext], Awaitable[Outcome[Response]]],
        request: Any,
        grpc_context: Any,
        empty: type[Response],
        *,
        keyed: bool = True,
    ) -> Response:
        refused = refusal(self._access, grpc_context.invocation_metadata()) if keyed else None
        if refused is not None:
            return _refused(grpc_context, refused.code, refused.details, empty)
        answer = await method(request, RayContext(grpc_context))
        if answer.message is None:  # set on Ray's context: raising would have Ray's proxy log a traceback
            return _refused(grpc_context, answer.code, answer.details, empty)
        message: Response = answer.message
        return message


def _refused(grpc_context: Any, code: grpc.StatusCode, details: str, empty: type[Response]) -> Response:
    grpc_context.set_code(code)
    grpc_context.set_details(details)
    return empty()


def add_inference_to_ray_proxy(servicer: Any, server: Any) -> None:
    """`inference.GRPCInferenceService` for Ray Serve's gRPC proxy (a `grpc_servicer_functions` entry).

    Ray's proxy serves reflection from protobuf's default descriptor pool, where foretell's stubs
    are not (`make grpc-stubs` keeps them in a pool of their own, beside tritonclient's): their
    file is added there too in the proxy's process, which holds no other client's stubs.
    """
    # Another `inference.*` there already (TypeError): the service works, and reflection names the other's.
    with contextlib.suppress(TypeError):
        descriptor_pool.Default().AddSerializedFile(DESCRIPTOR.serialized_pb)
    server.add_generic_rpc_handlers((unary_handlers(SERVICE_NAME, RPCS, lambda name: getattr(servicer, name)),))


def add_health_to_ray_proxy(servicer: Any, server: Any) -> None:
    """`grpc.health.v1.Health`'s Check and List for Ray Serve's gRPC proxy (a `grpc_servicer_functions` entry).

    Ray's proxy routes each to the replicas' method of that name; Watch is left out (see the
    module's docstring), so the proxy answers it UNIMPLEMENTED.
    """
    rpcs = {"Check": (HealthCheckRequest, HealthCheckResponse), "List": (HealthListRequest, HealthListResponse)}
    server.add_generic_rpc_handlers((unary_handlers(HEALTH_SERVICE, rpcs, lambda name: getattr(servicer, name)),))
