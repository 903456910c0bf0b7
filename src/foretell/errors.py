"""One exception tree for everything foretell raises on purpose.

Each error inherits the builtin a Python user would reach for (`ModelNotFound` is a
`LookupError`, `InvalidInput` a `ValueError`), so `except ValueError` keeps working for
code that never heard of foretell. No HTTP status lives here: the transport maps
these classes to codes in one table of its own.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AliasNotFound",
    "ArtifactIntegrityError",
    "ForetellError",
    "InvalidInput",
    "InvalidModelURI",
    "InvalidSignature",
    "MissingExtra",
    "ModelLoadError",
    "ModelNotFound",
    "NotFound",
    "PredictionError",
    "RegistryError",
    "RowError",
    "UnsupportedModel",
    "VersionNotFound",
]


class ForetellError(Exception):
    """Root of every error foretell raises on purpose."""


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
        noun = "row" if len(errors) == 1 else "rows"
        return cls(f"{len(errors)} of {total_rows} input {noun} invalid: {shown}{more}", errors)


class InvalidSignature(ForetellError, ValueError):
    """A signature that cannot describe a model (duplicate names, unknown dtype, ...)."""


class InvalidModelURI(ForetellError, ValueError):
    """A model URI that is not `models:/name/3`, `models:/name@alias`, `name/3` or `name@alias`."""


class ModelNotFound(ForetellError, LookupError):
    """No registered model by that name."""


class VersionNotFound(ModelNotFound):
    """The model exists but not that version."""


class AliasNotFound(ModelNotFound):
    """The model exists but has no such alias."""


class NotFound(ForetellError, LookupError):
    """Something a request names does not exist: an entity table, a key with no prediction and no features."""


class RegistryError(ForetellError):
    """The registry refused an operation (a name clash, a bad alias name, a broken home folder)."""


class ArtifactIntegrityError(ForetellError):
    """A stored artifact's bytes no longer match the sha256 recorded when it was registered."""


class UnsupportedModel(ForetellError, TypeError):
    """A file or object that no flavor knows how to load or describe."""


class ModelLoadError(ForetellError):
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


class EngineUnavailable(ForetellError, RuntimeError):
    """The engine a job runs on (a Ray cluster) could not be reached or started."""


class PredictionError(ForetellError, RuntimeError):
    """The model itself failed, or broke its contract (N rows in, N rows out)."""
