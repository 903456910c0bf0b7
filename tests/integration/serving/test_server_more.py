"""Deadlines, API keys, a failing model, batch parity and fuzzed bodies against the server."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servekit import FEATURES, Lifespan, rows, server

import foretell
from foretell.core.feature import Feature
from foretell.core.schema import Output, Signature

FAILING_MODEL = """
import numpy as np


class Failing:
    signature = None

    @classmethod
    def load(cls, path):
        return cls()

    def predict(self, columns):
        a = np.asarray(columns["a"], dtype=float)
        if (a < 0).any():
            raise ValueError("negative input broke the model")
        return a
"""


@pytest.fixture(scope="module")
def failing_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("failing-home")
    folder = tmp_path_factory.mktemp("failing-model")
    (folder / "failing.py").write_text(FAILING_MODEL)
    signature = Signature((Feature("a"),), (Output("score", "score"),))
    foretell.register(
        "failing",
        folder,
        flavor="python",
        signature=signature,
        flavor_options={"class": "failing.py:Failing"},
        home=home,
    )
    return home


def one(value: float) -> dict:
    return {"inputs": [{"name": "a", "datatype": "FP64", "shape": [1], "data": [value]}]}


def test_expired_deadline_is_504_before_the_model(home):
    with server(home, "slow", "--max-batch-size", "1") as url:
        # The first request keeps the model busy for 50 ms; the second may wait only 10 ms.
        with httpx.Client(timeout=30) as client:
            first = threading.Thread(target=client.post, args=(f"{url}/v2/models/slow/infer",), kwargs={"json": one(1)})
            first.start()
            time.sleep(0.02)  # the first request is in the model now
            late = client.post(f"{url}/v2/models/slow/infer", json=one(2), headers={"X-Request-Timeout": "0.01"})
            first.join()
        assert late.status_code == 504, late.text
        assert "deadline" in late.json()["error"].lower()
        bad = httpx.post(f"{url}/v2/models/slow/infer", json=one(2), headers={"X-Request-Timeout": "soon"})
        assert bad.status_code == 400


def test_a_failing_model_fails_its_batch_only(failing_home):
    with server(failing_home, "failing") as url:
        broken = httpx.post(f"{url}/v2/models/failing/infer", json=one(-1))
        assert broken.status_code == 500 and "negative input broke the model" in broken.json()["error"]
        fine = httpx.post(f"{url}/v2/models/failing/infer", json=one(3))
        assert fine.status_code == 200 and fine.json()["outputs"][0]["data"] == [3.0]


def test_api_key_guards_everything_but_probes(home):
    with server(home, "clf@production", env={"FORETELL_API_KEY": "s3cret"}) as url:
        body = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
        assert httpx.post(f"{url}/v2/models/clf/infer", json=body).status_code == 401
        wrong = httpx.post(f"{url}/v2/models/clf/infer", json=body, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401 and wrong.json() == {"error": "missing or wrong API key"}
        ok = httpx.post(f"{url}/v2/models/clf/infer", json=body, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        for probe in ("/v2/health/live", "/v2/health/ready", "/metrics", "/ping"):
            assert httpx.get(f"{url}{probe}").status_code == 200, probe


def test_server_answers_what_the_batch_job_wrote(home, tmp_path):
    x = rows(10_000, seed=21)
    table = pa.table({"id": np.arange(len(x)), **{n: x[:, i] for i, n in enumerate(FEATURES)}})
    pq.write_table(table, tmp_path / "rows.parquet")
    foretell.run_batch("clf@production", tmp_path / "rows.parquet", tmp_path / "out", home=home, workers=1)
    batch = pq.read_table(tmp_path / "out").sort_by("id").column("score").to_numpy()
    with server(home, "clf@production") as url, httpx.Client() as client:
        served = []
        for start in range(0, len(x), 1_000):
            part = x[start : start + 1_000]
            body = {
                "inputs": [
                    {"name": "input", "datatype": "FP64", "shape": list(part.shape), "data": part.ravel().tolist()}
                ],
                "outputs": [{"name": "score"}],
            }
            response = client.post(f"{url}/v2/models/clf/infer", json=body)
            assert response.status_code == 200
            served += response.json()["outputs"][0]["data"]
    # The batch job's chunks and the server's requests hand BLAS differently shaped blocks: equal to 1e-12.
    np.testing.assert_allclose(served, batch, rtol=1e-12, atol=0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["input", "a", "b", "x"]),
        "datatype": st.sampled_from(["FP64", "FP32", "INT64", "BYTES", "BOOL", "NOPE"]),
        "shape": st.lists(st.integers(-1, 5), max_size=3),
        "data": json_values,
    },
    optional={"parameters": st.dictionaries(st.text(max_size=5), json_values, max_size=2)},
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"inputs": st.lists(tensors, max_size=3)}, optional={"id": json_values, "outputs": json_values}
    ).map(lambda v: json.dumps(v).encode()),
)


@pytest.fixture(scope="module")
def app_client(home):
    """The real app in process (httpx's ASGI transport): fast enough for hundreds of fuzzed bodies."""
    import asyncio

    app = foretell.api.create_server_app(["clf@production"], home=home, reload_seconds=0)
    loop = asyncio.new_event_loop()
    context = Lifespan(app)
    loop.run_until_complete(context.__aenter__())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    yield loop, client
    loop.run_until_complete(client.aclose())
    loop.run_until_complete(context.__aexit__(None, None, None))
    loop.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=bodies,
    path=st.sampled_from(["/v2/models/clf/infer", "/invocations"]),
    content_type=st.sampled_from(["application/json", "text/csv", "application/octet-stream", ""]),
)
def test_fuzzed_bodies_never_get_a_5xx(app_client, body, path, content_type):
    loop, client = app_client
    response = loop.run_until_complete(client.post(path, content=body, headers={"content-type": content_type}))
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert "error" in response.json()


def test_access_log_writes_one_json_line_per_request(home, tmp_path):
    import json

    log = tmp_path / "serve.log"
    body = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": [0.1, 0.2, 0.3, 0.4]}]}
    with server(home, "clf@production", "--access-log", log=log) as url:
        assert httpx.post(f"{url}/v2/models/clf/infer", json=body, headers={"X-Request-ID": "abc-1"}).status_code == 200
        assert httpx.post(f"{url}/v2/models/nope/infer", json=body).status_code == 404
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    infer = [e for e in entries if e["path"].endswith("/infer")]
    assert [(e["method"], e["path"], e["status"]) for e in infer] == [
        ("POST", "/v2/models/clf/infer", 200),
        ("POST", "/v2/models/nope/infer", 404),
    ]
    assert infer[0]["request_id"] == "abc-1" and infer[1]["request_id"] is None
    assert infer[0]["bytes"] > 0 and infer[0]["ms"] > 0 and infer[0]["client"].startswith("127.0.0.1:")
    assert entries[0]["ts"].endswith("+00:00")


def test_no_access_log_by_default(home, tmp_path):
    log = tmp_path / "serve.log"
    with server(home, "clf@production", log=log) as url:
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200
    assert not [line for line in log.read_text().splitlines() if line.startswith("{")]
