"""API keys: who may call a server on this FORETELL_HOME, with which scopes and at what rate."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from foretell.api.environment import home_folder


def create_key(
    name: str, scopes: Sequence[str], *, rate: float | None = None, home: Path | str | None = None
) -> tuple[dict[str, Any], str]:
    """A new key (`predict`, `events`, `admin` scopes; `rate` requests a second at most) and its token.

    The token is returned once and stored only as a digest: keep it where your clients read it.
    Servers started on this home from now on require a key on every route but the probes and /metrics.
    """
    from foretell.access import KeyBook

    key, token = KeyBook(home_folder(home)).create(name, tuple(scopes), rate=rate)
    return key.to_dict(), token


def list_keys(*, revoked: bool = False, home: Path | str | None = None) -> list[dict[str, Any]]:
    """Every live key (with `revoked`, the revoked ones too), without secrets."""
    from foretell.access import KeyBook

    return [key.to_dict() for key in KeyBook(home_folder(home)).listed(revoked=revoked)]


def revoke_key(name: str, *, home: Path | str | None = None) -> dict[str, Any]:
    """Revoke the live key `name`: servers refuse it within a second."""
    from foretell.access import KeyBook

    return KeyBook(home_folder(home)).revoke(name).to_dict()
