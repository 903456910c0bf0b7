"""`foretell serve`: the real-time server."""

from __future__ import annotations

from typing import Annotated

import typer

from foretell import api
from foretell.cli.output import err

EPILOG = (
    "Examples:\n\n"
    "  foretell serve                                   # every model with a production alias\n\n"
    "  foretell serve churn@production --port 8080 --max-batch-size 64\n\n"
    "  curl -s localhost:8000/v2/models/churn/infer -d @request.json"
)


def serve(
    uris: Annotated[
        list[str] | None, typer.Argument(help="Model URIs (default: every model with @production).")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes, each with its own copy of the models.")] = 1,
    max_batch_size: Annotated[int, typer.Option(min=1, help="Most rows coalesced into one model call.")] = 64,
    max_delay_ms: Annotated[
        float, typer.Option(min=0.0, help="Longest a request waits for company when the model is idle (0: never).")
    ] = 0.0,
    max_queue: Annotated[int, typer.Option(min=1, help="Queued requests per model before answering 503.")] = 1024,
    reload_seconds: Annotated[
        float, typer.Option(min=0.0, help="How often to check the registry for moved aliases (0: never).")
    ] = 1.0,
    max_body_bytes: Annotated[int, typer.Option(min=1, help="Largest request body accepted (else 413).")] = 64 * 2**20,
    access_log: Annotated[bool, typer.Option(help="Log every request (costs throughput).")] = False,
) -> None:
    """Serve models over HTTP: Open Inference Protocol (/v2), MLflow scoring (/invocations), /metrics."""
    uris = uris or api.production_uris()
    err.print(f"serving {', '.join(uris)} on http://{host}:{port} (Ctrl-C to stop)", highlight=False)
    api.serve(
        uris,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        max_batch_size=max_batch_size,
        max_delay_ms=max_delay_ms,
        max_queue=max_queue,
        reload_seconds=reload_seconds,
        max_body_bytes=max_body_bytes,
    )
