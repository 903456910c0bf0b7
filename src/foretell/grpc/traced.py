"""Each RPC inside its server span while tracing is on: the gRPC side of `http.app._traced`.

The span continues the caller's W3C `traceparent` metadata, is named after the RPC until the
inference service renames it after its endpoint, and its `traceparent` goes back in the
trailing metadata (sent with the status, whether the RPC succeeded or not). While tracing is
off nothing here runs: the server wraps its RPCs only when it starts with tracing on.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from foretell import tracing
from foretell.grpc.answers import Outcome

__all__ = ["TRACEPARENT", "traced"]

TRACEPARENT = "traceparent"

Rpc = Callable[[Any, Any], Coroutine[Any, Any, Outcome[Any]]]


def traced(rpc: Rpc, service: str, method: str) -> Rpc:
    """`rpc` run inside a server span continuing its caller's trace; the outcome carries the span's `traceparent`."""

    async def run(request: Any, context: Any) -> Outcome[Any]:
        headers = [
            (key.encode(), value.encode()) for key, value in context.invocation_metadata() or () if key == TRACEPARENT
        ]
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        span = tracing.continued(f"{service}/{method}", headers, attributes)
        with span:
            outcome = await rpc(request, context)
            attributes["rpc.grpc.status_code"] = outcome.code.value[0]
        return replace(outcome, traceparent=tracing.traceparent(span))

    return run
