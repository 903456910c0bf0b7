"""tritonclient.grpc (sync) against a real `foretell serve --grpc-port`: every RPC, both tensor forms,
BYTES categories, top-k, and parity with REST on 10,000 rows."""

from __future__ import annotations

import httpx
import numpy as np
import tritonclient.grpc as grpcclient
from grpckit import Served, tensor
from servekit import FEATURES, rows


def test_probes_and_metadata(served: Served) -> None:
    client = grpcclient.InferenceServerClient(served.grpc)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("clf")
    server = client.get_server_metadata(as_json=True)
    assert server["name"] == "foretell"
    assert "model_repository" in server["extensions"]
    metadata = client.get_model_metadata("tiers", as_json=True)
    assert metadata["name"] == "tiers"
    assert metadata["versions"] == ["1"]
    assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
        ("a", "FP64", ["-1"]),
        ("tier", "BYTES", ["-1"]),
    ]
    assert [o["name"] for o in metadata["outputs"]] == ["score"]


def test_one_2d_tensor_matches_rest_on_10000_rows(served: Served) -> None:
    x = rows(10_000, seed=7)
    client = grpcclient.InferenceServerClient(served.grpc, verbose=False)
    result = client.infer("clf", [tensor("input", x, "FP64")])
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP64", "data": x.reshape(-1).tolist()}]}
    rest = httpx.post(f"{served.url}/v2/models/clf/infer", json=body, timeout=30).json()
    by_name = {o["name"]: o for o in rest["outputs"]}
    assert [o["name"] for o in rest["outputs"]] == [o.name for o in result.get_response().outputs]
    for name, output in by_name.items():
        got = result.as_numpy(name)
        assert list(got.shape) == output["shape"]
        if got.dtype == object:
            assert [v.decode() for v in got.reshape(-1)] == output["data"]
        else:
            np.testing.assert_array_equal(got.reshape(-1), np.asarray(output["data"], dtype=got.dtype))
    assert result.get_response().model_version == rest["model_version"] == "1"


def test_one_tensor_per_feature_matches_one_2d_tensor(served: Served) -> None:
    x = rows(50, seed=3)
    client = grpcclient.InferenceServerClient(served.grpc)
    whole = client.infer("clf", [tensor("input", x, "FP64")])
    split = client.infer("clf", [tensor(name, x[:, i].copy(), "FP64") for i, name in enumerate(FEATURES)])
    for output in whole.get_response().outputs:
        np.testing.assert_array_equal(whole.as_numpy(output.name), split.as_numpy(output.name))


def test_bytes_categories(served: Served) -> None:
    client = grpcclient.InferenceServerClient(served.grpc)
    a = np.array([1.0, 2.0, 3.0])
    tiers = np.array([b"basic", b"pro", b"pro"], dtype=object)
    result = client.infer("tiers", [tensor("a", a, "FP64"), tensor("tier", tiers, "BYTES")])
    np.testing.assert_array_equal(result.as_numpy("score"), [1.0, 20.0, 30.0])


def test_topk_outputs_and_one_output_asked_for(served: Served) -> None:
    client = grpcclient.InferenceServerClient(served.grpc)
    users = np.array([1, 4], dtype=np.int64)
    result = client.infer("topk", [tensor("user_id", users, "INT64")])
    np.testing.assert_array_equal(result.as_numpy("items"), [[10, 11, 12], [40, 41, 42]])
    np.testing.assert_allclose(result.as_numpy("scores"), [[1, 1 / 2, 1 / 3]] * 2)
    only = client.infer("topk", [tensor("user_id", users, "INT64")], outputs=[grpcclient.InferRequestedOutput("items")])
    assert [o.name for o in only.get_response().outputs] == ["items"]
