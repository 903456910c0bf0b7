"""Hybrid lookups wait in the model's one bounded queue, and a full queue answers with the configured status.

The server runs in this process (uvicorn on a real socket, in a thread) so the test can
hold the model mid-call and know exactly what is queued behind it.
"""

from __future__ import annotations

import contextlib
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
from gated_topk import GatedTopK
from servekit import in_process

import foretell
from foretell.store.entities_sqlite import SqliteEntityStore


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("queue-home")
    folder = tmp_path_factory.mktemp("gated-model")
    (folder / "README").write_text("the gated top-k test model keeps nothing on disk\n")
    foretell.register(
        "gated",
        folder,
        flavor="python",
        signature=GatedTopK.signature,
        flavor_options={"class": "gated_topk:GatedTopK"},
        aliases=["production"],
        home=home,
    )
    users = pa.table({"user_id": list(range(1, 11)), "x": [0.5] * 10})
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    SqliteEntityStore(home / "entities.db").load_features("users", "user_id", users, models=["gated"], at=at)
    return home


def served_here(app: object) -> contextlib.AbstractContextManager[str]:
    return in_process(app, on_exit=GatedTopK.gate.set)  # a request still held by the gate would stall the stop


def in_flight(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    found = re.search(r'^foretell_in_flight_requests\{model="gated"\} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_live_lookups_with_k_queue_behind_the_model_and_a_full_queue_answers_the_configured_status(home):
    app = foretell.api.create_server_app(
        ["gated@production"], home=home, reload_seconds=0, max_queue=2, overload_status=429
    )
    with served_here(app) as url, ThreadPoolExecutor(2) as pool:
        GatedTopK.entered.clear()
        GatedTopK.gate.clear()
        lookup = f"{url}/v1/models/gated/predictions"
        running = pool.submit(httpx.get, f"{lookup}/1", params={"fresh": "true", "k": 2}, timeout=30)
        assert GatedTopK.entered.wait(timeout=10)
        queued = pool.submit(httpx.get, f"{lookup}/2", params={"fresh": "true", "k": 2}, timeout=30)
        deadline = time.monotonic() + 10
        while in_flight(url) < 2:  # the second lookup is queued: nothing awaits between its arrival and the queue
            assert time.monotonic() < deadline, "the second lookup never arrived"
            time.sleep(0.01)

        for k in (2, None):  # one row queued, two more would pass max_queue = 2, top-k or not
            body = {"keys": ["3", "4"], "fresh": True, **({"k": k} if k else {})}
            refused = httpx.post(f"{lookup}:batchGet", json=body, timeout=5)
            assert refused.status_code == 429, refused.text
            assert "limit 2" in refused.json()["error"]
            assert int(refused.headers["Retry-After"]) >= 1

        GatedTopK.gate.set()
        first, second = running.result(), queued.result()
    assert first.status_code == second.status_code == 200
    assert first.json()["prediction"]["items"] == [10, 11]
    assert second.json()["prediction"]["items"] == [20, 21]
    assert second.json()["source"] == "live"
