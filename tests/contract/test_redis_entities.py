"""What only the Redis entity store promises: its keys, their clean-up, reads during reloads, and how it fails.

The shared contract runs against Redis in test_entities.py; these look at the server itself.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import redis_server

from foretell.errors import MissingExtra, StoreError
from foretell.store import open_entity_store
from foretell.store.entities import EntityTable, Interactions, json_arrays
from foretell.store.entities_redis import RedisEntityStore
from foretell.store.entities_sqlite import SqliteEntityStore

T0 = "2026-11-29T02:00:00Z"
T1 = "2026-11-29T03:00:00Z"
RATINGS = Interactions("ratings", "movie_id", "rating")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server.shared() as url:
        yield url


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisEntityStore]:
    """A store of its own on the session's server: its keys are under a prefix no other test uses."""
    opened = RedisEntityStore(redis_url, prefix=redis_server.unique_prefix())
    yield opened
    opened.close()


@pytest.fixture
def server(store: RedisEntityStore) -> Iterator[Any]:
    """A plain client on the store's server, to look at its keys behind its back."""
    import redis

    with redis.Redis.from_url(store.url, decode_responses=True) as client:
        yield client


@pytest.fixture
def prefix(store: RedisEntityStore) -> str:
    return store.prefix


def customers() -> pa.Table:
    return pa.table({"customer_id": ["C-1", "C-2"], "plan": ["basic", None], "tenure": [3.0, 0.5]})


def ratings() -> pa.Table:
    return pa.table({"user_id": [17, 17, 42], "movie_id": [3301, 12, 3301], "rating": [5.0, 2.0, 4.0]})


def keys(server: Any, prefix: str) -> list[str]:
    return sorted(server.keys(f"{prefix}:*"))


def test_every_key_is_under_the_prefix_and_the_table(store: RedisEntityStore, server: Any, prefix: str) -> None:
    store.load_features("customers", "customer_id", customers(), at=T0)
    store.load_interactions("users", "user_id", ratings(), RATINGS, at=T0)
    store.set_features("customers", "C-1", {"tenure": 4.0}, at=T1, event_id="e-1")
    store.set_interaction("users", "5", 12, 1.0, at=T1)
    c, u = f"{prefix}:entities:{{customers}}:", f"{prefix}:entities:{{users}}:"
    assert keys(server, prefix) == sorted(
        [
            f"{prefix}:entity-tables",
            *(f"{c}{name}" for name in ("events", "next", "rows:1", "storages", "table", "updated:1")),
            *(f"{u}{name}" for name in ("items:1:17", "items:1:42", "items:1:5", "keys:1", "next", "storages")),
            *(f"{u}{name}" for name in ("table", "updated:1")),
        ]
    )
    assert server.hget(f"{c}rows:1", "C-2") == json_arrays(customers()).to_pylist()[1]  # the SQLite store's text
    assert server.hgetall(f"{u}items:1:17") == {"3301": "5.0", "12": "2.0"}
    other = RedisEntityStore(store.url, prefix=redis_server.unique_prefix())
    assert other.tables() == []  # another prefix is another store
    other.close()


def test_a_reload_or_a_drop_deletes_the_old_storage_from_the_server(
    store: RedisEntityStore, server: Any, prefix: str
) -> None:
    c, u = f"{prefix}:entities:{{customers}}:", f"{prefix}:entities:{{users}}:"
    store.load_features("customers", "customer_id", customers(), at=T0)
    store.set_features("customers", "C-1", {"tenure": 4.0}, at=T1, event_id="e-1")
    store.load_features("customers", "customer_id", customers(), at=T1)
    store.load_interactions("users", "user_id", ratings(), RATINGS, at=T0)
    store.set_interaction("users", "5", 12, 1.0, at=T1, event_id="e-2")
    store.load_interactions("users", "user_id", ratings(), RATINGS, at=T1)

    assert keys(server, f"{prefix}:entities:{{customers}}") == [f"{c}next", f"{c}rows:2", f"{c}storages", f"{c}table"]
    assert keys(server, f"{prefix}:entities:{{users}}") == [
        f"{u}{name}" for name in ("items:2:17", "items:2:42", "keys:2", "next", "storages", "table")
    ]
    assert server.smembers(f"{u}storages") == {"2"}

    store.drop("customers")
    store.drop("users")
    assert keys(server, prefix) == [f"{c}next", f"{u}next"]  # numbers are never reused, even after a drop
    assert store.tables() == []


def test_a_load_overtaken_by_a_later_one_is_refused_and_leaves_nothing(
    store: RedisEntityStore, server: Any, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    later = RedisEntityStore(store.url, prefix=prefix)
    send = store._send_packed

    def load_meanwhile(commands: Any) -> None:
        later.load_features("customers", "customer_id", customers().slice(1), at=T1)  # begun second, switched first
        send(commands)

    monkeypatch.setattr(store, "_send_packed", load_meanwhile)
    with pytest.raises(StoreError, match=r"'customers' was loaded again, by a load begun after this one \(load 1\)"):
        store.load_features("customers", "customer_id", customers(), at=T0)
    later.close()
    assert store.table("customers").rows == 1
    assert store.get("customers", "C-1") is None
    c = f"{prefix}:entities:{{customers}}:"
    assert keys(server, prefix) == [f"{c}next", f"{c}rows:2", f"{c}storages", f"{c}table", f"{prefix}:entity-tables"]


def test_an_event_checked_against_a_table_that_is_reloaded_meanwhile_applies_to_the_new_one(
    store: RedisEntityStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.load_features("customers", "customer_id", customers(), at=T0)
    find = store._find
    reloads: list[EntityTable] = []

    def reload_after(name: str) -> Any:
        found = find(name)
        if not reloads:
            reloads.append(store.load_features("customers", "customer_id", customers().slice(1), at=T1))
        return found

    monkeypatch.setattr(store, "_find", reload_after)
    assert store.set_features("customers", "C-1", {"tenure": 9.0}, at=T1, event_id="e-1")
    assert reloads
    entity = store.get("customers", "C-1")
    assert entity is not None
    assert entity.features == {"customer_id": "C-1", "plan": None, "tenure": 9.0}


# -- readers against a reloading thread ----------------------------------------------------

RACE_KEYS = 2_000
RACE_LOADS = 15


def load_race(store: RedisEntityStore, n: int) -> None:
    """Load n of both race tables: n in every row, so that a reader can tell loads apart row by row."""
    ids = [f"k{i}" for i in range(RACE_KEYS)]
    store.load_features("race", "id", pa.table({"id": ids, "load": [n] * RACE_KEYS}), at=T0)
    seen = pa.table({"id": ids, "item": ["film"] * RACE_KEYS, "value": [float(n)] * RACE_KEYS})
    store.load_interactions("race-users", "id", seen, Interactions("seen", "item", "value"), at=T0)


def test_readers_see_the_old_rows_or_the_new_while_another_client_reloads(store: RedisEntityStore) -> None:
    """The reloader has a client (and connections) of its own; the server interleaves its commands with ours."""
    ids = [f"k{i}" for i in range(RACE_KEYS)]
    load_of = {"race": lambda f: f["load"], "race-users": lambda f: int(f["seen"]["film"])}
    seen: dict[str, list[int]] = {name: [] for name in load_of}
    load_race(store, 1)
    reloader = RedisEntityStore(store.url, prefix=store.prefix)

    def reload_all() -> None:
        for n in range(2, RACE_LOADS + 1):
            load_race(reloader, n)

    with ThreadPoolExecutor(1) as pool:
        reloading = pool.submit(reload_all)
        deadline = time.monotonic() + 60
        while not reloading.done() and time.monotonic() < deadline:
            for name, load in load_of.items():
                found = store.get_many(name, ids)
                one = store.get(name, "k7")
                assert len(found) == RACE_KEYS, f"{RACE_KEYS - len(found)} keys of {name} missing from one read"
                assert one is not None, f"k7 of {name} missing during a reload"
                loads = {load(entity.features) for entity in found.values()}
                assert len(loads) == 1, f"one read of {name} mixed loads {sorted(loads)}"
                (current,) = loads
                assert not seen[name] or current >= seen[name][-1], f"read load {current} after {seen[name][-1]}"
                assert load(one.features) >= current
                if not seen[name] or current != seen[name][-1]:
                    seen[name].append(current)
        reloading.result(timeout=60)
    reloader.close()
    assert all(len(loads) >= 2 for loads in seen.values()), f"reads saw {seen}: none overlapped a reload"
    assert {e.features["load"] for e in store.get_many("race", ids).values()} == {RACE_LOADS}
    assert store.table("race-users").rows == RACE_KEYS


# -- failures and wiring --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://reader:s3cret@127.0.0.1:{port}/0", r"redis://reader:\*\*\*@127\.0\.0\.1:\d+/0"),
        ("unix:///nowhere/redis.sock", r"unix:///nowhere/redis\.sock"),
    ],
)
def test_a_server_that_does_not_answer_is_a_store_error_naming_it_without_its_password(
    url: str, shown: str, tmp_path: Path
) -> None:
    pytest.importorskip("redis")
    with pytest.raises(StoreError, match=f"^cannot reach the Redis entity store at {shown}: ") as caught:
        open_entity_store(tmp_path, url.format(port=redis_server.free_port()))
    assert "s3cret" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no redis-py traceback behind it


def test_a_store_whose_server_went_away_says_so() -> None:
    with redis_server._serve(redis_server.require_server()) as url:
        store = RedisEntityStore(url, prefix=redis_server.unique_prefix())
        store.load_features("customers", "customer_id", customers(), at=T0)
    with pytest.raises(StoreError, match=f"cannot reach the Redis entity store at {url}"):
        store.set_features("customers", "C-1", {"plan": "premium"}, at=T1)
    store.close()


def test_without_the_redis_package_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # what `import redis` meets when it is not installed
    with pytest.raises(MissingExtra, match=r"Redis entity store needs the 'redis' package.*foretell\[redis\]"):
        open_entity_store(tmp_path, "redis://127.0.0.1:6379/0")


def test_open_entity_store_opens_redis_for_a_redis_url_and_sqlite_otherwise(
    store: RedisEntityStore, tmp_path: Path
) -> None:
    opened = [open_entity_store(tmp_path, url) for url in (None, "store.db", store.url)]
    assert [type(s) for s in opened] == [SqliteEntityStore, SqliteEntityStore, RedisEntityStore]
    opened[2].close()


def test_scripts_flushed_from_the_server_are_loaded_again(store: RedisEntityStore, server: Any) -> None:
    store.load_features("customers", "customer_id", customers(), at=T0)
    server.script_flush()  # as a restart or a failover to a replica that never saw them does
    assert store.get("customers", "C-1") is not None
    server.script_flush()
    assert store.set_features("customers", "C-1", {"tenure": 9.5}, at=T0)
    server.script_flush()
    store.load_features("customers", "customer_id", customers(), at=T0)
    assert store.get_many("customers", ["C-1", "C-2"]).keys() == {"C-1", "C-2"}


def test_threads_share_the_pool_and_each_reads_its_own_keys(store: RedisEntityStore, server: Any) -> None:
    n = 2_000
    rows = pa.table({"id": [f"K-{i}" for i in range(n)], "value": [i + 0.5 for i in range(n)]})
    store.load_features("many", "id", rows, at=T0)
    clients = len(server.client_list())

    def read(thread: int) -> int:
        wrong = 0
        for i in range(thread, n, 8):
            found = store.get_many("many", [f"K-{i}", f"K-{(i + 1) % n}"])
            wrong += found[f"K-{i}"].features["value"] != i + 0.5
            wrong += found[f"K-{(i + 1) % n}"].features["value"] != (i + 1) % n + 0.5
        return wrong

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(read, range(8))) == 0
    # One pool of connections: a few per thread at most, not one per call.
    assert len(server.client_list()) <= clients + 8
