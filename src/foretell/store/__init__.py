"""The online prediction store: precomputed predictions by model and entity key, published in generations."""

from __future__ import annotations

from pathlib import Path

from foretell.store.base import BatchRow, PredictionStore, StoredPrediction, StoreError
from foretell.store.sqlite import SqliteStore

__all__ = ["BatchRow", "PredictionStore", "SqliteStore", "StoreError", "StoredPrediction", "open_store"]


def open_store(home: Path) -> SqliteStore:
    """The store kept in `home` (FORETELL_HOME) as `store.db`, created on first use."""
    return SqliteStore(Path(home) / "store.db")
