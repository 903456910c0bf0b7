"""The dashboard beside a server's app: `/ui` and below go to the dashboard, everything else to the server.

Outside the server's own key check (the dashboard checks keys itself: its pages are public, its
documents need any valid key, its actions `admin`), and outside its access log and tracing. The
Live page's sampler runs for as long as the server's lifespan: started once the server has
started, stopped when it stops; `warm` (what reads the ledger) runs once then, in a thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from foretell.ui.app import UI_PREFIX
from foretell.ui.live import LiveSampler

__all__ = ["with_dashboard"]


def with_dashboard(
    app: ASGIApp, dashboard: ASGIApp, live: LiveSampler | None = None, warm: Callable[[], None] | None = None
) -> ASGIApp:
    async def routed(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == UI_PREFIX or path.startswith(f"{UI_PREFIX}/"):
                await dashboard(scope, receive, send)
                return
        if scope["type"] == "lifespan" and live is not None:
            await app(scope, _stopping(receive, live), _started(send, live, warm))
            return
        await app(scope, receive, send)

    return routed


def _started(send: Send, live: LiveSampler, warm: Callable[[], None] | None) -> Send:
    async def said(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            live.start()
            if warm is not None:
                # Not a daemon, said outright (a thread inherits its starter's flag, and a server run in a
                # daemon thread would pass it on): the interpreter waits for it at exit. A daemon thread
                # still inside DuckDB when the process exits is killed mid C++ and aborts it ("FATAL:
                # exception not rethrown").
                threading.Thread(target=warm, name="foretell-ui-warm", daemon=False).start()
        await send(message)

    return said


def _stopping(receive: Receive, live: LiveSampler) -> Receive:
    async def heard() -> Message:
        message = await receive()
        if message["type"] == "lifespan.shutdown":
            await live.stop()
        return message

    return heard
