"""Events from a Redis stream: how many rating events a consumer applies per second, and how soon a lookup sees one.

    PYTHONPATH=src flock /tmp/foretell-bench.lock .venv/bin/python benchmarks/events_stream.py \
        [--events 20000] [--rate 500] [--seconds 20]

The demo recommender (`foretell demo init`: 5,000 users, 1,500 movies), its users' ratings
loaded as the interactions table `users`, and a throwaway redis-server. In one run:

- throughput: `--events` rating events for random demo users are added to a stream first;
  then `foretell events consume --from ... --until-idle`, pinned to core 0, applies them
  (validation, entity write, one refresh per user per read of 500, ledger on). Timed from its
  first acknowledged entry to the last (so the model load is not counted), by polling the
  group's `entries-read` and `pending` from core 1.
- event → updated lookup: `foretell serve movies@production --events-from ...` on core 0,
  and a producer on core 1 adding `--rate` rating events per second for `--seconds`. One event
  in ten is for a user kept for the measurement (none of the others touch it, and each
  measured user is used again only seconds later); after adding it, the producer polls
  `GET /v1/models/movies/predictions/{user}` every 2 ms until the prediction's `computed_at`
  is later than the moment the event was added: only the refresh that event caused can be.

Targets (issue 19): ≥ 2,000 rating events/s applied with refresh; event → updated lookup p99
< 50 ms at 500 events/s. Needs taskset and redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "integration" / "serving"))
from servekit import free_port

from hybrid import start_redis
from serve import wait_ready

SAMPLED_USERS = 200  # users only the latency samples rate: at 50 samples/s each is reused every 4 s


def rating_event(user: int, movie: int, value: int) -> bytes:
    return orjson.dumps({"type": "rating", "user_id": user, "movie_id": movie, "rating": value})


def throughput(home: Path, url: str, users: list[int], movies: list[int], n: int) -> tuple[float, str]:
    """Events/s `foretell events consume` applies from a stream of `n` already there, and its last progress line."""
    import redis

    client = redis.Redis.from_url(url.split("?")[0])
    stream = re.search(r"stream=([^&]+)", url).group(1)  # type: ignore[union-attr]
    rng = random.Random(11)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(stream, {"event": rating_event(rng.choice(users), rng.choice(movies), rng.randint(1, 5))})
        if i % 5_000 == 4_999:
            pipe.execute()
    pipe.execute()
    command = ["taskset", "-c", "0", sys.executable, "-m", "foretell", "events", "consume", "movies@production",
               "--from", url, "--until-idle", "--progress-seconds", "60"]  # fmt: skip
    env = {**os.environ, "FORETELL_HOME": str(home)}
    consumer = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def acknowledged() -> int:
        groups = client.xinfo_groups(stream) if client.exists(stream) else []
        group = next((g for g in groups if g["name"] == b"foretell"), None)
        return 0 if group is None else int(group["entries-read"] or 0) - int(group["pending"])

    first = 0
    while (first := acknowledged()) == 0 and consumer.poll() is None:
        time.sleep(0.002)
    started = time.perf_counter()
    while (done := acknowledged()) < n and consumer.poll() is None:
        time.sleep(0.002)
    elapsed = time.perf_counter() - started
    _, stderr = consumer.communicate(timeout=120)
    if done < n:
        sys.exit(f"the consumer stopped after {done:,} of {n:,} events: {stderr}")
    return (n - first) / elapsed, stderr.strip().splitlines()[-1]


async def latency(home: Path, url: str, users: list[int], movies: list[int], rate: int, seconds: int) -> list[float]:
    """Event → updated lookup, in ms, for one event in ten of `rate` events/s over `seconds`."""
    import redis.asyncio

    stream = re.search(r"stream=([^&]+)", url).group(1)  # type: ignore[union-attr]
    port = free_port()
    command = ["taskset", "-c", "0", sys.executable, "-m", "foretell", "serve", "movies@production", "--port",
               str(port), "--reload-seconds", "0", "--events-from", url]  # fmt: skip
    env = {**os.environ, "FORETELL_HOME": str(home)}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    took: list[float] = []
    try:
        wait_ready(base)
        client = redis.asyncio.Redis.from_url(url.split("?")[0])
        sampled, others = users[:SAMPLED_USERS], users[SAMPLED_USERS:]
        rng = random.Random(13)
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:

            async def measure(user: int, event: bytes) -> None:
                sent = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                started = time.perf_counter()
                await client.xadd(stream, {"event": event})
                while time.perf_counter() - started < 5:
                    answer = (await http.get(f"/v1/models/movies/predictions/{user}")).json()
                    if answer["computed_at"] > sent:
                        took.append((time.perf_counter() - started) * 1000)
                        return
                    await asyncio.sleep(0.002)
                took.append(float("inf"))

            tasks = []
            begin = time.perf_counter()
            for i in range(rate * seconds):
                await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
                if i % 10 == 0:
                    user = sampled[(i // 10) % len(sampled)]
                    event = rating_event(user, rng.choice(movies), rng.randint(1, 5))
                    tasks.append(asyncio.create_task(measure(user, event)))
                else:
                    await client.xadd(stream, {"event": rating_event(rng.choice(others), rng.choice(movies), 4)})
            await asyncio.gather(*tasks)
            sent_rate = rate * seconds / (time.perf_counter() - begin)
            print(f"producer: {rate * seconds:,} events in {seconds} s asked, {sent_rate:,.0f} events/s sent")
        await client.aclose()
    finally:
        server.terminate()
        server.wait(timeout=60)
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="events for the throughput run")
    parser.add_argument("--rate", type=int, default=500, help="events/s for the latency run")
    parser.add_argument("--seconds", type=int, default=20, help="length of the latency run")
    args = parser.parse_args()
    for tool in ("taskset", "redis-server"):
        if not shutil.which(tool):
            sys.exit(f"benchmarks/events_stream.py needs {tool} (apt-get install util-linux redis-server)")
    os.sched_setaffinity(0, {1})  # the producer and the pollers on core 1; the consumer or server on core 0

    import pyarrow.parquet as pq

    from foretell import api

    with tempfile.TemporaryDirectory(prefix="foretell-events-bench-") as scratch:
        home = Path(scratch) / "home"
        redis_process, redis_url = start_redis(Path(scratch))
        try:
            api.demo_init(customers=1_000, seed=7, home=home)
            demo = home / "demo"
            api.load_entities(
                "users", demo / "ratings.parquet", key="user_id", models=["movies"],
                interactions=("ratings", "movie_id", "rating"), home=home,
            )  # fmt: skip
            users = sorted(set(pq.read_table(demo / "ratings.parquet", columns=["user_id"]).column(0).to_pylist()))
            movies = pq.read_table(demo / "movies.parquet", columns=["movie_id"]).column(0).to_pylist()
            random.Random(5).shuffle(users)

            rate, progress = throughput(home, f"{redis_url}?stream=bulk", users, movies, args.events)
            took = asyncio.run(latency(home, f"{redis_url}?stream=live", users, movies, args.rate, args.seconds))
        finally:
            redis_process.terminate()
            redis_process.wait()

    took.sort()
    p50, p99 = statistics.median(took), took[min(len(took) - 1, int(len(took) * 0.99))]
    print(f"# events_stream: demo recommender ({len(users):,} users), consumer/server on core 0, load on core 1")
    print(f"throughput: {args.events:,} rating events applied with refresh at {rate:,.0f} events/s")
    print(f"  consumer's last line: {progress}")
    print(f"event → updated lookup at {args.rate} events/s ({len(took)} samples): p50 {p50:.2f} ms, "
          f"p99 {p99:.2f} ms, max {took[-1]:.2f} ms")  # fmt: skip
    print(f"target ≥ 2,000 events/s applied with refresh: {rate:,.0f} -> {'met' if rate >= 2000 else 'NOT met'}")
    print(f"target event → updated lookup p99 < 50 ms: {p99:.1f} ms -> {'met' if p99 < 50 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
