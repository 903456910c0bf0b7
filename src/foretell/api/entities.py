"""Entity tables: the features (and interactions) live predictions read by key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from foretell.api.environment import home_folder, store_url
from foretell.api.inputs import read_input

if TYPE_CHECKING:
    from foretell.core.domain import Domain
    from foretell.store.entities import Entity, EntityTable


def load_entities(
    name: str,
    source: str | Path,
    *,
    key: str,
    models: Sequence[str] = (),
    interactions: tuple[str, str, str] | None = None,
    domains: Mapping[str, Domain | str] | None = None,
    home: Path | str | None = None,
) -> EntityTable:
    """Load (or replace) entity table `name` from a Parquet/CSV/JSON file, keyed by column `key`.

    `models` are the models whose live predictions read it. `interactions=(column, item, value)`
    makes it an interactions table: each key's `item` → `value` rows kept as the map `column`
    (for example `("ratings", "movie_id", "rating")`). `domains` bound feature columns, or an
    interactions table's value column (`{"rating": "1:5"}`, a `Domain` or its text): a file
    outside them is refused, and so is every later event outside them.
    """
    from datetime import UTC, datetime

    import pyarrow as pa

    from foretell.core.domain import Domain
    from foretell.store import open_entity_store
    from foretell.store.entities import Interactions

    bounded = {column: Domain.from_dict(d) if isinstance(d, str) else d for column, d in (domains or {}).items()}
    rows = read_input(source)
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows)
    store = open_entity_store(home_folder(home), store_url())
    at = datetime.now(UTC).isoformat()
    if interactions is None:
        return store.load_features(name, key, table, models=models, at=at, domains=bounded)
    spec = Interactions(*interactions)
    return store.load_interactions(name, key, table, spec, models=models, at=at, domains=bounded)


def entity_tables(*, home: Path | str | None = None) -> list[EntityTable]:
    from foretell.store import open_entity_store

    return open_entity_store(home_folder(home), store_url()).tables()


def get_entity(name: str, key: str, *, home: Path | str | None = None) -> Entity:
    """One entity's features now; `NotFound` if the table has no row for `key`."""
    from foretell.errors import NotFound
    from foretell.store import open_entity_store

    found = open_entity_store(home_folder(home), store_url()).get(name, str(key))
    if found is None:
        raise NotFound(f"entity table {name!r} has no row for key {key!r}")
    return found
