"""A server killed with SIGKILL while events are applied: sent again after a restart, each event applies once.

Clients of `POST /v1/events` retry what they got no answer for; an event's `event_id` is what makes
that safe. The first server is killed in the middle of a stream of rating events, so some were
written and answered, some written but never answered, and some never arrived. Every event is then
sent again to a new server on the same FORETELL_HOME: those already written answer `duplicate`, the
others `applied`, each exactly once, and every user's ratings hold every event.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from moviekit import register_movies
from servekit import free_port, server

from foretell.store.entities import Interactions
from foretell.store.entities_sqlite import SqliteEntityStore

USERS = range(1, 31)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    ratings = register_movies(home, tmp_path)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    entities = SqliteEntityStore(home / "entities.db")
    entities.load_interactions(
        "users", "user_id", ratings, Interactions("ratings", "movie_id", "rating"), models=["movies"], at=stamp
    )
    return home


def ratings_of(home: Path, user: int) -> dict[str, float]:
    found = SqliteEntityStore(home / "entities.db").get("users", str(user))
    assert found is not None
    return {str(movie): value for movie, value in found.features["ratings"].items()}


def applied_ids(home: Path) -> list[str]:
    with sqlite3.connect(home / "entities.db") as conn:
        return [row[0] for row in conn.execute("SELECT event_id FROM events WHERE event_id LIKE 'kill-%'")]


def test_events_sent_again_after_a_sigkill_are_each_applied_once(home: Path, tmp_path: Path) -> None:
    before = {user: ratings_of(home, user) for user in USERS}
    # Each user rates 20 films they had not rated: the final maps must show every event.
    unrated = {user: [m for m in range(1, 400) if str(m) not in before[user]][:20] for user in USERS}
    events: list[dict[str, Any]] = [
        {
            "type": "rating",
            "user_id": user,
            "movie_id": unrated[user][j],
            "rating": 1 + (user + j) % 5,
            "event_id": f"kill-{user}-{j}",
        }
        for j in range(20)
        for user in USERS
    ]
    port = free_port()
    log = tmp_path / "first.log"
    with log.open("w") as output:
        first = subprocess.Popen(
            [sys.executable, "-m", "foretell", "serve", "movies@production", "--port", str(port)],
            env={**os.environ, "FORETELL_HOME": str(home)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert first.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)

    def send(body: dict) -> int | None:
        try:
            return httpx.post(f"{url}/v1/events", json=body, timeout=10).status_code
        except httpx.TransportError:
            return None  # the server died under this request: the client would send it again

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        sent = [pool.submit(send, body) for body in events]
        while len(applied_ids(home)) < 150:
            assert first.poll() is None, log.read_text()
            assert time.monotonic() < deadline + 60, "the first server applied too little"
            time.sleep(0.005)
        first.send_signal(signal.SIGKILL)
        first.wait()
        first_answers = [future.result() for future in sent]
    written = set(applied_ids(home))
    assert 150 <= len(written) < len(events), "the kill came after every event: nothing was tested"
    assert None in first_answers  # some requests were cut off by the kill

    with server(home, "movies@production") as again, httpx.Client(base_url=again, timeout=30) as http:
        answers = [http.post("/v1/events", json=body).json() for body in events]
    for body, answer in zip(events, answers, strict=True):
        assert answer["duplicate"] == (body["event_id"] in written), (body, answer)
        assert answer["applied"] == (body["event_id"] not in written), (body, answer)
    assert sorted(applied_ids(home)) == sorted(body["event_id"] for body in events)  # each recorded once
    for user in USERS:
        expected = {**before[user], **{str(e["movie_id"]): float(e["rating"]) for e in events if e["user_id"] == user}}
        assert ratings_of(home, user) == expected
