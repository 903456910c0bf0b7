"""What the ledger records: one `Entry` per answered request (or per looked-up key), many rows each.

An entry is built on the serving path, so it holds references, not copies: the model call
that answered the request (its batch's validated inputs and predictions, shared by every
request in the batch) and which rows of it were the request's, which the writer's thread
turns into Arrow columns a flush at a time. The prediction id is the request's;
each of its rows is `(prediction_id, row)`.

On disk (a segment, `ledger.segments`) an entry becomes one row per prediction with the
columns of `SEGMENT_COLUMNS`, plus `inputs` and `outputs`: one struct column each, with a
field per model input (categories as their names, as the client sent them) and per
output. Segments of one model may differ in those fields (a new version adds a feature);
readers unify them by name.
"""

from __future__ import annotations

import collections
import itertools
import os
import secrets
import socket
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple

from foretell.errors import BodyTooLarge, ForetellError, InvalidInput, InvalidModelURI, ModelNotFound, NotFound

if TYPE_CHECKING:  # annotations only: a query (`foretell ledger show`) needs SOURCES, not the core and numpy
    from foretell.core.frame import Frame
    from foretell.core.predictor import Predictions
    from foretell.core.schema import Signature

__all__ = [
    "REFUSALS",
    "SEGMENT_COLUMNS",
    "SOURCES",
    "Entry",
    "ModelCall",
    "Served",
    "Source",
    "Status",
    "failure_status",
    "new_prediction_id",
    "writer_id",
]

Source = Literal["live", "precomputed", "live-fallback", "event-refresh", "batch", "shadow"]
SOURCES: Final[tuple[Source, ...]] = ("live", "precomputed", "live-fallback", "event-refresh", "batch", "shadow")
Status = Literal["ok", "error", "refused"]
"""ok: answered. error: the prediction failed (the model, an overload, a deadline, the store). refused: the
request was the client's to fix (bad input, an unknown key or model, a body past the limit): no model failed."""

#: What a client sent wrong, not what failed: the monitor counts these apart from failed predictions, or a
#: hybrid lookup of keys never scored (a 404 miss) read as a broken model.
REFUSALS: Final[tuple[type[ForetellError], ...]] = (
    InvalidInput,
    NotFound,
    ModelNotFound,
    InvalidModelURI,
    BodyTooLarge,
)


def failure_status(error: BaseException) -> Status:
    """The ledger status of a request that was not answered: "refused" for the client's mistakes, else "error"."""
    return "refused" if isinstance(error, REFUSALS) else "error"


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
    "status",  # string: "ok", "error" or "refused" (Status)
    "error",  # string, null when ok: the reason, as the client was told
)


class ModelCall:
    """One call of the model: the batch's validated inputs and its predictions, shared by every request in it.

    The micro-batcher makes one per batch when a request asks (`serving.queue.BatchNote`);
    each request's entry then points at its rows of the call (`Entry.call`, `offset`,
    `count`) instead of holding slices of its own, so recording a request allocates no
    arrays, and the writer concatenates one frame per model call, not one per request.
    """

    __slots__ = ("frame", "predictions")

    def __init__(self, frame: Frame, predictions: Predictions) -> None:
        self.frame = frame
        self.predictions = predictions


# A plain namedtuple, subclassed: typing.NamedTuple would refuse `Entry.__new__`, which keeps the
# keyword form (and its defaults) for everything but the serving path's `Entry.answered`.
_Fields = collections.namedtuple(
    "_Fields",
    (
        "prediction_id",
        "model",
        "source",
        "endpoint",
        "transport",
        "version",
        "sha256",
        "predictor",
        "signature",
        "frame",
        "predictions",
        "outputs",
        "keys",
        "request_id",
        "latency_ms",
        "batch_size",
        "status",
        "error",
        "predicted_at",
        "call",
        "offset",
        "count",
    ),
)


class Entry(_Fields):
    """One request's predictions (or its failure), as the serving path hands them to the ledger.

    The predictions are either rows `offset` to `offset + count` of a model `call` (the
    serving path's way: see `ModelCall`), or the request's own `frame` and `predictions`;
    `outputs` carries answers that were not computed now (a stored prediction returned by a
    lookup) as plain dicts, one per row. `keys`, when given, has one entity key per row. An
    error entry has one row and no inputs or outputs. `signature` is the answering
    version's: how the frame's coded categories read back as names.

    An entry is a tuple, and everything it holds is shared or immutable: the serving path
    builds one per request (`Entry.answered`, a few hundred nanoseconds), and the writer's
    thread reads them a flush at a time.
    """

    __slots__ = ()

    prediction_id: str
    model: str
    source: Source
    endpoint: str
    transport: str
    version: int | None
    sha256: str | None
    predictor: str | None
    signature: Signature | None
    frame: Frame | None
    predictions: Predictions | None
    outputs: Sequence[dict[str, Any]] | None
    keys: Sequence[str | None] | None
    request_id: str | None
    latency_ms: float
    batch_size: int
    status: Status
    error: str | None
    predicted_at: float
    call: ModelCall | None
    offset: int
    count: int

    def __new__(
        cls,
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
        call: ModelCall | None = None,
        offset: int = 0,
        count: int = 0,
    ) -> Entry:
        return tuple.__new__(
            cls,
            (
                prediction_id,
                model,
                source,
                endpoint,
                transport,
                version,
                sha256,
                predictor,
                signature,
                frame,
                predictions,
                outputs,
                keys,
                request_id,
                latency_ms,
                batch_size,
                status,
                error,
                time.time() if predicted_at is None else predicted_at,
                call,
                offset,
                count or _rows_of(predictions, outputs),
            ),
        )

    @staticmethod
    def stored(
        prediction_id: str,
        model: str,
        version: int,
        sha256: str | None,
        key: str,
        prediction: dict[str, Any],
        endpoint: str,
        transport: str,
        request_id: str | None,
        latency_ms: float,
    ) -> Entry:
        """The serving path's entry for one key a lookup answered from the store (`precomputed`)."""
        return tuple.__new__(
            Entry,
            (
                prediction_id,
                model,
                "precomputed",
                endpoint,
                transport,
                version,
                sha256,
                None,
                None,
                None,
                None,
                (prediction,),
                (key,),
                request_id,
                latency_ms,
                0,
                "ok",
                None,
                time.time(),
                None,
                0,
                1,
            ),
        )

    @staticmethod
    def answered(
        prediction_id: str,
        served: Served,
        source: Source,
        endpoint: str,
        transport: str,
        request_id: str | None,
        latency_ms: float,
        batch_size: int,
        keys: Sequence[str | None] | None,
        call: ModelCall,
        offset: int,
        count: int,
    ) -> Entry:
        """The serving path's entry for rows of a model call: positional, no keyword handling, no checks."""
        return tuple.__new__(
            Entry,
            (
                prediction_id,
                served.model,
                source,
                endpoint,
                transport,
                served.version,
                served.sha256,
                served.predictor,
                served.signature,
                None,
                None,
                None,
                keys,
                request_id,
                latency_ms,
                batch_size,
                "ok",
                None,
                time.time(),
                call,
                offset,
                count,
            ),
        )

    @property
    def rows(self) -> int:
        """How many ledger rows this entry becomes."""
        return self.count

    def __repr__(self) -> str:
        return f"<Entry {self.prediction_id} {self.model}/{self.version} {self.source} {self.status} × {self.rows}>"


def _rows_of(predictions: Predictions | None, outputs: Sequence[dict[str, Any]] | None) -> int:
    if predictions is not None:
        return len(predictions)
    if outputs is not None:
        return len(outputs)
    return 1


class Served(NamedTuple):
    """What every entry of one served version repeats: made once per loaded version, not per request."""

    model: str
    version: int
    sha256: str
    predictor: str
    signature: Signature


# -- prediction ids --------------------------------------------------------------------------------

_counter = itertools.count()
_tag = ""


def _new_tag() -> None:
    """48 random bits per process: ids from two processes (or machines) never collide in practice."""
    global _counter, _tag, _prefix_ms
    _tag = secrets.token_hex(6)
    _prefix_ms = -1
    _counter = itertools.count(secrets.randbelow(2**31))


_new_tag()
os.register_at_fork(after_in_child=_new_tag)  # a forked worker must not repeat its parent's ids


def new_prediction_id() -> str:
    """32 hex digits: the time in milliseconds (12), this process's tag (12), a counter (8).

    Ids sort by the time they were made (to the millisecond), are unique across processes
    and machines, and cost a few hundred nanoseconds: they are made for every request (the
    time and tag part is formatted once per millisecond).
    """
    global _prefix_ms, _prefix
    ms = time.time_ns() // 1_000_000
    if ms != _prefix_ms:
        _prefix_ms, _prefix = ms, f"{ms:012x}{_tag}"
    return _prefix + "%08x" % (next(_counter) & 0xFFFFFFFF)


_prefix_ms = -1
_prefix = ""


def writer_id() -> str:
    """A name for this process among every ledger writer: host, pid and this process's id tag."""
    host = "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{_tag[:6]}"
