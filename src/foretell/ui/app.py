"""The dashboard's ASGI app under `/ui`: six pages, the JSON document each is drawn from, and the admin actions.

Pages and static files hold no data, so they are public; every `/ui/api/...` document needs a
valid key of any scope when the server has keys, and every action the `admin` scope, decided by
`serving.access` as every other route is (the same 401/403 JSON). Documents are built in a worker
thread: reading the registry, the job history or the ledger never blocks the serving event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from foretell.errors import ForetellError, InvalidInput, InvalidRollout
from foretell.http.errors import method_not_allowed, no_route, status_for
from foretell.monitor.rollout_status import end_rollout, who
from foretell.serving.access import Access, presented
from foretell.ui.live import LiveSampler
from foretell.ui.pages import PAGES, Pages

__all__ = ["UI_PREFIX", "dashboard_app"]

UI_PREFIX = "/ui"
_STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
_NO_SERVER = {
    "running": False,
    "note": "no server runs in this process: `foretell ui` shows the registry, jobs, store and ledger only; "
    "the Live page draws a running `foretell serve`'s metrics at its own /ui/live",
}


def dashboard_app(pages: Pages, access: Access | None, live: LiveSampler | None) -> ASGIApp:
    """The `/ui` app over `pages`; `live` is the server's metrics sampler (None: `foretell ui`, no server here)."""
    static = files("foretell.ui") / "static"
    shell = (static / "page.html").read_text()
    assets = {name: (static / name).read_bytes() for name in _STATIC}

    def page(name: str) -> Callable[[Request], Awaitable[Response]]:
        html = shell.replace("{{page}}", name).encode()

        async def answer(request: Request) -> Response:
            return Response(html, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})

        return answer

    async def asset(request: Request) -> Response:
        name = request.path_params["file"]
        if name not in assets:
            return _json({"error": f"no static file {name!r} (the files: {', '.join(sorted(assets))})"}, 404)
        return Response(assets[name], media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})

    async def document(request: Request) -> Response:
        name = request.path_params["page"]
        if name not in PAGES:
            return _json({"error": f"page must be one of {', '.join(PAGES)}; got {name!r}"}, 404)
        if refused := _refused(request, access, None):
            return refused
        if name == "live":
            return _json(live.document() if live is not None else _NO_SERVER)
        return await _answered(getattr(pages, name))

    async def move_alias(request: Request) -> Response:
        if refused := _refused(request, access, "admin"):
            return refused
        name = request.path_params["name"]
        try:
            body = orjson.loads(await request.body())
            alias, version = _alias_move(body)
        except orjson.JSONDecodeError as exc:
            return _json({"error": f"body must be a JSON object with alias and version: {exc}"}, 400)
        except InvalidInput as exc:
            return _json({"error": str(exc)}, 400)

        def move() -> dict[str, Any]:
            pages.registry().set_alias(name, alias, version)
            return {"name": name, "alias": alias, "version": version}

        return await _answered(move)

    def ending(state: str) -> Callable[[Request], Awaitable[Response]]:
        async def end(request: Request) -> Response:
            if refused := _refused(request, access, "admin"):
                return refused
            name = request.path_params["name"]
            reason = f"{state} by {who()} from the dashboard"

            def end_it() -> dict[str, Any]:
                ended = end_rollout(pages.registry(), name, state, reason).to_dict()
                pages.forget()
                return ended

            return await _answered(end_it)

        return end

    async def home(request: Request) -> Response:
        return RedirectResponse(f"{UI_PREFIX}/")

    routes = [
        Route(UI_PREFIX, home),
        Route(f"{UI_PREFIX}/", page("models")),
        *(Route(f"{UI_PREFIX}/{name}", page(name)) for name in PAGES if name != "models"),
        Route(f"{UI_PREFIX}/static/{{file}}", asset),
        Route(f"{UI_PREFIX}/api/models/{{name}}/alias", move_alias, methods=["POST"]),
        Route(f"{UI_PREFIX}/api/rollout/{{name}}/promote", ending("promoted"), methods=["POST"]),
        Route(f"{UI_PREFIX}/api/rollout/{{name}}/abort", ending("aborted"), methods=["POST"]),
        Route(f"{UI_PREFIX}/api/{{page}}", document),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _json_error})


def _alias_move(body: object) -> tuple[str, int]:
    """The alias and version a move names, checked: {"alias": "production", "version": 3}."""
    if not isinstance(body, dict):
        raise InvalidInput(f"body must be a JSON object with alias and version; got {type(body).__name__}")
    alias, version = body.get("alias"), body.get("version")
    if not isinstance(alias, str) or not alias:
        raise InvalidInput(f"alias must be a non-empty string; got {alias!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInput(f"version must be an integer of 1 or more; got {version!r}")
    return alias, version


def _refused(request: Request, access: Access | None, scope: str | None) -> Response | None:
    """The 401/403/429 answer when the request's key may not do this (`scope` None: any valid key reads)."""
    if access is None:
        return None
    headers = request.headers
    decision = access.decide(presented(headers.get("x-api-key"), headers.get("authorization")), scope)
    if not decision.status:
        return None
    said = {"WWW-Authenticate": "Bearer"} if decision.status == 401 else {}
    if decision.retry_after:
        said["Retry-After"] = str(decision.retry_after)
    return _json({"error": decision.message}, decision.status, said)


async def _answered(build: Callable[[], Any]) -> Response:
    """`build()` run in a worker thread, answered as JSON; a domain error as its status and message."""
    try:
        return _json(await asyncio.to_thread(build))
    except InvalidRollout as exc:  # no rollout to end, or one that ended meanwhile: the state says no
        return _json({"error": str(exc)}, 409)
    except ForetellError as exc:
        return _json({"error": str(exc)}, status_for(exc))


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    return Response(body, status, headers, media_type="application/json")


async def _json_error(request: Request, exc: Exception) -> Response:
    """A path under /ui no route serves (404) or a method it does not take (405), as JSON like every error."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        body = no_route(request.method, request.url.path)
    elif exc.status_code == 405:
        body = method_not_allowed(request.method, request.url.path, (exc.headers or {}).get("Allow", ""))
    else:
        body = orjson.dumps({"error": exc.detail})
    return Response(body, exc.status_code, exc.headers, media_type="application/json")
