"""`foretell serve`: the real-time server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from foretell import api
from foretell.cli.output import err

EPILOG = (
    "Examples:\n\n"
    "  foretell serve                                   # every model with a production alias\n\n"
    "  foretell serve churn@production --port 8080 --max-batch-size 64\n\n"
    "  foretell serve churn@production --grpc-port 8001   # also OIP over gRPC (tritonclient.grpc)\n\n"
    "  foretell serve --config serve.toml               # settings and per-model batching (docs/serving.md)\n\n"
    "  foretell serve churn@production --engine ray --autoscale 1:4 --ray-address auto   # Ray Serve replicas\n\n"
    "  foretell serve churn@production --engine ray --ray-ingress proxy   # only through Ray Serve's proxy\n\n"
    "  foretell serve churn@production --engine ray --grpc-port 8001   # OIP gRPC through Ray Serve's gRPC proxy\n\n"
    "  foretell serve --no-ledger                       # record no predictions (foretell ledger show)\n\n"
    "  foretell serve --events-from 'redis://localhost:6379/0?stream=ratings'   # events from a stream\n\n"
    "  foretell serve --ssl-certfile server.pem --ssl-keyfile server.key   # HTTPS, and gRPC over TLS\n\n"
    "  curl -s localhost:8000/v2/models/churn/infer -d @request.json"
)


def serve(
    uris: Annotated[
        list[str] | None, typer.Argument(help="Model URIs (default: the config's, else every model with @production).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML file: settings, and a batching.NAME table of knobs per model.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default: 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default: 8000).")] = None,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            help="Also serve the Open Inference Protocol over gRPC on this port, same host (--engine ray: through "
            "Ray Serve's gRPC proxy, on every interface) (default: off)."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Server processes, each with its own copy of the models (default: 1).")
    ] = None,
    max_batch_size: Annotated[
        int | None, typer.Option(min=1, help="Most rows coalesced into one model call (default: 64).")
    ] = None,
    max_delay_ms: Annotated[
        float | None,
        typer.Option(min=0.0, help="Longest an idle model waits for company under load (0: never) (default: 10)."),
    ] = None,
    max_queue: Annotated[
        int | None, typer.Option(min=1, help="Rows queued per model before answering 503 (default: 1024).")
    ] = None,
    reload_seconds: Annotated[
        float | None, typer.Option(min=0.0, help="How often to check for moved aliases (0: never) (default: 1).")
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(min=1, help="Largest request body accepted, else 413 (default: 64 MiB).")
    ] = None,
    access_log: Annotated[
        bool | None, typer.Option("--access-log/--no-access-log", help="One JSON line per request on stderr.")
    ] = None,
    predictor: Annotated[
        str | None,
        typer.Option(help="auto (compiled when it passed its parity proof), original or compiled (default: auto)."),
    ] = None,
    ledger: Annotated[
        bool | None,
        typer.Option(
            "--ledger/--no-ledger", help="Record every prediction in the ledger (foretell ledger show) (default: on)."
        ),
    ] = None,
    ledger_location: Annotated[
        str | None,
        typer.Option(help="The ledger: a folder or an fsspec URL (default: FORETELL_LEDGER, else HOME/ledger)."),
    ] = None,
    events_from: Annotated[
        str | None,
        typer.Option(help="Apply the events of a Redis stream while serving: redis://HOST:6379/0?stream=NAME."),
    ] = None,
    tracing: Annotated[
        bool | None,
        typer.Option(
            "--tracing/--no-tracing",
            help="OpenTelemetry spans, exported as OTEL_* says (needs foretell[otel]; docs/tracing.md) (default: off).",
        ),
    ] = None,
    ssl_certfile: Annotated[
        Path | None,
        typer.Option(help="TLS for HTTP and gRPC: the server's certificate chain, PEM (with --ssl-keyfile)."),
    ] = None,
    ssl_keyfile: Annotated[
        Path | None, typer.Option(help="TLS: the certificate's private key, PEM, unencrypted (with --ssl-certfile).")
    ] = None,
    engine: Annotated[str, typer.Option(help="local (uvicorn here) or ray (a Ray Serve application).")] = "local",
    replicas: Annotated[int | None, typer.Option(min=1, help="--engine ray: replicas (default: 1).")] = None,
    autoscale: Annotated[
        str | None, typer.Option(help="--engine ray: MIN:MAX replicas, scaled by Ray Serve on load.")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="--engine ray: the Ray cluster (host:6379 or auto); default: one started here.")
    ] = None,
    ray_ingress: Annotated[
        str | None,
        typer.Option(
            help="--engine ray: direct (each replica also answers on its own port, logged at start; Ray 2.60+) "
            "or proxy (only through Ray Serve's proxy) (default: direct)."
        ),
    ] = None,
) -> None:
    """Serve models over HTTP: Open Inference Protocol (/v2), MLflow scoring (/invocations), /metrics."""
    settings = {
        "host": host,
        "port": port,
        "grpc_port": grpc_port,
        "workers": workers,
        "max_batch_size": max_batch_size,
        "max_delay_ms": max_delay_ms,
        "max_queue": max_queue,
        "reload_seconds": reload_seconds,
        "max_body_bytes": max_body_bytes,
        "access_log": access_log,
        "predictor": predictor,
        "ledger_enabled": ledger,
        "ledger_location": ledger_location,
        "events_from": events_from,
        "tracing": tracing,
        "ssl_certfile": str(ssl_certfile) if ssl_certfile is not None else None,
        "ssl_keyfile": str(ssl_keyfile) if ssl_keyfile is not None else None,
    }
    if engine not in ("local", "ray"):
        raise typer.BadParameter("--engine is local or ray")
    if engine != "ray" and (replicas or autoscale or ray_address or ray_ingress):
        raise typer.BadParameter("--replicas, --autoscale, --ray-address and --ray-ingress go with --engine ray")
    if ray_ingress not in (None, "direct", "proxy"):
        raise typer.BadParameter("--ray-ingress is direct or proxy")
    if engine == "ray" and workers:
        raise typer.BadParameter("on Ray, replicas replace worker processes: use --replicas N or --autoscale MIN:MAX")
    if replicas and autoscale:
        raise typer.BadParameter("give --replicas N or --autoscale MIN:MAX, not both")
    resolved = api.serve_config(config, uris or (), settings)
    shown = ", ".join(resolved.models) or ", ".join(api.production_uris()) or "nothing"
    secure = resolved.ssl_certfile is not None
    grpc = f" and grpc{'s' if secure else ''}://{resolved.host}:{resolved.grpc_port}" if resolved.grpc_port else ""
    err.print(
        f"serving {shown} on http{'s' if secure else ''}://{resolved.host}:{resolved.port}{grpc} (Ctrl-C to stop)",
        highlight=False,
        markup=False,
    )
    scheme = f"http{'s' if secure else ''}"
    if engine == "ray":
        err.print("no dashboard on --engine ray (each replica has its own metrics): run `foretell ui` beside it",
                  highlight=False, markup=False)  # fmt: skip
    else:
        err.print(f"dashboard: {scheme}://{resolved.host}:{resolved.port}/ui/", highlight=False, markup=False)
    if engine == "ray":
        api.serve(
            config=resolved,
            engine="ray",
            replicas=replicas,
            autoscale=autoscale,
            ray_address=ray_address,
            ray_ingress=ray_ingress or "direct",
        )
    else:
        api.serve(config=resolved)
    err.print("stopped: every in-flight request was answered", highlight=False)
