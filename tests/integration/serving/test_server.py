"""The server as its users call it: tritonclient, raw HTTP, MLflow payloads, concurrent clients."""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from servekit import FEATURES, rows, server

import foretell


@pytest.fixture(scope="module", params=["local", pytest.param("ray", marks=pytest.mark.ray)])
def url(home, request):
    """The same contract, served by uvicorn here and by two Ray Serve replicas."""
    if request.param == "local":
        with server(home, "clf@production") as base:
            yield base
        return
    address = request.getfixturevalue("ray_address")
    with server(
        home, "clf@production", "--engine", "ray", "--replicas", "2", "--ray-address", address, timeout=180
    ) as base:
        yield base


@pytest.fixture(scope="module")
def model(home):
    return foretell.load("clf@production", home=home)


def test_probes_and_metadata(url):
    assert httpx.get(f"{url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{url}/v2/health/ready").status_code == 200
    meta = httpx.get(f"{url}/v2/models/clf").json()
    assert meta["name"] == "clf" and meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == FEATURES
    assert httpx.get(f"{url}/v2/models/clf/versions/1/ready").json()["ready"] is True
    assert httpx.get(f"{url}/v2").json()["name"] == "foretell"
    assert httpx.get(f"{url}/ping").status_code == 200
    assert "paths" in httpx.get(f"{url}/openapi.json").json()


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_matches_model_predict(url, model, binary):
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    x = rows(5, seed=3)
    tensor = triton.InferInput("input", list(x.shape), "FP64")
    tensor.set_data_from_numpy(x, binary_data=binary)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("score", "label", "proba")]
    result = client.infer("clf", [tensor], outputs=outputs, request_id="req-7")
    expected = model.predict_batch(x)
    np.testing.assert_array_equal(result.as_numpy("score"), expected.column("score"))
    np.testing.assert_array_equal(result.as_numpy("label"), expected.column("label"))
    np.testing.assert_array_equal(result.as_numpy("proba"), expected.column("proba"))
    assert result.get_response()["id"] == "req-7"
    assert result.get_response()["model_version"] == "1"


def test_one_tensor_per_feature(url, model):
    x = rows(3, seed=4)
    body = {
        "inputs": [
            {"name": n, "datatype": "FP64", "shape": [3], "data": x[:, i].tolist()} for i, n in enumerate(FEATURES)
        ]
    }
    response = httpx.post(f"{url}/v2/models/clf/infer", json=body)
    assert response.status_code == 200, response.text
    scores = next(o for o in response.json()["outputs"] if o["name"] == "score")["data"]
    # Per-feature tensors reach the model as a column-major matrix and a 2-D tensor as a row-major one; BLAS
    # may sum a row's products in another order for each, so the last bit can differ (1e-16 relative).
    np.testing.assert_allclose(scores, model.predict_batch(x).column("score"), rtol=1e-12, atol=0)


def test_mlflow_formats_agree(url, model):
    x = rows(4, seed=5)
    records = [dict(zip(FEATURES, r, strict=True)) for r in x.tolist()]
    expected = model.predict_batch(records).to_records()
    bodies = [
        {"dataframe_split": {"columns": FEATURES, "data": x.tolist()}},
        {"dataframe_records": records},
        {"instances": records},
        {"inputs": {n: x[:, i].tolist() for i, n in enumerate(FEATURES)}},
    ]
    for body in bodies:
        response = httpx.post(f"{url}/invocations", json=body)
        assert response.status_code == 200, (body, response.text)
        assert response.json()["predictions"] == expected
    csv = "a,b,c,d\n" + "\n".join(",".join(str(v) for v in r) for r in x.tolist())
    response = httpx.post(f"{url}/invocations", content=csv, headers={"content-type": "text/csv"})
    assert response.status_code == 200 and response.json()["predictions"] == expected


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "message"),
    [
        ("/v2/models/nope/infer", b"{}", {}, 404, "not served here"),
        ("/v2/models/clf/versions/9/infer", b"{}", {}, 404, "version '9'"),
        ("/v2/models/clf/infer", b"{not json", {}, 400, ""),
        (
            "/v2/models/clf/infer",
            json.dumps(
                {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 3], "data": [1, 2, 3]}]}
            ).encode(),
            {},
            400,
            "4",
        ),
        (
            "/v2/models/clf/infer",
            json.dumps(
                {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": [1, 2, 3]}]}
            ).encode(),
            {},
            400,
            "",
        ),
        (
            "/v2/models/clf/infer",
            json.dumps(
                {"inputs": [{"name": "input", "datatype": "NOPE", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
            ).encode(),
            {},
            400,
            "",
        ),
        (
            "/v2/models/clf/infer",
            json.dumps({"inputs": [{"name": "a", "datatype": "FP64", "shape": [1], "data": [1]}]}).encode(),
            {},
            400,
            "missing",
        ),
        ("/invocations", b"{}", {"content-type": "application/json"}, 400, ""),
        ("/invocations", b"<xml/>", {"content-type": "application/xml"}, 415, ""),
        (
            "/invocations",
            json.dumps({"dataframe_records": [{"a": "x", "b": 1, "c": 1, "d": 1}]}).encode(),
            {"content-type": "application/json"},
            400,
            "field 'a'",
        ),
    ],
)
def test_client_mistakes_are_4xx_with_a_json_reason(url, path, body, headers, status, message):
    response = httpx.post(f"{url}{path}", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_body_size_limit(home):
    with server(home, "clf@production", "--max-body-bytes", "1000") as base:
        big = {"dataframe_records": [{"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}] * 100}
        response = httpx.post(f"{base}/invocations", json=big)
        assert response.status_code == 413 and "limit" in response.json()["error"]


def test_concurrent_clients_get_their_own_rows(url, model):
    def call(i: int) -> tuple[int, list[float]]:
        x = rows(1 + i % 5, seed=100 + i)
        body = {"inputs": [{"name": "input", "datatype": "FP64", "shape": list(x.shape), "data": x.ravel().tolist()}]}
        response = httpx.post(f"{url}/v2/models/clf/infer", json=body, timeout=30)
        assert response.status_code == 200, response.text
        score = next(o for o in response.json()["outputs"] if o["name"] == "score")["data"]
        return i, score

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = list(pool.map(call, range(200)))
    for i, score in results:
        # Coalesced with other requests, a row goes through BLAS in a bigger block: its score may differ in the
        # last bits (bounded here at 1e-12 relative); a row mixed up with another's would be off by far more.
        expected = model.predict_batch(rows(1 + i % 5, seed=100 + i)).column("score")
        np.testing.assert_allclose(score, expected, rtol=1e-12, atol=0)
    metrics = httpx.get(f"{url}/metrics").text
    assert 'foretell_requests_total{endpoint="infer",model="clf",status="200",transport="http"}' in metrics
    assert "foretell_batch_size_bucket" in metrics
