"""`foretell serve --config serve.toml`: server settings and per-model batching knobs.

```toml
models = ["churn@production", "movies@production"]   # default: every model with @production
port = 8000
grpc_port = 8001           # also the Open Inference Protocol over gRPC (default: off)
ssl_certfile = "server.pem"   # TLS for HTTP and gRPC (default: off): the certificate chain (PEM) ...
ssl_keyfile = "server.key"    # ... and its private key (PEM, unencrypted)
max_batch_size = 64        # every model's batching knobs ...
max_delay_ms = 10
max_queue = 1024

[batching.churn]           # ... and one model's own, by model name
max_batch_size = 32
max_queue = 256

predictor = "auto"         # compiled when it passed its parity proof; "original" to bypass it

max_age = "26h"            # hybrid lookups: how old a stored prediction may be ...
[hybrid.movies]            # ... and one model's own
max_age = "15m"

[ledger]                   # the prediction ledger (docs/ledger.md): on by default, under FORETELL_HOME/ledger
inputs = "all"             # or "none", or a list of input names; redact, sample, retention_days, ...
[ledger.models.churn]      # ... and one model's own policy
redact = ["postcode"]
```

Most specific wins: a `[batching.NAME]` table, then command-line flags, then the file's
top-level keys, then the built-in defaults. Unknown keys and wrong types are refused with
the key's name, so a typo does not silently leave a default in force.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foretell.config import parse_duration
from foretell.core.model import PREDICTOR_CHOICES, PredictorChoice
from foretell.errors import InvalidServeConfig
from foretell.ledger.settings import LedgerSettings
from foretell.serving.policy import BatchPolicy

__all__ = ["BATCH_KNOBS", "ServeConfig", "load_serve_config", "settings_over"]

BATCH_KNOBS = ("max_batch_size", "max_delay_ms", "max_queue")


@dataclass(frozen=True)
class ServeConfig:
    """Everything `foretell serve` needs; `policy_for(name)` gives one model's batching knobs."""

    models: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    grpc_port: int | None = None
    """The Open Inference Protocol over gRPC on this port, same host (`serve --grpc-port`); None: off."""
    workers: int = 1
    defaults: BatchPolicy = field(default_factory=BatchPolicy)
    model_knobs: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    reload_seconds: float = 1.0
    max_body_bytes: int = 64 * 2**20
    access_log: bool = False
    api_key: str | None = None
    overload_status: int = 503
    max_age: float = 26 * 3600.0
    """Seconds a stored prediction stays fresh for hybrid lookups (a nightly job plus slack)."""
    model_max_age: Mapping[str, float] = field(default_factory=dict)
    store_url: str | None = None
    """Where predictions and entity tables live: None for SQLite under FORETELL_HOME, or redis://..."""
    predictor: PredictorChoice = "auto"
    """`auto` (compiled when it passed its parity proof), `original` (the framework's own), or `compiled`."""
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    """Whether and where every prediction is recorded, and each model's policy (the `[ledger]` table)."""
    events_from: str | None = None
    """A Redis stream of events applied as `POST /v1/events` applies them: `redis://HOST:6379/0?stream=NAME`."""
    tracing: bool = False
    """OpenTelemetry spans per request, exported as the `OTEL_*` variables say (docs/tracing.md)."""
    ssl_certfile: str | None = None
    """TLS for HTTP and gRPC: the server's certificate chain (PEM); with `ssl_keyfile`. None: plain text."""
    ssl_keyfile: str | None = None
    """The private key (PEM, unencrypted) of `ssl_certfile`'s certificate."""

    def __post_init__(self) -> None:
        if self.overload_status not in (429, 503):
            raise ValueError(f"overload_status must be 429 or 503, got {self.overload_status}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be between 1 and 65535, got {self.port}")
        if self.grpc_port is not None and not 0 < self.grpc_port < 65536:
            raise ValueError(f"grpc_port must be between 1 and 65535, got {self.grpc_port}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be at least 1, got {self.max_body_bytes}")
        if self.reload_seconds < 0:
            raise ValueError(f"reload_seconds must be ≥ 0 (0: never), got {self.reload_seconds}")
        if self.predictor not in PREDICTOR_CHOICES:
            raise ValueError(f"predictor must be one of {', '.join(PREDICTOR_CHOICES)}, got {self.predictor!r}")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            given, missing = (
                ("ssl_certfile", "ssl_keyfile") if self.ssl_keyfile is None else ("ssl_keyfile", "ssl_certfile")
            )
            raise ValueError(f"{given} needs {missing} too: TLS takes the certificate and its private key")

    def policy_for(self, name: str) -> BatchPolicy:
        knobs = self.model_knobs.get(name)
        if not knobs:
            return self.defaults
        try:
            return dataclasses.replace(self.defaults, **knobs)  # type: ignore[arg-type]
        except ValueError as exc:
            raise InvalidServeConfig(f"[batching.{name}]: {exc}") from None

    def policies(self) -> dict[str, BatchPolicy]:
        return {name: self.policy_for(name) for name in self.model_knobs}

    def with_flags(self, **flags: Any) -> ServeConfig:
        """This config with the command-line flags that were given (None means "not given")."""
        given = {k: v for k, v in flags.items() if v is not None}
        batching = {k: given.pop(k) for k in BATCH_KNOBS if k in given}
        ledger = {name: given.pop(flag) for flag, name in _LEDGER_FLAGS.items() if flag in given}
        if ledger:
            given["ledger"] = dataclasses.replace(self.ledger, **ledger)
        if "models" in given:
            given["models"] = tuple(given["models"])
        unknown = set(given) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InvalidServeConfig(f"unknown serve settings: {sorted(unknown)}")
        try:
            return dataclasses.replace(self, defaults=dataclasses.replace(self.defaults, **batching), **given)
        except ValueError as exc:
            raise InvalidServeConfig(str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready settings (for worker processes); `from_dict` reads them back."""
        plain = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del plain["defaults"], plain["model_knobs"], plain["model_max_age"]
        return {
            **plain,
            "ledger": self.ledger.to_mapping(),
            "hybrid": {name: {"max_age": seconds} for name, seconds in self.model_max_age.items()},
            "models": list(self.models),
            "batching": {name: dict(knobs) for name, knobs in self.model_knobs.items()},
            **{k: getattr(self.defaults, k) for k in BATCH_KNOBS},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "settings") -> ServeConfig:
        return _parse(dict(data), where)


def load_serve_config(path: Path | str) -> ServeConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidServeConfig(f"serve config {str(path)!r} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidServeConfig(f"{path.name} is not valid TOML: {exc}") from None
    return _parse(data, path.name)


#: Command-line flags that set the ledger's settings: flag → `LedgerSettings` field.
_LEDGER_FLAGS = {"ledger_enabled": "enabled", "ledger_location": "location"}

_TYPES: dict[str, tuple[type, ...]] = {
    "host": (str,),
    "port": (int,),
    "grpc_port": (int,),
    "workers": (int,),
    "max_batch_size": (int,),
    "max_delay_ms": (int, float),
    "max_queue": (int,),
    "reload_seconds": (int, float),
    "max_body_bytes": (int,),
    "access_log": (bool,),
    "api_key": (str,),
    "overload_status": (int,),
    "max_age": (float,),
    "store_url": (str,),
    "predictor": (str,),
    "events_from": (str,),
    "tracing": (bool,),
    "ssl_certfile": (str,),
    "ssl_keyfile": (str,),
}


def _parse(data: dict[str, Any], where: str) -> ServeConfig:
    models = data.pop("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise InvalidServeConfig(f"{where}: 'models' must be a list of model URIs, e.g. [\"churn@production\"]")
    tables = data.pop("batching", {})
    if not isinstance(tables, Mapping):
        raise InvalidServeConfig(f"{where}: 'batching' holds one table per model, e.g. [batching.churn]")
    knobs = {str(name): _knobs(table, f"{where} [batching.{name}]") for name, table in tables.items()}
    hybrid = data.pop("hybrid", {})
    if not isinstance(hybrid, Mapping) or not all(isinstance(t, Mapping) for t in hybrid.values()):
        raise InvalidServeConfig(f"{where}: 'hybrid' holds one table per model, e.g. [hybrid.churn] max_age = \"1h\"")
    ages = {}
    for name, table in hybrid.items():
        unknown = sorted(set(table) - {"max_age"})
        if unknown:
            raise InvalidServeConfig(f"{where} [hybrid.{name}]: unknown key(s) {unknown}; a model takes max_age")
        if "max_age" in table:
            ages[str(name)] = _duration(table["max_age"], f"{where} [hybrid.{name}] max_age")
    if "max_age" in data:
        data["max_age"] = _duration(data["max_age"], f"{where} max_age")
    ledger_table = data.pop("ledger", {})
    if not isinstance(ledger_table, Mapping):
        raise InvalidServeConfig(f"{where}: 'ledger' is a table of settings, e.g. [ledger] inputs = \"none\"")
    ledger = LedgerSettings.from_mapping(ledger_table, f"{where} [ledger]")
    values = {key: _checked(key, value, where) for key, value in data.items() if value is not None}
    defaults = {key: values.pop(key) for key in BATCH_KNOBS if key in values}
    try:
        config = ServeConfig(
            models=tuple(models),
            defaults=BatchPolicy(**defaults),
            model_knobs=knobs,
            model_max_age=ages,
            ledger=ledger,
            **values,
        )
    except ValueError as exc:
        raise InvalidServeConfig(f"{where}: {exc}") from None
    config.policies()  # every model's knobs checked now, not on the first request
    return config


def _knobs(table: Any, where: str) -> dict[str, float]:
    if not isinstance(table, Mapping):
        raise InvalidServeConfig(f"{where} must be a table of {', '.join(BATCH_KNOBS)}")
    unknown = sorted(set(table) - set(BATCH_KNOBS))
    if unknown:
        raise InvalidServeConfig(f"{where}: unknown key(s) {unknown}; a model takes {', '.join(BATCH_KNOBS)}")
    return {key: _checked(key, value, where) for key, value in table.items()}


def _duration(value: Any, where: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InvalidServeConfig(f"{where}: {exc}") from None


def _checked(key: str, value: Any, where: str) -> Any:
    kinds = _TYPES.get(key)
    if kinds is None:
        raise InvalidServeConfig(
            f"{where}: unknown key {key!r}; known: models, batching, hybrid, ledger, {', '.join(_TYPES)}"
        )
    if type(value) not in kinds or (isinstance(value, float) and not math.isfinite(value)):
        wanted = " or ".join("a number" if k is float else f"{k.__name__}" for k in kinds)
        raise InvalidServeConfig(f"{where}: {key} must be {wanted}, got {value!r}")
    return value


def settings_over(
    config: ServeConfig | Path | str | None, uris: Sequence[str], settings: Mapping[str, Any]
) -> ServeConfig:
    """A config file (or `ServeConfig`, or the defaults) with the given URIs and settings on top (None: not given)."""
    if config is None:
        config = ServeConfig()
    elif not isinstance(config, ServeConfig):
        config = load_serve_config(config)
    return config.with_flags(models=list(uris) or None, **settings)
