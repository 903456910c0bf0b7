"""The online prediction store: precomputed predictions by model and entity key, published in generations."""

from __future__ import annotations

from pathlib import Path
from typing import overload
from urllib.parse import urlsplit

from foretell.store.base import BatchRow, PredictionStore, StoredPrediction, StoreError
from foretell.store.entities import EntityStore
from foretell.store.entities_sqlite import SqliteEntityStore
from foretell.store.sqlite import SqliteStore

__all__ = [
    "BatchRow",
    "PredictionStore",
    "SqliteStore",
    "StoreError",
    "StoredPrediction",
    "open_entity_store",
    "open_store",
]


@overload
def open_store(home: Path, url: None = None) -> SqliteStore: ...
@overload
def open_store(home: Path, url: str | None) -> PredictionStore: ...
def open_store(home: Path, url: str | None = None) -> PredictionStore:
    """The store `url` names, or the embedded one in `home`.

    A Redis URL (redis://, rediss://, unix://) opens a `RedisStore`; anything else, or no URL,
    the SQLite store kept in `home` (FORETELL_HOME) as `store.db`, created on first use.
    """
    if url is not None:
        # Imported here: the Redis backend needs the [redis] extra, the default store does not.
        from foretell.store.redis import URL_SCHEMES, RedisStore

        if urlsplit(url).scheme.lower() in URL_SCHEMES:
            return RedisStore(url)
    return SqliteStore(Path(home) / "store.db")


def open_entity_store(home: Path, url: str | None = None) -> EntityStore:
    """The entity tables beside the predictions `url` names, or the embedded ones in `home`.

    A Redis URL (redis://, rediss://, unix://) opens a `RedisEntityStore` on that server;
    anything else, or no URL, the SQLite file `entities.db` in `home` (FORETELL_HOME).
    """
    if url is not None:
        # Imported here: the Redis backend needs the [redis] extra, the default store does not.
        from foretell.store.entities_redis import RedisEntityStore
        from foretell.store.redis import URL_SCHEMES

        if urlsplit(url).scheme.lower() in URL_SCHEMES:
            return RedisEntityStore(url)
    return SqliteEntityStore(Path(home) / "entities.db")
