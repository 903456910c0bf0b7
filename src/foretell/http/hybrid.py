"""The hybrid endpoints, in plain ASGI: `GET /v1/models/{name}/predictions/{key}`, `POST .../predictions:batchGet`,
`POST /v1/events`.

Lookups by key carry traffic as infer does, so they are answered the same way
(`http.inference`): before Starlette sees the request, with no router, middleware or
request object in the way. Each decodes its request, asks the hybrid service (whose live
predictions go through the inference service like every other request, and whose store
reads never run on the event loop), and encodes the answer; failures and metrics are the
inference service's `observed`, as for every route.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson
from starlette.types import Receive, Scope, Send

from foretell.errors import InvalidInput
from foretell.http.asgi import header, read_body, reply
from foretell.http.errors import CLIENT_CLOSED, HttpAnswers, Reply, method_not_allowed
from foretell.hybrid import HybridService
from foretell.serving.service import Call

__all__ = ["HybridEndpoints", "HybridTarget", "match_hybrid"]

_MAX_KEYS = 10_000
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")
_MODELS = "/v1/models/"
_LOOKUP_METHODS, _POST = ("GET", "HEAD"), ("POST",)


@dataclass(frozen=True, slots=True)
class HybridTarget:
    """Which hybrid endpoint a path names."""

    endpoint: str
    """"lookup", "batchGet" or "events" (the metrics label)."""
    methods: tuple[str, ...]
    name: str = ""
    key: str = ""


_EVENTS = HybridTarget("events", _POST)


def match_hybrid(path: str, raw_path: bytes | None = None) -> HybridTarget | None:
    """`/v1/models/{name}/predictions/{key}`, `/v1/models/{name}/predictions:batchGet` or `/v1/events`; else None.

    `path` is percent-decoded (as ASGI servers hand it); a key holding `/` (sent as `%2F`) is
    found in `raw_path`, the path as received, whose segments are decoded one by one.
    """
    if path == "/v1/events":
        return _EVENTS
    if not path.startswith(_MODELS):
        return None
    parts = path[len(_MODELS) :].split("/")
    if len(parts) == 3 and parts[1] == "predictions" and parts[0] and parts[2]:
        return HybridTarget("lookup", _LOOKUP_METHODS, parts[0], parts[2])
    if len(parts) == 2 and parts[1] == "predictions:batchGet" and parts[0]:
        return HybridTarget("batchGet", _POST, parts[0])
    if len(parts) > 3 and parts[1] == "predictions" and raw_path is not None:
        # Some servers (httpx's ASGI transport) leave the query string on raw_path.
        raw = raw_path.partition(b"?")[0].decode("ascii", "replace")[len(_MODELS) :].split("/")
        if len(raw) == 3 and raw[1] == "predictions" and raw[0] and raw[2]:
            return HybridTarget("lookup", _LOOKUP_METHODS, unquote(raw[0]), unquote(raw[2]))
    return None


class HybridEndpoints:
    """Answers lookups, batchGet and events through the hybrid service."""

    def __init__(self, service: HybridService, answers: HttpAnswers, *, max_body_bytes: int) -> None:
        self.service = service
        self.answers = answers
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send, target: HybridTarget) -> None:
        if scope["method"] not in target.methods:
            allowed = ", ".join(target.methods)
            await reply(send, 405, method_not_allowed(scope["method"], scope["path"], allowed), {"Allow": allowed})
            return
        if target.endpoint == "lookup":

            async def work(call: Call) -> Reply:
                found = await self._lookup(call, target, scope)
                headers = _prediction_header(call)
                headers["X-Model-Version"] = str(found["model_version"])
                return 200, orjson.dumps(found), headers

        elif target.endpoint == "batchGet":

            async def work(call: Call) -> Reply:
                return 200, orjson.dumps(await self._batch_get(call, target, scope, receive)), {}

        else:

            async def work(call: Call) -> Reply:
                call.request_id = header(scope["headers"], b"x-request-id")
                applied = await self.service.apply(await self._body(scope, receive), call)
                return 200, orjson.dumps(applied), _prediction_header(call)

        status, body, headers = await self.service.inference.observed(target.endpoint, work, self.answers)
        if status != CLIENT_CLOSED:
            await reply(send, status, body, headers)

    async def _lookup(self, call: Call, target: HybridTarget, scope: Scope) -> dict[str, Any]:
        call.request_id = header(scope["headers"], b"x-request-id")
        query = _query(scope["query_string"])
        fresh, k = _flag(query, "fresh"), _k(query.get("k"))
        found = await self.service.lookup(call, target.name, target.key, fresh=fresh, k=k)
        return found.to_dict()

    async def _batch_get(self, call: Call, target: HybridTarget, scope: Scope, receive: Receive) -> dict[str, Any]:
        call.request_id = header(scope["headers"], b"x-request-id")
        self.service.inference.resolve(call, target.name)  # a bad body is still counted under the model
        document = _json_object(await self._body(scope, receive))
        keys = document.get("keys")
        if not isinstance(keys, list) or not keys or len(keys) > _MAX_KEYS:
            given = f"{len(keys):,}" if isinstance(keys, list) else "none" if keys is None else repr(keys)[:60]
            raise InvalidInput(f"'keys' must be a list of 1 to {_MAX_KEYS:,} ids (the limit per batchGet), got {given}")
        fresh = document.get("fresh", False)
        if not isinstance(fresh, bool):
            raise InvalidInput(f"'fresh' must be true or false, got {fresh!r}")
        k = document.get("k")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int)):
            raise InvalidInput(f"'k' must be a whole number, got {k!r}")
        found, missing = await self.service.lookup_many(call, target.name, keys, fresh=fresh, k=k)
        return {"predictions": [f.to_dict() for f in found], "missing": missing}

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        return await read_body(receive, header(scope["headers"], b"content-length"), self.max_body_bytes)


def _prediction_header(call: Call) -> dict[str, str]:
    """`X-Prediction-Id`: the ledger's (first) id for the request's predictions, when it keeps one."""
    return {"X-Prediction-Id": call.prediction_id} if call.prediction_id is not None else {}


def _query(raw: bytes) -> dict[str, str]:
    """The query string's parameters, the last value of each, decoded as Starlette's `QueryParams` does."""
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True)) if raw else {}


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInput("the body must be a JSON object")
    return document


def _flag(query: dict[str, str], name: str) -> bool:
    value = query.get(name)
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
