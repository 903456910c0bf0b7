"""The hybrid routes: `GET /v1/models/{name}/predictions/{key}`, `POST .../predictions:batchGet`, `POST /v1/events`.

Each decodes its request, asks the hybrid service (whose live predictions go through the
inference service like every other request), and encodes the answer; failures and
metrics are the inference service's `observed`, as for every route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from foretell.errors import InvalidInput
from foretell.http.asgi import read_body
from foretell.http.errors import HttpAnswers, Reply
from foretell.hybrid import HybridService
from foretell.serving.service import Call

__all__ = ["hybrid_routes"]

_MAX_KEYS = 10_000
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def hybrid_routes(service: HybridService, answers: HttpAnswers, max_body_bytes: int) -> list[Route]:
    def observed(endpoint: str, handler: Callable[[Call, Request], Awaitable[dict[str, Any]]]) -> Any:
        async def route(request: Request) -> Response:
            async def work(call: Call) -> Reply:
                return 200, orjson.dumps(await handler(call, request)), {}

            status, body, headers = await service.inference.observed(endpoint, work, answers)
            return Response(body, status, headers, media_type="application/json")

        return route

    async def lookup(call: Call, request: Request) -> dict[str, Any]:
        fresh, k = _flag(request, "fresh"), _k(request.query_params.get("k"))
        name, key = request.path_params["name"], request.path_params["key"]
        found = await service.lookup(call, name, key, fresh=fresh, k=k)
        return found.to_dict()

    async def batch_get(call: Call, request: Request) -> dict[str, Any]:
        service.inference.resolve(call, request.path_params["name"])  # a bad body is still counted under the model
        document = _json_object(await _body(request, max_body_bytes))
        keys = document.get("keys")
        if not isinstance(keys, list) or not keys or len(keys) > _MAX_KEYS:
            raise InvalidInput(f"'keys' must be a list of 1 to {_MAX_KEYS:,} ids")
        fresh = document.get("fresh", False)
        if not isinstance(fresh, bool):
            raise InvalidInput(f"'fresh' must be true or false, got {fresh!r}")
        k = document.get("k")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int)):
            raise InvalidInput(f"'k' must be a whole number, got {k!r}")
        found, missing = await service.lookup_many(call, request.path_params["name"], keys, fresh=fresh, k=k)
        return {"predictions": [f.to_dict() for f in found], "missing": missing}

    async def events(call: Call, request: Request) -> dict[str, Any]:
        return await service.apply(await _body(request, max_body_bytes))

    return [
        Route("/v1/models/{name}/predictions:batchGet", observed("batchGet", batch_get), methods=["POST"]),
        Route("/v1/models/{name}/predictions/{key}", observed("lookup", lookup), methods=["GET"]),
        Route("/v1/events", observed("events", events), methods=["POST"]),
    ]


async def _body(request: Request, limit: int) -> bytes:
    return await read_body(request.receive, request.headers.get("content-length"), limit)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInput("the body must be a JSON object")
    return document


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name)
    if value is None or value.lower() in _FALSE:
        return False
    if value.lower() in _TRUE:
        return True
    raise InvalidInput(f"?{name}= takes true or false, got {value!r}")


def _k(value: str | None) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()):  # str.isdigit alone takes '²', which int() refuses
        raise InvalidInput(f"?k= takes a whole number, got {value!r}")
    return int(value)
