"""The ASGI application: Open Inference Protocol, MLflow scoring, probes, metrics, OpenAPI.

Infer and `/invocations` are answered by `InferenceEndpoints` in plain ASGI (they carry the
traffic); every other path is a Starlette route. Health, readiness and metrics answer
without touching a model, parsing a body or asking for an API key, so an overloaded or
locked server still says how it is.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version as package_version
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from foretell.http.access_log import with_access_log
from foretell.http.asgi import reply
from foretell.http.errors import error_reply
from foretell.http.hybrid import hybrid_routes
from foretell.http.inference import InferenceEndpoints, match
from foretell.http.openapi import openapi_document
from foretell.http.shutdown import not_ready_on_signal
from foretell.hybrid import HybridService
from foretell.protocols.oip import model_metadata, server_metadata
from foretell.serving.runtime import ModelSlot, Runtime

__all__ = ["ServerOptions", "create_app"]

SERVER_NAME = "foretell"
OPEN_PATHS = ("/v2/health/live", "/v2/health/ready", "/ping", "/health", "/metrics")


class ServerOptions:
    def __init__(
        self,
        *,
        api_key: str | None = None,
        max_body_bytes: int = 64 * 2**20,
        overload_status: int = 503,
        retry_after_seconds: int = 1,
        access_log: bool = False,
    ) -> None:
        self.access_log = access_log
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.overload_status = overload_status
        self.retry_after_seconds = retry_after_seconds


def create_app(runtime: Runtime, options: ServerOptions | None = None, hybrid: HybridService | None = None) -> ASGIApp:
    """The server's ASGI app; with `hybrid`, also the lookup-by-key and event routes (`/v1`)."""
    options = options or ServerOptions()
    version = package_version("foretell")
    hot = InferenceEndpoints(
        runtime,
        max_body_bytes=options.max_body_bytes,
        overload_status=options.overload_status,
        retry_after_seconds=options.retry_after_seconds,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        with not_ready_on_signal(runtime):
            yield
        await runtime.stop(drain=True)

    def observed(endpoint: str, handler: Callable[[ModelSlot], Awaitable[Response]]) -> Any:
        async def route(request: Request) -> Response:
            started = time.perf_counter()
            model = "-"  # a served name once known; never the client's text
            try:
                slot = runtime.get(request.path_params["name"], request.path_params.get("version"))
                model = slot.name
                response = await handler(slot)
            except Exception as exc:  # every failure becomes a JSON error; nothing escapes as a bare 500
                status, body, headers = error_reply(exc, overload_status=options.overload_status)
                response = Response(body, status, headers, media_type="application/json")
            runtime.metrics.answered(model, endpoint, response.status_code, time.perf_counter() - started)
            return response

        return route

    # -- Open Inference Protocol: probes and metadata (infer is InferenceEndpoints') -------------

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": runtime.ready}, 200 if runtime.ready else 503)

    async def server(request: Request) -> Response:
        return JSONResponse(server_metadata(SERVER_NAME, version, ["binary_tensor_data", "model_repository"]))

    async def metadata(slot: ModelSlot) -> Response:
        body = model_metadata(
            slot.name, [str(slot.version)], f"foretell_{slot.model.info.flavor}", slot.model.signature
        )
        return JSONResponse(body)

    async def model_ready(slot: ModelSlot) -> Response:
        return JSONResponse({"name": slot.name, "ready": runtime.ready})

    # -- MLflow scoring probes (/invocations is InferenceEndpoints') ------------------------------

    async def ping(request: Request) -> Response:
        return Response(b"\n", 200 if runtime.ready else 503)

    async def mlflow_version(request: Request) -> Response:
        return Response(version, media_type="text/plain")

    async def metrics(request: Request) -> Response:
        return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4")

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(version))

    routes = [
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server),
        Route("/v2/models/{name}", observed("metadata", metadata)),
        Route("/v2/models/{name}/versions/{version}", observed("metadata", metadata)),
        Route("/v2/models/{name}/ready", observed("ready", model_ready)),
        Route("/v2/models/{name}/versions/{version}/ready", observed("ready", model_ready)),
        Route("/ping", ping),
        Route("/health", ping),
        Route("/version", mlflow_version),
        Route("/metrics", metrics),
        Route("/openapi.json", openapi),
    ]
    if hybrid is not None:
        routes += hybrid_routes(hybrid, options.max_body_bytes)
    rest = Starlette(routes=routes, lifespan=lifespan)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            target = match(scope["path"])
            if target is not None:
                await hot(scope, receive, send, target)
                return
        await rest(scope, receive, send)

    served: ASGIApp = _with_api_key(app, options.api_key) if options.api_key else app
    return with_access_log(served) if options.access_log else served


def _with_api_key(app: ASGIApp, key: str) -> ASGIApp:
    """Every path but the probes and metrics needs `Authorization: Bearer KEY` or `X-API-Key: KEY`."""
    expected = key.encode()

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-api-key") or headers.get(b"authorization", b"").removeprefix(b"Bearer ")
        if not hmac.compare_digest(given, expected):
            await reply(send, 401, orjson.dumps({"error": "missing or wrong API key"}), {"WWW-Authenticate": "Bearer"})
            return
        await app(scope, receive, send)

    return guarded
