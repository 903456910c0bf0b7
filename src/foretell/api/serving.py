"""Serving: the ASGI app, the server that runs it, and the settings both start from."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foretell.api.environment import API_KEY_ENV, LEDGER_ENV, home_folder, store_url
from foretell.api.models import production_uris
from foretell.errors import InvalidInput

if TYPE_CHECKING:
    from foretell.serving.config import ServeConfig


def create_server_app(
    uris: Sequence[str] = (),
    *,
    home: Path | str | None = None,
    config: ServeConfig | Path | str | None = None,
    **settings: Any,
) -> Any:
    """The ASGI app serving `uris` (default: the config's models, else every model with a `production` alias).

    `config` is a `ServeConfig` or a TOML file (docs/serving.md); `settings` override it
    (`max_batch_size=`, `max_delay_ms=`, `max_queue=`, `reload_seconds=`, `max_body_bytes=`,
    `api_key=`, `overload_status=`), and a `[batching.NAME]` table in the file overrides both.
    """
    from foretell.server.assembly import build_app

    return build_app(home_folder(home), _served(config, uris, settings, home))


def serve(
    uris: Sequence[str] = (),
    *,
    home: Path | str | None = None,
    config: ServeConfig | Path | str | None = None,
    log_level: str = "warning",
    engine: str = "local",
    replicas: int | None = None,
    autoscale: str | None = None,
    ray_address: str | None = None,
    ray_ingress: str = "direct",
    **settings: Any,
) -> None:
    """Serve models over HTTP (Open Inference Protocol and MLflow scoring) until SIGTERM or Ctrl-C.

    Settings as for `create_server_app`, plus `host=`, `port=`, `workers=` and `access_log=`.
    After a SIGTERM or Ctrl-C, in-flight requests finish (up to 30 s) and `serve` returns.
    With `engine="ray"` the same app runs as a Ray Serve application (`replicas=N` or
    `autoscale="MIN:MAX"`, on the cluster at `ray_address` or one started here); `ray_ingress="direct"`
    (where Ray has it) lets each replica answer on its own port, `"proxy"` only through Ray Serve's proxy.
    """
    from foretell.server.assembly import RayPlacement, run_server

    if engine not in ("local", "ray"):
        raise InvalidInput(f"engine must be local or ray; got {engine!r}")
    ray = RayPlacement(replicas, autoscale, ray_address, ray_ingress) if engine == "ray" else None
    run_server(home_folder(home), _served(config, uris, settings, home), log_level=log_level, ray=ray)


def dashboard(
    *,
    home: Path | str | None = None,
    host: str = "127.0.0.1",
    port: int = 8050,
    ledger: str | Path | None = None,
    log_level: str = "warning",
) -> None:
    """Serve the dashboard (`/ui`) alone on `home`, with no models loaded, until Ctrl-C or SIGTERM.

    Keys are checked as a server on `home` would (FORETELL_API_KEY, or the home's key book).
    """
    from foretell.api.ledger import ledger_location
    from foretell.server.dashboard import run_dashboard

    run_dashboard(
        home_folder(home),
        host=host,
        port=port,
        store_url=store_url(),
        ledger=ledger_location(ledger, home=home),
        api_key=os.environ.get(API_KEY_ENV) or None,
        log_level=log_level,
    )


def _served(
    config: ServeConfig | Path | str | None,
    uris: Sequence[str],
    settings: Mapping[str, Any],
    home: Path | str | None,
) -> ServeConfig:
    """The settings a server runs with: the config, the arguments, then the environment for what is still unset."""
    resolved = serve_config(config, uris, settings)
    return resolved.with_flags(
        models=None if resolved.models else production_uris(home=home),
        api_key=resolved.api_key or os.environ.get(API_KEY_ENV) or None,
        store_url=resolved.store_url or store_url(),
        ledger_location=resolved.ledger.location or os.environ.get(LEDGER_ENV) or None,
    )


def serve_config(
    config: ServeConfig | Path | str | None, uris: Sequence[str] = (), settings: Mapping[str, Any] | None = None
) -> ServeConfig:
    """A config file (or `ServeConfig`) with the given URIs and settings on top; None settings are "not given"."""
    from foretell.serving.config import settings_over

    return settings_over(config, uris, settings or {})
