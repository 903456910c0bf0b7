"""Entity-table domains, on every backend: declared at load, kept with the table, and refusing what lies outside."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from test_entities import RATINGS, T0, T1, customers, ratings, redis_url, store

from foretell.core.domain import Domain
from foretell.errors import InvalidInput
from foretell.store.entities import EntityStore, EntityWrite
from foretell.store.entities_sqlite import SqliteEntityStore

__all__ = ["redis_url", "store"]

ONE_TO_FIVE = {"rating": Domain(1, 5)}


def features(store: EntityStore, table: str, key: str) -> dict[str, Any]:
    found = store.get(table, key)
    assert found is not None
    return found.features


def test_domains_are_kept_with_the_table_and_reported(store: EntityStore) -> None:
    domains = {"calls": Domain(0, None), "plan": Domain(allowed=("basic", "premium"))}
    loaded = store.load_features("customers", "customer_id", customers(), at=T0, domains=domains)
    assert loaded.domains == domains
    assert store.table("customers").domains == domains
    assert store.tables()[0].to_dict()["domains"] == {"calls": {"min": 0}, "plan": {"values": ["basic", "premium"]}}
    users = store.load_interactions("users", "user_id", ratings(), RATINGS, at=T0, domains=ONE_TO_FIVE)
    assert store.table("users").domains == users.domains == ONE_TO_FIVE


def test_a_rating_outside_its_domain_is_refused_naming_the_bound_and_nothing_is_written(store: EntityStore) -> None:
    store.load_interactions("users", "user_id", ratings(), RATINGS, at=T0, domains=ONE_TO_FIVE)
    for value, bound in ((99.0, "above its domain's maximum 5"), (-3.0, "below its domain's minimum 1")):
        with pytest.raises(InvalidInput, match=f"entity table 'users': 'rating' {value!r} is {bound} \\(domain 1:5\\)"):
            store.set_interaction("users", "17", "777", value, at=T1)
        with pytest.raises(InvalidInput, match=bound):  # one bad write refuses the read's other writes too
            store.write_events(
                "users", [EntityWrite("42", item="1", value=4.0), EntityWrite("17", item="777", value=value)], at=T1
            )
    assert "777" not in features(store, "users", "17")["ratings"]
    assert "1" not in features(store, "users", "42")["ratings"]
    assert store.set_interaction("users", "17", "777", 5.0, at=T1)  # the bound itself is inside
    assert features(store, "users", "17")["ratings"]["777"] == 5.0


def test_a_features_event_outside_a_column_domain_is_refused_and_a_missing_value_is_not(store: EntityStore) -> None:
    store.load_features("customers", "customer_id", customers(), at=T0, domains={"calls": Domain(0, 100)})
    with pytest.raises(InvalidInput, match="'calls' 250 is above its domain's maximum 100 \\(domain 0:100\\)"):
        store.set_features("customers", "C-1", {"calls": 250, "tenure": 2.0}, at=T1)
    assert features(store, "customers", "C-1")["calls"] == 7
    assert store.set_features("customers", "C-1", {"calls": None}, at=T1)
    assert features(store, "customers", "C-1")["calls"] is None


def test_a_file_outside_its_domains_is_refused_whole_naming_the_first_row(store: EntityStore) -> None:
    with pytest.raises(
        InvalidInput, match=r"row 0: column 'rating' of entity table 'users' holds 5\.0, above its domain's maximum 4"
    ):
        store.load_interactions("users", "user_id", ratings(), RATINGS, at=T0, domains={"rating": Domain(1, 4)})
    with pytest.raises(
        InvalidInput, match=r"row 1: column 'plan' .* holds 'premium', not one of its domain's allowed values"
    ):
        store.load_features(
            "customers", "customer_id", customers(), at=T0, domains={"plan": Domain(allowed=("basic",))}
        )
    assert store.tables() == []


@pytest.mark.parametrize(
    ("domains", "message"),
    [
        ({"customer_id": Domain(0, 1)}, "is the key of entity table"),
        ({"nope": Domain(0, 1)}, "has no column\\(s\\) \\['nope'\\] to give a domain"),
    ],
)
def test_a_domain_for_a_column_the_table_has_not_is_refused(store: EntityStore, domains, message) -> None:
    with pytest.raises(InvalidInput, match=message):
        store.load_features("customers", "customer_id", customers(), at=T0, domains=domains)


def test_an_entity_store_written_before_domains_opens_and_reads_its_tables_without_any(tmp_path: Path) -> None:
    path = tmp_path / "entities.db"
    old = sqlite3.connect(path)
    old.executescript(
        """CREATE TABLE tables (name TEXT PRIMARY KEY, storage INTEGER NOT NULL, key_column TEXT NOT NULL,
               key_type TEXT NOT NULL, columns TEXT NOT NULL, models TEXT NOT NULL, interactions TEXT,
               rows INTEGER NOT NULL, loaded_at TEXT NOT NULL);
           CREATE TABLE counter (last INTEGER NOT NULL); INSERT INTO counter VALUES (1);
           CREATE TABLE events (event_id TEXT PRIMARY KEY, tab TEXT NOT NULL, key TEXT NOT NULL,
               applied_at TEXT NOT NULL) WITHOUT ROWID;
           CREATE TABLE ent_1 (key TEXT NOT NULL, features TEXT NOT NULL, updated_at TEXT);
           INSERT INTO ent_1 VALUES ('C-1', '["C-1", 3]', NULL);
           INSERT INTO tables VALUES ('customers', 1, 'customer_id', 'str', '["customer_id", "calls"]', '[]', NULL, 1,
               '2026-11-29T02:00:00.000000Z');
           PRAGMA user_version = 1;"""
    )
    old.close()
    store = SqliteEntityStore(path)
    assert store.table("customers").domains == {}
    assert features(store, "customers", "C-1") == {"customer_id": "C-1", "calls": 3}
    assert store.set_features("customers", "C-1", {"calls": 10_000}, at=T1)  # no domain: anything, as before
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    reloaded = store.load_features(
        "customers",
        "customer_id",
        pa.table({"customer_id": ["C-1"], "calls": [1]}),
        at=T1,
        domains={"calls": Domain(0, 5)},
    )
    assert SqliteEntityStore(path).table("customers").domains == reloaded.domains == {"calls": Domain(0, 5)}
