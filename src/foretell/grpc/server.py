"""The gRPC server beside the HTTP one: same process, same event loop, same `InferenceService`.

`GrpcServer.start()` runs inside the HTTP app's lifespan once the models are loaded. From the
moment SIGTERM arrives (`begin_stop`) new RPCs are refused while in-flight ones finish, up to the
grace period, as HTTP drains alongside; `stop()` waits for them after HTTP has drained, before
the service drains its batchers. It also serves the
standard `grpc.health.v1` health service (NOT_SERVING from the moment the drain starts) and
server reflection. With `--workers N` each process binds the same port: grpc sets
SO_REUSEPORT by default, so the kernel spreads connections over the workers.

It is grpc's thread-pool server, not grpc.aio, although the RPCs run on the event loop: grpc.aio
takes in one new RPC per trip through its poller thread and the loop, so under load RPCs reached
the micro-batcher one at a time and each paid a model call (batches of 1.2 requests at c=64), and
an empty RPC cost more than REST's whole infer. grpc's own threads take RPCs in without the loop,
and many wait on it at once, so they batch as REST's requests do: twice grpc.aio's rate on one
core (docs/benchmarks.md, "gRPC against REST").
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from foretell.errors import InvalidInput
from foretell.grpc.answers import refusal
from foretell.grpc.inference import SERVICE_NAME, InferenceServicer, method_handlers
from foretell.grpc.stubs.grpc_predict_v2_pb2 import POOL
from foretell.serving.access import Access
from foretell.serving.service import InferenceService

__all__ = ["GrpcServer"]

log = logging.getLogger("foretell.grpc")

# Each RPC holds a thread while it waits for the loop, so this bounds how many can batch together;
# more wait in the pool's queue. Idle threads cost nothing but memory.
HANDLER_THREADS = 128
# Every queue is bounded: past this many RPCs in the server (running or waiting for a thread), grpc
# answers RESOURCE_EXHAUSTED at once. Well above what the batcher's own bound lets through in practice.
MAX_RPCS = 8 * HANDLER_THREADS

# The probes answer without a key, as REST's /v2/health/* do: a locked server still says how it is.
_OPEN_METHODS = frozenset(
    {
        f"/{SERVICE_NAME}/ServerLive",
        f"/{SERVICE_NAME}/ServerReady",
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    }
)


class GrpcServer:
    """`inference.GRPCInferenceService`, health and reflection on `host:port`."""

    def __init__(
        self,
        service: InferenceService,
        host: str,
        port: int,
        *,
        access: Access | None = None,
        max_message_bytes: int = 64 * 2**20,
        grace_seconds: float = 30.0,
        tls_key_and_chain: tuple[bytes, bytes] | None = None,
    ) -> None:
        self.service = service
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.access = access
        self.max_message_bytes = max_message_bytes
        self.grace_seconds = grace_seconds
        self.tls_key_and_chain = tls_key_and_chain
        self._server: Any = None
        self._health: Any = None
        self._handlers: ThreadPoolExecutor | None = None
        self._stopped: threading.Event | None = None

    async def start(self) -> None:
        interceptors = [_AccessInterceptor(self.access)] if self.access is not None else []
        self._handlers = ThreadPoolExecutor(HANDLER_THREADS, thread_name_prefix="foretell-grpc")
        server = grpc.server(
            self._handlers,
            interceptors=interceptors,
            maximum_concurrent_rpcs=MAX_RPCS,
            options=[
                # Larger requests end RESOURCE_EXHAUSTED, as REST's body limit answers 413.
                ("grpc.max_receive_message_length", self.max_message_bytes),
                ("grpc.max_send_message_length", -1),
            ],
        )
        loop = asyncio.get_running_loop()
        server.add_generic_rpc_handlers([method_handlers(InferenceServicer(self.service), loop)])
        # Non-blocking: a Watch stream does not hold a handler thread.
        self._health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            [SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server, pool=_reflected_pool()
        )
        try:
            if self.tls_key_and_chain is None:
                bound = server.add_insecure_port(self.address)
            else:
                bound = server.add_secure_port(self.address, grpc.ssl_server_credentials([self.tls_key_and_chain]))
        except RuntimeError:
            bound = 0
        if bound == 0:
            raise InvalidInput(f"grpc_port: cannot listen on {self.address}")
        server.start()
        for name in ("", SERVICE_NAME):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._server = server
        over = "TLS" if self.tls_key_and_chain is not None else "plain text"
        log.warning("serving gRPC (inference.GRPCInferenceService) on %s (%s)", self.address, over)

    def begin_stop(self) -> None:
        """From now on refuse new RPCs (health says NOT_SERVING) while in-flight ones finish for up to the grace
        period: called the moment SIGTERM arrives, so that gRPC drains while HTTP does, in the same 30 s."""
        if self._server is not None and self._stopped is None:
            self._health.enter_graceful_shutdown()
            self._stopped = self._server.stop(self.grace_seconds)

    async def stop(self) -> None:
        """Stop as `begin_stop` does (if nothing began it) and wait until the in-flight RPCs are done."""
        if self._server is None:
            return
        self.begin_stop()
        assert self._stopped is not None
        # Waited for off the loop: the in-flight RPCs need it to finish.
        await asyncio.to_thread(self._stopped.wait)
        self._stopped = None
        self._server = None
        if self._handlers is not None:  # grpc does not own the pool it was given: its threads end here
            self._handlers.shutdown(wait=False, cancel_futures=True)
            self._handlers = None


def _reflected_pool() -> Any:
    """The stubs' own descriptor pool (not protobuf's default: see `make grpc-stubs`), holding the health and
    reflection services' files too, so that reflection describes all three."""
    for served in (health_pb2, reflection_pb2):
        try:
            POOL.FindFileByName(served.DESCRIPTOR.name)
        except KeyError:
            POOL.AddSerializedFile(served.DESCRIPTOR.serialized_pb)
    return POOL


class _AccessInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Every RPC but the probes needs a key with the `predict` scope, in `authorization: Bearer` or `x-api-key`."""

    def __init__(self, access: Access) -> None:
        self.access = access

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        if details.method in _OPEN_METHODS:
            return continuation(details)
        refused = refusal(self.access, details.invocation_metadata or ())
        if refused is None:
            return continuation(details)
        code, words = refused.code, refused.details

        def refuse(request: Any, context: grpc.ServicerContext) -> None:
            context.abort(code, words)

        # Not decoded: refused before anything of the request is read.
        return grpc.unary_unary_rpc_method_handler(refuse, request_deserializer=None, response_serializer=None)
