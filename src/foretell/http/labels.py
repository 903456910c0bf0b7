"""`POST /v1/labels`: outcomes that arrive after the predictions, stored beside the ledger.

A body holds one model's labels, each by entity `key` (with the time it was observed) or
by the `prediction_id` a response carried. Every label is checked before anything is
written, and then all of them are written as one file (`foretell.ledger.labels`): a bad
label refuses the request with the reason of each bad one, and nothing is half-stored.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from starlette.types import Receive, Scope, Send

from foretell.errors import ModelNotFound
from foretell.http.asgi import header, read_body, reply
from foretell.http.errors import CLIENT_CLOSED, HttpAnswers, Reply, method_not_allowed
from foretell.ledger.labels import parse_labels, publish_labels
from foretell.ledger.segments import LedgerLocation
from foretell.serving.service import Call, InferenceService

__all__ = ["LABELS_PATH", "LabelEndpoint"]

LABELS_PATH = "/v1/labels"


class LabelEndpoint:
    """Answers `POST /v1/labels` by writing the labels into the ledger at `location`."""

    def __init__(self, service: InferenceService, answers: HttpAnswers, location: str, *, max_body_bytes: int) -> None:
        self.service = service
        self.answers = answers
        self.location = LedgerLocation(location)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            started = time.perf_counter()
            await reply(send, 405, method_not_allowed(scope["method"], scope["path"], "POST"), {"Allow": "POST"})
            self.service.refused("labels", 405, started)
            return

        async def work(call: Call) -> Reply:
            body = await read_body(receive, header(scope["headers"], b"content-length"), self.max_body_bytes)
            model, labels = parse_labels(body)
            if not await asyncio.to_thread(self.service.knows_model, model):
                raise ModelNotFound(f"labels are for a registered model; no model is named {model!r}")
            path = await asyncio.to_thread(publish_labels, self.location, model, labels)
            if self.service.live is not None:
                self.service.live.labels_written(model, path, len(labels))
            return 200, orjson.dumps({"model": model, "accepted": len(labels)}), {}

        status, body, headers = await self.service.observed("labels", work, self.answers)
        if status != CLIENT_CLOSED:
            await reply(send, status, body, headers)
