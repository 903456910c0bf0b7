"""Named models, numbered versions, movable aliases and verified, content-addressed artifacts; and loading them."""

from __future__ import annotations

from pathlib import Path

from foretell.registry.base import ModelSummary, Registry
from foretell.registry.loader import ModelSource, compile_model, load_model, model_source
from foretell.registry.sqlite import SqliteRegistry
from foretell.registry.uri import ModelRef, parse_model_uri

__all__ = [
    "ModelRef",
    "ModelSource",
    "ModelSummary",
    "Registry",
    "SqliteRegistry",
    "compile_model",
    "load_model",
    "model_source",
    "open_registry",
    "parse_model_uri",
]


def open_registry(home: Path) -> SqliteRegistry:
    """The registry kept in `home` (FORETELL_HOME), created on first use."""
    return SqliteRegistry(Path(home))
