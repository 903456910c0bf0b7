"""What only the Redis backend promises: its keys, their clean-up, and how it fails, on a real redis-server.

The shared contract runs against Redis in test_store.py; these look at the server itself.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis_server

from foretell.errors import MissingExtra, StoreError
from foretell.store import SqliteStore, open_store
from foretell.store import redis as redis_backend
from foretell.store.redis import RedisStore

T0 = "2024-05-01T02:00:00Z"
T1 = "2024-05-01T03:00:00Z"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server.shared() as url:
        yield url


@pytest.fixture
def prefix() -> str:
    return redis_server.unique_prefix()


@pytest.fixture
def store(redis_url: str, prefix: str) -> Iterator[RedisStore]:
    opened = RedisStore(redis_url, prefix=prefix)
    yield opened
    opened.close()


@pytest.fixture
def server(redis_url: str) -> Iterator[Any]:
    """A plain client, to look at the keys behind the store's back."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def publish(store: RedisStore, values: dict[str, float], stamp: str = T0) -> int:
    generation = store.begin_generation("churn")
    store.write_batch("churn", generation, [(k, {"score": v}, 1, stamp) for k, v in values.items()])
    store.publish("churn", generation)
    return generation


def keys(server: Any, prefix: str) -> list[str]:
    return sorted(server.keys(f"{prefix}:*"))


def test_every_key_is_under_the_prefix_and_the_model(store: RedisStore, server: Any, prefix: str) -> None:
    publish(store, {"a": 1.0})
    store.put_live("churn", "b", {"score": 2.0}, 1, T1)
    store.begin_generation("movies")
    assert keys(server, prefix) == [
        f"{prefix}:{{churn}}:gen:1",
        f"{prefix}:{{churn}}:generations",
        f"{prefix}:{{churn}}:live",
        f"{prefix}:{{churn}}:live:by-time",
        f"{prefix}:{{churn}}:meta:1",
        f"{prefix}:{{churn}}:next",
        f"{prefix}:{{churn}}:published",
        f"{prefix}:{{movies}}:generations",
        f"{prefix}:{{movies}}:meta:1",
        f"{prefix}:{{movies}}:next",
    ]
    other = RedisStore(store.url, prefix=redis_server.unique_prefix())
    assert other.get("churn", "a") is None  # another prefix is another store
    other.close()


def test_older_generations_and_stale_live_entries_are_deleted_from_the_server(
    store: RedisStore, server: Any, prefix: str
) -> None:
    base = f"{prefix}:{{churn}}:"
    store.put_live("churn", "stale", {"score": 0.0}, 1, "2024-05-01T01:00:00Z")
    store.put_live("churn", "fresh", {"score": 0.0}, 1, T1)
    publish(store, {"a": 1.0, "b": 1.0})
    abandoned = store.begin_generation("churn")
    store.write_batch("churn", abandoned, [("a", {"score": 2.0}, 1, T0)])
    store.abandon("churn", abandoned)
    died = store.begin_generation("churn")
    store.write_batch("churn", died, [("a", {"score": 3.0}, 1, T0)])
    assert publish(store, {"a": 4.0}) == 4

    gone = [f"{base}{kind}:{n}" for n in (1, 2, 3) for kind in ("gen", "meta", "earliest")]
    assert server.exists(*gone) == 0
    meta = server.hgetall(f"{base}meta:4")
    assert set(meta) == {"state", "created_at", "rows", "published_at", "earliest"}
    assert (meta["state"], meta["rows"], meta["earliest"]) == ("published", "1", "2024-05-01T02:00:00.000000Z")
    assert server.smembers(f"{base}generations") == {"4"}
    assert server.hkeys(f"{base}live") == ["fresh"]
    assert server.zrange(f"{base}live:by-time", 0, -1) == ["2024-05-01T03:00:00.000000Z fresh"]


def test_a_row_holds_the_same_json_bytes_as_sqlite(store: RedisStore, server: Any, prefix: str) -> None:
    publish(store, {"a": 0.5}, stamp="2024-05-01T04:00:00+02:00")
    row = server.hget(f"{prefix}:{{churn}}:gen:1", "a")
    assert row == '2024-05-01T02:00:00.000000Z 1 {"score":0.5}'


def test_a_write_that_loses_its_generation_midway_writes_nothing(
    store: RedisStore, server: Any, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer watches the generation: a publish between its check and its commit voids the commit."""
    first = store.begin_generation("churn")
    store.write_batch("churn", first, [("a", {"score": 1.0}, 1, T0)])
    second = store.begin_generation("churn")
    store.write_batch("churn", second, [("a", {"score": 2.0}, 1, T1)])
    other = RedisStore(store.url, prefix=prefix)
    flatten = redis_backend._flatten

    def publish_meanwhile(encoded: object) -> object:
        other.publish("churn", second)  # supersedes `first` after the writer found it open
        return flatten(encoded)  # type: ignore[arg-type]

    monkeypatch.setattr(redis_backend, "_flatten", publish_meanwhile)
    with pytest.raises(StoreError, match=r"generation 1 of 'churn' is gone: .*superseded when generation 2"):
        store.write_batch("churn", first, [("late", {"score": 9.0}, 1, T0)])
    other.close()
    assert server.exists(f"{prefix}:{{churn}}:gen:1") == 0
    assert store.get("churn", "late") is None


def test_published_at_comes_from_the_clock(redis_url: str, prefix: str) -> None:
    store = RedisStore(redis_url, prefix=prefix, clock=lambda: datetime(2024, 5, 1, 4, 30, tzinfo=UTC))
    publish(store, {"a": 1.0})
    assert store.stats("churn")["published_at"] == "2024-05-01T04:30:00.000000Z"
    store.close()


def test_a_server_that_does_not_answer_is_a_store_error_naming_the_url() -> None:
    pytest.importorskip("redis")
    url = f"redis://reader:s3cret@127.0.0.1:{redis_server.free_port()}/0"
    with pytest.raises(StoreError, match=r"cannot reach the Redis prediction store at redis://reader:\*\*\*@127") as e:
        RedisStore(url)
    assert "s3cret" not in str(e.value)
    assert e.value.__cause__ is None and e.value.__suppress_context__  # no redis-py traceback behind it


def test_a_store_whose_server_went_away_says_so() -> None:
    with redis_server._serve(redis_server.require_server()) as url:
        store = RedisStore(url, prefix=redis_server.unique_prefix())
    with pytest.raises(StoreError, match=f"cannot reach the Redis prediction store at {url}"):
        store.get("churn", "a")
    store.close()


def test_a_url_that_is_not_redis_is_refused() -> None:
    pytest.importorskip("redis")
    with pytest.raises(StoreError, match=r"redis://127\.0\.0\.1:port/0 is not a Redis URL"):
        RedisStore("redis://127.0.0.1:port/0")


def test_without_the_redis_package_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # what `import redis` meets when it is not installed
    with pytest.raises(MissingExtra, match=r"Redis prediction store needs the 'redis' package.*foretell\[redis\]"):
        RedisStore("redis://127.0.0.1:6379/0")


def test_open_store_picks_the_backend_from_the_url(redis_url: str, tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path), SqliteStore)
    assert isinstance(open_store(tmp_path, "store.db"), SqliteStore)
    redis_store = open_store(tmp_path, redis_url)
    assert isinstance(redis_store, RedisStore)
    redis_store.close()
    with pytest.raises(StoreError, match=r"cannot reach the Redis prediction store at unix:///nowhere/redis\.sock"):
        open_store(tmp_path, "unix:///nowhere/redis.sock")


def test_an_unknown_store_url_scheme_is_refused_not_taken_for_sqlite(tmp_path: Path) -> None:
    import pytest

    from foretell.store import open_entity_store

    for opener in (open_store, open_entity_store):
        with pytest.raises(StoreError, match="unknown store URL 'postgres://db/1'"):
            opener(tmp_path, "postgres://db/1")


def test_scripts_flushed_from_the_server_are_loaded_again(store: RedisStore, server: Any) -> None:
    publish(store, {"a": 0.5})
    server.script_flush()  # as a restart or a failover to a replica that never saw them does
    assert store.get("churn", "a") is not None
    server.script_flush()
    store.put_live("churn", "b", {"score": 0.25}, 1, T1)
    server.script_flush()
    publish(store, {"a": 0.75, "c": 0.1}, T1)
    found = store.get_many("churn", ["a", "b", "c"])
    assert found["a"].prediction == {"score": 0.75} and set(found) == {"a", "b", "c"}


def test_threads_share_the_pool_and_each_reads_its_own_keys(store: RedisStore, server: Any) -> None:
    n = 2_000
    publish(store, {f"k{i}": i / 4 for i in range(n)})
    clients = len(server.client_list())

    def read(thread: int) -> int:
        wrong = 0
        for i in range(thread, n, 8):
            found = store.get_many("churn", [f"k{i}", f"k{(i + 7) % n}"])
            wrong += found[f"k{i}"].prediction != {"score": i / 4}
            wrong += found[f"k{(i + 7) % n}"].prediction != {"score": (i + 7) % n / 4}
        return wrong

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(read, range(8))) == 0
    # One pool of connections: a few per thread at most, not one per call.
    assert len(server.client_list()) <= clients + 8
