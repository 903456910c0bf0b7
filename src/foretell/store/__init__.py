"""The online prediction store: precomputed predictions by model and entity key, published in generations."""

from __future__ import annotations

from pathlib import Path
from typing import overload
from urllib.parse import urlsplit

from foretell.errors import StoreError
from foretell.store.base import BatchRow, PredictionStore, StoredPrediction
from foretell.store.entities import EntityStore
from foretell.store.entities_sqlite import SqliteEntityStore
from foretell.store.sqlite import SqliteStore

__all__ = [
    "BatchRow",
    "PredictionStore",
    "SqliteStore",
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
    if _is_redis(url):
        # Imported here: the Redis backend needs the [redis] extra, the default store does not.
        from foretell.store.redis import RedisStore

        return RedisStore(str(url))
    return SqliteStore(Path(home) / "store.db")


def open_entity_store(home: Path, url: str | None = None) -> EntityStore:
    """The entity tables beside the predictions `url` names, or the embedded ones in `home`.

    A Redis URL (redis://, rediss://, unix://) opens a `RedisEntityStore` on that server;
    anything else, or no URL, the SQLite file `entities.db` in `home` (FORETELL_HOME).
    """
    if _is_redis(url):
        from foretell.store.entities_redis import RedisEntityStore

        return RedisEntityStore(str(url))
    return SqliteEntityStore(Path(home) / "entities.db")


def _is_redis(url: str | None) -> bool:
    """Whether `url` names a Redis server; a scheme foretell does not know is refused, not taken for SQLite."""
    if url is None:
        return False
    from foretell.store.redis import URL_SCHEMES

    scheme = urlsplit(url).scheme.lower()
    if scheme in URL_SCHEMES:
        return True
    if scheme not in ("", "sqlite", "file"):
        raise StoreError(
            f"unknown store URL {url!r}: use redis://host:port/db (or rediss://, unix://), or leave it unset for "
            "SQLite under FORETELL_HOME"
        )
    return False
