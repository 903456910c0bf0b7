"""SQLite under concurrent writers: no "database is locked" ever reaches a user.

On embedded defaults every writer shares FORETELL_HOME's SQLite files: a server writing live
predictions back to the store and refreshing entities from events, batch jobs publishing
generations to the same store (`--to-store`), entity tables reloaded, and aliases moved from the
CLI while the server's reload watcher reads the registry every second, and the scheduler starting
a batch job of its own. All of them at once, as separate processes, for a while: every request
answers 200, every command exits 0, and no output mentions a lock.
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from servekit import cli, server

from foretell.batch.schedules import ScheduleBook

SECONDS = 12.0


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("writers") / "home"
    for command in (
        ("demo", "init", "--customers", "5000", "--users", "300", "--movies", "200"),
        ("entities", "load", "customers", str(home / "demo" / "customers.parquet"), "--key", "customer_id",
         "--model", "churn"),
        ("entities", "load", "users", str(home / "demo" / "ratings.parquet"), "--key", "user_id", "--model", "movies",
         "--interactions", "ratings", "--item", "movie_id", "--value", "rating"),
    ):  # fmt: skip
        done = cli(home, *command)
        assert done.returncode == 0, done.stderr
    return home


def test_every_writer_at_once_sees_no_lock(home: Path, tmp_path: Path) -> None:
    stop = threading.Event()
    failures: list[str] = []
    counts = {"requests": 0, "commands": 0}

    def check(done: subprocess.CompletedProcess[str]) -> None:
        counts["commands"] += 1
        if done.returncode != 0 or "locked" in done.stdout + done.stderr:
            failures.append(f"{done.args[3:]}: exit {done.returncode}: {done.stderr[-500:]}")

    def batches() -> None:
        for run in range(100):
            if stop.is_set():
                return
            source, output = str(home / "demo" / "customers.parquet"), str(tmp_path / f"scores-{run}")
            check(cli(home, "batch", "run", "churn@production", "--input", source, "--output", output,
                           "--id-column", "customer_id", "--to-store", "--workers", "1"))  # fmt: skip

    def aliases() -> None:
        while not stop.is_set():
            check(cli(home, "models", "alias", "churn", "staging", "1"))
            check(cli(home, "models", "alias", "churn", "staging", "--delete"))

    def scheduler() -> None:
        # A due batch job --to-store, started by the scheduler (its schedule book and the job history are
        # SQLite too); later ticks find nothing due but still read and write the book.
        source = str(home / "demo" / "customers.parquet")
        book = ScheduleBook(home, clock=lambda: datetime.now(UTC) - timedelta(days=1))
        book.add("nightly", "0 2 * * *", ["batch", "run", "churn@production", "--input", source, "--output",
                                          str(tmp_path / "scheduled-{date}"), "--id-column", "customer_id",
                                          "--to-store", "--workers", "1"])  # fmt: skip
        while not stop.is_set():
            check(cli(home, "scheduler", "--once"))
        check(cli(home, "schedule", "remove", "nightly"))

    def entities() -> None:
        while not stop.is_set():
            check(cli(home, "entities", "load", "customers", str(home / "demo" / "customers.parquet"),
                           "--key", "customer_id", "--model", "churn"))  # fmt: skip

    log = tmp_path / "serve.log"
    with server(home, "churn@production", "movies@production", log=log) as url:

        def client(seed: int) -> None:
            with httpx.Client(base_url=url, timeout=60) as http:
                i = 0
                while not stop.is_set():
                    i += 1
                    key = f"C-{(seed * 997 + i * 31) % 5000 + 1:06d}"
                    if i % 2:  # a live prediction, written back to the store
                        response = http.get(f"/v1/models/churn/predictions/{key}", params={"fresh": "true"})
                    else:  # a rating: the users table written, the user's recommendations refreshed and stored
                        rating = {"type": "rating", "user_id": 1 + i % 300, "movie_id": 1 + (seed + i) % 200}
                        response = http.post("/v1/events", json={**rating, "rating": 1 + i % 5})
                    counts["requests"] += 1
                    if response.status_code != 200 or "locked" in response.text:
                        failures.append(f"{response.request.url}: {response.status_code} {response.text[:300]}")

        with concurrent.futures.ThreadPoolExecutor(9) as pool:
            running = [pool.submit(work) for work in (batches, aliases, entities, scheduler)]
            running += [pool.submit(client, seed) for seed in range(4)]
            time.sleep(SECONDS)
            stop.set()
            for future in running:
                future.result()
    assert not failures, failures[:5]
    assert counts["requests"] > 100 and counts["commands"] > 6, counts
    assert "locked" not in log.read_text()
    assert list(tmp_path.glob("scheduled-*/_SUCCESS")), "the scheduler's batch job did not run"
