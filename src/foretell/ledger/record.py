"""What the ledger records: one `Entry` per answered request (or per looked-up key), many rows each.

An entry is built on the serving path, so it holds references, not copies: the frame of
validated inputs the model was given and the predictions it made, which the writer's
thread turns into Arrow columns a flush at a time. The prediction id is the request's;
each of its rows is `(prediction_id, row)`.

On disk (a segment, `ledger.segments`) an entry becomes one row per prediction with the
columns of `SEGMENT_COLUMNS`, plus `inputs` and `outputs`: one struct column each, with a
field per model input (categories as their names, as the client sent them) and per
output. Segments of one model may differ in those fields (a new version adds a feature);
readers unify them by name.
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket
import time
from collections.abc import Sequence
from typing import Any, Final, Literal

from foretell.core.frame import Frame
from foretell.core.predictor import Predictions
from foretell.core.schema import Signature

__all__ = [
    "SEGMENT_COLUMNS",
    "SOURCES",
    "Entry",
    "Source",
    "Status",
    "new_prediction_id",
    "writer_id",
]

Source = Literal["live", "precomputed", "live-fallback", "event-refresh", "batch", "shadow"]
SOURCES: Final[tuple[Source, ...]] = ("live", "precomputed", "live-fallback", "event-refresh", "batch", "shadow")
Status = Literal["ok", "error"]

#: The columns every ledger row has, in order, before its `inputs` and `outputs` structs.
SEGMENT_COLUMNS: Final[tuple[str, ...]] = (
    "prediction_id",  # string: the request's id, time-ordered (new_prediction_id)
    "row",  # int32: the row within the request (0 for a one-row request or a lookup)
    "predicted_at",  # timestamp[us, UTC]: when the answer was ready
    "model",  # string
    "version",  # int64, null when the request failed before a version was chosen
    "sha256",  # string: the version's artifact digest
    "predictor",  # string: "original", or the compiler that built the answering predictor
    "source",  # string: one of SOURCES
    "transport",  # string: "http" (later "grpc")
    "endpoint",  # string: "infer", "invocations", "lookup", "batchGet", "events"
    "key",  # string, null when the request named no entity
    "request_id",  # string, null when the client gave none
    "latency_ms",  # float64: the request's time from received to answered
    "batch_size",  # int32: rows in the model call that answered it (0: no model call)
    "status",  # string: "ok" or "error"
    "error",  # string, null when ok: the reason, as the client was told
)


class Entry:
    """One request's predictions (or its failure), as the serving path hands them to the ledger.

    `frame` and `predictions` are the request's own rows (the micro-batcher's slice), kept by
    reference; `outputs` carries answers that were not computed now (a stored prediction
    returned by a lookup) as plain dicts, one per row. `keys`, when given, has one entity
    key per row. An error entry has one row and no inputs or outputs.
    """

    __slots__ = (
        "batch_size",
        "endpoint",
        "error",
        "frame",
        "keys",
        "latency_ms",
        "model",
        "outputs",
        "predicted_at",
        "prediction_id",
        "predictions",
        "predictor",
        "request_id",
        "sha256",
        "signature",
        "source",
        "status",
        "transport",
        "version",
    )

    def __init__(
        self,
        prediction_id: str,
        model: str,
        *,
        source: Source,
        endpoint: str,
        transport: str = "http",
        version: int | None = None,
        sha256: str | None = None,
        predictor: str | None = None,
        signature: Signature | None = None,
        frame: Frame | None = None,
        predictions: Predictions | None = None,
        outputs: Sequence[dict[str, Any]] | None = None,
        keys: Sequence[str | None] | None = None,
        request_id: str | None = None,
        latency_ms: float = 0.0,
        batch_size: int = 0,
        status: Status = "ok",
        error: str | None = None,
        predicted_at: float | None = None,
    ) -> None:
        self.prediction_id = prediction_id
        self.model = model
        self.source = source
        self.endpoint = endpoint
        self.transport = transport
        self.version = version
        self.sha256 = sha256
        self.predictor = predictor
        self.signature = signature
        """The answering version's signature: how `frame`'s coded categories read back as names."""
        self.frame = frame
        self.predictions = predictions
        self.outputs = outputs
        self.keys = keys
        self.request_id = request_id
        self.latency_ms = latency_ms
        self.batch_size = batch_size
        self.status: Status = status
        self.error = error
        self.predicted_at = time.time() if predicted_at is None else predicted_at

    @property
    def rows(self) -> int:
        """How many ledger rows this entry becomes."""
        if self.predictions is not None:
            return len(self.predictions)
        if self.outputs is not None:
            return len(self.outputs)
        return 1

    def __repr__(self) -> str:
        return f"<Entry {self.prediction_id} {self.model}/{self.version} {self.source} {self.status} × {self.rows}>"


# -- prediction ids --------------------------------------------------------------------------------

_counter = itertools.count()
_tag = ""


def _new_tag() -> None:
    """48 random bits per process: ids from two processes (or machines) never collide in practice."""
    global _counter, _tag
    _tag = secrets.token_hex(6)
    _counter = itertools.count(secrets.randbelow(2**31))


_new_tag()
os.register_at_fork(after_in_child=_new_tag)  # a forked worker must not repeat its parent's ids


def new_prediction_id() -> str:
    """32 hex digits: the time in milliseconds (12), this process's tag (12), a counter (8).

    Ids sort by the time they were made (to the millisecond), are unique across processes
    and machines, and cost a few hundred nanoseconds: they are made for every request.
    """
    return f"{time.time_ns() // 1_000_000:012x}{_tag}{next(_counter) & 0xFFFFFFFF:08x}"


def writer_id() -> str:
    """A name for this process among every ledger writer: host, pid and this process's id tag."""
    host = "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{_tag[:6]}"
