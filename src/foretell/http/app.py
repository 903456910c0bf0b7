"""The ASGI application: Open Inference Protocol, MLflow scoring, probes, metrics, OpenAPI.

Infer and `/invocations` are answered by `InferenceEndpoints`, and the hybrid lookups, batchGet
and events by `HybridEndpoints`, in plain ASGI (they carry the traffic); every other path is a
Starlette route. Every route that names a model goes
through `InferenceService.observed`, so all of them count and answer failures alike.
Health, readiness and metrics answer without touching a model, parsing a body or asking
for an API key, so an overloaded or locked server still says how it is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from importlib.metadata import version as package_version
from typing import Any, Protocol

import orjson
from starlette.applications import Starlette
from starlette.datastructures import URL
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from foretell import tracing
from foretell.errors import ForetellError
from foretell.http.access_log import with_access_log
from foretell.http.asgi import reply
from foretell.http.errors import HttpAnswers, Reply, method_not_allowed, no_route
from foretell.http.hybrid import HybridEndpoints, match_hybrid
from foretell.http.inference import InferenceEndpoints, match
from foretell.http.labels import LABELS_PATH, LabelEndpoint
from foretell.http.openapi import openapi_document
from foretell.http.shutdown import not_ready_on_signal
from foretell.hybrid import HybridService
from foretell.hybrid.stream import StreamConsumer
from foretell.protocols.oip import SERVER_NAME, model_metadata, server_metadata
from foretell.serving.access import Access, presented
from foretell.serving.service import Call, InferenceService, ModelSlot

__all__ = ["Companion", "ServerOptions", "create_app"]

OPEN_PATHS = ("/v2/health/live", "/v2/health/ready", "/ping", "/health", "/metrics")
_EVENT_PATHS = ("/v1/events", LABELS_PATH)


class Companion(Protocol):
    """Another server run by this app's lifespan (the gRPC one): started once the models are loaded; told to
    refuse new work the moment SIGTERM arrives (`begin_stop`, on the event loop), so that it drains while HTTP
    does; stopped (`stop` waits for its in-flight work) after HTTP has drained and before the batchers are."""

    async def start(self) -> None: ...

    def begin_stop(self) -> None: ...

    async def stop(self) -> None: ...


class ServerOptions:
    def __init__(
        self,
        *,
        api_key: str | None = None,
        max_body_bytes: int = 64 * 2**20,
        overload_status: int = 503,
        retry_after_seconds: int = 1,
        access_log: bool = False,
        access: Access | None = None,
    ) -> None:
        self.access_log = access_log
        self.api_key = api_key
        """One key with every scope (FORETELL_API_KEY); `access`, when given, decides instead."""
        self.access = access
        self.max_body_bytes = max_body_bytes
        self.overload_status = overload_status
        self.retry_after_seconds = retry_after_seconds


def create_app(
    service: InferenceService,
    options: ServerOptions | None = None,
    hybrid: HybridService | None = None,
    *,
    labels_at: str | None = None,
    events: StreamConsumer | None = None,
    companions: Sequence[Companion] = (),
) -> ASGIApp:
    """The server's ASGI app; with `hybrid`, also the lookup-by-key and event routes (`/v1`); with
    `labels_at` (a ledger's location), `POST /v1/labels`; with `events`, a stream's events applied while it
    serves; `companions` run alongside (the gRPC server)."""
    options = options or ServerOptions()
    version = package_version("foretell")
    answers = HttpAnswers(overload_status=options.overload_status, retry_after_seconds=options.retry_after_seconds)
    hot = InferenceEndpoints(service, answers, max_body_bytes=options.max_body_bytes)
    by_key = None if hybrid is None else HybridEndpoints(hybrid, answers, max_body_bytes=options.max_body_bytes)
    labels = (
        None if labels_at is None else LabelEndpoint(service, answers, labels_at, max_body_bytes=options.max_body_bytes)
    )

    access = options.access or (Access(single_key=options.api_key) if options.api_key else None)
    failed_start: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Stopped in the reverse order of starting, however far the start got: a gRPC port already taken
        # must not leave the stream consumer running nor the batchers undrained.
        async with contextlib.AsyncExitStack() as running:
            running.callback(tracing.flush)  # last: the spans of the drain are exported too
            if hybrid is not None:
                running.callback(hybrid.close)
            try:
                await service.start()
                running.push_async_callback(service.stop, drain=True)
                if events is not None:  # connected before the server answers: a bad URL or Redis down fails the start
                    await events.open()
                    running.push_async_callback(events.close)
                    consuming = asyncio.create_task(events.run(), name="foretell-events")
                    running.push_async_callback(_stopped, events, consuming)  # its read in hand is settled first
                for companion in companions:
                    await companion.start()
                    running.push_async_callback(companion.stop)
            except ForetellError as exc:  # said in one line by the server (`app` below), not as a traceback
                failed_start.append(str(exc))
                raise
            loop = asyncio.get_running_loop()

            def drain_companions() -> None:  # they drain alongside HTTP, within the same grace period
                for companion in companions:
                    loop.call_soon_threadsafe(companion.begin_stop)

            with not_ready_on_signal(service, drain_companions):
                yield

    def observed(endpoint: str, handler: Callable[[ModelSlot], Awaitable[Any]]) -> Any:
        """A model's JSON route: resolve the model named in the path, answer through the service."""

        async def route(request: Request) -> Response:
            async def work(call: Call) -> Reply:
                slot = service.resolve(call, request.path_params["name"], request.path_params.get("version"))
                return 200, orjson.dumps(await handler(slot)), {}

            status, body, headers = await service.observed(endpoint, work, answers)
            return Response(body, status, headers, media_type="application/json")

        return route

    # -- Open Inference Protocol: probes and metadata (infer is InferenceEndpoints') -------------

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": service.ready}, 200 if service.ready else 503)

    async def server(request: Request) -> Response:
        return JSONResponse(server_metadata(SERVER_NAME, version, ["binary_tensor_data", "model_repository"]))

    async def metadata(slot: ModelSlot) -> dict[str, Any]:
        model = slot.model
        return model_metadata(slot.name, [str(model.info.version)], f"foretell_{model.info.flavor}", model.signature)

    async def model_ready(slot: ModelSlot) -> dict[str, Any]:
        return {"name": slot.name, "ready": service.ready}

    # -- MLflow scoring probes (/invocations is InferenceEndpoints') ------------------------------

    async def ping(request: Request) -> Response:
        return Response(b"\n", 200 if service.ready else 503)

    async def mlflow_version(request: Request) -> Response:
        return Response(version, media_type="text/plain")

    async def metrics(request: Request) -> Response:
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    async def openapi(request: Request) -> Response:
        document = openapi_document(
            version,
            models=list(service.runtime.slots),
            versions=[str(slot.version) for slot in service.runtime.slots.values()],
            hybrid=by_key is not None,
            labels=labels is not None,
            api_key=access is not None,  # FORETELL_API_KEY or a key book
        )
        return JSONResponse(document)

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
    rest = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _json_error})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            target = match(scope["path"])
            if target is not None:
                await hot(scope, receive, send, target)
                return
            if labels is not None and scope["path"] == LABELS_PATH:
                await labels(scope, receive, send)
                return
            if by_key is not None and (hybrid_target := match_hybrid(scope["path"], scope.get("raw_path"))):
                await by_key(scope, receive, send, hybrid_target)
                return
            if by_key is not None and scope["path"].endswith("/") and match_hybrid(scope["path"].rstrip("/")):
                # As Starlette's router answers a route's path with a trailing slash, as when these were routes.
                redirect = URL(scope={**scope, "path": scope["path"].rstrip("/")})
                await RedirectResponse(str(redirect))(scope, receive, send)
                return
        if scope["type"] == "lifespan":

            async def said(message: Message) -> None:
                # Starlette reports a failed start with its traceback; the server prints what it is given.
                if message["type"] == "lifespan.startup.failed" and failed_start:
                    message = {**message, "message": failed_start[-1]}
                await send(message)

            await rest(scope, receive, said)
            return
        await rest(scope, receive, send)

    served: ASGIApp = _with_access(app, access) if access is not None else app
    if tracing.tracer is not None:  # tracing is turned on before the app is made

        def route(path: str) -> Traced:
            """Whether `path` is answered through `asgi.reply`, which names the request's span itself; and, for
            the infer endpoints of a server without keys, the endpoint itself (`app` would only match it)."""
            target = match(path)
            if target is not None:
                return True, None if access is not None else partial(hot, target=target)  # keys checked first
            hybrid_path = by_key is not None and match_hybrid(path) is not None
            return hybrid_path or (labels is not None and path == LABELS_PATH), None

        served = _traced(served, route)
    return with_access_log(served) if options.access_log else served


Traced = tuple[bool, Callable[[Scope, Receive, Send], Awaitable[None]] | None]
"""What `_traced` needs to know of a path: whether `asgi.reply` answers it, and the endpoint to call directly."""


def _traced(app: ASGIApp, route_of: Callable[[str], Traced]) -> ASGIApp:
    """`app` with each request inside its server span (continuing the caller's `traceparent`), which the
    response names; probes and metrics are not traced.

    The span is named after the method until the inference service renames it after the
    endpoint (never the path: it holds entity keys). Outside the API key's check: a refused
    request is traced too. The hot endpoints answer through `asgi.reply`, which adds the
    response's `traceparent` itself: wrapping `send` costs a traced request about 4 µs of
    its ≈ 80 (docs/tracing.md), so only the other paths have it wrapped. An infer request (with
    no API key to check) is handed straight to its endpoint: every coroutine a request passes
    through costs it again each time it is resumed, so tracing adds none to the hot path.
    """

    routes: dict[str, Traced] = {}  # `route_of` each path seen, not matched again per request

    async def traced(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await app(scope, receive, send)
            return
        method = scope["method"]
        attributes = {"http.request.method": method, "url.path": scope["path"]}
        span = tracing.continued(method, scope["headers"], attributes)
        path = scope["path"]
        found = routes.get(path)
        if found is None:
            found = route_of(path)
            if len(routes) < 1024:  # lookups' paths hold keys: remember the first ones only
                routes[path] = found
        itself, endpoint = found
        if itself:
            with span:  # an infer endpoint called directly: a traced request goes through no more calls than one not
                await (app if endpoint is None else endpoint)(scope, receive, send)
            return

        async def send_with_traceparent(message: Message) -> None:
            if message["type"] == "http.response.start" and tracing.STATUS_CODE not in attributes:  # not yet answered
                attributes[tracing.STATUS_CODE] = message["status"]
                parent = (b"traceparent", tracing.traceparent_header(span))
                message = {**message, "headers": [*message.get("headers", ()), parent]}
            await send(message)

        with span:
            await app(scope, receive, send_with_traceparent)

    return traced


async def _json_error(request: Request, exc: Exception) -> Response:
    """A path no route serves (404) or a method it does not take (405, with `Allow`), as JSON like every error."""
    assert isinstance(exc, HTTPException)
    method, path = request.method, request.url.path
    if exc.status_code == 404:
        body = no_route(method, path)
    elif exc.status_code == 405:
        body = method_not_allowed(method, path, (exc.headers or {}).get("Allow", ""))
    else:
        body = orjson.dumps({"error": exc.detail})
    return Response(body, exc.status_code, exc.headers, media_type="application/json")


def _with_access(app: ASGIApp, access: Access) -> ASGIApp:
    """Every path but the probes and metrics needs a key (`Authorization: Bearer KEY` or `X-API-Key: KEY`) with
    the route's scope: `events` for events and labels, `predict` for the rest; 401, 403 or 429 as JSON if not."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        needed = "events" if scope["path"] in _EVENT_PATHS else "predict"
        decision = access.decide(presented(headers.get(b"x-api-key"), headers.get(b"authorization")), needed)
        if decision.status:
            said = {"WWW-Authenticate": "Bearer"} if decision.status == 401 else {}
            if decision.retry_after:
                said["Retry-After"] = str(decision.retry_after)
            await reply(send, decision.status, orjson.dumps({"error": decision.message}), said)
            return
        await app(scope, receive, send)

    return guarded


async def _stopped(events: StreamConsumer, consuming: asyncio.Task[Any]) -> None:
    """The stream consumer stopped once its read in hand is applied and acknowledged."""
    events.stop()
    await consuming
