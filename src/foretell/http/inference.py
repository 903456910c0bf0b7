"""The two endpoints that carry the traffic, infer and `/invocations`, as plain ASGI.

Everything else (probes, metadata, metrics, OpenAPI) is a Starlette route. These two are
not: measured on one core, Starlette's middleware, router and request/response objects
cost each request about as much as the whole of foretell's own work on it
(docs/serving-batching.md), so the server answers them before Starlette sees the request.
The behaviour is the same either way: the same error table, the same JSON errors, the
same metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from starlette.types import Receive, Scope, Send

from foretell.core.predictor import Predictions
from foretell.errors import ClientDisconnected, InvalidInput
from foretell.http.asgi import header, read_body, reply
from foretell.http.errors import error_reply
from foretell.http.tensors import inputs_from_tensors, tensors_from_predictions
from foretell.protocols import decode_infer_request, decode_invocations, encode_infer_response, encode_predictions
from foretell.protocols.oip import parse_header_length
from foretell.serving.runtime import ModelSlot, Runtime

__all__ = ["InferenceEndpoints", "Target", "match"]

CLIENT_CLOSED = 499  # nginx's code for "the client went away first"; only ever a metrics label


@dataclass(frozen=True, slots=True)
class Target:
    """Which hot endpoint a path names."""

    endpoint: str
    """"infer" or "invocations" (the metrics label)."""
    name: str | None = None
    version: str | None = None


_INVOCATIONS = Target("invocations")
_MODELS = "/v2/models/"


def match(path: str) -> Target | None:
    """`/v2/models/{name}[/versions/{version}]/infer` or `/invocations` → its Target; else None."""
    if path == "/invocations":
        return _INVOCATIONS
    if not path.startswith(_MODELS):
        return None
    parts = path[len(_MODELS) :].split("/")
    if len(parts) == 2 and parts[1] == "infer" and parts[0]:
        return Target("infer", parts[0])
    if len(parts) == 4 and parts[1] == "versions" and parts[3] == "infer" and parts[0] and parts[2]:
        return Target("infer", parts[0], parts[2])
    return None


class InferenceEndpoints:
    """Answers infer and `/invocations` requests for the models a `Runtime` serves."""

    def __init__(
        self, runtime: Runtime, *, max_body_bytes: int, overload_status: int = 503, retry_after_seconds: int = 1
    ) -> None:
        self.runtime = runtime
        self.max_body_bytes = max_body_bytes
        self.overload_status = overload_status
        self.retry_after_seconds = retry_after_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send, target: Target) -> None:
        started = time.perf_counter()
        metrics = self.runtime.metrics
        if scope["method"] != "POST":
            body = b'{"error": "method not allowed: use POST"}'
            await reply(send, 405, body, {"Allow": "POST"})
            metrics.answered("-", target.endpoint, 405, time.perf_counter() - started)
            return
        model = "-"  # a served name once known; never the client's text (see ServingMetrics.answered)
        try:
            slot = self._slot(target)
            model = slot.name
            in_flight = metrics.in_flight_of(model)
            in_flight.inc()
            self.runtime.requests_in_flight += 1
            try:
                status = 200
                if target.endpoint == "infer":
                    body, headers = await self._infer(slot, scope, receive)
                else:
                    body, headers = await self._invocations(slot, scope, receive)
            finally:
                in_flight.dec()
                self.runtime.requests_in_flight -= 1
        except ClientDisconnected:
            metrics.answered(model, target.endpoint, CLIENT_CLOSED, time.perf_counter() - started)
            return
        except Exception as exc:  # every failure becomes a JSON error; nothing escapes as a bare 500
            status, body, headers = error_reply(
                exc, overload_status=self.overload_status, retry_after_seconds=self.retry_after_seconds
            )
        metrics.answered(model, target.endpoint, status, time.perf_counter() - started)
        await reply(send, status, body, headers)

    def _slot(self, target: Target) -> ModelSlot:
        if target.name is not None:
            return self.runtime.get(target.name, target.version)
        if len(self.runtime.slots) != 1:
            raise InvalidInput(
                "/invocations serves a server with exactly one model; this one serves "
                f"{sorted(self.runtime.slots)}: use /v2/models/{{name}}/infer"
            )
        return next(iter(self.runtime.slots.values()))

    async def _infer(self, slot: ModelSlot, scope: Scope, receive: Receive) -> tuple[bytes, dict[str, str]]:
        headers = scope["headers"]
        json_length = parse_header_length(header(headers, b"inference-header-content-length"))
        body = await read_body(receive, header(headers, b"content-length"), self.max_body_bytes)
        request = decode_infer_request(body, json_length)
        deadline = _deadline(header(headers, b"x-request-timeout"), request.timeout_seconds)
        model = slot.model  # the version that answers, even if a reload swaps the slot meanwhile
        predictions = await _predict(slot, inputs_from_tensors(model.signature, request.inputs), deadline)
        names, binary = request.select_outputs(o.name for o in predictions.outputs)
        tensors = tensors_from_predictions(predictions, names)
        return encode_infer_response(slot.name, str(model.info.version), request.id, tensors, binary)

    async def _invocations(self, slot: ModelSlot, scope: Scope, receive: Receive) -> tuple[bytes, dict[str, str]]:
        headers = scope["headers"]
        body = await read_body(receive, header(headers, b"content-length"), self.max_body_bytes)
        rows = decode_invocations(body, header(headers, b"content-type") or "")
        predictions = await _predict(slot, rows, _deadline(header(headers, b"x-request-timeout"), None))
        return encode_predictions(predictions), {}


async def _predict(slot: ModelSlot, rows: Any, deadline: float | None) -> Predictions:
    model, batcher = slot.model, slot.batcher  # one pair: a reload swaps both at once
    columns = model.coerce(rows)
    columns.raise_for_errors()
    return await batcher.submit(columns, deadline=deadline)


def _deadline(header_value: str | None, timeout_seconds: float | None) -> float | None:
    """The request's deadline on the monotonic clock: `X-Request-Timeout` (seconds) wins over the body's."""
    if header_value is not None:
        try:
            timeout_seconds = float(header_value)
        except ValueError:
            raise InvalidInput(f"X-Request-Timeout must be a number of seconds, got {header_value!r}") from None
    if timeout_seconds is None:
        return None
    if not timeout_seconds > 0 or timeout_seconds == float("inf"):
        raise InvalidInput(f"a request timeout must be a positive number of seconds, got {timeout_seconds}")
    return time.monotonic() + timeout_seconds
