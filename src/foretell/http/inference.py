"""The two endpoints that carry the traffic, infer and `/invocations`, as plain ASGI.

Everything else (probes, metadata, metrics, OpenAPI) is a Starlette route. These two are
not: Starlette's middleware, router and request/response objects are a large part of what
a served request costs (docs/serving.md, "Why the server is built the way it is"), so the
server answers them before Starlette sees the request.
Either way a request is decoded here, answered by `InferenceService`, and encoded here:
the same error table, the same JSON errors, the same metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.types import Receive, Scope, Send

from foretell import tracing
from foretell.http.asgi import header, read_body, reply
from foretell.http.errors import CLIENT_CLOSED, HttpAnswers, Reply, method_not_allowed
from foretell.protocols import decode_infer_request, decode_invocations, encode_infer_response, encode_predictions
from foretell.protocols.oip import parse_header_length
from foretell.protocols.oip.rows import inputs_from_request, tensors_from_predictions
from foretell.serving.service import Call, InferenceService, request_deadline

__all__ = ["InferenceEndpoints", "Target", "match"]


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
    """Answers infer and `/invocations` requests through the inference service."""

    def __init__(self, service: InferenceService, answers: HttpAnswers, *, max_body_bytes: int) -> None:
        self.service = service
        self.answers = answers
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send, target: Target) -> None:
        if scope["method"] != "POST":
            started = time.perf_counter()
            await reply(send, 405, method_not_allowed(scope["method"], scope["path"], "POST"), {"Allow": "POST"})
            self.service.refused(target.endpoint, 405, started)
            return
        if target.endpoint == "infer":

            async def work(call: Call) -> Reply:
                return await self._infer(call, target, scope, receive)

        else:

            async def work(call: Call) -> Reply:
                return await self._invocations(call, scope, receive)

        status, body, headers = await self.service.observed(target.endpoint, work, self.answers)
        if status != CLIENT_CLOSED:
            await reply(send, status, body, headers)

    async def _infer(self, call: Call, target: Target, scope: Scope, receive: Receive) -> Reply:
        assert target.name is not None  # match() gives infer targets a name
        slot = self.service.resolve(call, target.name, target.version)
        headers = scope["headers"]
        json_length = parse_header_length(header(headers, b"inference-header-content-length"))
        body = await read_body(receive, header(headers, b"content-length"), self.max_body_bytes)
        if (traced := call.trace) is None:  # tracing off, or a request not sampled
            request = decode_infer_request(body, json_length)
        else:
            size = {"http.request.body.size": len(body)}
            request = tracing.timed(traced, "decode", size, decode_infer_request, body, json_length)
        call.request_id = request.id or header(headers, b"x-request-id")
        deadline = request_deadline(header(headers, b"x-request-timeout"), request.timeout_seconds)
        rows = inputs_from_request(slot.model.signature, request)
        inference = await self.service.infer(slot, rows, deadline=deadline, call=call, keys=request.keys)
        names, binary = request.select_outputs(o.name for o in inference.predictions.outputs)
        tensors = tensors_from_predictions(inference.predictions, names)
        parameters = {"prediction_id": call.prediction_id} if call.prediction_id else None
        body, extra = encode_infer_response(slot.name, str(inference.version), request.id, tensors, binary, parameters)
        return 200, body, _with_prediction_id(extra, call)

    async def _invocations(self, call: Call, scope: Scope, receive: Receive) -> Reply:
        slot = self.service.only_model(
            call, "/invocations serves a server with exactly one model: use /v2/models/{name}/infer"
        )
        headers = scope["headers"]
        body = await read_body(receive, header(headers, b"content-length"), self.max_body_bytes)
        # CSV cells are text until typed: the signature says which columns stay text ("02139").
        with tracing.leaf("decode", **{"http.request.body.size": len(body)}):
            rows = decode_invocations(body, header(headers, b"content-type") or "", signature=slot.model.signature)
        call.request_id = header(headers, b"x-request-id")
        deadline = request_deadline(header(headers, b"x-request-timeout"), None)
        inference = await self.service.infer(slot, rows, deadline=deadline, call=call)
        return 200, encode_predictions(inference.predictions, call.prediction_id), _with_prediction_id({}, call)


def _with_prediction_id(headers: dict[str, str], call: Call) -> dict[str, str]:
    """`X-Prediction-Id`: the ledger's id for the request, which labels may name later; `X-Model-Version`:
    the version that answered (during a canary, the champion's or the challenger's)."""
    if call.prediction_id is not None:
        headers["X-Prediction-Id"] = call.prediction_id
    if call.model_version is not None:
        headers["X-Model-Version"] = str(call.model_version)
    return headers
