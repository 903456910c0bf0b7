"""`foretell ui`: the dashboard alone, on a home where no server runs (no models loaded, no Live figures)."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from foretell.serving.access import Access
from foretell.ui import UI_PREFIX, Pages, dashboard_app

__all__ = ["dashboard_only", "run_dashboard"]


def dashboard_only(home: Path, *, store_url: str | None, ledger: str, api_key: str | None) -> ASGIApp:
    """The `/ui` pages over `home`, with `/` sent to them; keys as a server on `home` would check them."""
    pages = Pages(home, store_url=store_url, ledger=ledger)
    dashboard = dashboard_app(pages, Access.of(home, api_key), None)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/":
            await RedirectResponse(f"{UI_PREFIX}/")(scope, receive, send)
            return
        await dashboard(scope, receive, send)

    return app


def run_dashboard(
    home: Path, *, host: str, port: int, store_url: str | None, ledger: str, api_key: str | None, log_level: str
) -> None:
    """Serve the dashboard until Ctrl-C or SIGTERM."""
    import uvicorn

    app = dashboard_only(home, store_url=store_url, ledger=ledger, api_key=api_key)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="off")
