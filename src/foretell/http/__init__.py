"""The only package that imports Starlette: routes decode, call the serving runtime, encode."""

from foretell.http.app import ServerOptions, create_app

__all__ = ["ServerOptions", "create_app"]
