"""The prediction ledger against a real server: every request recorded once, whichever way it was answered."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import joblib
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from servekit import FEATURES, free_port, rows, server
from sklearn.linear_model import LogisticRegression

import foretell
from foretell.adapters.outputs import classifier_outputs
from foretell.core.feature import Feature
from foretell.core.schema import Signature
from foretell.ledger.segments import LedgerLocation
from foretell.store import SqliteStore
from foretell.store.entities_sqlite import SqliteEntityStore

NOW = datetime.now(UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_home(home: Path, scratch: Path) -> Path:
    x = rows(400, seed=3)
    path = scratch / "clf.joblib"
    joblib.dump(LogisticRegression().fit(x, (x[:, 0] + x[:, 1] > 0).astype(int)), path)
    signature = Signature(tuple(Feature(n) for n in FEATURES), classifier_outputs([0, 1]))
    foretell.register("clf", path, signature=signature, aliases=["production"], home=home)
    things = pa.table(
        {"id": [f"T-{i}" for i in range(100)], **{n: rows(100, seed=4)[:, i] for i, n in enumerate(FEATURES)}}
    )
    SqliteEntityStore(home / "entities.db").load_features("things", "id", things, models=["clf"], at=stamp(NOW))
    model = foretell.load("clf@production", home=home)
    predictions = model.predict_batch(things.select(FEATURES))
    store = SqliteStore(home / "store.db")
    generation = store.begin_generation("clf")
    store.write_batch("clf", generation, [(f"T-{i}", predictions[i], 1, stamp(NOW)) for i in range(50)])
    store.publish("clf", generation)
    return home


@pytest.fixture
def ledger_home(tmp_path: Path) -> Path:
    home, scratch = tmp_path / "home", tmp_path / "scratch"
    home.mkdir()
    scratch.mkdir()
    make_home(home, scratch)
    (home / "serve.toml").write_text("[ledger]\nflush_seconds = 0.2\n")
    return home


def ledger_rows(home: Path, model: str = "clf") -> list[dict[str, Any]]:
    files = LedgerLocation(home / "ledger").segment_files(model)
    if not files:
        return []
    query = f"SELECT * FROM read_parquet({files!r}, union_by_name=true)"
    relation = duckdb.sql(query)
    assert relation is not None  # a SELECT always gives one
    return relation.to_arrow_table().to_pylist()


def infer_body(n: int, **parameters: Any) -> dict[str, Any]:
    data = rows(n, seed=9)
    body: dict[str, Any] = {
        "inputs": [{"name": "input-0", "shape": [n, len(FEATURES)], "datatype": "FP64", "data": data.tolist()}]
    }
    if parameters:
        body["parameters"] = parameters
    return body


def test_every_request_is_recorded_once_with_its_source_version_and_key(ledger_home: Path) -> None:
    ids: dict[str, str] = {}
    with (
        server(ledger_home, "clf@production", "--config", str(ledger_home / "serve.toml")) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        response = client.post("/v2/models/clf/infer", json={**infer_body(3, key=["K-1", "K-2", "K-3"]), "id": "r-1"})
        assert response.status_code == 200
        ids["infer"] = response.json()["parameters"]["prediction_id"]
        assert response.headers["x-prediction-id"] == ids["infer"]
        response = client.post(
            "/v2/models/clf/infer",
            json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
        )
        assert response.status_code == 400
        bad_infer = response.json()["error"]
        assert client.post("/v2/models/nope/infer", json=infer_body(1)).status_code == 404
        response = client.post("/invocations", json={"inputs": rows(2, seed=1).tolist()})
        assert response.status_code == 200
        ids["invocations"] = response.json()["prediction_id"]
        response = client.get("/v1/models/clf/predictions/T-3")
        assert response.json()["source"] == "precomputed"
        ids["precomputed"] = response.json()["prediction_id"]
        assert client.get("/v1/models/clf/predictions/T-999").status_code == 404  # neither stored nor an entity
        response = client.get("/v1/models/clf/predictions/T-70")  # no stored prediction: live from its features
        assert response.json()["source"] == "live"
        ids["live-fallback"] = response.json()["prediction_id"]
        response = client.post("/v1/models/clf/predictions:batchGet", json={"keys": ["T-4", "T-71", "T-999"]})
        found = {p["key"]: p for p in response.json()["predictions"]}
        ids["batch-get-precomputed"], ids["batch-get-live"] = (
            found["T-4"]["prediction_id"],
            found["T-71"]["prediction_id"],
        )
        response = client.post("/v1/events", json={"type": "features", "key": "T-8", "values": {"a": 2.0}})
        ids["event-refresh"] = response.json()["refreshed"][0]["prediction_id"]
        assert (
            client.post("/v1/events", json={"type": "features", "key": "T-8", "values": {"a": "x"}}).status_code == 400
        )
    # The server was stopped with SIGTERM: everything it answered is on disk now.
    records = ledger_rows(ledger_home)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_id.setdefault(record["prediction_id"], []).append(record)
    assert len({(r["prediction_id"], r["row"]) for r in records}) == len(records)  # none twice
    infer = sorted(by_id[ids["infer"]], key=lambda r: r["row"])
    assert [r["key"] for r in infer] == ["K-1", "K-2", "K-3"] and [r["row"] for r in infer] == [0, 1, 2]
    assert {r["source"] for r in infer} == {"live"} and infer[0]["request_id"] == "r-1"
    assert infer[0]["version"] == 1 and infer[0]["status"] == "ok" and len(infer[0]["sha256"]) == 64
    assert infer[0]["inputs"]["a"] == pytest.approx(rows(3, seed=9)[0, 0])
    assert 0 <= infer[0]["outputs"]["score"] <= 1 and infer[0]["batch_size"] >= 3
    assert [r["source"] for r in by_id[ids["invocations"]]] == ["live", "live"]
    assert by_id[ids["precomputed"]][0]["source"] == "precomputed" and by_id[ids["precomputed"]][0]["key"] == "T-3"
    assert by_id[ids["precomputed"]][0]["inputs"] is None
    assert by_id[ids["live-fallback"]][0]["source"] == "live-fallback"
    assert by_id[ids["batch-get-precomputed"]][0]["source"] == "precomputed"
    assert by_id[ids["batch-get-live"]][0]["key"] == "T-71"
    assert (
        by_id[ids["event-refresh"]][0]["source"] == "event-refresh" and by_id[ids["event-refresh"]][0]["key"] == "T-8"
    )
    # The client's mistakes are refused, not failed: the monitor does not count them as failed predictions.
    assert not [r for r in records if r["status"] == "error"]
    refused = sorted((r["endpoint"], r["source"], r["key"]) for r in records if r["status"] == "refused")
    assert refused == [("infer", "live", None), ("lookup", "precomputed", None)]
    assert bad_infer in {r["error"] for r in records if r["status"] == "refused"}
    # An unknown model, and an event refused before it reached a model, belong to no model's partition.
    unresolved = ledger_rows(ledger_home, "_unresolved")
    assert sorted((r["endpoint"], r["status"]) for r in unresolved) == [("events", "refused"), ("infer", "refused")]
    # Ok and refused rows, nothing else: 3 infer + 2 invocations + 2 lookups + 2 batchGet + 1 refresh + 2 refused.
    assert len(records) == 12


def test_records_are_visible_to_queries_soon_after_the_response(ledger_home: Path) -> None:
    with server(ledger_home, "clf@production", "--config", str(ledger_home / "serve.toml")) as url:
        answer = httpx.post(f"{url}/v2/models/clf/infer", json=infer_body(1), timeout=30).json()
        prediction_id = answer["parameters"]["prediction_id"]
        deadline = time.monotonic() + 10
        while not any(r["prediction_id"] == prediction_id for r in ledger_rows(ledger_home)):
            assert time.monotonic() < deadline, "the record never became visible"
            time.sleep(0.05)


def test_labels_are_stored_and_bad_ones_refused_with_nothing_written(ledger_home: Path) -> None:
    with server(ledger_home, "clf@production", "--config", str(ledger_home / "serve.toml")) as url:
        answer = httpx.post(f"{url}/v2/models/clf/infer", json=infer_body(1), timeout=30).json()
        good = {
            "model": "clf",
            "labels": [
                {"prediction_id": answer["parameters"]["prediction_id"], "label": 1},
                {"key": "T-3", "label": 0, "observed_at": stamp(NOW + timedelta(hours=1))},
            ],
        }
        response = httpx.post(f"{url}/v1/labels", json=good, timeout=30)
        assert response.status_code == 200 and response.json()["accepted"] == 2
        bad = {
            "model": "clf",
            "labels": [{"key": "T-3", "label": 1}, {"key": "T-4", "label": 1, "observed_at": "soon"}],
        }
        response = httpx.post(f"{url}/v1/labels", json=bad, timeout=30)
        assert response.status_code == 400 and "labels[1].observed_at" in response.json()["error"]
        response = httpx.post(f"{url}/v1/labels", json={"model": "nope", "labels": [{"key": "a", "label": 1}]})
        assert response.status_code == 404
    files = list((ledger_home / "ledger" / "labels" / "model=clf").glob("*.parquet"))
    assert len(files) == 1 and pq.read_table(files[0]).num_rows == 2


def test_sigkill_leaves_only_whole_segments(ledger_home: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "foretell",
            "serve",
            "clf@production",
            "--port",
            str(port),
            "--config",
            str(ledger_home / "serve.toml"),
        ],
        env={**os.environ, "FORETELL_HOME": str(ledger_home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        answered: list[str] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=url, timeout=5) as client:
                while not stop.is_set():
                    try:
                        answered.append(
                            client.post("/v2/models/clf/infer", json=infer_body(1)).json()["parameters"][
                                "prediction_id"
                            ]
                        )
                    except (httpx.TransportError, KeyError):
                        return

        thread = threading.Thread(target=load)
        thread.start()
        time.sleep(1.5)
        process.send_signal(signal.SIGKILL)
        stop.set()
        thread.join()
    finally:
        process.kill()
        process.wait()
    records = ledger_rows(ledger_home)  # every file reads whole
    recorded = {r["prediction_id"] for r in records}
    assert len(recorded) == len(records)
    assert recorded <= set(answered) and len(recorded) > len(answered) / 2  # at most the last interval is lost
    leftovers = [
        p.name
        for p in (ledger_home / "ledger").rglob("*")
        if p.is_file() and not p.name.endswith((".parquet", ".json", ".key"))
    ]
    assert all(name.startswith(".tmp-") for name in leftovers)


def test_two_worker_processes_write_distinct_segments(ledger_home: Path) -> None:
    def one(url: str) -> str:  # a connection of its own: either process may accept it
        answer = httpx.post(f"{url}/v2/models/clf/infer", json=infer_body(1), timeout=30).json()
        return str(answer["parameters"]["prediction_id"])

    with (
        server(ledger_home, "clf@production", "--workers", "2", "--config", str(ledger_home / "serve.toml")) as url,
        concurrent.futures.ThreadPoolExecutor(16) as pool,
    ):
        ids = list(pool.map(one, [url] * 300))
    records = ledger_rows(ledger_home)
    assert sorted(r["prediction_id"] for r in records) == sorted(ids)
    writers = {p.name.split("-", 2)[2].rsplit("-", 1)[0] for p in (ledger_home / "ledger").rglob("seg-*.parquet")}
    writers |= {p.name.removeprefix("cmp-").rsplit("-", 2)[0] for p in (ledger_home / "ledger").rglob("cmp-*.parquet")}
    assert len(writers) == 2  # one per process, so no segment name could collide


def test_a_full_queue_drops_and_counts_without_slowing_answers(ledger_home: Path) -> None:
    (ledger_home / "tiny.toml").write_text("[ledger]\nflush_seconds = 30\nmax_pending_rows = 2\n")
    with (
        server(ledger_home, "clf@production", "--config", str(ledger_home / "tiny.toml")) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        for _ in range(20):
            assert client.post("/v2/models/clf/infer", json=infer_body(1)).status_code == 200
        metrics = client.get("/metrics").text
    dropped = next(line for line in metrics.splitlines() if line.startswith("foretell_ledger_dropped_total"))
    assert float(dropped.split()[-1]) == 18
    assert len(ledger_rows(ledger_home)) == 2  # the two queued were flushed at SIGTERM


def test_no_ledger_records_nothing_and_returns_no_id(ledger_home: Path) -> None:
    with server(ledger_home, "clf@production", "--no-ledger") as url:
        response = httpx.post(f"{url}/v2/models/clf/infer", json=infer_body(1), timeout=30)
    assert response.status_code == 200 and "parameters" not in response.json()
    assert "x-prediction-id" not in response.headers
    assert ledger_rows(ledger_home) == []
