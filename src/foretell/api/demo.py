"""The demo: synthetic data and the two demo models, registered in one call."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from foretell.api.models import get_registry

if TYPE_CHECKING:
    from foretell.demo import DemoSummary


def demo_init(
    *,
    customers: int = 20_000,
    users: int = 5_000,
    movies: int = 1_500,
    seed: int = 7,
    home: Path | str | None = None,
) -> DemoSummary:
    """Generate the demo data under `<home>/demo/`, train both demo models, register them as `@production`."""
    from foretell import demo

    registry = get_registry(home)
    return demo.init(registry, registry.home / "demo", customers=customers, users=users, movies=movies, seed=seed)
