"""A server on the Redis stores when redis-server is killed with -9 and started again.

While Redis is down, lookups and events answer 503 with `Retry-After` (the store holds the
entity features a live fallback would need, so there is nothing to answer from), nothing is
written, and the server keeps running; once Redis is back, the same requests succeed within a
second, and an event refused while it was down is applied when sent again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from servekit import cli, free_port, server

from foretell.store import open_entity_store, open_store

sys.path.insert(0, str(Path(__file__).parents[2] / "contract"))
import redis_server

KEY = "C-000007"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    done = cli(home, "demo", "init", "--customers", "2000", "--users", "100", "--movies", "100")
    assert done.returncode == 0, done.stderr
    return home


def lookup(url: str) -> httpx.Response:
    return httpx.get(f"{url}/v1/models/churn/predictions/{KEY}", params={"fresh": "true"}, timeout=10)


def features_event(url: str, tenure: float) -> httpx.Response:
    body = {"type": "features", "key": KEY, "values": {"tenure_months": tenure}, "event_id": f"tenure-{tenure}"}
    return httpx.post(f"{url}/v1/events", json=body, timeout=10)


def test_redis_killed_and_restarted_under_a_server(home: Path, tmp_path: Path) -> None:
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    port = free_port()
    store_url = f"redis://127.0.0.1:{port}/0"
    with redis_server.durable(redis_dir, port) as first:
        # The customers' features, in the Redis entity store, feed churn's live predictions.
        customers = str(home / "demo" / "customers.parquet")
        load = subprocess.run(
            [sys.executable, "-m", "foretell", "entities", "load", "customers", customers, "--key", "customer_id",
             "--model", "churn"],
            env={**os.environ, "FORETELL_HOME": str(home), "FORETELL_STORE_URL": store_url},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert load.returncode == 0, load.stderr
        env = {"FORETELL_STORE_URL": store_url}
        with server(home, "churn@production", env=env, log=tmp_path / "serve.log") as url:
            assert lookup(url).status_code == 200
            first.kill()
            first.wait()

            down = lookup(url)
            assert down.status_code == 503 and down.headers["retry-after"] == "1", down.text
            assert down.json()["error"].startswith("cannot reach the Redis ")
            refused = features_event(url, 61.0)
            assert refused.status_code == 503 and "cannot reach the Redis" in refused.json()["error"]
            assert httpx.get(f"{url}/v2/health/live", timeout=5).status_code == 200  # the server itself is fine

            with redis_server.durable(redis_dir, port):
                back = time.monotonic()
                while lookup(url).status_code != 200:
                    assert time.monotonic() - back < 1.0, "not reconnected within a second of Redis being back"
                    time.sleep(0.02)
                entity = open_entity_store(home, store_url).get("customers", KEY)
                assert entity is not None and entity.features["tenure_months"] != 61.0  # nothing was written
                again = features_event(url, 61.0)  # the client sends the refused event again
                assert again.status_code == 200 and again.json()["applied"], again.text
                entity = open_entity_store(home, store_url).get("customers", KEY)
                assert entity is not None and entity.features["tenure_months"] == 61.0
                metrics = httpx.get(f"{url}/metrics", timeout=5).text
    assert 'endpoint="lookup",model="churn",status="503"' in metrics
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def test_redis_killed_during_a_batch_to_store_publishes_nothing_half_way(home: Path, tmp_path: Path) -> None:
    customers = pq.read_table(home / "demo" / "customers.parquet")
    ids = customers.column("customer_id").to_pylist()
    copies = [customers.set_column(0, "customer_id", pa.array([f"{i}-{n}" for i in ids])) for n in range(100)]
    population = tmp_path / "population.parquet"
    pq.write_table(pa.concat_tables(copies), population)  # 200,000 rows: seconds of writes to kill Redis in
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    port = free_port()
    store_url = f"redis://127.0.0.1:{port}/0"
    env = {**os.environ, "FORETELL_HOME": str(home), "FORETELL_STORE_URL": store_url}

    def batch(output: str) -> list[str]:
        return [sys.executable, "-m", "foretell", "batch", "run", "churn@production", "--input", str(population),
                "--output", output, "--id-column", "customer_id", "--to-store", "--chunk-rows", "2000",
                "--workers", "1"]  # fmt: skip

    command = batch(str(tmp_path / "scores"))
    with redis_server.durable(redis_dir, port) as first:
        before = subprocess.run(batch(str(tmp_path / "before")), env=env, capture_output=True, text=True, timeout=300,
                                check=False)  # fmt: skip
        assert before.returncode == 0, before.stderr
        published = open_store(home, store_url).current_generation("churn")
        job = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 120
        while not any(client.hlen(key) > 20_000 for key in client.scan_iter("foretell:{churn}:gen:*")):
            assert job.poll() is None and time.monotonic() < deadline, job.communicate()
            time.sleep(0.01)
        first.kill()
        first.wait()
        _, stderr = job.communicate(timeout=120)
    assert job.returncode != 0
    assert "cannot reach the Redis prediction store" in stderr and "Traceback" not in stderr, stderr
    with redis_server.durable(redis_dir, port):
        store = open_store(home, store_url)
        assert store.current_generation("churn") == published  # readers still see the last whole generation
        resumed = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=300,
                                 check=False)  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
        now = store.current_generation("churn")
        assert now is not None and now != published
        found = store.get_many("churn", [f"{ids[0]}-0", f"{ids[-1]}-99"])
        assert {hit.generation for hit in found.values()} == {now}
