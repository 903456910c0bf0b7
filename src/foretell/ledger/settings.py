"""What the ledger records and keeps: `LedgerSettings` (a serve config's `[ledger]` table), `LedgerPolicy` per model.

Settings are plain frozen values, checked when made, so a bad knob fails at startup with
a message naming the key, the rule and the value, never in the writer's thread. Worker
processes receive them as JSON (`to_mapping`), which `from_mapping` reads back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from foretell.errors import InvalidServeConfig

__all__ = ["LedgerPolicy", "LedgerSettings"]

InputsPolicy = Literal["all", "none"] | tuple[str, ...]

_POLICY_KEYS = ("inputs", "redact", "sample", "retention_days", "retention_bytes")
_SETTINGS_KEYS = ("enabled", "location", "flush_seconds", "max_pending_rows", "models", *_POLICY_KEYS)
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class LedgerPolicy:
    """What one model's ledger rows hold and how long they are kept."""

    inputs: InputsPolicy = "all"
    """Inputs recorded: every one, none, or the named ones (in signature order; names the model lacks are skipped)."""
    redact: tuple[str, ...] = ()
    """Inputs stored as a keyed hash (HMAC-SHA256 with `<ledger>/_redact.key`, 32 hex digits), never in clear."""
    sample: float = 1.0
    """The fraction of predictions kept, deterministic by key (by prediction id when there is no key)."""
    retention_days: float = 30.0
    retention_bytes: int | None = None
    """Per model: past it, the oldest segments are deleted first."""

    def __post_init__(self) -> None:
        inputs: Any = self.inputs
        if isinstance(inputs, list):  # a TOML or JSON list
            inputs = tuple(inputs)
            object.__setattr__(self, "inputs", inputs)
        if isinstance(inputs, str):
            if inputs not in ("all", "none"):
                raise ValueError(f'\'inputs\' must be "all", "none" or a list of input names; got {inputs!r}')
        elif not isinstance(inputs, tuple) or not all(isinstance(n, str) and n for n in inputs):
            raise ValueError(f'\'inputs\' must be "all", "none" or a list of input names; got {inputs!r}')
        redact: Any = self.redact
        if isinstance(redact, list):
            redact = tuple(redact)
            object.__setattr__(self, "redact", redact)
        if not isinstance(redact, tuple) or not all(isinstance(n, str) and n for n in redact):
            raise ValueError(f"'redact' must be a list of input names; got {redact!r}")
        sample = self.sample
        if isinstance(sample, bool) or not isinstance(sample, int | float) or not 0.0 < sample <= 1.0:
            raise ValueError(f"'sample' must be a fraction in (0, 1]; got {sample!r}")
        days = self.retention_days
        if isinstance(days, bool) or not isinstance(days, int | float) or not (days > 0 and math.isfinite(days)):
            raise ValueError(f"'retention_days' must be a positive number of days; got {days!r}")
        budget = self.retention_bytes
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0):
            raise ValueError(f"'retention_bytes' must be a positive whole number of bytes; got {budget!r}")
        object.__setattr__(self, "sample", float(sample))
        object.__setattr__(self, "retention_days", float(days))

    def records(self, name: str) -> bool:
        """Whether input `name` is recorded at all."""
        if self.inputs == "all":
            return True
        if self.inputs == "none":
            return False
        return name in self.inputs

    def with_changes(self, data: Mapping[str, Any]) -> LedgerPolicy:
        """This policy with the keys of `data` (a TOML table's policy keys) replaced."""
        values = {key: getattr(self, key) for key in _POLICY_KEYS}
        for key in _POLICY_KEYS:
            if key in data:
                value = data[key]
                values[key] = tuple(value) if key in ("inputs", "redact") and isinstance(value, list) else value
        return LedgerPolicy(**values)

    def to_mapping(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs if isinstance(self.inputs, str) else list(self.inputs),
            "redact": list(self.redact),
            "sample": self.sample,
            "retention_days": self.retention_days,
            "retention_bytes": self.retention_bytes,
        }


@dataclass(frozen=True)
class LedgerSettings:
    """Whether and where predictions are recorded, how often they are flushed, and each model's policy."""

    enabled: bool = True
    location: str | None = None
    """A folder or an fsspec URL; None: `<FORETELL_HOME>/ledger`."""
    flush_seconds: float = 1.0
    max_pending_rows: int = 200_000
    """The bounded queue, in rows: past it, entries are dropped and counted."""
    default: LedgerPolicy = LedgerPolicy()
    models: Mapping[str, LedgerPolicy] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(f"'enabled' must be true or false; got {self.enabled!r}")
        if self.location is not None and (not isinstance(self.location, str) or not self.location):
            raise ValueError(f"'location' must be a folder or an fsspec URL; got {self.location!r}")
        seconds = self.flush_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= 3600:
            raise ValueError(f"'flush_seconds' must be a number of seconds in (0, 3600]; got {seconds!r}")
        object.__setattr__(self, "flush_seconds", float(seconds))
        pending = self.max_pending_rows
        if isinstance(pending, bool) or not isinstance(pending, int) or pending < 1:
            raise ValueError(f"'max_pending_rows' must be a whole number of rows, at least 1; got {pending!r}")
        for name, policy in self.models.items():
            if not isinstance(name, str) or not _MODEL_NAME.match(name):
                raise ValueError(f"'models': {name!r} is not a model name")
            if not isinstance(policy, LedgerPolicy):
                raise ValueError(f"'models.{name}' must be a LedgerPolicy; got {type(policy).__name__}")
        object.__setattr__(self, "models", MappingProxyType(dict(self.models)))

    def policy_for(self, model: str) -> LedgerPolicy:
        return self.models.get(model, self.default)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> LedgerSettings:
        """The `[ledger]` table of a serve config (`where` names it in messages), checked key by key."""
        if not isinstance(data, Mapping):
            raise InvalidServeConfig(f"{where}: [ledger] must be a table; got {type(data).__name__}")
        unknown = set(data) - set(_SETTINGS_KEYS)
        if unknown:
            raise InvalidServeConfig(
                f"{where}: unknown [ledger] settings {sorted(unknown)}; allowed: {sorted(_SETTINGS_KEYS)}"
            )
        try:
            default = LedgerPolicy().with_changes(data)
        except (ValueError, TypeError) as exc:
            raise InvalidServeConfig(f"{where}: [ledger] {exc}") from None
        models: dict[str, LedgerPolicy] = {}
        tables = data.get("models", {})
        if not isinstance(tables, Mapping):
            raise InvalidServeConfig(
                f"{where}: [ledger] 'models' holds one table per model, e.g. [ledger.models.churn]"
            )
        for name, table in tables.items():
            if not isinstance(table, Mapping):
                raise InvalidServeConfig(f"{where}: [ledger.models.{name}] must be a table; got {table!r}")
            extra = set(table) - set(_POLICY_KEYS)
            if extra:
                raise InvalidServeConfig(
                    f"{where}: unknown [ledger.models.{name}] settings {sorted(extra)}; allowed: {sorted(_POLICY_KEYS)}"
                )
            try:
                models[name] = default.with_changes(table)
            except (ValueError, TypeError) as exc:
                raise InvalidServeConfig(f"{where}: [ledger.models.{name}] {exc}") from None
        try:
            return cls(
                enabled=data.get("enabled", True),
                location=data.get("location"),
                flush_seconds=data.get("flush_seconds", 1.0),
                max_pending_rows=data.get("max_pending_rows", 200_000),
                default=default,
                models=models,
            )
        except (ValueError, TypeError) as exc:
            raise InvalidServeConfig(f"{where}: [ledger] {exc}") from None

    def to_mapping(self) -> dict[str, Any]:
        """JSON-ready; `from_mapping` reads it back into equal settings."""
        out: dict[str, Any] = {
            "enabled": self.enabled,
            "flush_seconds": self.flush_seconds,
            "max_pending_rows": self.max_pending_rows,
            **{key: value for key, value in self.default.to_mapping().items() if value is not None},
            "models": {name: _full(policy) for name, policy in self.models.items()},
        }
        if self.location is not None:
            out["location"] = self.location
        return out


def _full(policy: LedgerPolicy) -> dict[str, Any]:
    """A model's policy written out whole, so it reads back the same whatever the default becomes."""
    mapping = policy.to_mapping()
    if mapping["retention_bytes"] is None:
        del mapping["retention_bytes"]
    return mapping
