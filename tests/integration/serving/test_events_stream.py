"""Events from a Redis stream, against a real redis-server: exactly once across a kill -9, dead letters,
one refresh per key per read, lag, and a server applying a stream while it serves lookups."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import joblib
import orjson
import pyarrow as pa
import pytest
from moviekit import register_movies
from servekit import FEATURES, rows, server
from sklearn.linear_model import LogisticRegression

import foretell
from foretell import api
from foretell.adapters.outputs import classifier_outputs
from foretell.core.feature import Feature
from foretell.core.schema import Signature
from foretell.demo.movies import generate_movies
from foretell.errors import InvalidInput
from foretell.hybrid.stream import StreamConsumer
from foretell.server.assembly import build_services
from foretell.serving.config import ServeConfig
from foretell.store import SqliteStore
from foretell.store.entities import Interactions
from foretell.store.entities_sqlite import SqliteEntityStore
from foretell.store.redis_stream import parse_stream_url

sys.path.insert(0, str(Path(__file__).parents[2] / "contract"))  # the throwaway redis-server of the store tests
import redis_server

MOVIES = generate_movies(200, seed=5)
MOVIE_IDS = MOVIES.column("movie_id").to_pylist()
STAMP = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server.shared() as url:
        yield url


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """Two models fed by entity tables: `movies` (ratings of users) and `clf` (features of things)."""
    home = tmp_path / "home"
    scratch = tmp_path / "models"
    scratch.mkdir()
    x = rows(200, seed=3)
    joblib.dump(LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), scratch / "clf.joblib")
    signature = Signature(tuple(Feature(n) for n in FEATURES), classifier_outputs([0, 1]))
    foretell.register("clf", scratch / "clf.joblib", signature=signature, aliases=["production"], home=home)
    ratings = register_movies(home, scratch)
    things = pa.table(
        {"id": [f"T-{i}" for i in range(20)], **{n: rows(20, seed=4)[:, i] for i, n in enumerate(FEATURES)}}
    )
    entities = SqliteEntityStore(home / "entities.db")
    entities.load_features("things", "id", things, models=["clf"], at=STAMP)
    entities.load_interactions(
        "users", "user_id", ratings, Interactions("ratings", "movie_id", "rating"), models=["movies"], at=STAMP
    )
    return home


def stream_url(redis_url: str, name: str | None = None) -> str:
    return f"{redis_url}?stream={name or 'events-' + uuid.uuid4().hex[:10]}"


def client(redis_url: str):
    import redis

    return redis.Redis.from_url(redis_url)


def add(redis_url: str, stream: str, events: Sequence[dict | bytes]) -> list[str]:
    r = client(redis_url)
    pipe = r.pipeline(transaction=False)
    for event in events:
        pipe.xadd(stream, {"event": event if isinstance(event, bytes) else orjson.dumps(event)})
    return [entry.decode() for entry in pipe.execute()]


def rating(user: int, movie: int, value: int) -> dict:
    return {"type": "rating", "user_id": user, "movie_id": movie, "rating": value}


def applied_ids(home: Path) -> list[str]:
    """The event ids the entity store recorded as applied (one row each, by its primary key)."""
    with sqlite3.connect(home / "entities.db") as conn:
        return [row[0] for row in conn.execute("SELECT event_id FROM events")]


def ratings_of(home: Path, user: int) -> dict[str, float]:
    found = SqliteEntityStore(home / "entities.db").get("users", str(user))
    assert found is not None
    return {str(k): v for k, v in found.features["ratings"].items()}


def run_consumer(home: Path, url: str, **options: object) -> tuple[StreamConsumer, dict]:
    """A consumer in this process over the services a server builds, run until a read finds nothing new."""
    config = ServeConfig(models=("clf@production", "movies@production"))

    async def main() -> tuple[StreamConsumer, dict]:
        inference, hybrid = build_services(home, config)
        consumer = StreamConsumer(hybrid, parse_stream_url(url), **options)  # type: ignore[arg-type]
        await inference.start()
        try:
            await consumer.run(until_idle=True)
            lag = (await consumer.lag()).to_dict()
            await consumer.close()
        finally:
            await inference.stop(drain=True)
            hybrid.close()
        return consumer, lag

    return asyncio.run(main())


def test_a_consumer_killed_mid_stream_and_restarted_applies_every_event_exactly_once(home, redis_url, tmp_path):
    url = stream_url(redis_url)
    stream = parse_stream_url(url).stream
    users = list(range(1, 41))
    # Each event rates a movie its user had not rated: the final maps show every event, in order.
    plan = [(users[i % 40], MOVIE_IDS[100 + i // 40], 1 + i % 5) for i in range(2400)]
    before = {u: ratings_of(home, u) for u in users}
    ids = add(redis_url, stream, [rating(*p) for p in plan])
    command = [
        sys.executable,
        "-m",
        "foretell",
        "events",
        "consume",
        "--from",
        url,
        "--consumer",
        "c1",
        "--count",
        "40",
    ]
    env = {**os.environ, "FORETELL_HOME": str(home)}
    log = tmp_path / "consumer.log"
    with log.open("w") as output:
        first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=output)
    deadline = time.monotonic() + 60
    while len(applied_ids(home)) < 600:
        assert first.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the consumer applied too little in a minute"
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = len(applied_ids(home))
    assert killed_at < len(plan), "the consumer finished before it was killed: nothing was tested"
    again = subprocess.run(
        [*command, "--until-idle", "--json"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 0, again.stderr
    done = json.loads(again.stdout)
    # Entries read but not acknowledged before the kill come again: those already applied count as duplicates.
    assert done["applied"] == len(plan) - killed_at and done["dead"] == 0 and done["failures"] == 0, done
    assert sorted(applied_ids(home)) == sorted(f"{stream}:{i}" for i in ids)
    for user in users:
        expected = {**before[user], **{str(m): float(v) for u, m, v in plan if u == user}}
        assert ratings_of(home, user) == expected
    info = client(redis_url).xinfo_groups(stream)[0]
    assert info["pending"] == 0 and info["lag"] == 0
    # Each user's stored prediction was refreshed from its final ratings (after its last event).
    store = SqliteStore(home / "store.db")
    entities = SqliteEntityStore(home / "entities.db")
    found = store.get_many("movies", [str(u) for u in users])
    for user in users:
        entity = entities.get("users", str(user))
        assert entity is not None and found[str(user)].computed_at >= str(entity.updated_at)[:19]


def test_a_poison_event_is_dead_lettered_with_its_reason_and_acknowledged(home, redis_url):
    url = stream_url(redis_url)
    stream = parse_stream_url(url).stream
    good = {"type": "features", "key": "T-1", "values": {"a": 0.5}}
    refused = {"type": "features", "key": "T-2", "values": {"a": "lots"}}
    huge = {"type": "features", "key": "T-3", "values": {"a": 0.25}, "note": "x" * 400}
    ids = add(redis_url, stream, [b"{not json", refused, good, {"type": "rating", "user_id": 1}, huge])
    client(redis_url).xadd(stream, {"other": "field"})
    consumer, lag = run_consumer(home, url, max_event_bytes=300)
    assert consumer.progress.applied == 1 and consumer.progress.dead == 5
    assert lag["pending"] == 0 and lag["dead"] == 5
    letters = client(redis_url).xrange(f"{stream}:dead")
    reasons = {entry[b"entry_id"].decode(): entry[b"reason"].decode() for _, entry in letters}
    assert "not valid JSON" in reasons[ids[0]]
    # The same words POST /v1/events answers with 400.
    with pytest.raises(InvalidInput) as refusal:
        run_apply(home, orjson.dumps(refused))
    assert reasons[ids[1]] == str(refusal.value) and "model 'clf' refuses" in reasons[ids[1]]
    assert "fits no interactions table" in reasons[ids[3]]
    assert any("no 'event' field" in reason for reason in reasons.values())
    size = len(orjson.dumps(huge))
    assert reasons[ids[4]] == f"the event is {size:,} bytes, over the limit of 300 (max_body_bytes)"
    assert letters[1][1][b"event"] == orjson.dumps(refused)
    assert SqliteEntityStore(home / "entities.db").get("things", "T-1").features["a"] == 0.5  # type: ignore[union-attr]


def run_apply(home: Path, body: bytes) -> dict:
    async def main() -> dict:
        inference, hybrid = build_services(home, ServeConfig(models=("clf@production",)))
        await inference.start()
        try:
            return await hybrid.apply(body)
        finally:
            await inference.stop(drain=True)
            hybrid.close()

    return asyncio.run(main())


def test_a_burst_for_one_key_in_one_read_is_applied_in_order_and_refreshed_once(home, redis_url):
    url = stream_url(redis_url)
    stream = parse_stream_url(url).stream
    burst = [rating(7, MOVIE_IDS[150], v) for v in (1, 2, 3, 4, 5)] + [rating(7, MOVIE_IDS[151], 2)]
    burst += [rating(8, MOVIE_IDS[150], 4), rating(8, MOVIE_IDS[150], 1)]
    add(redis_url, stream, burst)
    consumer, lag = run_consumer(home, url, count=100)
    assert consumer.progress.applied == 8 and consumer.progress.refreshes == 2
    assert ratings_of(home, 7)[str(MOVIE_IDS[150])] == 5.0 and ratings_of(home, 7)[str(MOVIE_IDS[151])] == 2.0
    assert ratings_of(home, 8)[str(MOVIE_IDS[150])] == 1.0
    rows_7 = api.ledger_history("movies", key="7", source="event-refresh", home=home, limit=100)
    rows_8 = api.ledger_history("movies", key="8", source="event-refresh", home=home, limit=100)
    assert len(rows_7) == 1 and len(rows_8) == 1
    assert rows_7[0]["transport"] == "redis-stream"
    # The refresh saw the burst's last ratings: the prediction equals the model's on the final features.
    model = foretell.load("movies@production", home=home)
    expected = model.predict({"user_id": 7, "ratings": orjson.dumps(ratings_of(home, 7)).decode()})
    stored = SqliteStore(home / "store.db").get_many("movies", ["7"])["7"].prediction
    assert stored["items"] == list(expected["items"])
    assert lag == {**lag, "pending": 0, "lag": 0}


def test_a_read_about_many_keys_is_written_at_once_and_refreshed_at_once(home, redis_url):
    url = stream_url(redis_url)
    stream = parse_stream_url(url).stream
    users = list(range(20, 60))
    add(redis_url, stream, [rating(user, MOVIE_IDS[user], 1 + user % 5) for user in users])
    consumer, lag = run_consumer(home, url, count=100)
    assert consumer.progress.applied == len(users) and consumer.progress.refreshes == len(users)
    assert all(ratings_of(home, user)[str(MOVIE_IDS[user])] == 1 + user % 5 for user in users)
    # One write for the read stamps every event alike, one refresh every prediction alike
    # (each key written and refreshed on its own would have stamps a few microseconds apart).
    with sqlite3.connect(home / "entities.db") as conn:
        assert len({stamp for (stamp,) in conn.execute("SELECT applied_at FROM events")}) == 1
    stored = SqliteStore(home / "store.db").get_many("movies", [str(user) for user in users])
    assert len(stored) == len(users) and len({found.computed_at for found in stored.values()}) == 1
    assert lag == {**lag, "pending": 0, "lag": 0}


def test_a_key_the_table_cannot_have_is_dead_lettered_and_the_rest_of_its_read_applied(home, redis_url):
    url = stream_url(redis_url)
    stream = parse_stream_url(url).stream
    bad = {"type": "rating", "user_id": "abc", "movie_id": MOVIE_IDS[3], "rating": 4}
    ids = add(redis_url, stream, [rating(9, MOVIE_IDS[3], 4), bad, rating(10, MOVIE_IDS[3], 2)])
    consumer, lag = run_consumer(home, url, count=100)
    assert consumer.progress.applied == 2 and consumer.progress.dead == 1
    assert ratings_of(home, 9)[str(MOVIE_IDS[3])] == 4.0 and ratings_of(home, 10)[str(MOVIE_IDS[3])] == 2.0
    letters = client(redis_url).xrange(f"{stream}:dead")
    assert [entry[b"entry_id"].decode() for _, entry in letters] == [ids[1]]
    assert "not a whole number" in letters[0][1][b"reason"].decode()
    assert lag == {**lag, "pending": 0, "dead": 1}


def test_lag_is_reported_by_events_stats_before_and_after_consuming(home, redis_url):
    url = stream_url(redis_url)
    stream = parse_stream_url(url).stream
    add(redis_url, stream, [rating(3, MOVIE_IDS[120 + i], 4) for i in range(25)])
    client(redis_url).xgroup_create(stream, "foretell", id="0")
    command = [sys.executable, "-m", "foretell", "events", "stats", "--from", url, "--json"]
    env = {**os.environ, "FORETELL_HOME": str(home)}
    before = orjson.loads(subprocess.run(command, env=env, capture_output=True, check=True).stdout)
    assert before == {**before, "length": 25, "lag": 25, "pending": 0, "dead": 0, "stream": stream}
    run_consumer(home, url)
    after = orjson.loads(subprocess.run(command, env=env, capture_output=True, check=True).stdout)
    assert after == {**after, "length": 25, "lag": 0, "pending": 0, "consumers": 1}


def test_events_errors_are_one_line_naming_the_problem(home, redis_url):
    env = {**os.environ, "FORETELL_HOME": str(home)}

    def stats(source: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "foretell", "events", "stats", "--from", source],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 1
        return done.stderr.strip()

    assert "names no stream: add ?stream=NAME" in stats(redis_url)
    assert "must be a redis:// URL" in stats("http://localhost/?stream=x")
    down = stats(f"redis://127.0.0.1:{redis_server.free_port()}/0?stream=x")
    assert "cannot reach the Redis event stream 'x'" in down and len(down.splitlines()) == 1


def test_a_server_with_events_from_applies_a_stream_and_its_lookups_see_it(home, redis_url):
    url = stream_url(redis_url)
    stream = parse_stream_url(url).stream
    with server(home, "clf@production", "movies@production", "--events-from", url) as base:
        before = httpx.get(f"{base}/v1/models/clf/predictions/T-5", timeout=10).json()["prediction"]["score"]
        add(redis_url, stream, [{"type": "features", "key": "T-5", "values": {"a": 9.0, "b": 9.0}}])
        deadline = time.monotonic() + 10
        while True:
            answer = httpx.get(f"{base}/v1/models/clf/predictions/T-5", timeout=10).json()
            if answer["prediction"]["score"] != before or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        features = [9.0, 9.0, *rows(20, seed=4)[5, 2:].tolist()]
        model = foretell.load("clf@production", home=home)
        assert answer["prediction"]["score"] == pytest.approx(
            model.predict(dict(zip(FEATURES, features, strict=True)))["score"]
        )
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert f'foretell_events_consumed_total{{outcome="applied",stream="{stream}"}} 1.0' in metrics
        assert f'foretell_events_pending{{stream="{stream}"}}' in metrics


def test_a_traced_read_is_one_span_with_its_entity_read_write_and_refresh_under_it(home, redis_url):
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from foretell import tracing

    url = stream_url(redis_url)
    stream = parse_stream_url(url).stream
    add(redis_url, stream, [rating(4, MOVIE_IDS[170], 5), rating(4, MOVIE_IDS[171], 3), rating(5, MOVIE_IDS[170], 2)])
    exporter = InMemorySpanExporter()
    tracing.enable(SimpleSpanProcessor(exporter))
    try:
        run_consumer(home, url, count=100)
    finally:
        tracing.disable()
    found = exporter.get_finished_spans()
    reads = [s for s in found if s.name == "events read"]
    assert len(reads) == 1, [s.name for s in found]
    read = reads[0]
    assert dict(read.attributes or {}) == {
        "messaging.system": "redis",
        "messaging.destination.name": stream,
        "messaging.batch.message_count": 3,
    }
    under = [s for s in found if s.parent is not None and s.parent.span_id == read.context.span_id]
    names = sorted(s.name for s in under)
    # One write for the read's events, one inference for its two keys (the refresh reads their features again).
    assert names.count("entity write") == 1 and names.count("batch") == 1, names
    assert {"entity read", "queue wait", "store write", "ledger enqueue"} <= set(names), names


def test_an_event_the_store_would_refuse_is_dead_lettered_alone_and_its_neighbours_applied(home, redis_url):
    url = stream_url(redis_url)
    stream = parse_stream_url(url).stream
    unknown = {"type": "features", "entity": "things", "key": "T-3", "values": {"zzz": 1.0}}
    rekey = {"type": "features", "entity": "things", "key": "T-3", "values": {"id": "T-99"}}
    good = [
        {"type": "features", "key": "T-3", "values": {"a": 0.7}},
        {"type": "features", "key": "T-4", "values": {"b": 0.1}},
    ]
    ids = add(redis_url, stream, [good[0], unknown, rekey, good[1]])
    consumer, lag = run_consumer(home, url, count=100)
    assert consumer.progress.applied == 2 and consumer.progress.dead == 2
    entities = SqliteEntityStore(home / "entities.db")
    assert entities.get("things", "T-3").features["a"] == 0.7  # type: ignore[union-attr]
    assert entities.get("things", "T-4").features["b"] == 0.1  # type: ignore[union-attr]
    letters = {e[b"entry_id"].decode(): e[b"reason"].decode() for _, e in client(redis_url).xrange(f"{stream}:dead")}
    assert set(letters) == {ids[1], ids[2]}
    assert "has no column(s) ['zzz']" in letters[ids[1]]
    assert "'id' is the key of entity table 'things'" in letters[ids[2]]
    assert lag == {**lag, "pending": 0, "dead": 2}
