"""Assembling a server from its settings, and running it: uvicorn on this machine, or Ray Serve.

The one place where the serving pieces are put together: the runtime (served models and
their batchers), the inference service over it, the hybrid service over that with its
stores, and the ASGI app. Every process that serves (the only one, each `--workers`
process, each Ray Serve replica) builds the same thing from the same `ServeConfig`.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from foretell import tracing
from foretell.config import lines_on_stderr
from foretell.errors import InvalidInput, InvalidServeConfig
from foretell.http.app import ServerOptions, create_app
from foretell.hybrid import HybridService
from foretell.hybrid.stream import StreamConsumer
from foretell.ledger.writer import LedgerWriter
from foretell.memory import settle_serving_allocators
from foretell.registry import open_registry
from foretell.registry.profiles import ProfileStore
from foretell.server.tls import tls_files
from foretell.serving.access import Access
from foretell.serving.config import ServeConfig
from foretell.serving.live_monitor import LiveMonitor
from foretell.serving.runtime import Runtime
from foretell.serving.service import InferenceService
from foretell.store import open_entity_store, open_store
from foretell.store.redis_stream import parse_stream_url
from foretell.ui import LiveSampler, Pages, dashboard_app, with_dashboard

__all__ = ["SERVE_CONFIG_ENV", "RayPlacement", "app_from_env", "build_app", "build_services", "run_server"]

SERVE_CONFIG_ENV = "FORETELL_SERVE_CONFIG"
"""How `--workers` processes get their settings: the parent's `ServeConfig` as JSON, plus `home`."""

GRACEFUL_SHUTDOWN_S = 30


@dataclass(frozen=True)
class RayPlacement:
    """Where a Ray Serve deployment runs: a fixed number of replicas, or `MIN:MAX` autoscaling, on a cluster."""

    replicas: int | None = None
    autoscale: str | None = None
    address: str | None = None
    ingress: str = "direct"
    """direct: each replica also answers on its own port (where Ray has it); proxy: only through Ray Serve's proxy."""


def build_app(
    home: Path,
    config: ServeConfig,
    *,
    served: Callable[[InferenceService], None] | None = None,
    dashboard: bool = True,
) -> ASGIApp:
    """The ASGI app serving `config.models` from the registry in `home`, with hybrid lookups and events, and
    with `dashboard` the `/ui` pages (docs/ui.md) sampling this process's metrics.

    `served` is handed the app's inference service: a Ray Serve replica answers gRPC through it.
    """
    inference, hybrid = build_services(home, config)
    if served is not None:
        served(inference)
    options = ServerOptions(
        access=Access.of(home, config.api_key),
        max_body_bytes=config.max_body_bytes,
        overload_status=config.overload_status,
        access_log=config.access_log,
    )
    events = None
    if config.events_from is not None:
        lines_on_stderr("foretell.events")  # standing by, dead letters, Redis gone: what its operator must see
        events = StreamConsumer(hybrid, parse_stream_url(config.events_from), max_event_bytes=config.max_body_bytes)
    companions = []
    if config.grpc_port is not None:
        from foretell.grpc import GrpcServer  # grpcio is loaded only by servers that speak gRPC

        tls = tls_files(config)
        companions.append(
            GrpcServer(
                inference,
                config.host,
                config.grpc_port,
                access=options.access,
                max_message_bytes=config.max_body_bytes,
                grace_seconds=GRACEFUL_SHUTDOWN_S,
                tls_key_and_chain=tls.key_and_chain() if tls is not None else None,
            )
        )
    app = create_app(
        inference, options, hybrid, labels_at=ledger_location(home, config), events=events, companions=companions
    )
    if not dashboard:
        return app
    pages = Pages(home, store_url=config.store_url, ledger=ledger_location(home, config))
    live = LiveSampler(inference.metrics.registry)
    return with_dashboard(app, dashboard_app(pages, options.access, live), live, warm=pages.warm)


def build_services(home: Path, config: ServeConfig) -> tuple[InferenceService, HybridService]:
    """The inference service over `config.models` and the hybrid service over it (not started)."""
    if not config.models:
        raise InvalidInput("nothing to serve: name models, or give one a production alias (foretell models alias)")
    if config.tracing:  # here, so that every worker process and Ray replica exports its own spans
        tracing.enable()
    runtime = Runtime(
        open_registry(home),
        list(config.models),
        policy=config.defaults,
        policies=config.policies(),
        reload_seconds=config.reload_seconds,
        predictor=config.predictor,
    )
    live = None
    if config.ledger.enabled:
        live = LiveMonitor(ProfileStore(home).load, ledger=ledger_location(home, config))
    inference = InferenceService(runtime, _ledger_writer(home, config, live), live)
    hybrid = HybridService(
        inference,
        open_store(home, config.store_url),
        open_entity_store(home, config.store_url),
        max_age=config.model_max_age,
        default_max_age=config.max_age,
    )
    return inference, hybrid


def ledger_location(home: Path, config: ServeConfig) -> str:
    """Where this server's ledger is: the config's location, else `FORETELL_HOME/ledger`."""
    return config.ledger.location or str(Path(home).absolute() / "ledger")


def _ledger_writer(home: Path, config: ServeConfig, live: LiveMonitor | None) -> LedgerWriter | None:
    """This process's ledger writer (each `--workers` process and Ray replica has its own); None when off."""
    if not config.ledger.enabled:
        return None
    return LedgerWriter(ledger_location(home, config), config.ledger, observers=[live.observe] if live else [])


def app_from_env() -> ASGIApp:
    """The app for `uvicorn --factory` worker processes: settings come as JSON in FORETELL_SERVE_CONFIG."""
    settings = json.loads(os.environ.get(SERVE_CONFIG_ENV, "{}"))
    home = Path(settings.pop("home"))
    _show_serving_log()
    settle_serving_allocators()
    return build_app(home, ServeConfig.from_dict(settings, SERVE_CONFIG_ENV))


def run_server(home: Path, config: ServeConfig, *, log_level: str = "warning", ray: RayPlacement | None = None) -> None:
    """Serve until SIGTERM or Ctrl-C; in-flight requests finish (up to 30 s), then this returns."""
    if not config.models:
        raise InvalidInput("nothing to serve: name models, or give one a production alias (foretell models alias)")
    if config.tracing:  # a missing extra or a wrong OTEL_TRACES_EXPORTER is said once, before any worker starts
        tracing.require()
    tls = tls_files(config)
    try:  # here, before any worker or replica starts, so that a wrong FORETELL_ALLOCATORS stops only this
        settle_serving_allocators()
    except ValueError as exc:
        raise InvalidServeConfig(str(exc)) from None
    if ray is not None:
        if tls is not None:
            raise InvalidInput(
                "ssl_certfile / ssl_keyfile: Ray Serve's proxies take no certificate; end TLS in front of them "
                "(a load balancer), or serve with --engine local"
            )
        _run_on_ray(home, config, ray)
        return
    import uvicorn

    common: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "log_level": log_level,
        "access_log": False,  # foretell writes its own, structured (ServeConfig.access_log)
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
    }
    if tls is not None:
        common |= {"ssl_certfile": tls.certfile, "ssl_keyfile": tls.keyfile}
    # uvicorn re-raises the signal that stopped it once it has drained; a graceful stop is a
    # normal end, so that second delivery is ignored and `run_server` returns.
    previous = {sig: signal.signal(sig, lambda signum, frame: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if config.workers > 1:
            # Each worker process builds its own app (and loads its own models) from the same settings.
            os.environ[SERVE_CONFIG_ENV] = json.dumps({**config.to_dict(), "home": str(home)})
            uvicorn.run("foretell.server.assembly:app_from_env", factory=True, workers=config.workers, **common)
        else:
            _show_serving_log()
            uvicorn.run(build_app(home, config), **common)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_on_ray(home: Path, config: ServeConfig, placement: RayPlacement) -> None:
    from foretell.server.ray_serve import (
        RayGrpcOptions,
        RayServeOptions,
        check_ingress,
        parse_autoscale,
        run_on_ray_serve,
    )

    admitted = config.defaults.max_queue  # what a replica's own queues can hold (docs/scale-out.md)
    options = RayServeOptions(
        host=config.host,
        port=config.port,
        replicas=placement.replicas,
        autoscale=parse_autoscale(placement.autoscale) if placement.autoscale else None,
        max_ongoing_requests=admitted,
        max_queued_requests=admitted,
        address=placement.address,
        ingress=check_ingress(placement.ingress),
        grpc=None
        if config.grpc_port is None
        else RayGrpcOptions(config.grpc_port, api_key=config.api_key, max_message_bytes=config.max_body_bytes),
    )
    # Ray Serve's gRPC proxy holds the gRPC port; a replica answers the RPCs it passes on, and binds nothing itself.
    replica_config = replace(config, grpc_port=None)
    # No /ui on Ray: each replica would show only its own metrics; `foretell ui` shows the rest.
    run_on_ray_serve(build_app, {"home": home, "config": replica_config, "dashboard": False}, options)


def _show_serving_log() -> None:
    """Which version each model serves, with which predictor, and every reload: one line each on stderr."""
    lines_on_stderr("foretell.serving")
