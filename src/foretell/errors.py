"""One exception tree for everything foretell raises on purpose.

Each error inherits the builtin a Python user would reach for (`ModelNotFound` is a
`LookupError`, `InvalidInput` a `ValueError`), so `except ValueError` keeps working for
code that never heard of foretell. No HTTP status lives here: the transport maps
these classes to codes in one table of its own.

The classes are grouped by where they come from; within a group, a subclass follows
its parent.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AliasNotFound",
    "ArtifactIntegrityError",
    "BatchJobFailed",
    "BatcherClosed",
    "BodyTooLarge",
    "ClientDisconnected",
    "DeadlineExceeded",
    "EngineUnavailable",
    "ForetellError",
    "InvalidInput",
    "InvalidModelURI",
    "InvalidRollout",
    "InvalidSchedule",
    "InvalidServeConfig",
    "InvalidSignature",
    "InvalidThresholds",
    "JobHistoryError",
    "JobInterrupted",
    "JobNotFound",
    "KeyBookError",
    "MissingExtra",
    "ModelLoadError",
    "ModelNotFound",
    "NotCompilable",
    "NotFound",
    "OutputLocked",
    "Overloaded",
    "PredictionError",
    "ProtocolError",
    "RegistryError",
    "RowError",
    "ScheduleBookError",
    "ScheduleExists",
    "ScheduleNotFound",
    "StoreError",
    "StoreUnavailable",
    "UnsupportedMediaType",
    "UnsupportedModel",
    "VersionNotFound",
]


class ForetellError(Exception):
    """Root of every error foretell raises on purpose."""


# -- input: rows, signatures, model references, request bodies -------------------------------------


class RowError:
    """Why one input row was refused: which row, which field, the rule it broke, the value that came."""

    __slots__ = ("field", "reason", "received", "row")

    def __init__(self, row: int | None, field: str | None, reason: str, received: Any = None) -> None:
        self.row = row
        self.field = field
        self.reason = reason
        self.received = received

    def describe(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        prefix = ", ".join(where)
        text = f"{prefix}: {self.reason}" if prefix else self.reason
        if self.received is not None:
            text += f"; got {_show(self.received)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "reason": self.describe()}

    def __repr__(self) -> str:
        return f"RowError({self.describe()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RowError) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.row, self.field, self.reason))


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


class InvalidInput(ForetellError, ValueError):
    """Input that does not match the model's signature.

    `errors` lists every refused row; the message names the first few so a person can
    fix them without a debugger.
    """

    def __init__(self, message: str, errors: list[RowError] | None = None) -> None:
        super().__init__(message)
        self.errors: list[RowError] = errors or []

    @classmethod
    def from_rows(cls, errors: list[RowError], total_rows: int) -> InvalidInput:
        shown = "; ".join(e.describe() for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        # A row can break several rules (one error per field): the count is of rows, never over total_rows.
        bad = len({e.row for e in errors if e.row is not None}) or len(errors)
        noun = "row" if bad == 1 else "rows"
        return cls(f"{bad} of {total_rows} input {noun} invalid: {shown}{more}", errors)


class ProtocolError(InvalidInput):
    """A request body that does not follow the Open Inference Protocol or MLflow's scoring format.

    Raised while decoding, before any row is coerced: a tensor whose data does not fill
    its shape, an unknown datatype, JSON that is not the expected document.
    """


class UnsupportedMediaType(InvalidInput):
    """A `/invocations` body in a content type MLflow's scoring format does not define (not JSON or CSV)."""


class InvalidSignature(ForetellError, ValueError):
    """A signature that cannot describe a model (duplicate names, unknown dtype, ...)."""


class InvalidModelURI(ForetellError, ValueError):
    """A model URI that is not `models:/name/3`, `models:/name@alias`, `name/3` or `name@alias`."""


# -- the registry and the models in it -------------------------------------------------------------


class ModelNotFound(ForetellError, LookupError):
    """No registered model by that name."""


class VersionNotFound(ModelNotFound):
    """The model exists but not that version."""


class AliasNotFound(ModelNotFound):
    """The model exists but has no such alias."""


class NotFound(ForetellError, LookupError):
    """Something a request names does not exist: an entity table, a key with no prediction and no features."""


class RegistryError(ForetellError, ValueError):
    """The registry refused an operation it was asked for.

    A bad model or alias name, a path that is not a registrable file or folder, metadata
    that is not JSON, a FORETELL_HOME that is a file, or an artifact that other processes
    kept deleting while it was being registered.
    """


class ArtifactIntegrityError(ForetellError, RuntimeError):
    """A stored artifact is missing, or its bytes no longer match the sha256 recorded when it was registered.

    Raised before the artifact is loaded: loading a pickle runs its code.
    """


class UnsupportedModel(ForetellError, TypeError):
    """A file or object that no flavor knows how to load or describe."""


class ModelLoadError(ForetellError, RuntimeError):
    """A flavor recognised the artifact but the framework failed to load it."""


class MissingExtra(ForetellError, ImportError):
    """A flavor's framework is not installed; the message names the extra that brings it."""

    def __init__(self, flavor: str, module: str, extra: str, *, needed_by: str | None = None) -> None:
        super().__init__(
            f"{needed_by or f'the {flavor} flavor'} needs the {module!r} package, which is not installed; "
            f"install it with: pip install 'foretell[{extra}]'"
        )
        self.flavor = flavor
        self.module = module
        self.extra = extra


class NotCompilable(ForetellError, RuntimeError):
    """A compiler could not build this model, so it keeps its original predictor; the message says why.

    Raised by the compilers (a kind of tree or pipeline they do not handle, no C compiler,
    a build that failed) and caught where a compile is recorded.
    """


# -- predicting and serving ------------------------------------------------------------------------


class PredictionError(ForetellError, RuntimeError):
    """The model itself failed, or broke its contract (N rows in, N rows out)."""


class Overloaded(ForetellError, RuntimeError):
    """A model's request queue is full, so the request was refused without running.

    `retry_after_s` says when trying again is likely to succeed.
    """

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadlineExceeded(ForetellError, TimeoutError):
    """A request's deadline passed before the model ran it; it was not run."""


class BatcherClosed(ForetellError, RuntimeError):
    """A request came to a model's micro-batcher that is not taking requests: not started yet, stopping, or stopped."""


class InvalidServeConfig(ForetellError, ValueError):
    """A serve config file (or flag) that cannot be used as written: an unknown key, a knob out of range."""


class InvalidRollout(ForetellError, ValueError):
    """A rollout that cannot start or change: a bad percentage, an unknown guard, one already running."""


class InvalidThresholds(ForetellError, ValueError):
    """Drift thresholds that cannot be used as written: an unknown key, a value of the wrong type or out of range."""


class BodyTooLarge(ForetellError, ValueError):
    """A request body over the server's size limit, refused as soon as its size is known (before the rest is read)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than the server's limit of {limit:,} bytes (max_body_bytes)")


class ClientDisconnected(ForetellError, ConnectionError):
    """The client hung up before its request body arrived: nobody is left to answer."""


# -- access ------------------------------------------------------------------------------------------


class KeyBookError(ForetellError, RuntimeError):
    """The key book (`FORETELL_HOME/keys.db`) could not be read or written."""


# -- the online store ------------------------------------------------------------------------------


class StoreError(ForetellError, RuntimeError):
    """The prediction or entity store refused an operation.

    A generation that is not open, an empty publish, a load overtaken by a later one, a
    store URL that is not one, a Redis server that cannot be reached, a broken database.
    """


class StoreUnavailable(StoreError):
    """The store cannot be reached right now (its Redis server is down or restarting): worth retrying.

    Answered 503 with `Retry-After`, not 500: nothing is wrong with the request or the server,
    and nothing was written, so the same request succeeds once the store is back.
    """


# -- batch jobs and schedules ----------------------------------------------------------------------


class BatchJobFailed(ForetellError, RuntimeError):
    """A batch job ran but must not publish its output (more rejected rows than the job allows)."""


class JobInterrupted(ForetellError, RuntimeError):
    """SIGTERM or SIGINT stopped a batch job between chunks; `foretell batch resume` finishes it."""


class JobNotFound(ForetellError, LookupError):
    """No batch job with that id in this FORETELL_HOME's job history."""


class JobHistoryError(ForetellError, RuntimeError):
    """The job history (`jobs.db`) could not be read or written.

    It stayed locked by another process past the busy timeout, is damaged, or was written
    by a newer foretell; the message names the file.
    """


class OutputLocked(ForetellError, RuntimeError):
    """A batch job's output folder is locked by another run that is writing it."""


class EngineUnavailable(ForetellError, RuntimeError):
    """The engine a job or server runs on (a Ray cluster) could not be reached or started."""


class InvalidSchedule(ForetellError, ValueError):
    """A schedule name, cron expression or command that cannot be scheduled."""


class ScheduleExists(ForetellError, ValueError):
    """A schedule was added under a name that another schedule already has."""


class ScheduleNotFound(ForetellError, LookupError):
    """No schedule (or no waiting run of one) by that name in this FORETELL_HOME."""


class ScheduleBookError(ForetellError, RuntimeError):
    """The schedule book (`schedules.db`) could not be read or written.

    It stayed locked by another process past the busy timeout, is damaged, or was written
    by a newer foretell; the message names the file.
    """
