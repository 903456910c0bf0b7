"""Events from a Redis stream when things go wrong: Redis killed and restarted under a consumer, and a
server with `--workers 2` (one worker consumes, the other stands by, so a key's events keep their order)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
from servekit import server
from test_events_stream import (
    MOVIE_IDS,
    STAMP,
    add,
    applied_ids,
    client,
    home,  # noqa: F401 - the fixture
    rating,
    ratings_of,
    redis_url,  # noqa: F401 - the fixture
    stream_url,
)

import foretell
from foretell.core.feature import Feature
from foretell.core.schema import Output, Signature
from foretell.hybrid.stream import MAX_ATTEMPTS, StreamConsumer
from foretell.hybrid.stream_lock import ConsumerLock
from foretell.server.assembly import build_services
from foretell.serving.config import ServeConfig
from foretell.store import SqliteStore
from foretell.store.entities_sqlite import SqliteEntityStore
from foretell.store.redis_stream import parse_stream_url

sys.path.insert(0, str(Path(__file__).parents[2] / "contract"))
import redis_server


def test_a_consumer_rides_out_redis_killed_and_restarted_and_applies_every_event_once(home, tmp_path):  # noqa: F811
    folder = tmp_path / "redis"
    folder.mkdir()
    port = redis_server.free_port()
    url = stream_url(f"redis://127.0.0.1:{port}/0")
    stream = parse_stream_url(url).stream
    users = list(range(1, 31))
    plan = [(users[i % 30], MOVIE_IDS[100 + i // 30], 1 + i % 5) for i in range(1800)]
    before = {u: ratings_of(home, u) for u in users}
    command = [sys.executable, "-m", "foretell", "events", "consume", "--from", url, "--consumer", "c1"]
    command += ["--count", "30", "--progress-seconds", "60"]
    env = {**os.environ, "FORETELL_HOME": str(home)}
    log = tmp_path / "consumer.log"
    with redis_server.durable(folder, port) as first_redis:
        ids = add(f"redis://127.0.0.1:{port}/0", stream, [rating(*p) for p in plan])
        with log.open("w") as output:
            consumer = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=output)
        try:
            deadline = time.monotonic() + 60
            while len(applied_ids(home)) < 300:
                assert consumer.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the consumer applied too little in a minute"
                time.sleep(0.01)
            first_redis.send_signal(signal.SIGKILL)
            first_redis.wait()
            stalled_at = len(applied_ids(home))
            assert stalled_at < len(plan), "the consumer finished before Redis was killed: nothing was tested"
            time.sleep(2.5)  # a few failed reads and retries
            assert consumer.poll() is None, log.read_text()
            assert len(applied_ids(home)) <= stalled_at + 30, "events were applied while Redis was down"
            with redis_server.durable(folder, port):
                deadline = time.monotonic() + 90
                while len(applied_ids(home)) < len(plan):
                    assert consumer.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, f"{len(applied_ids(home))} of {len(plan)} applied"
                    time.sleep(0.05)
                # Every entry acknowledged (the last read's XACK may trail its entity write).
                deadline = time.monotonic() + 10
                while (info := client(f"redis://127.0.0.1:{port}/0").xinfo_groups(stream)[0])["pending"]:
                    assert time.monotonic() < deadline, info
                    time.sleep(0.05)
                assert info["lag"] == 0
        finally:
            consumer.send_signal(signal.SIGTERM)
            assert consumer.wait(timeout=30) == 0, log.read_text()
    assert sorted(applied_ids(home)) == sorted(f"{stream}:{i}" for i in ids)
    for user in users:
        expected = {**before[user], **{str(m): float(v) for u, m, v in plan if u == user}}
        assert ratings_of(home, user) == expected
    said = log.read_text()
    assert "cannot reach" in said or "Connection" in said, said
    assert "reading pending entries again" in said


def test_one_process_consumes_as_a_consumer_the_next_takes_over_when_it_dies(tmp_path):
    address = parse_stream_url("redis://127.0.0.1:6379/0?stream=ratings&consumer=c1")
    first, second = ConsumerLock(address, tmp_path), ConsumerLock(address, tmp_path)
    other = ConsumerLock(parse_stream_url("redis://127.0.0.1:6379/0?stream=ratings&consumer=c2"), tmp_path)
    assert first.try_take() and first.held
    assert not second.try_take() and not second.held
    assert other.try_take(), "another consumer name is another lock"
    first.release()
    assert second.try_take()
    second.release()
    # A process killed while it holds the lock frees it with its death.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from foretell.hybrid.stream_lock import ConsumerLock;"
            "from foretell.store.redis_stream import parse_stream_url;"
            "lock = ConsumerLock(parse_stream_url(sys.argv[1]), Path(sys.argv[2]));"
            "assert lock.try_take(); print('held', flush=True); time.sleep(60)",
            "redis://127.0.0.1:6379/0?stream=ratings&consumer=c1",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert not first.try_take()
    finally:
        holder.kill()
        holder.communicate()
    assert first.try_take()
    first.release()


def test_a_server_with_two_workers_consumes_in_one_and_keeps_each_keys_order(home, redis_url, tmp_path):  # noqa: F811
    url = stream_url(redis_url)
    stream = parse_stream_url(url).stream
    log = tmp_path / "serve.log"
    users = [11, 12, 13]
    movie = str(MOVIE_IDS[160])
    with server(home, "movies@production", "--events-from", url, "--workers", "2", log=log, timeout=120):
        # Many ratings of one film per user, in order: only the last may remain.
        plan = [(users[i % 3], MOVIE_IDS[160], 1 + (i // 3) % 5) for i in range(600)]
        ids = add(redis_url, stream, [rating(*p) for p in plan])
        deadline = time.monotonic() + 60
        while len(applied_ids(home)) < len(plan):
            assert time.monotonic() < deadline, f"{len(applied_ids(home))} of {len(plan)} applied"
            time.sleep(0.05)
        assert sorted(applied_ids(home)) == sorted(f"{stream}:{i}" for i in ids)
        for user in users:
            last = next(v for u, _m, v in reversed(plan) if u == user)
            assert ratings_of(home, user)[movie] == float(last)
        info = client(redis_url).xinfo_groups(stream)[0]
        assert info["consumers"] == 1
    assert log.read_text().count("standing by") == 1, log.read_text()


PICKY = """
import numpy as np


class Picky:
    '''score = a, but the model cannot score a == 13 (as a real model may fail on one entity's features).'''

    @classmethod
    def load(cls, path):
        return cls()

    def predict(self, columns):
        a = np.asarray(columns["a"], dtype=float)
        if (a == 13).any():
            raise ValueError("13 is unlucky")
        return a
"""


def test_an_event_whose_refresh_the_model_always_fails_is_dead_lettered_after_its_attempts(redis_url, tmp_path):  # noqa: F811 - redis_url
    picky_home = tmp_path / "picky_home"
    folder = tmp_path / "picky"
    folder.mkdir()
    (folder / "pickymodel.py").write_text(PICKY)
    signature = Signature((Feature("a"),), (Output("score", "score"),))
    foretell.register(
        "picky", folder, flavor="python", signature=signature, flavor_options={"class": "pickymodel.py:Picky"},
        compile=False, aliases=["production"], home=picky_home,
    )  # fmt: skip
    things = pa.table({"id": ["T-1", "T-2"], "a": [1.0, 2.0]})
    SqliteEntityStore(picky_home / "entities.db").load_features("things", "id", things, models=["picky"], at=STAMP)
    url = stream_url(redis_url)
    stream = parse_stream_url(url).stream
    ids = add(redis_url, stream, [
        {"type": "features", "key": "T-1", "values": {"a": 13.0}},
        {"type": "features", "key": "T-2", "values": {"a": 5.0}},
    ])  # fmt: skip

    async def main() -> StreamConsumer:
        inference, hybrid = build_services(picky_home, ServeConfig(models=("picky@production",)))
        consumer = StreamConsumer(hybrid, parse_stream_url(url))
        await inference.start()
        try:
            await consumer.run(until_idle=True)
            await consumer.close()
        finally:
            await inference.stop(drain=True)
            hybrid.close()
        return consumer

    started = time.monotonic()
    consumer = asyncio.run(main())
    assert consumer.progress.failures == MAX_ATTEMPTS - 1  # then the fifth failure dead-letters it
    assert consumer.progress.applied == 1 and consumer.progress.dead == 1
    assert time.monotonic() - started < 30
    letters = client(redis_url).xrange(f"{stream}:dead")
    assert [entry[b"entry_id"].decode() for _, entry in letters] == [ids[0]]
    reason = letters[0][1][b"reason"].decode()
    assert f"its refresh failed {MAX_ATTEMPTS} times in a row" in reason and "13 is unlucky" in reason
    info = client(redis_url).xinfo_groups(stream)[0]
    assert info["pending"] == 0 and info["lag"] == 0
    assert SqliteStore(picky_home / "store.db").get_many("picky", ["T-2"])["T-2"].prediction["score"] == 5.0
