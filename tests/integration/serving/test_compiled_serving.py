"""A server with a compiled predictor: same answers as the original, and a new compile reaches it live."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import joblib
import numpy as np
from servekit import server
from sklearn.ensemble import HistGradientBoostingClassifier

import foretell


def test_compiling_a_served_version_reaches_the_server_without_a_failed_request(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1_500, 4))
    joblib.dump(
        HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(x, (x[:, 0] > 0).astype(int)),
        tmp_path / "trees.joblib",
    )
    home = tmp_path / "home"
    info = foretell.register("trees", tmp_path / "trees.joblib", compile=False, home=home)
    log = tmp_path / "serve.log"
    body = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [3, 4], "data": x[:3].ravel().tolist()}]}
    with server(home, info.uri, "--reload-seconds", "0.2", log=log) as url, httpx.Client() as client:
        before = client.post(f"{url}/v2/models/trees/infer", json=body)
        assert before.status_code == 200, before.text
        assert "original predictor" in log.read_text()

        assert foretell.compile_model(info.uri, home=home).used
        deadline = time.monotonic() + 20
        failures = 0
        # The swap's own line: the new build's load line comes first, before the swap has happened.
        while "now serves version 1, compiled with treelite" not in log.read_text() and time.monotonic() < deadline:
            failures += client.post(f"{url}/v2/models/trees/infer", json=body).status_code != 200
            time.sleep(0.05)
        assert "now serves version 1, compiled with treelite" in log.read_text()
        after = client.post(f"{url}/v2/models/trees/infer", json=body)
        assert failures == 0 and after.status_code == 200

    def scores(response: httpx.Response) -> list[float]:
        return next(o["data"] for o in response.json()["outputs"] if o["name"] == "score")

    np.testing.assert_allclose(scores(after), scores(before), rtol=0, atol=1e-6)
