"""`foretell serve --engine ray`: what is particular to replicas on Ray Serve.

The serving contract itself (probes, tritonclient, MLflow payloads, error codes, parity)
runs against both engines in test_server.py. Here: a replica answers on its own port
(direct ingress), an alias move reaches every replica, and the CLI refuses flags that mean
nothing on Ray.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
from servekit import FEATURES, rows, server
from sklearn.linear_model import LogisticRegression

import foretell
from foretell.adapters.outputs import classifier_outputs
from foretell.core import Feature, Signature

pytest.importorskip("ray")

pytestmark = pytest.mark.ray


def body(x: np.ndarray) -> dict[str, object]:
    return {"inputs": [{"name": "input", "datatype": "FP64", "shape": list(x.shape), "data": x.ravel().tolist()}]}


def test_a_replica_answers_on_its_own_port_with_direct_ingress(tmp_path: Path, ray_address: str) -> None:
    home = tmp_path / "home"
    signature = Signature(tuple(Feature(n) for n in FEATURES), classifier_outputs([0, 1]))
    x = rows(300, seed=2)
    path = tmp_path / "clf.joblib"
    fitted = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    joblib.dump(fitted, path)
    foretell.register("clf", path, signature=signature, aliases=["production"], home=home)
    log = tmp_path / "serve.log"
    on_ray = ("--engine", "ray", "--replicas", "1", "--ray-address", ray_address, "--reload-seconds", "0")
    with server(home, "clf@production", *on_ray, timeout=180, log=log) as proxy:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"replicas at (\S+)", log.read_text())):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        replica = found.group(1)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", replica), replica  # loopback, as --host says
        assert replica != proxy
        probe = rows(3, seed=9)
        with httpx.Client(timeout=30) as client:
            assert client.get(f"{replica}/v2/health/ready").status_code == 200
            answer = client.post(f"{replica}/v2/models/clf/infer", json=body(probe))
            assert answer.status_code == 200, answer.text
            score = next(o for o in answer.json()["outputs"] if o["name"] == "score")
            np.testing.assert_allclose(score["data"], fitted.predict_proba(probe)[:, 1], rtol=1e-9)
            refused = client.post(f"{replica}/v2/models/clf/infer", json={"inputs": []})
            assert refused.status_code == 400 and refused.json()["error"], refused.text  # foretell's JSON, not Ray's
            via_proxy = client.post(f"{proxy}/v2/models/clf/infer", json=body(probe)).json()
            assert via_proxy["outputs"] == answer.json()["outputs"]  # the proxy still reaches the same replica


def test_an_alias_move_reaches_every_replica(tmp_path: Path, ray_address: str) -> None:
    home = tmp_path / "home"
    signature = Signature(tuple(Feature(n) for n in FEATURES), classifier_outputs([0, 1]))
    x = rows(300, seed=2)
    for version, sign in ((1, 1.0), (2, -1.0)):  # version 2 predicts the opposite class
        path = tmp_path / f"v{version}.joblib"
        joblib.dump(LogisticRegression().fit(x, (sign * x[:, 0] > 0).astype(int)), path)
        foretell.register("flip", path, signature=signature, aliases=["production"] if version == 1 else [], home=home)
    on_ray = ("--engine", "ray", "--replicas", "2", "--ray-address", ray_address, "--reload-seconds", "0.5")
    with server(home, "flip@production", *on_ray, timeout=180) as url:
        probe = body(rows(1, seed=9))
        with httpx.Client(timeout=30) as client:
            first = {client.post(f"{url}/v2/models/flip/infer", json=probe).json()["model_version"] for _ in range(20)}
            assert first == {"1"}
            foretell.set_alias("flip", "production", 2, home=home)
            deadline = time.monotonic() + 60
            streak = 0
            while streak < 40:  # 40 answers in a row from version 2: both replicas moved, not one
                assert time.monotonic() < deadline, "the alias move did not reach every replica"
                answer = client.post(f"{url}/v2/models/flip/infer", json=probe).json()
                streak = streak + 1 if answer["model_version"] == "2" else 0


def test_flags_that_mean_nothing_on_ray_are_refused(tmp_path: Path) -> None:
    for flags, said in (
        (["--engine", "ray", "--workers", "2"], "use --replicas N or --autoscale MIN:MAX"),
        (["--replicas", "2"], "go with --engine ray"),
        (["--engine", "ray", "--replicas", "2", "--autoscale", "1:3"], "not both"),
        (["--ray-ingress", "proxy"], "go with --engine ray"),
        (["--engine", "ray", "--ray-ingress", "haproxy"], "--ray-ingress is direct or proxy"),
    ):
        refused = subprocess.run(
            [sys.executable, "-m", "foretell", "serve", "clf@production", *flags],
            capture_output=True,
            text=True,
            env={**os.environ, "FORETELL_HOME": str(tmp_path)},
            timeout=60,
        )
        assert refused.returncode != 0
        words = " ".join(refused.stderr.replace("│", " ").split())  # the usage error comes boxed and wrapped
        assert said in words, refused.stderr
