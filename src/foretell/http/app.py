"""The Starlette application: Open Inference Protocol, MLflow scoring, probes, metrics.

Each route is decode → service → encode. Health, readiness and metrics answer without
touching a model, parsing a body or asking for an API key, so an overloaded or locked
server still says how it is.
"""

from __future__ import annotations

import hmac
import logging
import math
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

from foretell.core.predictor import Predictions
from foretell.errors import ForetellError, InvalidInput
from foretell.http.errors import status_for
from foretell.http.openapi import openapi_document
from foretell.http.tensors import inputs_from_tensors, tensors_from_predictions
from foretell.protocols import decode_infer_request, decode_invocations, encode_infer_response, encode_predictions
from foretell.protocols.oip import model_metadata, server_metadata
from foretell.serving.batcher import Overloaded
from foretell.serving.runtime import ModelSlot, Runtime

__all__ = ["ServerOptions", "create_app"]

log = logging.getLogger("foretell.http")
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
    ) -> None:
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.overload_status = overload_status
        self.retry_after_seconds = retry_after_seconds


def create_app(runtime: Runtime, options: ServerOptions | None = None) -> Starlette:
    options = options or ServerOptions()
    version = package_version("foretell")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        yield
        await runtime.stop(drain=True)

    def error(exc: BaseException) -> Response:
        status = status_for(exc)
        if isinstance(exc, Overloaded):
            status = options.overload_status
        if status >= 500 and not isinstance(exc, ForetellError):
            log.exception("unexpected error")
            message = f"internal error: {type(exc).__name__}"
        else:
            message = str(exc)
        retry = max(1, math.ceil(exc.retry_after_s)) if isinstance(exc, Overloaded) else options.retry_after_seconds
        headers = {"Retry-After": str(retry)} if status in (429, 503) else None
        return Response(orjson.dumps({"error": message}), status, headers, media_type="application/json")

    async def body_of(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > options.max_body_bytes:
            raise _TooLarge(options.max_body_bytes)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > options.max_body_bytes:
                raise _TooLarge(options.max_body_bytes)
            chunks.append(chunk)
        return b"".join(chunks)

    async def predict(slot: ModelSlot, rows: Any, deadline: float | None) -> Predictions:
        columns = slot.model.coerce(rows)
        columns.raise_for_errors()
        return await slot.batcher.submit(columns, deadline=deadline)

    def observed(endpoint: str, handler: Callable[[Request], Awaitable[tuple[str, Response]]]) -> Any:
        async def route(request: Request) -> Response:
            started = time.perf_counter()
            model = request.path_params.get("name", "-")
            try:
                model, response = await handler(request)
            except _TooLarge as exc:
                response = Response(orjson.dumps({"error": str(exc)}), 413, media_type="application/json")
            except Exception as exc:  # every failure becomes a JSON error; nothing escapes as a bare 500
                response = error(exc)
            runtime.metrics.requests.labels(model, endpoint, str(response.status_code)).inc()
            runtime.metrics.latency.labels(model, endpoint).observe(time.perf_counter() - started)
            return response

        return route

    # -- Open Inference Protocol ------------------------------------------------------------------

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": runtime.ready}, 200 if runtime.ready else 503)

    async def server(request: Request) -> Response:
        return JSONResponse(server_metadata(SERVER_NAME, version, ["binary_tensor_data", "model_repository"]))

    async def metadata(request: Request) -> tuple[str, Response]:
        slot = runtime.get(request.path_params["name"], request.path_params.get("version"))
        body = model_metadata(
            slot.name, [str(slot.version)], f"foretell_{slot.model.info.flavor}", slot.model.signature
        )
        return slot.name, JSONResponse(body)

    async def model_ready(request: Request) -> tuple[str, Response]:
        slot = runtime.get(request.path_params["name"], request.path_params.get("version"))
        return slot.name, JSONResponse({"name": slot.name, "ready": runtime.ready})

    async def infer(request: Request) -> tuple[str, Response]:
        slot = runtime.get(request.path_params["name"], request.path_params.get("version"))
        header = request.headers.get("inference-header-content-length")
        if header is not None and not header.isdigit():
            raise InvalidInput(f"Inference-Header-Content-Length must be a whole number of bytes, got {header!r}")
        infer_request = decode_infer_request(await body_of(request), int(header) if header else None)
        deadline = _deadline(request, infer_request.timeout_seconds)
        predictions = await predict(slot, inputs_from_tensors(slot.model.signature, infer_request.inputs), deadline)
        wanted = [o.name for o in infer_request.outputs] if infer_request.outputs else None
        tensors = tensors_from_predictions(predictions, wanted)
        binary = {o.name for o in infer_request.outputs or () if o.binary}
        if infer_request.binary_output_default and not infer_request.outputs:
            binary = {t.name for t in tensors}
        body, headers = encode_infer_response(slot.name, str(slot.version), infer_request.id, tensors, binary)
        return slot.name, Response(body, 200, headers)

    # -- MLflow scoring ---------------------------------------------------------------------------

    async def invocations(request: Request) -> tuple[str, Response]:
        if len(runtime.slots) != 1:
            raise InvalidInput(
                "/invocations serves a server with exactly one model; this one serves "
                f"{sorted(runtime.slots)}: use /v2/models/{{name}}/infer"
            )
        slot = next(iter(runtime.slots.values()))
        rows = decode_invocations(await body_of(request), request.headers.get("content-type", ""))
        predictions = await predict(slot, rows, _deadline(request, None))
        return slot.name, Response(encode_predictions(predictions), 200, media_type="application/json")

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
        Route("/v2/models/{name}/infer", observed("infer", infer), methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", observed("infer", infer), methods=["POST"]),
        Route("/invocations", observed("invocations", invocations), methods=["POST"]),
        Route("/ping", ping),
        Route("/health", ping),
        Route("/version", mlflow_version),
        Route("/metrics", metrics),
        Route("/openapi.json", openapi),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtime = runtime
    if options.api_key:
        return _with_api_key(app, options.api_key)  # type: ignore[return-value]
    return app


class _TooLarge(ForetellError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than the server's limit of {limit:,} bytes")


def _deadline(request: Request, timeout_seconds: float | None) -> float | None:
    header = request.headers.get("x-request-timeout")
    if header is not None:
        try:
            timeout_seconds = float(header)
        except ValueError:
            raise InvalidInput(f"X-Request-Timeout must be a number of seconds, got {header!r}") from None
    if timeout_seconds is None:
        return None
    if timeout_seconds <= 0:
        raise InvalidInput(f"a request timeout must be positive, got {timeout_seconds}")
    return time.monotonic() + timeout_seconds


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
            response = Response(orjson.dumps({"error": "missing or wrong API key"}), 401, media_type="application/json")
            await response(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded
