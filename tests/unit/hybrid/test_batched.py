"""A read's events in one store call and one refresh per model, key by key only when that fails (real SQLite store)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from foretell.errors import InvalidInput, Overloaded
from foretell.hybrid.batched import refresh_keys, write_entities
from foretell.store.entities import EntityWrite, Interactions
from foretell.store.entities_sqlite import SqliteEntityStore

STAMP = "2026-01-01T00:00:00.000000Z"
LATER = "2026-01-01T01:00:00.000000Z"


@pytest.fixture
def entities(tmp_path: Path) -> SqliteEntityStore:
    store = SqliteEntityStore(tmp_path / "entities.db")
    ratings = pa.table({"user_id": [1, 2], "movie_id": [10, 10], "rating": [3.0, 4.0]})
    store.load_interactions("users", "user_id", ratings, Interactions("ratings", "movie_id", "rating"), at=STAMP)
    return store


def test_the_writes_of_all_the_keys_go_in_one_call_with_whether_each_was_new(entities: SqliteEntityStore) -> None:
    writes = {
        "1": [EntityWrite("1", item=11, value=5.0, event_id="a"), EntityWrite("1", item=12, value=1.0, event_id="a")],
        "2": [EntityWrite("2", item=11, value=2.0, event_id="b")],
    }
    assert asyncio.run(write_entities(entities, "users", writes, LATER)) == {"1": [True, False], "2": [True]}
    with sqlite3.connect(entities.path) as conn:  # one call: one stamp for every event of it
        assert {stamp for (stamp,) in conn.execute("SELECT applied_at FROM events")} == {LATER}
    assert entities.get("users", "1").features["ratings"] == {"10": 3.0, "11": 5.0}  # type: ignore[union-attr]


def test_a_key_the_store_refuses_fails_alone_and_the_others_are_written(entities: SqliteEntityStore) -> None:
    writes = {
        "1": [EntityWrite("1", item=11, value=5.0, event_id="a")],
        "x": [EntityWrite("x", item=11, value=5.0, event_id="b")],  # not a whole number, as user_id is
        "2": [EntityWrite("2", item=11, value=2.0, event_id="c")],
    }
    results = asyncio.run(write_entities(entities, "users", writes, LATER))
    assert results["1"] == [True] and results["2"] == [True]
    assert isinstance(results["x"], InvalidInput) and "not a whole number" in str(results["x"])
    assert entities.get("users", "2").features["ratings"]["11"] == 2.0  # type: ignore[union-attr]


def test_a_model_whose_batch_fails_is_refreshed_key_by_key_and_only_the_bad_key_fails() -> None:
    calls: list[tuple[str, list[str]]] = []

    async def refresh(slot: Any, keys: list[str]) -> dict[str, dict[str, Any]]:
        calls.append((slot, keys))
        if slot == "strict" and "bad" in keys:
            raise InvalidInput(f"model {slot!r} refuses key 'bad'")
        return {key: {"model": slot, "key": key} for key in keys}

    refreshed, failed = asyncio.run(refresh_keys(refresh, ["plain", "strict"], ["a", "bad", "b"]))  # type: ignore[list-item]
    assert list(failed) == ["bad"] and "refuses key 'bad'" in str(failed["bad"])
    assert refreshed["a"] == [{"model": "plain", "key": "a"}, {"model": "strict", "key": "a"}]
    assert calls == [
        ("plain", ["a", "bad", "b"]),  # one call per model while it succeeds
        ("strict", ["a", "bad", "b"]),
        ("strict", ["a"]),
        ("strict", ["bad"]),
        ("strict", ["b"]),
    ]


def test_a_failure_that_is_not_a_keys_own_fails_every_key_at_once_without_retrying_each() -> None:
    calls: list[list[str]] = []

    async def refresh(slot: Any, keys: list[str]) -> dict[str, dict[str, Any]]:
        calls.append(keys)
        raise Overloaded("the model's queue is full (max_queue 10)", 0.1)

    refreshed, failed = asyncio.run(refresh_keys(refresh, ["plain"], ["a", "b", "c"]))  # type: ignore[list-item]
    assert calls == [["a", "b", "c"]]  # a full queue is everyone's: one by one would knock three more times
    assert set(failed) == {"a", "b", "c"} and all(isinstance(e, Overloaded) for e in failed.values())
    assert refreshed == {"a": [], "b": [], "c": []}


def test_a_store_that_fails_the_whole_write_fails_every_key_without_trying_each(tmp_path: Path) -> None:
    store = SqliteEntityStore(tmp_path / "entities.db")
    ratings = pa.table({"user_id": [1], "movie_id": [10], "rating": [3.0]})
    store.load_interactions("users", "user_id", ratings, Interactions("ratings", "movie_id", "rating"), at=STAMP)
    writes = {key: [EntityWrite(key, item=11, value=5.0, event_id=key)] for key in ("1", "2")}
    with sqlite3.connect(store.path) as conn:
        conn.execute("DROP TABLE events")  # the store is broken for every key alike
    results = asyncio.run(write_entities(store, "users", writes, LATER))
    assert set(results) == {"1", "2"} and results["1"] is results["2"]
    assert not isinstance(results["1"], (list, InvalidInput))
